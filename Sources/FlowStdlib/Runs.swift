import FlowRuntime

extension Stdlib {
    /// Runs and their events, seen from scripts: hooks, custom events, introspection.
    static func installRuns(_ i: Interpreter) {
        i.define("on", parameters: ["event", "handler"]) { call in
            let type = try call.string(0)
            switch call[1] {
            case .closure, .builtin: break
            default: throw call.typeError("a function", at: 1)
            }
            call.interpreter.addHook(type, call[1])
            return .nilValue
        }
        // `emit` is the runtime's own (`Interpreter.emitBuiltin`).
        i.defineSuspending("timeout", parameters: ["duration", "body"], blocking: { call in
            throw call.error("cannot wait here", kind: "internal")
        }) { call in
            guard case .duration(let ns) = call[0], ns >= 0 else { throw call.typeError("a duration (like 5s)", at: 0) }
            return try await call.interpreter.withTimeout(ns, call[1], at: call.range)
        }
        // True while the current run replays its log (or has a fork's changes or a
        // cancellation to apply where the log ends): the engine asks `recorded` only then.
        i.define("replaying", parameters: []) { call in
            .bool(call.withInterpreter { $0.isReplaying })
        }
        // The engine asks for a node's recorded outcome; replay hands it back in log order.
        i.defineSuspending("recorded", parameters: ["key"], blocking: { call in
            try call.interpreter.recordedEvent(try call.string(0)) ?? .nilValue
        }) { call in
            try await call.interpreter.replayed(try call.string(0)) ?? .nilValue
        }
        // Durable waits, performed by `await`: approve(prompt, timeout:) gives true or
        // false; signal(name, timeout:) the value sent. A timeout throws kind "timeout".
        func timeout(_ call: BuiltinCall, _ i: Int) throws -> Int? {
            guard call.count > i, !call[i].isNil else { return nil }
            guard case .duration(let ns) = call[i], ns >= 0 else { throw call.typeError("a duration (like 1h)", at: i) }
            return ns
        }
        i.define("approve", parameters: ["prompt", "timeout"], required: 1) { call in
            .object(PendingWait(kind: "approval", name: "", prompt: call[0], timeout: try timeout(call, 1)))
        }
        i.define("signal", parameters: ["name", "timeout"], required: 1) { call in
            let name = try call.string(0)
            return .object(PendingWait(kind: "signal", name: name, prompt: .str(name), timeout: try timeout(call, 1)))
        }
        // Time travel over the store: a run's timeline, its state at an event, forks, and
        // comparisons (docs/durability.md).
        func runID(_ call: BuiltinCall, _ i: Int) throws -> String {
            switch call[i] {
            case .string(let s): return s.value
            case .map(let m): if let id = m.get("id")?.stringValue ?? m.get("run")?.stringValue { return id }
            default: break
            }
            throw call.typeError("a run id (or the map runs() or rewind() returns)", at: i)
        }
        /// The store's errors carry no position: they are raised where the call is.
        func located<T>(_ call: BuiltinCall, _ body: () throws -> T) throws -> T {
            do { return try body() } catch let e as FlowError where e.range == nil {
                throw call.error(e.message, kind: e.kind)
            }
        }
        i.define("history", parameters: ["run"]) { call in
            let c = call
            return try located(c) { .list(try c.interpreter.timeline(of: try runID(c, 0))) }
        }
        i.define("state_at", parameters: ["run", "event"], required: 1) { call in
            let at = call.count > 1 && !call[1].isNil ? try call.int(1) : nil
            let c = call
            return try located(c) { .map(try c.interpreter.state(of: try runID(c, 0), at: at)) }
        }
        i.define("diff", parameters: ["a", "b"]) { call in
            let c = call
            return try located(c) { try c.interpreter.compare(try runID(c, 0), try runID(c, 1)) }
        }
        i.defineSuspending("rewind", parameters: ["run", "to", "set"], required: 2, blocking: { call in
            let c = call
            return try call.interpreter.blockingRewind(c)
        }) { call in
            try await call.interpreter.rewind(run: try runID(call, 0), to: try call.int(1),
                                              changes: try stateChanges(call, 2), at: call.range)
        }
        // Ends a long-lived run and starts its successor (same flow, these arguments, the
        // state carried over): the caller gets the successor's result, and each run's
        // log stays bounded.
        i.define("continue_as_new", parameters: ["arguments"], required: 0, variadic: true) { call in
            guard call.interpreter.currentRun != nil else {
                throw call.error("it ends a run, so it belongs inside a flow", kind: "value")
            }
            throw ContinueAsNew(arguments: call.args)
        }
        // Code as data (SyntaxValue): a definition's syntax, and new definitions from syntax.
        i.define("definition", parameters: ["name"]) { call in
            let name = try call.string(0)
            guard let syntax = call.interpreter.definitionSyntax(name) else {
                throw call.error("no definition '\(name)' in this program", kind: "value")
            }
            return .object(syntax)
        }
        i.define("define", parameters: ["code"]) { call in
            let source: String
            switch call[0] {
            case .object(let o as SyntaxValue): source = o.source
            case .string(let s): source = s.value
            default: throw call.typeError("code (quote { … }, definition(…) or a string of Flow)", at: 0)
            }
            guard let hook = call.interpreter.defineHook else { throw call.error("this host cannot define code", kind: "permission") }
            do { return .list(try hook(source).map { .str($0) }) } catch let f as CompileFailure {
                let first = f.diagnostics.first { $0.severity == .error }
                throw call.error("the new definition is refused: \(first?.message ?? "it does not compile")", kind: "definition")
            }
        }
        // Introspection: how a flow's nodes did across the runs of this program.
        i.define("node_stats", parameters: ["flow"], required: 0) { call in
            let flow = call.count > 0 && !call[0].isNil ? try call.string(0) : nil
            return .map(nodeStats(call.interpreter, flow: flow))
        }
        i.define("slowest_node", parameters: ["flow"], required: 0) { call in
            let flow = call.count > 0 && !call[0].isNil ? try call.string(0) : nil
            var best: (String, Int)? = nil
            for e in nodeStats(call.interpreter, flow: flow).entries {
                guard let name = e.key.stringValue, case .map(let s) = e.value, case .duration(let mean)? = s.get("mean") else { continue }
                if best == nil || mean > best!.1 { best = (name, mean) }
            }
            return best.map { .str($0.0) } ?? .nilValue
        }
        i.define("idempotency_key", parameters: []) { call in
            call.interpreter.idempotencyKey.map { .str($0) } ?? .nilValue
        }
        // Files, when the host grants them; effects, so a replay neither reads again nor
        // writes twice what a completed step wrote.
        i.define(namespace: "fs", [
            ("read", i.makeBuiltin("fs.read", parameters: ["path"]) { call in
                let path = try call.string(0)
                guard let read = call.interpreter.configuration.readSource else {
                    throw call.error("this host does not let scripts read files", kind: "permission")
                }
                return try call.interpreter.effect("fs.read") {
                    guard let text = read(path) else { throw call.error("cannot read '\(path)'", kind: "io") }
                    return .str(text)
                }
            }),
            ("exists", i.makeBuiltin("fs.exists", parameters: ["path"]) { call in
                let path = try call.string(0)
                guard let read = call.interpreter.configuration.readSource else {
                    throw call.error("this host does not let scripts read files", kind: "permission")
                }
                return try call.interpreter.effect("fs.exists") { .bool(read(path) != nil) }
            }),
            ("write", i.makeBuiltin("fs.write", parameters: ["path", "text"]) { call in try writeFile(&call, append: false) }),
            ("append", i.makeBuiltin("fs.append", parameters: ["path", "text"]) { call in try writeFile(&call, append: true) }),
        ])
        i.declareSuspendingMethod("send")
        i.declareSuspendingMethod("receive")
        i.define("channel", parameters: ["capacity", "overflow"], required: 0) { call in
            let capacity = call.count > 0 && !call[0].isNil ? try call.int(0) : 16
            guard capacity >= 1 else { throw call.error("capacity must be at least 1, found \(capacity)", kind: "value") }
            let overflow = call.count > 1 && !call[1].isNil ? try call.string(1) : "block"
            guard let ch = call.interpreter.makeChannel(capacity: capacity, overflow: overflow) else {
                throw call.error("overflow must be \"block\", \"drop-oldest\" or \"drop-newest\", found \(Printer.quote(overflow))", kind: "value")
            }
            return ch
        }
        i.define("register_compensation", parameters: ["undo", "result", "path"]) { call in
            try call.interpreter.registerCompensation(call[0], result: call[1], path: try call.string(2), at: call.range)
            return .nilValue
        }
        i.define(namespace: "engine", [
            ("get", i.makeBuiltin("engine.get", parameters: ["name"]) { call in
                let name = try call.string(0)
                guard let f = call.interpreter.engineDefinition(name) else {
                    throw call.error("the engine has no function '\(name)'", kind: "value")
                }
                return f
            }),
            ("define", i.makeBuiltin("engine.define", parameters: ["name", "function"]) { call in
                try call.interpreter.redefineEngineFunction(try call.string(0), call[1], at: call.range)
                return .nilValue
            }),
        ])
        i.define("log", parameters: ["values"], required: 0, variadic: true) { call in
            let text = call.args.map { Printer.display($0) }.joined(separator: " ")
            if call.interpreter.currentRun != nil {
                return try call.interpreter.emit("log", [("message", .str(text))], at: call.range)
            }
            call.interpreter.write(text + "\n")
            return .nilValue
        }
        i.define("current_run", parameters: []) { call in
            guard let run = call.interpreter.currentRun else { return .nilValue }
            return summary(run)
        }
        i.define("runs", parameters: []) { call in
            .list(call.interpreter.runs.map { summary($0) })
        }
        i.define("run_events", parameters: ["run"], required: 0) { call in
            let run: Run?
            switch call[0] {
            case .nilValue: run = call.interpreter.currentRun
            case .string(let id): run = call.interpreter.run(id: id.value)
            case .map(let m): run = m.get("id")?.stringValue.flatMap { call.interpreter.run(id: $0) }
            default: throw call.typeError("a run (its id or the map runs() returns)", at: 0)
            }
            guard let run else { throw call.error("no such run", kind: "value") }
            return .list(run.events)
        }
    }

    /// `set: {budget: 200, "plan.steps": 3}`: state paths (dotted) and their new values.
    static func stateChanges(_ call: BuiltinCall, _ i: Int) throws -> [(keys: [Value], value: Value)] {
        guard call.count > i, !call[i].isNil else { return [] }
        guard case .map(let m) = call[i] else { throw call.typeError("a map of state paths to values", at: i) }
        return try m.entries.map { e in
            guard let path = e.key.stringValue, !path.isEmpty else { throw call.error("state paths are strings like \"budget\" or \"plan.steps\"", kind: "value") }
            return (path.split(separator: ".").map { Value.str(String($0)) }, e.value)
        }
    }

    /// `{node: {count, total, mean, max}}` over the `node:end` events of the runs of `flow`
    /// (of every flow when nil) this program made.
    static func nodeStats(_ i: Interpreter, flow: String?) -> MapBox {
        var order: [String] = []
        var stats: [String: (count: Int, total: Int, max: Int)] = [:]
        for run in i.runs where flow == nil || run.flow == flow {
            for event in run.events {
                guard case .map(let m) = event, m.get("type")?.stringValue == "node:end",
                      let name = m.get("node")?.stringValue, case .duration(let d)? = m.get("duration") else { continue }
                if stats[name] == nil { order.append(name) }
                var s = stats[name] ?? (0, 0, 0)
                s.count += 1
                s.total += d
                s.max = Swift.max(s.max, d)
                stats[name] = s
            }
        }
        return MapBox(order.map { name in
            let s = stats[name]!
            return (name, Value.map(MapBox([("count", .int(s.count)), ("total", .duration(s.total)),
                                            ("mean", .duration(s.total / Swift.max(1, s.count))), ("max", .duration(s.max))])))
        })
    }

    static func writeFile(_ call: inout BuiltinCall, append: Bool) throws -> Value {
        let path = try call.string(0), text = try call.string(1)
        guard let write = call.interpreter.configuration.writeFile else {
            throw call.error("this host does not let scripts write files", kind: "permission")
        }
        let c = call
        return try call.interpreter.effect(append ? "fs.append" : "fs.write", durable: true) {
            do { try write(path, text, append) } catch { throw c.error("cannot write '\(path)': \(error)", kind: "io") }
            return .nilValue
        }
    }

    static func summary(_ run: Run) -> Value {
        .map(MapBox([
            ("id", .str(run.id)), ("flow", .str(run.flow)), ("status", .str(run.status.rawValue)),
            ("parent", run.parent.map { .str($0.id) } ?? .nilValue), ("state", .map(run.state)),
            ("result", run.result),
        ]))
    }
}
