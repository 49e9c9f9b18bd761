import FlowSyntax
import FlowStore

/// Time travel: a run's log read as a timeline — the state at any event, forks that
/// reuse everything recorded before a chosen event and run on from there with changed
/// state, and comparisons of two runs. The CLI (`flow history`, `flow rewind`, `flow
/// diff`), the embedding API (`Engine`) and scripts (`history`, `state_at`, `rewind`,
/// `diff`) all come here.
extension Interpreter {
    func requireStore() throws -> any RunStore {
        guard let store = configuration.store else {
            throw FlowError(kind: "store", message: "time travel reads the run store, and this host has none", at: nil)
        }
        return store
    }

    func storedRun(_ id: String) throws -> RunRecord {
        guard let r = try requireStore().run(id: id) else {
            throw FlowError(kind: ErrorKind.value, message: "no run '\(id)' in the store", at: nil)
        }
        return r
    }

    /// A run's events as maps: `{seq, type, key, at, time, …fields}`, `at` from the run's
    /// start, `time` in wall-clock seconds.
    public func timeline(of id: String) throws -> [Value] {
        let record = try storedRun(id)
        return try requireStore().events(run: id).map { e in
            var entries: [(String, Value)] = [("seq", .int(e.seq)), ("type", .str(e.type)), ("key", .str(e.key)),
                                              ("at", .duration(Int((e.at - record.startedAt) * 1e9))), ("time", .float(e.at))]
            if case .map(let m) = (try? JSONText.decode(e.data, tagged: true).value) ?? .nilValue {
                for entry in m.entries { if let k = entry.key.stringValue { entries.append((k, entry.value)) } }
            }
            return .map(MapBox(entries))
        }
    }

    /// The run's state after event `at` (after its last event when nil), rebuilt from its
    /// `state` events.
    public func state(of id: String, at: Int? = nil) throws -> MapBox {
        let state = MapBox()
        for e in try requireStore().events(run: id) {
            if let at, e.seq > at { break }
            guard e.type == "state", case .map(let m) = try decodeStored(e.data, what: "event \(e.seq) of run \(id)"),
                  case .list(let keys)? = m.get("keys") else { continue }
            Self.set(state, keys: keys.items, m.get("new") ?? .nilValue)
        }
        return state
    }

    /// Sets `value` at `keys` inside `state` (maps are made on the way when missing).
    static func set(_ state: MapBox, keys: [Value], _ value: Value) {
        guard let last = keys.last else { return }
        var container = Value.map(state)
        for k in keys.dropLast() {
            switch container {
            case .map(let m):
                if let next = m.get(k) { container = next } else {
                    let fresh = MapBox()
                    _ = m.set(k, .map(fresh))
                    container = .map(fresh)
                }
            case .list(let l):
                guard case .int(let i) = k, l.items.indices.contains(i) else { return }
                container = l.items[i]
            default: return
            }
        }
        switch container {
        case .map(let m): _ = m.set(last, value)
        case .list(let l): if case .int(let i) = last, l.items.indices.contains(i) { l.items[i] = value }
        default: return
        }
    }

    /// Records a fork of run `id` at event `at`: a new run whose log is a copy of the
    /// original's first `at` events, which applies `changes` to its state where the copy
    /// ends and runs live from there. A root run's fork belongs to a new script record (a
    /// copy of the original's) whose other root calls before it reuse the original's
    /// outcomes; a child run's fork needs its parent and is refused.
    public func prepareFork(of id: String, at: Int, changes: [(keys: [Value], value: Value)],
                            newScriptID: String) throws -> (ScriptRecord, RunRecord) {
        let store = try requireStore()
        let original = try storedRun(id)
        guard original.parent == nil else {
            throw FlowError(kind: ErrorKind.value, message: "run \(id) is a child of run \(original.parent!): rewind the root run (its children before the chosen event are reused)", at: nil)
        }
        let events = try store.events(run: id)
        guard (1...max(1, events.count)).contains(at), !events.isEmpty else {
            throw FlowError(kind: ErrorKind.value, message: "run \(id) has events 1 to \(events.count); \(at) is not one of them", at: nil)
        }
        guard var script = try store.script(id: original.script) else {
            throw FlowError(kind: "store", message: "the script of run \(id) is not in the store", at: nil)
        }
        let now = configuration.clock.wallTime()
        let baseID = script.id
        script.id = newScriptID
        script.status = "running"
        script.owner = nil
        script.startedAt = now
        script.endedAt = nil
        let fork = RunRecord(id: "\(newScriptID)-1", script: newScriptID, flow: original.flow, key: original.key,
                             arguments: original.arguments, startedAt: original.startedAt, forkOf: id, forkAt: at)
        var copied = events.prefix(at).map { e -> EventRecord in
            var c = e
            c.run = fork.id
            return c
        }
        var note: [(String, Value)] = [("from", .str(id)), ("at", .int(at)), ("base", .str(baseID))]
        if !changes.isEmpty {
            note.append(("set", .list(changes.map { .map(MapBox([("keys", .list($0.keys)), ("value", $0.value)])) })))
        }
        copied.append(EventRecord(run: fork.id, seq: at + 1, type: "run:forked", key: "event:run:forked#0", at: now,
                                  data: encodeStored(.map(MapBox(note)))))
        try store.write(StoreBatch(scripts: [script], runs: [fork], events: copied))
        return (script, fork)
    }

    /// What a fork's log asks of a resumed run: the base script and the forked key, and
    /// the state changes. Called by `beginScript` for a script made by `prepareFork`.
    func configureFork(_ session: ScriptSession) throws {
        let store = try requireStore()
        for root in try store.runs(RunQuery(script: session.record.id, rootsOnly: true)) where root.forkOf != nil {
            guard let marker = try store.events(run: root.id).first(where: { $0.type == "run:forked" }),
                  case .map(let m) = try decodeStored(marker.data, what: "the fork of run \(root.id)") else { continue }
            session.base = m.get("base")?.stringValue
            session.forkKey = root.key
            // Root runs of the base before the fork are reached again before output shows.
            if let base = session.base {
                let before = try store.runs(RunQuery(script: base, rootsOnly: true)).filter { $0.startedAt < root.startedAt }
                session.rootsToReach = before.count + 1
            }
        }
    }

    /// Applies a fork's state changes (once, where its copied log ends).
    func applyOverrides(_ run: Run, _ log: RunLog) throws {
        let changes = log.overrides
        log.overrides = []
        for c in changes {
            let old = c.keys.isEmpty ? .nilValue : (Self.get(run.state, keys: c.keys) ?? .nilValue)
            Self.set(run.state, keys: c.keys, c.value)
            let path = "$" + c.keys.map { k in k.stringValue.map { "." + $0 } ?? "[\(Printer.repr(k))]" }.joined()
            try emit(run, intern("state"), [MapBox.Entry(key: .str("path"), value: .str(path)),
                                            MapBox.Entry(key: .str("keys"), value: .list(c.keys)),
                                            MapBox.Entry(key: .str("old"), value: old),
                                            MapBox.Entry(key: .str("new"), value: c.value),
                                            MapBox.Entry(key: .str("forked"), value: .bool(true))],
                     key: "event:state:fork#\(log.nextSeq)")
        }
    }

    static func get(_ state: MapBox, keys: [Value]) -> Value? {
        var v = Value.map(state)
        for k in keys {
            switch v {
            case .map(let m): guard let n = m.get(k) else { return nil }; v = n
            case .list(let l): guard case .int(let i) = k, l.items.indices.contains(i) else { return nil }; v = l.items[i]
            default: return nil
            }
        }
        return v
    }

    /// The state changes a fork carries, read back from its `run:forked` event.
    func forkChanges(_ log: RunLog) -> [(keys: [Value], value: Value)] {
        guard let marker = log.recorded["event:run:forked#0"], case .map(let m) = marker.event,
              case .list(let set)? = m.get("set") else { return [] }
        return set.items.compactMap { item in
            guard case .map(let c) = item, case .list(let keys)? = c.get("keys") else { return nil }
            return (keys.items, c.get("value") ?? .nilValue)
        }
    }

    /// Two runs side by side: `{a, b, status: [a, b], result: [a, b], state: {"plan.steps": [a, b]},
    /// first_difference: {seq, a, b} or nil}` — only what differs, except status.
    public func compare(_ a: String, _ b: String) throws -> Value {
        let ra = try storedRun(a), rb = try storedRun(b)
        var out: [(String, Value)] = [("a", .str(a)), ("b", .str(b)),
                                      ("status", .list([.str(ra.status), .str(rb.status)]))]
        let oa = try decodeStored(ra.outcome ?? "null", what: "run \(a)"), ob = try decodeStored(rb.outcome ?? "null", what: "run \(b)")
        if (try? JSONText.encode(oa, tagged: true)) != (try? JSONText.encode(ob, tagged: true)) {
            out.append(("result", .list([oa, ob])))
        }
        let sa = try state(of: a), sb = try state(of: b)
        let changes = MapBox()
        Self.diff(.map(sa), .map(sb), path: "", into: changes)
        out.append(("state", .map(changes)))
        // Markers of a resume or a fork are not part of what the runs did.
        func did(_ e: Value) -> Bool {
            guard case .map(let m) = e, let t = m.get("type")?.stringValue else { return true }
            return t != "run:forked" && t != "run:resumed"
        }
        let ea = try timeline(of: a).filter(did), eb = try timeline(of: b).filter(did)
        var first: Value = .nilValue
        for i in 0..<max(ea.count, eb.count) {
            let x = i < ea.count ? Self.comparable(ea[i]) : "(none)"
            let y = i < eb.count ? Self.comparable(eb[i]) : "(none)"
            if x != y {
                func seq(_ list: [Value]) -> Value {
                    guard i < list.count, case .map(let m) = list[i] else { return .nilValue }
                    return m.get("seq") ?? .nilValue
                }
                first = .map(MapBox([("seq", seq(ea)), ("seq_b", seq(eb)), ("a", .str(x)), ("b", .str(y))]))
                break
            }
        }
        out.append(("first_difference", first))
        return .map(MapBox(out))
    }

    /// An event as text without what differs between any two runs (times, run ids).
    static func comparable(_ event: Value) -> String {
        guard case .map(let m) = event else { return Printer.repr(event) }
        var parts: [String] = []
        for e in m.entries {
            guard let k = e.key.stringValue, !["seq", "at", "time", "duration", "run", "deadline", "parent", "child", "from", "base"].contains(k) else { continue }
            parts.append(k == "type" || k == "key" ? Printer.display(e.value) : "\(k)=\(Printer.repr(e.value, limit: 80))")
        }
        return parts.joined(separator: " ")
    }

    static func diff(_ a: Value, _ b: Value, path: String, into out: MapBox) {
        if case .map(let ma) = a, case .map(let mb) = b {
            var keys = ma.keys
            for k in mb.keys where ma.get(k) == nil { keys.append(k) }
            for k in keys {
                let name = k.stringValue ?? "[\(Printer.repr(k))]"
                let p = path.isEmpty ? name : path + "." + name
                diff(ma.get(k) ?? .nilValue, mb.get(k) ?? .nilValue, path: p, into: out)
            }
            return
        }
        if Printer.repr(a) != Printer.repr(b) { _ = out.set(.str(path), .list([a, b])) }
    }
}

extension Interpreter {
    /// `rewind` called from synchronous code: the fork runs on the event loop.
    public func blockingRewind(_ call: BuiltinCall) throws -> Value {
        guard let body = builtins["rewind"].flatMap({ v -> Builtin? in if case .builtin(let b) = v { return b }; return nil })?.suspendingBody else {
            throw call.error("rewind is not available", kind: "internal")
        }
        let c = call
        return try loop.run { try await body(c) }
    }

    /// `rewind(run, to, set)` in a script: forks a run of a flow this program defines and
    /// runs the fork here, as a run of the current script: the original's first `to`
    /// events are replayed (nothing recorded runs again), `set` is applied to `$` where
    /// they end, and the flow runs live from there. Returns `{run, result}`.
    public func rewind(run id: String, to at: Int, changes: [(keys: [Value], value: Value)], at range: SourceRange?) async throws -> Value {
        let store = try requireStore()
        guard let session else {
            throw FlowError(kind: ErrorKind.value, message: "rewind runs a fork as part of a recorded script, and this one is not recorded", at: range)
        }
        let original = try storedRun(id)
        guard case .closure(let flow)? = mainModule?.globals[original.flow]?.value, flow.proto.isFlow else {
            throw FlowError(kind: ErrorKind.value, message: "rewind: this program defines no flow '\(original.flow)' to run the fork of run \(id) with", at: range)
        }
        let decoded = try JSONText.decode(original.arguments, tagged: true)
        guard !decoded.opaque, case .list(let args) = decoded.value else {
            throw FlowError(kind: ErrorKind.value, message: "rewind: the arguments of run \(id) cannot be made again (one was a function, channel or task)", at: range)
        }
        let events = try store.events(run: id)
        guard (1...max(1, events.count)).contains(at), !events.isEmpty else {
            throw FlowError(kind: ErrorKind.value, message: "rewind: run \(id) has events 1 to \(events.count); \(at) is not one of them", at: range)
        }
        let parent = Run.current
        let key = (parent.map { Run.scope ?? $0.rootScope } ?? session.scope).next("rewind:" + original.flow)
        session.nextRunNumber += 1
        let fork = RunRecord(id: "\(session.record.id)-\(session.nextRunNumber)", script: session.record.id, parent: parent?.id,
                             flow: original.flow, key: key, arguments: original.arguments,
                             startedAt: configuration.clock.wallTime(), forkOf: id, forkAt: at)
        var copied = events.prefix(at).map { e -> EventRecord in
            var c = e
            c.run = fork.id
            return c
        }
        var note: [(String, Value)] = [("from", .str(id)), ("at", .int(at))]
        if !changes.isEmpty {
            note.append(("set", .list(changes.map { .map(MapBox([("keys", .list($0.keys)), ("value", $0.value)])) })))
        }
        copied.append(EventRecord(run: fork.id, seq: at + 1, type: "run:forked", key: "event:run:forked#0",
                                  at: configuration.clock.wallTime(), data: encodeStored(.map(MapBox(note)))))
        if let p = parent { try flush(p) }
        try store.write(StoreBatch(runs: [fork], events: copied))
        forcedRun = fork
        let result = try await runFlow(flow, args.items, named: nil, at: range)
        return .map(MapBox([("run", .str(fork.id)), ("result", result)]))
    }
}
