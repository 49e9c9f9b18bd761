import Synchronization

/// A store in memory: nothing survives the process. For tests, and for hosts that want
/// runs without durability (`flow run --store memory`).
public final class MemoryStore: RunStore, Sendable {
    private struct State {
        var scriptsByID: [String: ScriptRecord] = [:]
        var scriptOrder: [String] = []
        var runsByID: [String: RunRecord] = [:]
        var runOrder: [String] = []
        var logs: [String: [EventRecord]] = [:]
        var messages: [InboxMessage] = []
        var nextMessage = 1
    }
    private let state = Mutex(State())

    public init() {}

    private func locked<T>(_ body: (inout State) throws -> T) throws -> T {
        try state.withLock { try body(&$0) }
    }

    public func write(_ batch: StoreBatch) throws {
        try locked { s in
            // Check first, so a bad batch changes nothing.
            var next: [String: Int] = [:]
            for e in batch.events {
                let expected = next[e.run] ?? ((s.logs[e.run]?.last?.seq ?? 0) + 1)
                guard e.seq == expected else {
                    throw StoreError("event \(e.seq) of run \(e.run) is out of order: the log expects \(expected)")
                }
                next[e.run] = e.seq + 1
            }
            for script in batch.scripts {
                if s.scriptsByID.updateValue(script, forKey: script.id) == nil { s.scriptOrder.append(script.id) }
            }
            for r in batch.runs {
                if s.runsByID.updateValue(r, forKey: r.id) == nil { s.runOrder.append(r.id) }
            }
            for e in batch.events { s.logs[e.run, default: []].append(e) }
            if !batch.consumed.isEmpty {
                let gone = Set(batch.consumed)
                s.messages.removeAll { gone.contains($0.id) }
            }
        }
    }

    public func script(id: String) throws -> ScriptRecord? { try locked { s in s.scriptsByID[id] } }

    public func scripts(status: [String]?) throws -> [ScriptRecord] {
        try locked { s in s.scriptOrder.compactMap { s.scriptsByID[$0] }.filter { status?.contains($0.status) ?? true } }
    }

    public func run(id: String) throws -> RunRecord? { try locked { s in s.runsByID[id] } }

    public func run(script: String, parent: String?, key: String) throws -> RunRecord? {
        try locked { s in
            s.runOrder.lazy.compactMap { [s] in s.runsByID[$0] }
                .first { $0.script == script && $0.parent == parent && $0.key == key }
        }
    }

    public func runs(_ query: RunQuery) throws -> [RunRecord] {
        try locked { s in
            var out: [RunRecord] = []
            for id in s.runOrder.reversed() {
                guard let r = s.runsByID[id], query.matches(r) else { continue }
                out.append(r)
                if let limit = query.limit, out.count >= limit { break }
            }
            return out
        }
    }

    public func events(run: String, after: Int) throws -> [EventRecord] {
        try locked { s in (s.logs[run] ?? []).filter { $0.seq > after } }
    }

    public func inbox(run: String) throws -> [InboxMessage] {
        try locked { s in s.messages.filter { $0.run == run } }
    }

    @discardableResult
    public func post(_ message: InboxMessage) throws -> Int {
        try locked { s in
            var m = message
            m.id = s.nextMessage
            s.nextMessage += 1
            s.messages.append(m)
            return m.id
        }
    }

    @discardableResult
    public func prune(endedBefore: Double) throws -> Int {
        try locked { s in
            let roots = s.runOrder.compactMap { s.runsByID[$0] }
                .filter { $0.parent == nil && $0.isFinished && ($0.endedAt ?? .infinity) < endedBefore }
            var doomed = Set(roots.map(\.id))
            // Children of doomed runs, to any depth.
            var grew = true
            while grew {
                grew = false
                for r in s.runsByID.values where !doomed.contains(r.id) {
                    if let p = r.parent, doomed.contains(p) { doomed.insert(r.id); grew = true }
                }
            }
            for id in doomed { s.runsByID[id] = nil; s.logs[id] = nil }
            s.runOrder.removeAll { doomed.contains($0) }
            s.messages.removeAll { doomed.contains($0.run) }
            let live = Set(s.runsByID.values.map(\.script))
            let finished: Set<String> = ["completed", "failed", "cancelled"]
            for id in s.scriptOrder where !live.contains(id) && finished.contains(s.scriptsByID[id]?.status ?? "") {
                s.scriptsByID[id] = nil
            }
            s.scriptOrder.removeAll { s.scriptsByID[$0] == nil }
            return doomed.count
        }
    }
}
