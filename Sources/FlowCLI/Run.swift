import ArgumentParser
import FlowRuntime
import FlowStdlib
import FlowStore
import FlowSyntax

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a Flow script.",
        discussion: """
        Checks the whole file first; if anything is wrong, prints every error and runs \
        nothing (exit 65). An uncaught runtime error prints the error with its traceback \
        (exit 70). Arguments after the file are available to the script as args().

        While flows run, their events (runs, nodes, state) are shown on standard error: a \
        live tree on a terminal, one line per event otherwise (--events).

        Every flow the script calls is a durable run, recorded in the store as it goes \
        (--store): if the process dies, `flow resume` continues each run where it was, \
        without doing a completed node again. Runs waiting for an approval or a signal are \
        left waiting when nothing else is left to do (`flow approve`, `flow signal`).

        Example: flow run Examples/hello.flow
        """
    )

    @Option(help: "How to show the events of runs on standard error: tree (a live tree; the default on a terminal), plain (one line per event; the default otherwise), json (JSON lines) or none.")
    var events: String?

    @ArgumentParser.Argument(help: "The script to run.")
    var file: String

    @ArgumentParser.Argument(parsing: .captureForPassthrough, help: "Arguments passed to the script (args()).")
    var arguments: [String] = []

    @OptionGroup var store: StoreOptions

    func run() throws {
        let display = try EventDisplay.parse(events)
        let source = try SourceLoader.load(file)
        let store = self.store.openLazily()
        let directory = System.currentDirectory
        // The store checks the id is free when the script is recorded (with its first run).
        let script = ScriptRecord(id: ScriptSession.newID(), path: file, source: source.text,
                                  arguments: JSONText.quoteList(arguments), directory: directory,
                                  startedAt: System.now)
        let recording = self.store.resolved == "none" ? nil : store
        let code = Durable.execute(source, script: script, resuming: false, store: recording, display: display,
                                   arguments: arguments, retention: try self.store.retentionNanoseconds(),
                                   exitsAfter: true)
        // The store is opened at the first run; the script ended on its failure (reported
        // above), which exits as a store that cannot be opened.
        if code != 0, (store as? LazyStore)?.failure != nil { throw ExitCode(74) }
        if code != 0 { throw ExitCode(code) }
    }
}

func summary(_ ds: [Diagnostic]) -> String {
    let n = ds.filter { $0.severity == .error }.count
    return "\(n) error\(n == 1 ? "" : "s")\n"
}
