import FlowRuntime
import FlowStdlib
import FlowStore
import FlowSyntax
import Foundation
import Testing

/// Hot swap through the embedding API: a running run picks up a redefined function at
/// once and a redefined flow at its next node, keeps its state, refuses a change its log
/// does not agree with, and rollback works.
@Suite struct HotSwapTests {
    final class Box: @unchecked Sendable {
        let lock = NSLock()
        var result: Result<Value, Error>?
        func set(_ r: Result<Value, Error>) { lock.lock(); result = r; lock.unlock() }
        var value: Result<Value, Error>? { lock.lock(); defer { lock.unlock() }; return result }
    }

    /// An engine as the REPL has it: runs recorded in memory, a session, the loop running.
    static func session(_ id: String) throws -> Engine {
        var c = Configuration()
        c.store = MemoryStore()
        c.output = { _ in }
        let engine = Stdlib.makeEngine(c)
        try engine.perform { try engine.interpreter.beginScript(ScriptRecord(id: id, path: "<repl>", source: "", startedAt: 0), resuming: false) }
        engine.startBackground()
        return engine
    }

    func waitUntil(_ what: String, timeout: Double = 10, _ condition: () -> Bool) {
        let end = Date().addingTimeInterval(timeout)
        while !condition() && Date() < end { usleep(20_000) }
        if !condition() { Issue.record("timed out waiting for \(what)") }
    }

    @Test func aRunningRunTakesNewVersionsAtItsNextNode() throws {
        let engine = try HotSwapTests.session("hs")
        defer { engine.stopBackground() }
        try engine.evaluate("""
        fn process(x) { x * 10 }
        flow batch(items) {
          $.done = []
          for item in items {
            let r = node work { process(item) }
            $.done = $.done + [r]
            await signal("next")
          }
          return $.done
        }
        """)
        let box = Box()
        try engine.evaluateInBackground("batch([1, 2, 3, 4])") { box.set($0) }
        func waiting() -> Bool { engine.sessionRuns().first?.status == "waiting" }
        waitUntil("the first item", waiting)
        let id = engine.sessionRuns()[0].id

        // A new processor takes effect at once; a new flow version with a validation node
        // is offered to the run.
        try engine.evaluate("fn process(x) { x * 100 }")
        let v2 = try engine.evaluate("""
        flow batch(items) {
          $.done = []
          for item in items {
            let r = node work { process(item) }
            node validate { assert(r > 0, "bad result") }
            $.done = $.done + [r]
            await signal("next")
          }
          return $.done
        }
        """)
        #expect(v2.offered == [id])
        try engine.signal(run: id, name: "next", value: .nilValue)
        waitUntil("the second item") { waiting() && (try? engine.history(run: id))?.contains { Printer.display($0).contains("work#1") && Printer.display($0).contains("node:end") } == true }

        // An unsafe version (the work node renamed) is refused; the run stays on v2.
        let v3 = try engine.evaluate("""
        flow batch(items) {
          $.done = []
          for item in items {
            let r = node compute { process(item) }
            $.done = $.done + [r]
            await signal("next")
          }
          return $.done
        }
        """)
        #expect(v3.offered == [id])
        try engine.signal(run: id, name: "next", value: .nilValue)
        waitUntil("the third item") { waiting() && (try? engine.history(run: id))?.contains { Printer.display($0).contains("swap:refused") } == true }
        // Rolling back to v2 in the image (the run is on v2 already: nothing to offer).
        let back = try engine.rollback("batch")
        #expect(back.number == 2)
        try engine.signal(run: id, name: "next", value: .nilValue)
        waitUntil("the fourth item") { waiting() && (try? engine.history(run: id))?.contains { Printer.display($0).contains("work#3") && Printer.display($0).contains("node:end") } == true }
        try engine.signal(run: id, name: "next", value: .nilValue)
        waitUntil("the end") { box.value != nil }

        #expect(try box.value?.get() == .list(ListBox.make([.int(10), .int(200), .int(300), .int(400)])), "\(String(describing: box.value))")
        let types = try engine.history(run: id).compactMap { v -> String? in
            guard case .map(let m) = v, let t = m.get("type")?.stringValue else { return nil }
            if t == "node:end" { return m.get("path")?.stringValue }
            return t.hasPrefix("swap:") ? t : nil
        }
        #expect(types == ["batch/work#0", "swap:start", "swap:done", "batch/work#1", "batch/validate#1",
                          "swap:start", "swap:refused", "batch/work#2", "batch/validate#2", "batch/work#3", "batch/validate#3"],
                "\(types)")
        // The state was carried through both swaps.
        #expect(Printer.repr(.map(try engine.state(run: id))) == "{done: [10, 200, 300, 400]}")
    }

    @Test func aMigrationFunctionMapsTheState() throws {
        let engine = try HotSwapTests.session("tr")
        defer { engine.stopBackground() }
        try engine.evaluate("flow count() { $.n = 1\n node a { 1 }\n await signal(\"go\")\n node b { $.n } }")
        let box = Box()
        try engine.evaluateInBackground("count()") { box.set($0) }
        waitUntil("the wait") { engine.sessionRuns().first?.status == "waiting" }
        let id = engine.sessionRuns()[0].id
        let migrate = try engine.evaluate("fn(s) => s.merge({n: s.n * 100})").value
        let v2 = try engine.evaluate("flow count() { $.n = 1\n node a { 1 }\n await signal(\"go\")\n node b { $.n + 1 } }",
                                     policy: .transform(migrate))
        #expect(v2.offered == [id])
        try engine.signal(run: id, name: "go", value: .nilValue)
        waitUntil("the end") { box.value != nil }
        // The replay reached the frontier with n = 1; the function made it 100; v2 adds 1.
        #expect(try box.value?.get() == .int(101), "\(String(describing: box.value))")
        #expect(engine.image.versions(of: "count").count == 2)
    }
}
