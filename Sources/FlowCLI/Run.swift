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

        Example: flow run Examples/hello.flow
        """
    )

    @ArgumentParser.Argument(help: "The script to run.")
    var file: String

    @ArgumentParser.Argument(parsing: .captureForPassthrough, help: "Arguments passed to the script (args()).")
    var arguments: [String] = []

    func run() throws {
        let source = try SourceLoader.load(file)
        var configuration = SourceLoader.configuration()
        configuration.arguments = arguments
        let engine = Stdlib.makeEngine(configuration)
        do {
            try engine.run(source)
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
