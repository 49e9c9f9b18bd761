import ArgumentParser

@main
struct Flow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flow",
        abstract: "Run, check and explore Flow workflow scripts.",
        discussion: "Exit status: 0 on success, 65 when a script has static errors (nothing ran), 70 when it failed while running, 64 for bad command-line usage, 66 when a file (or a run) cannot be found or read, 74 when the run store cannot be opened.",
        version: FlowVersion.current,
        subcommands: [Run.self, Check.self, Runs.self, History.self, Resume.self, Approve.self, Signal.self, Cancel.self, Rewind.self, Diff.self, Prune.self, Repl.self]
    )

    /// `flow run FILE [ARGS…]` with no option before the file — a script run as scripts
    /// are run most — is the `run` command with its defaults, made without the argument
    /// parser: its reflection over the commands' properties was half the instructions of
    /// `flow run hello.flow` (9.0M of 19.0M). Everything else goes to the parser.
    static func main() {
        let argv = CommandLine.arguments.dropFirst()
        guard argv.count >= 2, argv.first == "run", let file = argv.dropFirst().first, !file.hasPrefix("-") else {
            return main(nil)
        }
        var command = Run()
        command.events = nil
        command.file = file
        command.arguments = Array(argv.dropFirst(2))
        var store = StoreOptions()
        store.path = nil
        store.retention = nil
        command.store = store
        do { try command.run() } catch { exit(withError: error) }
    }
}

enum FlowVersion {
    static let current = "0.1.0"
}
