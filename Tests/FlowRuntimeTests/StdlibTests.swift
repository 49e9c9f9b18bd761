import FlowStdlib
import Foundation
import Testing

@Suite struct StdlibTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The copy of Stdlib/*.flow compiled into the binary matches the files: run
    /// scripts/embed-stdlib after editing them.
    @Test func embeddedStandardLibraryIsCurrent() throws {
        let dir = StdlibTests.root.appendingPathComponent("Stdlib")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".flow") }
        #expect(Set(files.map { String($0.dropLast(5)) }) == Set(EmbeddedStdlib.sources.keys), "run scripts/embed-stdlib")
        for f in files {
            let text = try String(contentsOf: dir.appendingPathComponent(f), encoding: .utf8)
            #expect(EmbeddedStdlib.sources[String(f.dropLast(5))] == text, "Stdlib/\(f) changed: run scripts/embed-stdlib")
        }
    }
}
