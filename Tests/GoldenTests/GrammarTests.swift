import FlowSyntax
import Foundation
import Testing

/// Grammar/flow.ebnf and the parser stay in step: each production has a parse function
/// named after it, and golden scripts exercise every production.
@Suite struct GrammarTests {
    static func productions() throws -> [String] {
        let text = try String(contentsOf: Paths.root.appendingPathComponent("Grammar/flow.ebnf"), encoding: .utf8)
        var names: [String] = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let first = line.first, first.isLetter else { continue }
            names.append(parts[0].trimmingCharacters(in: .whitespaces))
        }
        return names
    }

    @Test func everyProductionHasAParseFunction() throws {
        let dir = Paths.root.appendingPathComponent("Sources/FlowSyntax")
        var source = ""
        for f in try FileManager.default.contentsOfDirectory(atPath: dir.path) where f.hasPrefix("Parser") {
            source += try String(contentsOf: dir.appendingPathComponent(f), encoding: .utf8)
        }
        let productions = try GrammarTests.productions()
        #expect(productions.count > 40)
        for p in productions {
            let fn = "func parse" + p.prefix(1).uppercased() + p.dropFirst()
            #expect(source.contains(fn + "(") || source.contains(fn + "<"), "no \(fn) for production '\(p)'")
        }
    }

    @Test func everyProductionIsExercisedByGoldenScripts() throws {
        var seen = Set<String>()
        for path in GoldenTests.scripts + GoldenTests.examples {
            let text = try String(contentsOfFile: path, encoding: .utf8)
            var parser = Parser(file: SourceFile(path: path, text: text))
            parser.recordProductions = true
            _ = parser.parseProgram()
            seen.formUnion(parser.productionsSeen)
        }
        let missing = try GrammarTests.productions().filter { !seen.contains($0) }
        #expect(missing.isEmpty, "productions no golden script exercises: \(missing)")
    }
}
