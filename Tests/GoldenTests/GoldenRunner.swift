import FlowRuntime
import FlowStdlib
import FlowStore
import FlowSyntax
import Foundation

/// Runs a `.flow` script with `# expect…` directives (STYLE.md) and reports mismatches.
///
/// Directives: `# expect: text` (the next line of output), `# expect error: message`
/// (a static error on this line; the script does not run), `# expect runtime error:
/// message` (the uncaught error, raised on this line), `# expect matches: regex` (the next
/// line of output matches), `# skip: reason`, `# store: none` (run with no run store;
/// by default a script runs as a recorded script execution on a `MemoryStore`, as
/// `flow run --store memory` does, but with the script id `run`, so its runs are `run-1`,
/// `run-2`…: the CLI's are named after a script id of its own, and an example must not
/// spell a run id). Runs left waiting for approvals or signals print
/// `waiting: run R is waiting for …` lines after the script's output.
struct GoldenScript {
    enum Expectation { case line(String), pattern(String) }
    let path: String
    var output: [Expectation] = []
    var staticErrors: [(line: Int, message: String)] = []
    var warnings: [(line: Int, message: String)] = []
    var runtimeError: (line: Int, message: String)? = nil
    var skip: String? = nil
    var durable = true

    init(path: String, text: String) {
        self.path = path
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.contains("# store: none") { durable = false }
            guard let r = line.range(of: "# expect") ?? line.range(of: "# skip:") else { continue }
            let directive = line[r.lowerBound...]
            func value(after prefix: String) -> String? {
                directive.hasPrefix(prefix) ? String(directive.dropFirst(prefix.count)).trimmingCharacters(in: .whitespaces) : nil
            }
            if let v = value(after: "# expect error:") { staticErrors.append((index + 1, v)) }
            else if let v = value(after: "# expect warning:") { warnings.append((index + 1, v)) }
            else if let v = value(after: "# expect runtime error:") { runtimeError = (index + 1, v) }
            else if let v = value(after: "# expect matches:") { output.append(.pattern(v)) }
            else if directive.hasPrefix("# expect:") {
                // Keep inner spaces; drop only the one space after the colon.
                var v = String(directive.dropFirst("# expect:".count))
                if v.hasPrefix(" ") { v.removeFirst() }
                output.append(.line(v))
            }
            else if let v = value(after: "# skip:") { skip = v }
        }
    }

    /// Runs the script; returns the list of problems (empty when it behaves as written).
    func run(text: String) -> [String] {
        let collected = OutputBuffer()
        var configuration = Configuration()
        configuration.output = { collected.append($0) }
        configuration.clock = VirtualClock()
        configuration.arguments = ["first", "second"]
        configuration.readSource = { p in try? String(contentsOfFile: p, encoding: .utf8) }
        if durable { configuration.store = MemoryStore() }
        let engine = Stdlib.makeEngine(configuration)
        var problems: [String] = []
        let file: SourceFile
        switch SourceFile.decode(path: path, bytes: Array(text.utf8)) {
        case .success(let f): file = f
        case .failure(let d): return ["cannot decode: \(d)"]
        }
        var actualStatic: [(Int, String)] = []
        var actualRuntime: (Int, String)? = nil
        let actualWarnings = engine.check(file).filter { $0.severity == .warning && $0.range.file.path == path }
            .map { "\($0.location.line): \($0.message)" }.sorted()
        let expectedWarnings = warnings.map { "\($0.line): \($0.message)" }.sorted()
        if actualWarnings != expectedWarnings {
            problems.append("warnings differ\n  expected: \(expectedWarnings)\n  actual:   \(actualWarnings)")
        }
        do {
            if durable {
                try engine.run(file, script: ScriptRecord(id: "run", path: path, source: text, startedAt: 0))
            } else {
                try engine.run(file)
            }
        } catch let s as RunsSuspended {
            for w in s.waiting { collected.append("waiting: run \(w.run) is waiting for \(w.on)\n") }
        } catch let f as CompileFailure {
            let dir = (path as NSString).deletingLastPathComponent + "/"
            actualStatic = f.diagnostics.filter { $0.severity == .error && $0.range.file.path == path }
                .map { ($0.location.line, $0.message.replacingOccurrences(of: dir, with: "__DIR__/")) }
        } catch let e as FlowError {
            // The innermost frame in this script: an error raised inside a library
            // is expected where the script called into it.
            let here = e.frames.first { $0.range?.file.path == path }?.range ?? e.range
            actualRuntime = (here?.startLocation.line ?? 0, e.message)
        } catch {
            problems.append("unexpected Swift error: \(error)")
        }
        // Static errors: exactly the expected ones, by line and message.
        let expectedStatic = staticErrors.map { "\($0.line): \($0.message)" }.sorted()
        let gotStatic = actualStatic.map { "\($0.0): \($0.1)" }.sorted()
        if expectedStatic != gotStatic {
            problems.append("static errors differ\n  expected: \(expectedStatic)\n  actual:   \(gotStatic)")
        }
        if !staticErrors.isEmpty { return problems }
        switch (runtimeError, actualRuntime) {
        case (nil, nil): break
        case (let e?, let a?):
            if e.line != a.0 || e.message != a.1 {
                problems.append("runtime error differs\n  expected: \(e.line): \(e.message)\n  actual:   \(a.0): \(a.1)")
            }
        case (let e?, nil): problems.append("expected runtime error at line \(e.line): \(e.message), but the script succeeded")
        case (nil, let a?): problems.append("unexpected runtime error at line \(a.0): \(a.1)")
        }
        let lines = collected.lines
        for (i, exp) in output.enumerated() {
            guard i < lines.count else {
                problems.append("missing output line \(i + 1): expected \(exp)")
                break
            }
            switch exp {
            case .line(let s) where s != lines[i]:
                problems.append("output line \(i + 1) differs\n  expected: \(s)\n  actual:   \(lines[i])")
            case .pattern(let p) where lines[i].range(of: "^(\(p))$", options: .regularExpression) == nil:
                problems.append("output line \(i + 1) does not match /\(p)/: \(lines[i])")
            default: break
            }
        }
        if lines.count > output.count {
            problems.append("unexpected extra output from line \(output.count + 1): \(lines[output.count...].prefix(3).joined(separator: " | "))")
        }
        return problems
    }
}

final class OutputBuffer: @unchecked Sendable {
    private let lock = NSLock()
    private var text = ""
    func append(_ s: String) { lock.lock(); text += s; lock.unlock() }
    var lines: [String] {
        lock.lock(); defer { lock.unlock() }
        var l = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if l.last == "" { l.removeLast() }
        return l
    }
}

enum Paths {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let scripts = root.appendingPathComponent("Tests/GoldenTests/Scripts")
    static let examples = root.appendingPathComponent("Examples")

    static func flowFiles(under dir: URL) -> [String] {
        guard let e = FileManager.default.enumerator(atPath: dir.path) else { return [] }
        return e.compactMap { $0 as? String }.filter { $0.hasSuffix(".flow") }.sorted().map { dir.appendingPathComponent($0).path }
    }
}
