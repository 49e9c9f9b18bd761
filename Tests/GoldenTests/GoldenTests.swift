import FlowSyntax
import Foundation
import Testing

/// Every script under Tests/GoldenTests/Scripts and every example behaves as its
/// `# expect…` comments say.
@Suite struct GoldenTests {
    static let scripts = Paths.flowFiles(under: Paths.scripts)
    static let examples = Paths.flowFiles(under: Paths.examples)

    @Test(arguments: scripts.map { String($0.dropFirst(Paths.root.path.count + 1)) })
    func script(_ relative: String) throws {
        try check(Paths.root.appendingPathComponent(relative).path)
    }

    @Test(arguments: examples.map { String($0.dropFirst(Paths.root.path.count + 1)) })
    func example(_ relative: String) throws {
        try check(Paths.root.appendingPathComponent(relative).path)
    }

    func check(_ path: String) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let script = GoldenScript(path: path, text: text)
        if script.skip != nil { return }
        let problems = script.run(text: text)
        #expect(problems.isEmpty, "\(path):\n\(problems.joined(separator: "\n"))")
    }

    @Test func thereAreEnoughScripts() {
        #expect(GoldenTests.scripts.count >= 100, "found \(GoldenTests.scripts.count) golden scripts")
    }
}
