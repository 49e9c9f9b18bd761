import FlowRuntime
import FlowStdlib
import FlowSyntax
import Foundation
import Testing

/// Bad input never crashes or hangs the checker: every golden script, mangled in many
/// random ways (bytes deleted, inserted, duplicated, the file cut short), still gets
/// diagnostics back. A crash here would take the test process down.
@Suite struct MutationTests {
    /// A small deterministic generator, so a failure can be reproduced by its seed.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E3779B97F4A7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
            z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
            return z ^ (z >> 31)
        }
    }

    static let fragments: [[UInt8]] = ["(", ")", "{", "}", "[", "]", "\"", "${", "#[", "]#", "\n", "fn", "=>", "..", "$", "\u{0}", "é", "\\", "let", "match", "|"].map { Array($0.utf8) } + [[0xFF], [0xC3]]

    static func mutate(_ bytes: [UInt8], _ rng: inout SplitMix) -> [UInt8] {
        var b = bytes
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            let at = b.isEmpty ? 0 : Int.random(in: 0..<b.count, using: &rng)
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: if !b.isEmpty { b.removeSubrange(at..<min(b.count, at + Int.random(in: 1...8, using: &rng))) }
            case 1: b.insert(contentsOf: fragments.randomElement(using: &rng)!, at: at)
            case 2: b.insert(contentsOf: b[at..<min(b.count, at + 20)], at: at)
            default: b = Array(b[..<at])
            }
        }
        return b
    }

    @Test func mangledScriptsGetDiagnosticsNotCrashes() throws {
        let engine = Stdlib.makeEngine()
        var rng = SplitMix(state: 2026)
        var checked = 0
        for path in GoldenTests.scripts {
            let original = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
            for _ in 0..<8 {
                let bytes = MutationTests.mutate(original, &rng)
                switch SourceFile.decode(path: path, bytes: bytes) {
                case .failure(let d):
                    #expect(d.message.hasPrefix("invalid UTF-8"))
                case .success(let file):
                    let diagnostics = engine.check(file)
                    for d in diagnostics { _ = DiagnosticRenderer.render(d) }
                }
                checked += 1
            }
        }
        #expect(checked >= 2000)
    }

    @Test func pathologicalInputs() {
        let engine = Stdlib.makeEngine()
        let inputs = [
            String(repeating: "[", count: 50_000),
            String(repeating: "-", count: 50_000) + "1",
            String(repeating: "not ", count: 20_000) + "true",
            String(repeating: "\"${", count: 5_000),
            String(repeating: "#[", count: 10_000),
            String(repeating: "if x { ", count: 5_000),
            "let x = " + String(repeating: "a.", count: 20_000) + "b",
            String(repeating: "f(", count: 10_000),
            String(repeating: "}", count: 10_000),
            String(repeating: "x = 1\n", count: 20_000),
        ]
        for text in inputs {
            let diagnostics = engine.check(SourceFile(path: "p.flow", text: text))
            _ = DiagnosticRenderer.render(diagnostics)
        }
    }
}
