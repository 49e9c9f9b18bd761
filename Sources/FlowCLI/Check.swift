import ArgumentParser
import FlowRuntime
import FlowStdlib
import FlowSyntax

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check Flow scripts without running them.",
        discussion: """
        Reports every syntax error and static error (undefined names, duplicate \
        definitions, misplaced return/break/continue, wrong arity of known calls) of every \
        file. Exit 0 when all are clean, 65 otherwise.

        Example: flow check Examples/*.flow
        """
    )

    @ArgumentParser.Argument(help: "The scripts to check.")
    var files: [String]

    func run() throws {
        let engine = Stdlib.makeEngine(SourceLoader.configuration())
        var errors = 0
        var warnings = 0
        for path in files {
            let source: SourceFile
            do { source = try SourceLoader.load(path) } catch let e as ExitCode {
                if e == ExitCode(66) { errors += 1; continue }
                throw e
            }
            let diagnostics = engine.check(source)
            errors += diagnostics.filter { $0.severity == .error }.count
            warnings += diagnostics.filter { $0.severity == .warning }.count
            if !diagnostics.isEmpty { SourceLoader.printError(DiagnosticRenderer.render(diagnostics)) }
        }
        if errors > 0 {
            SourceLoader.printError("\(errors) error\(errors == 1 ? "" : "s") in \(files.count) file\(files.count == 1 ? "" : "s")\n")
            throw ExitCode(65)
        }
        let warned = warnings == 0 ? "" : ", \(warnings) warning\(warnings == 1 ? "" : "s")"
        print("\(files.count) file\(files.count == 1 ? "" : "s") checked, no errors\(warned)")
    }
}
