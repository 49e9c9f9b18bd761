import FlowRuntime
import FlowStdlib
import FlowStore
import FlowSyntax
import Foundation
import Synchronization
import Testing

/// A store that stops taking writes after a budget, as if the process died there: what
/// the inner store holds is what a restarted process finds.
final class CrashingStore: RunStore, Sendable {
    let inner = MemoryStore()
    private let budget: Mutex<Int>
    init(writes: Int) { budget = Mutex(writes) }
    struct Crash: Error {}

    func write(_ batch: StoreBatch) throws {
        try budget.withLock { n in
            guard n > 0 else { throw Crash() }
            n -= 1
        }
        try inner.write(batch)
    }
    func script(id: String) throws -> ScriptRecord? { try inner.script(id: id) }
    func scripts(status: [String]?) throws -> [ScriptRecord] { try inner.scripts(status: status) }
    func run(id: String) throws -> RunRecord? { try inner.run(id: id) }
    func run(script: String, parent: String?, key: String) throws -> RunRecord? { try inner.run(script: script, parent: parent, key: key) }
    func runs(_ query: RunQuery) throws -> [RunRecord] { try inner.runs(query) }
    func events(run: String, after: Int) throws -> [EventRecord] { try inner.events(run: run, after: after) }
    func inbox(run: String) throws -> [InboxMessage] { try inner.inbox(run: run) }
    func post(_ message: InboxMessage) throws -> Int { try inner.post(message) }
    func prune(endedBefore: Double) throws -> Int { try inner.prune(endedBefore: endedBefore) }
}

/// Replay: what a restarted process does with what the store kept.
@Suite struct ReplayTests {
    final class Calls: @unchecked Sendable {
        let lock = NSLock()
        var items: [String] = []
        func add(_ s: String) { lock.lock(); items.append(s); lock.unlock() }
        var all: [String] { lock.lock(); defer { lock.unlock() }; return items }
    }

    /// An engine on `store` with a `work(x)` tool that logs its calls and `out` for print.
    func engine(_ store: any RunStore, calls: Calls, output: Calls = Calls()) -> Engine {
        var c = Configuration()
        c.clock = VirtualClock()
        c.store = store
        c.output = { output.add($0) }
        let e = Stdlib.makeEngine(c)
        e.interpreter.defineTool("work", parameters: ["x"]) { call, key in
            calls.add("\(Printer.display(call[0])) \(key)")
            return call[0]
        }
        return e
    }

    let script = ScriptRecord(id: "s", path: "t.flow", source: "", startedAt: 0)

    /// Runs `source` on a store that dies after `writes` writes, then resumes it from what
    /// the store kept, on a fresh engine. Returns both engines' outputs and the tool calls.
    func crashAndResume(_ source: String, writes: Int, resumeWith: String? = nil) throws -> (first: [String], second: [String], calls: [String], result: Value) {
        let store = CrashingStore(writes: writes)
        let calls = Calls(), out1 = Calls(), out2 = Calls()
        let file = SourceFile(path: "t.flow", text: source)
        do { try engine(store, calls: calls, output: out1).run(file, script: script) } catch {}
        let again = SourceFile(path: "t.flow", text: resumeWith ?? source)
        let v = try engine(store.inner, calls: calls, output: out2).run(again, script: script, resuming: true)
        return (out1.all, out2.all, calls.all, v)
    }

    static let chain = """
    flow f(n) {
      let total = 0
      for i in range(n) { total += node step { work(i) } }
      print("total", total)
      return total
    }
    f(10)
    """

    @Test func aCrashAtAnyWriteResumesWithEveryToolCalledOnce() throws {
        // Crash after every possible number of writes: the result is the same, each tool
        // call completed before the crash is not repeated.
        for writes in 0..<25 {
            let r = try crashAndResume(ReplayTests.chain, writes: writes)
            #expect(r.result == .int(45), "crash after \(writes) writes")
            let distinct = Set(r.calls)
            #expect(distinct.count == 10, "crash after \(writes) writes: \(r.calls)")
            // At most the call in flight at the crash runs twice (at-least-once), with the
            // same idempotency key.
            #expect(r.calls.count - distinct.count <= 1, "crash after \(writes) writes: \(r.calls)")
            #expect(r.first.count + r.second.count >= 1)
        }
    }

    @Test func outputIsNotPrintedAgainByTheReplay() throws {
        let source = """
        flow f() {
          print("before")
          let a = node one { work(1) }
          print("middle", a)
          let b = node two { work(2) }
          print("after", b)
        }
        f()
        """
        // Dies when `two` calls its tool: "before" and "middle" were printed and recorded.
        let store = CrashingStore(writes: 100)
        let calls = Calls(), out = Calls()
        try engine(store, calls: calls, output: out).run(SourceFile(path: "t.flow", text: source), script: script)
        #expect(out.all == ["before\n", "middle 1\n", "after 2\n"])
        let again = Calls()
        let resumed = CrashingStore(writes: 100)
        // Copy what was recorded up to the second tool call into a new store.
        let events = try store.inner.events(run: "s-1")
        let cut = events.firstIndex { $0.key.contains("@work#") && $0.key.contains("two") }!
        try resumed.inner.write(StoreBatch(scripts: [script], runs: [try store.inner.run(id: "s-1")!.with(status: "running")],
                                           events: Array(events[..<cut])))
        try engine(resumed.inner, calls: calls, output: again).run(SourceFile(path: "t.flow", text: source), script: script, resuming: true)
        #expect(again.all == ["after 2\n"])
    }

    @Test func parallelBranchesReplayInRecordedOrder() throws {
        // Branch b finishes first (1s before a): the shared list is [b, a]. After a crash,
        // both sleeps are recorded and come back at once; replay must still deliver b first.
        let source = """
        flow f() {
          let order = []
          parallel {
            a: { sleep(2s); order.push("a") },
            b: { sleep(1s); order.push("b") },
          }
          work(order)
          return order
        }
        print(f())
        """
        let store = CrashingStore(writes: 1000)
        let calls = Calls()
        try engine(store, calls: calls).run(SourceFile(path: "t.flow", text: source), script: script)
        let events = try store.inner.events(run: "s-1")
        let cut = events.firstIndex { $0.key.contains("@work#") }!
        let copy = MemoryStore()
        try copy.write(StoreBatch(scripts: [script], runs: [try store.inner.run(id: "s-1")!.with(status: "running")],
                                  events: Array(events[..<cut])))
        let out = Calls()
        let v = try engine(copy, calls: calls, output: out).run(SourceFile(path: "t.flow", text: source), script: script, resuming: true)
        #expect(calls.all.last == "[\"b\", \"a\"] s-1:f/@work#0")
        _ = v
    }

    @Test func changedCodeIsReportedAsADivergence() throws {
        let v2 = ReplayTests.chain.replacingOccurrences(of: "node step", with: "node stage")
        do {
            _ = try crashAndResume(ReplayTests.chain, writes: 8, resumeWith: v2)
            Issue.record("expected a divergence")
        } catch let d as ReplayDivergence {
            #expect(d.description.contains("the log recorded 'f/step#0'"), "\(d)")
            #expect(d.description.contains("but the code asked for 'f/stage#0' instead"), "\(d)")
        }
    }

    @Test func childRunsResumeInsideTheirParent() throws {
        let source = """
        flow child(x) {
          let a = node first { work("c${x}a") }
          let b = node second { work("c${x}b") }
          return a + b
        }
        flow parent() {
          let r1 = child(1)
          let r2 = child(2)
          return r1 + r2
        }
        print(parent())
        """
        for writes in [3, 6, 9, 12] {
            let r = try crashAndResume(source, writes: writes)
            #expect(Set(r.calls).count == 4, "\(writes): \(r.calls)")
            #expect(r.calls.count <= 5, "\(writes): \(r.calls)")
        }
    }

    @Test func continueAsNewChainsResumeWhereTheyWere() throws {
        let source = """
        flow batch(n, last) {
          $.done = $.get("done", 0) + 1
          node step { work(n) }
          if n < last { continue_as_new(n + 1, last) }
          return $.done
        }
        print(batch(1, 6))
        """
        for writes in stride(from: 2, through: 24, by: 2) {
            let r = try crashAndResume(source, writes: writes)
            #expect(Set(r.calls).count == 6, "\(writes): \(r.calls)")
            #expect(r.calls.count <= 7, "\(writes): \(r.calls)")
            #expect((r.first + r.second).last == "6\n", "\(writes): \(r.first) \(r.second)")
        }
    }

    @Test func timeTravelThroughTheEmbeddingAPI() throws {
        let source = """
        flow pricing(rate) {
          $.rate = rate
          let base = node fetch { work(100) }
          $.base = base
          return node price { base * $.rate }
        }
        print(pricing(2))
        """
        let store = MemoryStore()
        let calls = Calls(), out = Calls()
        let e = engine(store, calls: calls, output: out)
        try e.run(SourceFile(path: "t.flow", text: source), script: script)
        #expect(out.all == ["200\n"])
        let timeline = try e.history(run: "s-1")
        #expect(timeline.compactMap { v -> String? in if case .map(let m) = v { return m.get("type")?.stringValue }; return nil }
                == ["run:start", "state", "node:start", "effect", "node:end", "state", "node:start", "node:end", "run:end"])
        #expect(Printer.repr(.map(try e.state(run: "s-1", at: 5))) == "{rate: 2}")
        // Fork where fetch ended, with another rate: fetch (the tool) is not called again.
        let fork = try e.rewind(run: "s-1", to: 5, set: [(["rate"], .int(3))], scriptID: "fork")
        #expect(fork.result == .int(300))
        #expect(fork.run == "fork-1")
        #expect(calls.all.count == 1)
        guard case .map(let d) = try e.diff("s-1", "fork-1") else { Issue.record("no diff"); return }
        #expect(Printer.repr(d.get("result") ?? .nilValue) == "[200, 300]")
        #expect(Printer.repr(d.get("state") ?? .nilValue) == "{rate: [2, 3]}")
    }

    @Test func forksReuseChildRunsThatEndedBeforeTheForkPoint() throws {
        let source = """
        flow research(topic) { return node ask { work("llm:" + topic) } }
        flow report(topics) {
          $.style = "short"
          let notes = topics.map(fn(t) => research(t))
          $.notes = len(notes)
          return node write { work("write:" + $.style) }
        }
        print(report(["a", "b"]))
        """
        let store = MemoryStore()
        let calls = Calls()
        let e = engine(store, calls: calls)
        try e.run(SourceFile(path: "t.flow", text: source), script: script)
        #expect(calls.all.count == 3)
        // Fork after both child runs ended (at the `$.notes` write), with another style.
        let events = try e.history(run: "s-1")
        let at = events.firstIndex { v in
            if case .map(let m) = v { return m.get("path")?.stringValue == "$.notes" }
            return false
        }! + 1
        let fork = try e.rewind(run: "s-1", to: at, set: [(["style"], .str("long"))], scriptID: "fk")
        #expect(fork.result == .str("write:long"))
        // Only the write ran again: the children's LLM calls were reused.
        #expect(calls.all.map { $0.split(separator: " ")[0] } == ["llm:a", "llm:b", "write:short", "write:long"])
    }

    @Test func approvalsAreTakenFromTheInboxOnResume() throws {
        let source = """
        flow deploy() {
          node build { work("build") }
          let ok = await approve("ship?")
          return if ok { node ship { work("ship") } } else { "held" }
        }
        print(deploy())
        """
        let store = MemoryStore()
        let calls = Calls(), out = Calls()
        let first = engine(store, calls: calls, output: out)
        #expect(throws: RunsSuspended.self) { try first.run(SourceFile(path: "t.flow", text: source), script: script) }
        #expect(try store.run(id: "s-1")?.status == "waiting")
        #expect(try store.run(id: "s-1")?.waitingOn == "approval: ship?")
        let second = engine(store, calls: calls, output: out)
        try second.approve(run: "s-1", reason: "fine")
        try second.run(SourceFile(path: "t.flow", text: source), script: script, resuming: true)
        #expect(out.all == ["ship\n"])
        #expect(calls.all.map { $0.split(separator: " ")[0] } == ["build", "ship"])
        #expect(try store.run(id: "s-1")?.status == "completed")
        #expect(throws: StoreError.self) { try second.approve(run: "s-1") }
    }
}

extension RunRecord {
    func with(status: String) -> RunRecord {
        var r = self
        r.status = status
        r.endedAt = nil
        r.outcome = nil
        return r
    }
}
