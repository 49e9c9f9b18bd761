import FlowRuntime
import FlowStdlib
import FlowSyntax
import Foundation
import Testing

/// The embedding API as a host uses it.
@Suite struct EngineTests {
    final class Collected: @unchecked Sendable {
        let lock = NSLock()
        var items: [String] = []
        func add(_ s: String) { lock.lock(); items.append(s); lock.unlock() }
    }

    func engine(output: Collected = Collected(), events: Collected? = nil) -> Engine {
        var c = Configuration()
        c.clock = VirtualClock()
        c.output = { output.add($0) }
        if let events {
            c.onEvent = { e in
                if case .map(let m) = e { events.add("\(m.get("type")?.stringValue ?? "?") \(m.get("path")?.stringValue ?? "")") }
            }
        }
        return Stdlib.makeEngine(c)
    }

    @Test func runReturnsTheLastValueAndPrintsThroughTheHook() throws {
        let out = Collected()
        let v = try engine(output: out).run(SourceFile(path: "t.flow", text: "print(\"hi\")\n1 + 2\n"))
        #expect(v == .int(3))
        #expect(out.items == ["hi\n"])
    }

    /// A long-lived engine keeps the last `keptRuns` finished root runs (with their child
    /// runs), not every run it ever ran.
    @Test func oldFinishedRunsAreDroppedWithTheirChildren() throws {
        var c = Configuration()
        c.clock = VirtualClock()
        c.keptRuns = 4
        let engine = Stdlib.makeEngine(c)
        _ = try engine.run(SourceFile(path: "t.flow", text: """
            flow child(i) { return i }
            flow parent(i) { return child(i) + 1 }
            let i = 0
            while i < 30 { parent(i); i += 1 }
            """))
        let runs = engine.interpreter.runs
        let roots = runs.filter { $0.parent == nil }
        #expect(roots.count >= 4 && roots.count <= 6, "\(roots.count) roots kept")
        #expect(roots.last?.arguments.first == .int(29))
        #expect(!roots.contains { $0.arguments.first == .int(0) })
        // Every kept run belongs to a kept root, and every kept root has its child.
        #expect(runs.count == roots.count * 2)
        #expect(runs.allSatisfy { run in run.parent == nil || roots.contains { $0 === run.parent } })
        #expect(engine.interpreter.run(id: roots.last!.id) != nil)
    }

    @Test func staticErrorsComeBackAsDiagnostics() {
        do {
            try engine().run(SourceFile(path: "t.flow", text: "print(x)\nprint(y)\n"))
            Issue.record("expected a CompileFailure")
        } catch let f as CompileFailure {
            #expect(f.diagnostics.map { $0.description } == [
                "t.flow:1:7: error: undefined name 'x'", "t.flow:2:7: error: undefined name 'y'",
            ])
        } catch { Issue.record("unexpected \(error)") }
    }

    @Test func runtimeErrorsCarryKindAndTraceback() {
        do {
            try engine().run(SourceFile(path: "t.flow", text: "fn f() { [][1] }\nf()\n"))
            Issue.record("expected a FlowError")
        } catch let e as FlowError {
            #expect(e.kind == "index")
            #expect(e.frames.map { $0.function } == ["fn 'f'", "<main>"])
            #expect(e.rendered.contains("t.flow:1:10: error: index 1 is out of range for a list of length 0"))
        } catch { Issue.record("unexpected \(error)") }
    }

    @Test func hostSeesEveryEventOfEveryRun() throws {
        let events = Collected()
        let source = """
        flow f() {
          $.x = 1
          node step { 2 }
        }
        f()
        """
        try engine(events: events).run(SourceFile(path: "t.flow", text: source))
        #expect(events.items == ["run:start ", "state $.x", "node:start f/step#0", "node:end f/step#0", "run:end "])
    }

    @Test func hostCallsAFlowFunctionValue() throws {
        let e = engine()
        let f = try e.run(SourceFile(path: "t.flow", text: "fn add(a, b) { a + b }\nadd\n"))
        #expect(try e.call(f, [.int(2), .int(5)]) == .int(7))
    }

    @Test func aRecordMadeByOneEngineIsReadByAnother() throws {
        // Each interpreter interns its constant strings; two boxes interned by different
        // interpreters must still compare by their text.
        let a = engine(), b = engine()
        let record = try a.run(SourceFile(path: "a.flow", text: "{name: \"ann\", path: \"p\", x: 1}\n"))
        let read = try b.run(SourceFile(path: "b.flow", text: "fn read(r) { [r.x, r.path, r[\"name\"], r.has(\"path\")] }\nread\n"))
        #expect(try b.call(read, [record]) == .list(ListBox.make([.int(1), .str("p"), .str("ann"), .bool(true)])))
    }

    @Test func fileImportsNeedTheHostsPermission() {
        // The default configuration grants no file access.
        let e = Stdlib.makeEngine()
        do {
            try e.run(SourceFile(path: "t.flow", text: "import \"secret.flow\"\n"))
            Issue.record("expected a CompileFailure")
        } catch let f as CompileFailure {
            #expect(f.diagnostics.first?.message == "cannot import 'secret.flow': this host does not allow reading files")
        } catch { Issue.record("unexpected \(error)") }
    }

    /// An engine on its caller's thread (`runsOnCallingThread`, as `flow run` makes it):
    /// host functions see the caller's thread, and deep recursion still reaches the
    /// call-depth limit, on the stack the thread switches to, instead of overflowing.
    func threadEngine() -> Engine {
        var c = Configuration()
        c.clock = VirtualClock()
        c.runsOnCallingThread = true
        let e = Stdlib.makeEngine(c)
        e.interpreter.define("thread_id", parameters: []) { _ in .int(Int(bitPattern: UInt(pthread_self()))) }
        return e
    }

    @Test func anEngineOnItsCallersThreadRunsThereOnAStackOfItsOwn() throws {
        let e = threadEngine()
        let me = Int(bitPattern: UInt(pthread_self()))
        let program = """
            fn depth(n) {
              if n == 0 { return 0 }
              return 1 + depth(n - 1)
            }
            fn later() {
              sleep(1h)
              thread_id()
            }
            [thread_id(), depth(9000), later()]
            """
        let v = try e.run(SourceFile(path: "t.flow", text: program))
        #expect(v == .list(ListBox.make([.int(me), .int(9000), .int(me)])))
        do {
            _ = try e.run(SourceFile(path: "u.flow", text: "fn down(n) { 1 + down(n + 1) }\ndown(0)\n"))
            Issue.record("expected the call-depth limit")
        } catch let error as FlowError {
            #expect(error.message.hasPrefix("call depth limit reached"))
        }
    }

    @Test func callsFromTwoThreadsTakeTurnsOnTheCallersStack() throws {
        let e = threadEngine()
        let f = try e.run(SourceFile(path: "t.flow", text: "fn sum(n) { if n == 0 { 0 } else { n + sum(n - 1) } }\nsum\n"))
        let results = Collected()
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            for n in 0..<200 {
                if let v = try? e.call(f, [.int(n + i)]), v == .int((n + i) * (n + i + 1) / 2) { continue }
                results.add("wrong sum for \(n + i)")
            }
        }
        #expect(results.items.isEmpty)
    }

    @Test func theBackgroundMovesACallersEngineOntoAThreadOfItsOwn() throws {
        let e = threadEngine()
        let me = Int(bitPattern: UInt(pthread_self()))
        let where_ = try e.run(SourceFile(path: "t.flow", text: "fn where_() { thread_id() }\nwhere_\n"))
        #expect(try e.call(where_, []) == .int(me))
        e.startBackground()
        let there = try e.call(where_, [])
        e.stopBackground()
        #expect(there != .int(me))
        #expect(try e.call(where_, []) == there)
    }
}
