import ArgumentParser
import FlowRuntime
import FlowStdlib
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

        Example: flow run Examples/hello.flow
        """
    )

    @Option(help: "How to show the events of runs on standard error: tree (a live tree; the default on a terminal), plain (one line per event; the default otherwise), json (JSON lines) or none.")
    var events: String?

    @ArgumentParser.Argument(help: "The script to run.")
    var file: String

    @ArgumentParser.Argument(parsing: .captureForPassthrough, help: "Arguments passed to the script (args()).")
    var arguments: [String] = []

    func run() throws {
        let display: EventDisplay
        if let events {
            guard let d = EventDisplay(rawValue: events) else {
                throw ValidationError("--events must be one of \(EventDisplay.allCases.map { $0.rawValue }.joined(separator: ", ")), found '\(events)'")
            }
            display = d
        } else {
            display = .automatic
        }
        let source = try SourceLoader.load(file)
        var configuration = SourceLoader.configuration()
        configuration.arguments = arguments
        let progress = Progress(display: display)
        configuration.onEvent = { progress.receive($0) }
        let engine = Stdlib.makeEngine(configuration)
        progress.interpreter = engine.interpreter
        do {
            // Warnings are shown before the script's output, without stopping it.
            try engine.run(source) { warnings in
                if !warnings.isEmpty { SourceLoader.printError(DiagnosticRenderer.render(warnings)) }
            }
        } catch let failure as CompileFailure {
            SourceLoader.printError(DiagnosticRenderer.render(failure.diagnostics) + summary(failure.diagnostics))
            throw ExitCode(65)
        } catch let error as FlowError {
            SourceLoader.printError(error.rendered)
            throw ExitCode(70)
        }
    }
}

func summary(_ ds: [Diagnostic]) -> String {
    let n = ds.filter { $0.severity == .error }.count
    return "\(n) error\(n == 1 ? "" : "s")\n"
}
