import FlowSyntax
import FlowStore

/// Hot swap: a running run of a redefined flow moves to the new version at its next node
/// boundary. Its code is replayed from its log against the new definition: every effect
/// it recorded must be asked for again, in the same order; nodes the log has never seen
/// are skipped while the replay is in the past (they return nil) and run from the
/// frontier on. When the new code asks for something else, the run goes back to the old
/// version (replayed the same way) and the log says which key diverged. Either way, the
/// swap is an event in the run's log.
public enum SwapPolicy: Sendable {
    /// Running runs move to the new version (when their logs agree with it).
    case migrate
    /// Running runs finish on the version they started with.
    case pin
    /// Move, and map the state at the frontier with this Flow function (`fn(old) => new`).
    case transform(Value)
}

/// Thrown at a node boundary of a run offered a new version (not a Flow error).
struct SwapRequest: Error {
    let closure: Closure
    let transform: Value?
    let version: Int
}

extension Interpreter {
    /// Offers `closure`, the new version `version` of flow `name`, to its running runs.
    /// Returns the ids of the runs offered it.
    @discardableResult
    public func offer(flow name: String, closure: Closure, version: Int, policy: SwapPolicy) -> [String] {
        if case .pin = policy { return [] }
        var offered: [String] = []
        for run in runs where run.flow == name && (run.status == .running || run.status == .waiting) {
            guard run.log != nil, let current = run.closure, current !== closure else { continue }
            var transform: Value? = nil
            if case .transform(let f) = policy { transform = f }
            run.pendingSwap = SwapRequest(closure: closure, transform: transform, version: version)
            offered.append(run.id)
        }
        return offered
    }

    /// Called at every node boundary: a run with a pending swap stops here.
    @inline(__always)
    func checkSwap(_ run: Run) throws {
        if let request = run.pendingSwap {
            run.pendingSwap = nil
            throw request
        }
        // The same boundary is where a recorded run takes a cancellation.
        if let log = run.log, log.effectsLeft == 0, log.migration == nil { try checkCancel(run) }
    }

    /// Runs `run` again from its log on `request.closure`; when that diverges, on `back`
    /// (the version it ran before), which agrees with the log.
    func swap(_ run: Run, to request: SwapRequest, from back: Closure, _ args: [Value], named: [(String, Value)]?,
              at range: SourceRange?) async throws -> Value {
        let began = configuration.clock.wallTime()
        for t in run.tasks { t.cancel() }
        try flush(run)
        let fresh = try reload(run, migrating: request)
        fresh.log?.swapBegan = began
        return try await Run.within(fresh, scope: fresh.rootScope) {
            try await runBody(fresh, request.closure, args, named: named, at: range, resumed: true, swapBack: back)
        }
    }

    /// A new Run object for a run, loaded from the store (the old one's tasks are gone).
    func reload(_ run: Run, migrating request: SwapRequest?) throws -> Run {
        guard let store = configuration.store, let record = try store.run(id: run.id) else {
            throw FlowError(kind: "store", message: "run \(run.id) is not in the store", at: nil)
        }
        let fresh = Run(id: run.id, flow: run.flow, arguments: run.arguments, parent: run.parent, startedAt: run.startedAt, keys: keys)
        fresh.log = try loadLog(record, into: fresh)
        fresh.callKey = run.callKey
        fresh.compensations = []
        if let request {
            fresh.log!.migration = (request.version, request.transform)
        }
        if let parent = run.parent, let i = parent.children.firstIndex(where: { $0 === run }) { parent.children[i] = fresh }
        if let i = runs.firstIndex(where: { $0 === run }) { runs[i] = fresh }
        return fresh
    }

    /// A new version that ended without asking for everything the log recorded.
    func unfinishedReplay(_ run: Run, _ log: RunLog) -> ReplayDivergence {
        // The outermost effect not asked for (not one inside a node that was not asked for).
        let first = log.unused.values.compactMap { $0.first }
            .filter { k in log.recorded[String(RunLog.scope(of: k))] == nil }
            .compactMap { k in log.recorded[k].map { (k, $0.seq) } }
            .min { $0.1 < $1.1 }?.0 ?? "?"
        return ReplayDivergence(run: run.id, message: "the log recorded '\(first)', but the code finished without asking for it")
    }

    /// The replay of a migrating run reached its frontier: it is on the new version now.
    func finishMigration(_ run: Run, _ log: RunLog) throws {
        guard let (version, transform) = log.migration else { return }
        log.migration = nil
        log.epoch = log.nextSeq
        // Going back to the version that agreed with the log is not a swap to report.
        if version < 0 { return }
        if let transform {
            let mapped = try call(transform, [.map(MapBox(distinct: run.state.entries))])
            guard case .map(let m) = mapped else {
                throw FlowError(kind: ErrorKind.type, message: "the migration function must return the new state (a map), found \(mapped.typeName)", at: nil)
            }
            for k in run.state.keys where m.get(k) == nil { _ = run.state.remove(k) }
            for e in m.entries { _ = run.state.set(e.key, e.value) }
        }
        try emit(run, intern("swap:done"), [MapBox.Entry(key: .str("flow"), value: .str(run.flow)),
                                           MapBox.Entry(key: .str("version"), value: .int(version))],
                 key: "event:swap:done#\(log.nextSeq)", durable: true)
    }
}
