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
}

enum FlowVersion {
    static let current = "0.1.0"
}
