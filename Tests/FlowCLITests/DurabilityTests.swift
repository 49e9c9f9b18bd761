import Foundation
import Testing

/// Durable runs through the real binary: kills, restarts, approvals, the operating commands.
@Suite struct DurabilityTests {
    /// A fresh folder with its own store.
    static func workspace() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flow-durable-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    static func start(_ arguments: [String], store: String) throws -> Process {
        let p = Process()
        p.executableURL = CLITests.binary
        p.arguments = arguments
        p.currentDirectoryURL = CLITests.root
        var environment = ProcessInfo.processInfo.environment
        environment["FLOW_STORE"] = store
        p.environment = environment
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    /// Pattern 15: 200 nodes, each appending a line (with its idempotency key) to a file
    /// and to a log of executions; the process is killed with SIGKILL at random moments,
    /// at least 50 times, and started again with `flow resume` each time.
    @Test func survivesFiftyKills() throws {
        let dir = try DurabilityTests.workspace()
        let store = dir.appendingPathComponent("flow.db").path
        let out = dir.appendingPathComponent("out.txt").path
        let executions = dir.appendingPathComponent("executions.txt").path
        var kills = 0
        var process = try DurabilityTests.start(["run", "--events", "none", "Examples/resume.flow", out, executions, "200"], store: store)
        var rng = SystemRandomNumberGenerator()
        var attempts = 0
        while attempts < 400 {
            attempts += 1
            // Kill anywhere from process start-up to well into the nodes (the first time
            // only once the script is in the store: before that there is nothing to resume,
            // and a user would simply run it again).
            usleep(attempts == 1 ? 300_000 : UInt32.random(in: 5_000...90_000, using: &rng))
            if !process.isRunning {
                process.waitUntilExit()
                if process.terminationStatus == 0 && kills >= 50 { break }
            } else {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                kills += 1
            }
            process = try DurabilityTests.start(["resume", "--events", "none"], store: store)
        }
        process.waitUntilExit()
        #expect(kills >= 50)
        let r = try CLITests.flow(["runs"], store: store)
        #expect(r.stdout.contains("completed"), "\(r.stdout)")
        #expect(!r.stdout.contains("running"), "\(r.stdout)")
        // Every node ran and wrote its line, in order. A line is written again only when a
        // kill came between the write and its record (at-least-once): then it carries the
        // same idempotency key, which is how a tool tells a repeat from a new call.
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
        var seen = Set<Substring>()
        let unique = lines.filter { seen.insert($0).inserted }
        #expect(unique.map { $0.split(separator: " ")[0] } == (0..<200).map { Substring(String($0)) })
        #expect(lines.count - unique.count <= kills)
        // A node whose completion was recorded never ran again: each node started at most
        // once more than the kills that could have caught it in flight.
        let starts = try String(contentsOfFile: executions, encoding: .utf8).split(separator: "\n")
        var count: [Substring: Int] = [:]
        for s in starts { count[s, default: 0] += 1 }
        #expect(Set(count.keys).count == 200)
        let repeated = count.values.reduce(0) { $0 + ($1 - 1) }
        #expect(repeated <= kills, "\(repeated) repeated node starts for \(kills) kills")
        // And the final result is right: the run ended with the sum of 0..<200.
        let id = String(r.stdout.split(separator: "\n")[1].split(separator: " ")[0])
        let history = try CLITests.flow(["history", id], store: store)
        #expect(history.stdout.contains("run:end status=\"completed\" result=19900"), "\(history.stdout.suffix(300))")
    }
}
