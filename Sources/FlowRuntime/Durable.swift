import FlowSyntax
import FlowStore

/// Durability: runs recorded in a `RunStore` as they go, and replayed from it.
///
/// Every event of a durable run is appended to its log with a *key*: where in the run's
/// code it happened (`daily/fetch#0`, `daily/parallel#0/a/@sleep#1`, `daily/event:state#3`).
/// Keys of effects — node completions, timers, `now()`, `random()`, approvals, signals,
/// child runs — name what replay returns; the other events (`event:…` keys) are history,
/// re-created by re-executing and never appended twice.
///
/// Resuming re-executes the script. A run whose key is in the store is the same run
/// again; inside it, every effect whose key is in its log returns the recorded result
/// without running, until the code reaches its frontier and goes live.

/// One execution of a script, and where its root runs are keyed (`daily#0`: the first
/// call of `daily` from the top level).
public final class ScriptSession: @unchecked Sendable {
    public internal(set) var record: ScriptRecord
    let scope = PathScope(prefix: "", depth: CallDepth(0))
    /// Root runs the store held when this execution began: top-level output is held back
    /// until the code has reached all of them again (it was printed the first time).
    var rootsToReach: Int
    var nextRunNumber: Int
    /// For the re-execution of a fork (`rewind`): the script forked from, whose root runs
    /// before the forked one give their recorded outcomes, and the forked call's key.
    var base: String?
    var forkKey: String?
    /// False until the script's record is in the store: a new script is recorded with its
    /// first run (`recordScript`), so one that runs no flow leaves nothing behind.
    var saved: Bool

    init(record: ScriptRecord, knownRoots: Int, runCount: Int, saved: Bool = true) {
        self.record = record
        self.rootsToReach = knownRoots
        self.nextRunNumber = runCount
        self.saved = saved
    }

    /// A new script id: six characters that read unambiguously (no 0/o, 1/l). The store
    /// is asked whether it is free when the script is recorded.
    public static func newID() -> String {
        let alphabet = Array("abcdefghijkmnpqrstuvwxyz23456789")
        return String((0..<6).map { _ in alphabet[Int.random(in: 0..<alphabet.count)] })
    }
}

/// A durable run's log as this process knows it: what the store held when it resumed,
/// and what it appended since.
final class RunLog {
    @exclusivity(unchecked) var record: RunRecord
    @exclusivity(unchecked) var dirty = false
    /// Recorded events by key.
    @exclusivity(unchecked) var recorded: [String: Recorded] = [:]
    /// Recorded effects not asked for yet, by scope (the key up to its last '/'), in log
    /// order: replay is at its frontier in a scope when its list is empty.
    @exclusivity(unchecked) var unused: [Substring: [String]] = [:]
    @exclusivity(unchecked) var effectsLeft = 0
    /// For a recorded effect with effects inside it (a node whose body slept, wrote…): how
    /// many. Taking the outer one takes them too, since its body does not run again.
    @exclusivity(unchecked) var nested: [String: Int] = [:]
    @exclusivity(unchecked) var nextSeq = 1
    /// Appended events not yet written; written with the next effect (or the run's end).
    @exclusivity(unchecked) var pending: [EventRecord] = []
    @exclusivity(unchecked) var consumed: [Int] = []
    /// Whether the record is in the store yet.
    @exclusivity(unchecked) var written = false
    /// When the oldest buffered event was appended (unix seconds).
    @exclusivity(unchecked) var pendingSince = 0.0
    /// `flow cancel` asked for it: the run replays (if it was not running), then is
    /// cancelled where it goes live, or at its next node or effect.
    @exclusivity(unchecked) var cancelRequested = false
    /// When a live run next looks in its inbox for a cancellation (monotonic ns).
    @exclusivity(unchecked) var nextCancelCheck = 0
    /// The cancellation was thrown: the run is ending, and looks no more.
    @exclusivity(unchecked) var cancelTaken = false
    /// A hot swap in progress: the version replayed, and the state mapping to apply at
    /// the frontier (HotSwap.swift).
    @exclusivity(unchecked) var migration: (version: Int, transform: Value?)?
    /// When the run stopped for a swap (wall seconds): `swap:start` reports it, so the
    /// cost of reloading the log is part of what a swap is seen to take.
    @exclusivity(unchecked) var swapBegan: Double?
    /// After a swap, history events get keys of a new epoch: the new code's counters need
    /// not match the old code's.
    @exclusivity(unchecked) var epoch = 0
    /// Nodes a migrating replay skipped so far.
    @exclusivity(unchecked) var skipped = 0
    /// State changes a fork applies where its copied log ends (`rewind --set`).
    @exclusivity(unchecked) var overrides: [(keys: [Value], value: Value)] = []

    init(record: RunRecord) { self.record = record }

    struct Recorded {
        let seq: Int
        let type: String
        let event: Value
        let opaque: Bool
        let isEffect: Bool
    }

    static func scope(of key: String) -> Substring {
        guard let slash = key.lastIndex(of: "/") else { return "" }
        return key[..<slash]
    }

    /// The key of the event that records when a waiting effect began (its deadline):
    /// history, not an effect, so replay does not wait for it to be asked for.
    static func startKey(of key: String) -> String {
        let scope = scope(of: key)
        let last = key.lastIndex(of: "/").map { key[key.index(after: $0)...] } ?? Substring(key)
        return scope.isEmpty ? "event:start:\(last)" : "\(scope)/event:start:\(last)"
    }

    static func isEffectKey(_ key: String) -> Bool {
        let last = key.lastIndex(of: "/").map { key[key.index(after: $0)...] } ?? Substring(key)
        return !last.hasPrefix("event:")
    }
}

/// The code under a recorded run asked for something other than what its log holds.
/// Not a Flow error: no `try` in the script can catch it, and the run is left as it
/// was in the store, to be resumed with code that agrees with its log.
public struct ReplayDivergence: Error, CustomStringConvertible, Sendable {
    public let run: String
    public let message: String
    public var description: String { "replay of run \(run) diverged: \(message)" }
}

/// `continue_as_new(args…)`: ends the current run; the interpreter starts its successor.
/// Not a Flow error: no `try` in the script catches it.
public struct ContinueAsNew: Error, Sendable {
    public let arguments: [Value]
    public init(arguments: [Value]) { self.arguments = arguments }
}

/// Thrown through the code of every run that waits durably (an approval, a signal) when
/// nothing else is left to do: the runs stay `waiting` in the store, and the process may
/// end. Not a Flow error.
public struct RunsSuspended: Error, CustomStringConvertible, Sendable {
    public let waiting: [(run: String, on: String)]
    public var description: String {
        waiting.map { "run \($0.run) is waiting for \($0.on)" }.joined(separator: "\n")
    }
}

extension Interpreter {
    // MARK: - Sessions

    /// Starts recording a script execution in the store (a new one, or the re-execution of
    /// `resuming`). Every flow called from then on is a durable run.
    public func beginScript(_ record: ScriptRecord, resuming: Bool) throws {
        guard let store = configuration.store else { return }
        var r = record
        r.status = "running"
        r.owner = configuration.owner
        guard resuming else {
            // Recorded with its first run (`recordScript`).
            session = ScriptSession(record: r, knownRoots: 0, runCount: 0, saved: false)
            return
        }
        try pruneOldRuns(store)
        recordedImports = JSONText.unquoteMap(r.imports) ?? [:]
        try store.save(r)
        let runs = try store.runs(RunQuery(script: r.id))
        let number = runs.compactMap { run in run.id.split(separator: "-").last.flatMap { Int($0) } }.max() ?? 0
        // Successors made by continue_as_new (keys ending in '+') are reached through
        // their first run, not by a call of their own.
        session = ScriptSession(record: r, knownRoots: resuming ? runs.filter { $0.parent == nil && !$0.key.hasSuffix("+") }.count : 0,
                                runCount: number)
        if resuming, runs.contains(where: { $0.forkOf != nil && $0.parent == nil }) { try configureFork(session!) }
    }

    /// Puts a new script's record in the store, before its first run: pruning old runs
    /// first (`Configuration.retention`), and drawing another id if the one the host
    /// chose is taken.
    func recordScript(_ s: ScriptSession) throws {
        guard !s.saved, let store = configuration.store else { return }
        try pruneOldRuns(store)
        while try store.script(id: s.record.id) != nil { s.record.id = ScriptSession.newID() }
        // Imports are loaded when the script is compiled, before its first run.
        s.record.imports = JSONText.quoteMap(importedSources)
        try store.save(s.record)
        s.saved = true
    }

    /// Deletes runs that ended longer ago than `Configuration.retention`, if it is set.
    private func pruneOldRuns(_ store: any RunStore) throws {
        guard let keep = configuration.retention else { return }
        try store.prune(endedBefore: configuration.clock.wallTime() - Double(keep) / 1e9)
    }

    /// Records how the script's top-level code ended (if it was recorded at all).
    public func endScript(status: String) throws {
        guard let store = configuration.store, let s = session, s.saved else { return }
        s.record.status = status
        s.record.owner = nil
        s.record.endedAt = configuration.clock.wallTime()
        try store.save(s.record)
    }

    /// Records a run's output; false when the log already has it (a replay).
    func recordOutput(_ run: Run, _ log: RunLog, _ text: String) throws -> Bool {
        let key = (Run.scope ?? run.rootScope).next("event:output")
        if log.recorded[key] != nil { return false }
        log.pending.append(EventRecord(run: run.id, seq: log.nextSeq, type: "output", key: key,
                                       at: configuration.clock.wallTime(), data: "{\"text\":\(JSONText.quote(text))}"))
        log.nextSeq += 1
        // Written before the text goes out, so a replay never prints it again.
        try flush(run)
        return true
    }

    // MARK: - Runs

    /// The result a finished run recorded (or its error, thrown).
    func outcome(of record: RunRecord, at range: SourceRange?) throws -> Value {
        let value = try decodeStored(record.outcome ?? "null", what: "the outcome of run \(record.id)")
        switch record.status {
        case "completed": return value
        case "failed":
            if case .error(let e) = value { throw FlowError(e, at: range) }
            throw FlowError(kind: ErrorKind.value, message: "run \(record.id) failed", at: range)
        default:
            throw FlowError(kind: "cancelled", message: "run \(record.id) (\(record.flow)) was cancelled", at: range)
        }
    }

    func decodeStored(_ text: String, what: String) throws -> Value {
        do { return try JSONText.decode(text, tagged: true).value } catch {
            throw FlowError(kind: "store", message: "cannot read \(what) from the store: \(error.message)", at: nil)
        }
    }

    func encodeStored(_ v: Value) -> String {
        (try? JSONText.encode(v, tagged: true)) ?? "{\"$opaque\":\"\(v.typeName)\"}"
    }

    /// A new durable run's log (the record is written with its first event).
    func newLog(for run: Run, key: String) -> RunLog? {
        guard configuration.store != nil, let session else { return nil }
        let record = RunRecord(id: run.id, script: session.record.id, parent: run.parent?.id, flow: run.flow, key: key,
                               arguments: encodeStored(.list(run.arguments)), startedAt: configuration.clock.wallTime())
        let log = RunLog(record: record)
        log.dirty = true
        return log
    }

    /// The log of a run being resumed, loaded from the store; fills the run's events.
    func loadLog(_ record: RunRecord, into run: Run) throws -> RunLog {
        guard let store = configuration.store else { throw FlowError(kind: "store", message: "no store", at: nil) }
        let log = RunLog(record: record)
        log.written = true
        for e in try store.events(run: record.id) {
            let decoded: JSONText.Decoded
            do { decoded = try JSONText.decode(e.data, tagged: true) } catch {
                throw FlowError(kind: "store", message: "event \(e.seq) of run \(record.id) is unreadable: \(error.message)", at: nil)
            }
            var fields: [MapBox.Entry] = []
            if case .map(let m) = decoded.value { fields = m.entries }
            let type = intern(e.type), at = Int((e.at - record.startedAt) * 1e9)
            // Output is kept in the store only (it is not an event scripts see).
            let event: Value
            if e.type != "output" {
                event = run.event(run.addEvent(seq: e.seq, type: type, at: at, fields: fields))
            } else {
                event = .map(run.map(seq: e.seq, type: type, at: at, fields: fields))
            }
            let effect = RunLog.isEffectKey(e.key)
            log.recorded[e.key] = RunLog.Recorded(seq: e.seq, type: e.type, event: event, opaque: decoded.opaque, isEffect: effect)
            if effect {
                log.unused[RunLog.scope(of: e.key), default: []].append(e.key)
                log.effectsLeft += 1
                // Count it for every recorded effect it is inside of.
                var scope = RunLog.scope(of: e.key)
                while !scope.isEmpty {
                    log.nested[String(scope), default: 0] += 1
                    scope = RunLog.scope(of: String(scope))
                }
            }
            log.nextSeq = e.seq + 1
        }
        if record.forkOf != nil, !log.recorded.keys.contains(where: { $0.hasPrefix("event:state:fork#") }) {
            log.overrides = forkChanges(log)
        }
        if let cancel = try store.inbox(run: record.id).first(where: { $0.kind == "cancel" }) {
            log.cancelRequested = true
            log.consumed.append(cancel.id)
        }
        return log
    }

    // MARK: - Recording

    /// Appends an event to a durable run's log (not when replay re-creates a recorded
    /// one). Returns false when the event was already in the log.
    ///
    /// When it is written: an event that must survive a crash before the run goes on
    /// (`durable`: a timer's deadline, a file written, a tool called, a message taken) is
    /// written at once, with everything buffered before it; the others — node results
    /// among them — wait for the next such write, the run's end, or 20 ms. A crash can
    /// only lose results of work that did nothing outside the process since the last
    /// write (a node that only computed): replay runs that work again, and whatever it
    /// did outside the process was written before it was done (docs/durability.md).
    func record(_ run: Run, _ log: RunLog, type: String, key explicit: String?, fields: [MapBox.Entry], durable: Bool = false) throws -> Bool {
        // A new version replaying the past of a run (a hot swap) adds no history to it.
        if explicit == nil, log.migration != nil, log.effectsLeft > 0 { return false }
        var key = explicit ?? (executingScope ?? run.rootScope).next("event:" + type)
        if explicit == nil, log.epoch > 0 { key += "~\(log.epoch)" }
        if log.recorded[key] != nil { return false }
        // The fields after seq, type, run and at.
        log.pending.append(EventRecord(run: run.id, seq: log.nextSeq, type: type, key: key,
                                       at: configuration.clock.wallTime(), data: encodeStored(.map(MapBox(distinct: fields)))))
        log.nextSeq += 1
        let now = log.pending.last!.at
        if log.pending.count == 1 { log.pendingSince = now }
        if durable || log.pending.count >= 256 || now - log.pendingSince > 0.02 { try flush(run) }
        return true
    }

    /// Writes what a run has buffered (and its record, if it changed) in one transaction.
    func flush(_ run: Run) throws {
        guard let store = configuration.store, let log = run.log, log.dirty || !log.pending.isEmpty || !log.consumed.isEmpty else { return }
        // A run is found again through its parent: the parent's record goes first.
        if let parent = run.parent, let p = parent.log, !p.written { try flush(parent) }
        let batch = StoreBatch(runs: log.dirty ? [log.record] : [], events: log.pending, consumed: log.consumed)
        do { try store.write(batch) } catch {
            throw FlowError(kind: "store", message: "cannot record run \(run.id): \(error)", at: nil)
        }
        log.pending.removeAll(keepingCapacity: true)
        log.consumed = []
        log.dirty = false
        log.written = true
    }

    /// Changes a durable run's record and writes it (with anything buffered).
    func updateRecord(_ run: Run, _ change: (inout RunRecord) -> Void) throws {
        guard let log = run.log else { return }
        change(&log.record)
        log.dirty = true
        try flush(run)
    }

    // MARK: - Replay

    /// The recorded event for `key` in the current run, taken (each is given once), or nil
    /// when the run is live there. Throws `ReplayDivergence` when the scope still has
    /// recorded effects the code did not ask for.
    func takeRecorded(_ key: String, in run: Run, skippable: Bool = false) throws -> RunLog.Recorded? {
        guard let log = run.log else { return nil }
        if let r = log.recorded[key], r.isEffect {
            let scope = RunLog.scope(of: key)
            if log.migration != nil, let first = log.unused[scope]?.first, first != key, log.unused[scope]!.contains(key) {
                // A new version must ask for what the log recorded in the same order.
                try checkFrontier(run, asking: key)
            }
            if var list = log.unused[scope], let i = list.firstIndex(of: key) {
                list.remove(at: i)
                log.unused[scope] = list
                log.effectsLeft -= 1
                if let inner = log.nested[key], inner > 0 {
                    // Its body is not run again: what it recorded inside is done with.
                    let prefix = key + "/"
                    for s in Array(log.unused.keys) where s.hasPrefix(prefix) || s == key {
                        log.effectsLeft -= log.unused[s]?.count ?? 0
                        log.unused[s] = nil
                    }
                    log.nested[key] = 0
                }
                if log.effectsLeft == 0, log.migration != nil { try finishMigration(run, log) }
            }
            // A value that could not be written down cannot be given back: run it again.
            return r.opaque ? nil : r
        }
        if log.migration != nil, log.effectsLeft > 0, skippable {
            // A new version that only ever asks for new nodes never reaches the frontier.
            log.skipped += 1
            if log.skipped > log.recorded.count + 1 {
                    throw ReplayDivergence(run: run.id, message: "the new version kept asking for nodes the log does not have ('\(key)') and never for what it recorded")
            }
            // A node the new version added, in the part of the run already done: skipped.
            return RunLog.Recorded(seq: 0, type: "node:skipped", event: .map(MapBox([("type", .str("node:skipped"))])),
                                   opaque: false, isEffect: true)
        }
        try checkFrontier(run, asking: key)
        try checkCancel(run)
        if !log.overrides.isEmpty { try applyOverrides(run, log) }
        return nil
    }

    /// Throws `CancellationError` if `flow cancel` (or `Engine.post`) asked to cancel this
    /// recorded run. A live run looks in its inbox at its nodes and effects, at most every
    /// 100 ms: a run that never waits still takes a cancellation from another process.
    func checkCancel(_ run: Run) throws {
        guard let log = run.log, !log.cancelTaken else { return }
        if !log.cancelRequested, let store = configuration.store, log.migration == nil, log.effectsLeft == 0 {
            let now = monotonicNow
            if now >= log.nextCancelCheck {
                log.nextCancelCheck = now + 100_000_000
                if let cancel = try store.inbox(run: run.id).first(where: { $0.kind == "cancel" }) {
                    log.cancelRequested = true
                    log.consumed.append(cancel.id)
                }
            }
        }
        if log.cancelRequested {
            // Taken once: the compensations that follow run live, effects and all.
            log.cancelRequested = false
            log.cancelTaken = true
            throw CancellationError()
        }
    }

    /// Whether no key of the log has the name of `key` (`scope/name#k`) in its scope.
    func isNewName(_ key: String, in log: RunLog) -> Bool {
        guard let hash = key.lastIndex(of: "#") else { return false }
        let stem = key[..<hash] + "#"
        return !log.recorded.keys.contains { $0.hasPrefix(stem) }
    }

    /// Fails when the code asks for `key` live while its scope still has recorded effects.
    func checkFrontier(_ run: Run, asking key: String) throws {
        guard let log = run.log, log.effectsLeft > 0, let first = log.unused[RunLog.scope(of: key)]?.first,
              let r = log.recorded[first] else { return }
        var what = "\(r.type)"
        if case .map(let m) = r.event {
            if let v = m.get("result") { what += " with result \(Printer.repr(v, limit: 80))" }
            else if case .error(let e)? = m.get("error") { what += " with error \(Printer.repr(.str(e.message), limit: 80))" }
            else if let v = m.get("value") { what += " with value \(Printer.repr(v, limit: 80))" }
        }
        throw ReplayDivergence(run: run.id, message: "the log recorded '\(first)' (\(what)) next, but the code asked for '\(key)' instead")
    }

    /// Waits until a recorded completion may be delivered: when branches of the run
    /// replay side by side, their recorded completions come back in log order, so code
    /// that shares variables between branches takes the same path as the first time.
    func awaitTurn(_ run: Run, _ seq: Int) async {
        guard run.branches > 0 else { return }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            replayTurns.append((seq, c))
        }
    }

    /// Called by the event loop when no job can run: lets the waiting recorded completion
    /// with the smallest log position go.
    func releaseTurn() -> Bool {
        guard !replayTurns.isEmpty else { return false }
        var best = 0
        for i in replayTurns.indices where replayTurns[i].seq < replayTurns[best].seq { best = i }
        let c = replayTurns.remove(at: best).continuation
        c.resume()
        return true
    }

    /// Whether the current run still has recorded effects to hand back (or a fork's state
    /// changes, or a cancellation, waiting for the point where its log ends).
    public var isReplaying: Bool {
        // Without a store no run has a log: no need to find the current run (the engine
        // asks at every node).
        guard hasStore, let log = executingRun?.log else { return false }
        return log.effectsLeft > 0 || log.cancelRequested || !log.overrides.isEmpty || log.migration != nil
    }

    /// The recorded event of an effect, or nil when the run is live there (`recorded` in
    /// scripts; the engine asks it for every node). Outside durable runs: nil.
    public func recordedEvent(_ key: String) throws -> Value? {
        guard let run = Run.current else { return nil }
        return try takeRecorded(key, in: run, skippable: true)?.event
    }

    /// The recorded event of an effect (waiting for its turn), or nil when live.
    public func replayed(_ key: String) async throws -> Value? {
        guard let run = Run.current, let r = try takeRecorded(key, in: run, skippable: true) else { return nil }
        if r.seq > 0 { await awaitTurn(run, r.seq) }
        return r.event
    }

    /// An instantaneous effect (`now()`, `random()`, reading the environment): the
    /// recorded value on replay; otherwise `produce()`, recorded under `@name#k`.
    public func effect(_ name: String, durable: Bool = false, _ produce: () throws -> Value) throws -> Value {
        guard let run = Run.current, run.log != nil else { return try produce() }
        let key = (Run.scope ?? run.rootScope).next("@" + name)
        if let r = try takeRecorded(key, in: run), case .map(let m) = r.event { return m.get("value") ?? .nilValue }
        let v = try produce()
        try emit(run, intern("effect"), [MapBox.Entry(key: .str("name"), value: .str(name)),
                                          MapBox.Entry(key: .str("value"), value: v)], key: key, durable: durable)
        return v
    }

    /// The idempotency key of what is executing now: the run's id and the path of the
    /// node (or branch) it is in. The same after a restart, so a tool given it can tell a
    /// repeated call (an effect in flight at a crash runs again) from a new one.
    public var idempotencyKey: String? {
        guard let run = Run.current else { return nil }
        return run.id + ":" + (Run.scope ?? run.rootScope).prefix
    }

    /// Defines a host function whose calls are effects: recorded in a durable run (a
    /// replay returns the recorded result without calling it) and given the idempotency
    /// key of the call (`run-id:path/@name#k`).
    public func defineTool(_ name: String, parameters: [String], required: Int? = nil,
                           _ body: @escaping (_ call: inout BuiltinCall, _ idempotencyKey: String) throws -> Value) {
        define(name, parameters: parameters, required: required) { call in
            guard let run = Run.current, run.log != nil else {
                return try body(&call, call.interpreter.idempotencyKey.map { $0 + "/@" + name } ?? name)
            }
            let key = (Run.scope ?? run.rootScope).peek("@" + name)
            var c = call
            let v = try call.interpreter.effect(name, durable: true) { try body(&c, run.id + ":" + key) }
            return v
        }
    }

    /// The wait of `sleep(nanoseconds)`: durable in a run with a log, a plain timer
    /// otherwise (decided now, so a plain sleep holds no frame but the timer's).
    public func sleepWait(_ nanoseconds: Int) -> Builtin.Wait {
        if let run = executingRun, run.log != nil {
            return .work { [self] in
                try await durableSleep(nanoseconds)
                return .nilValue
            }
        }
        return .timer(nanoseconds: nanoseconds)
    }

    /// `sleep` in a run: the deadline is recorded when the timer starts, so after a
    /// restart the run wakes at the original deadline; the end is recorded too, so a
    /// replay does not wait again.
    public func durableSleep(_ nanoseconds: Int) async throws {
        guard let run = Run.current, run.log != nil else { return try await sleep(nanoseconds: nanoseconds) }
        let key = (Run.scope ?? run.rootScope).next("@sleep")
        if let r = try takeRecorded(key, in: run) {
            await awaitTurn(run, r.seq)
            return
        }
        let clock = configuration.clock
        var remaining = nanoseconds
        let startKey = RunLog.startKey(of: key)
        if let start = run.log?.recorded[startKey], case .map(let m) = start.event, case .float(let deadline)? = m.get("deadline") {
            remaining = max(0, Int((deadline - clock.wallTime()) * 1e9))
        } else {
            try emit(run, intern("timer:start"), [MapBox.Entry(key: .str("deadline"), value: .float(clock.wallTime() + Double(nanoseconds) / 1e9)),
                                                  MapBox.Entry(key: .str("duration"), value: .duration(nanoseconds))], key: startKey, durable: true)
        }
        try await sleep(nanoseconds: remaining)
        try emit(run, intern("timer:end"), [], key: key)
    }
}

/// A run parked on a durable wait (an approval, a signal): woken when a message may have
/// arrived, at its deadline, or — when nothing else can happen — with `RunsSuspended`.
final class DurableWaiter: @unchecked Sendable {
    let run: Run
    let on: String
    let wakeup = Wakeup()
    init(run: Run, on: String) { self.run = run; self.on = on }
}

extension Interpreter {
    // MARK: - Approvals and signals

    /// `await approve(prompt, timeout:)` (kind "approval": true or false) and
    /// `await signal(name)` (kind "signal": the value sent). The decision is taken from
    /// the run's inbox (`flow approve`, `flow signal`, or a host's `Engine.approve`) and
    /// recorded; until it comes the run is `waiting`, and the process may end.
    public func durableWait(kind: String, name: String, prompt: Value, timeout: Int?, at range: SourceRange?) async throws -> Value {
        let what = kind == "approval" ? "approve" : "signal"
        guard let run = Run.current else {
            throw FlowError(kind: ErrorKind.value, message: "\(what) waits inside a flow (it suspends a run)", at: range)
        }
        guard run.log != nil, let store = configuration.store else {
            throw FlowError(kind: ErrorKind.value, message: "\(what) needs a durable run: this host records no runs (no store)", at: range)
        }
        let key = (Run.scope ?? run.rootScope).next("@" + what)
        if let r = try takeRecorded(key, in: run) {
            await awaitTurn(run, r.seq)
            return try waitOutcome(r.event, kind: kind, timeout: timeout, at: range)
        }
        let clock = configuration.clock
        let startKey = RunLog.startKey(of: key)
        var deadline: Double? = nil
        if let start = run.log?.recorded[startKey], case .map(let m) = start.event {
            if case .float(let d)? = m.get("deadline") { deadline = d }
        } else {
            var fields = [MapBox.Entry(key: .str("kind"), value: .str(kind)), MapBox.Entry(key: .str("name"), value: .str(name)),
                          MapBox.Entry(key: .str("prompt"), value: prompt)]
            if let timeout {
                deadline = clock.wallTime() + Double(timeout) / 1e9
                fields.append(MapBox.Entry(key: .str("deadline"), value: .float(deadline!)))
            }
            try emit(run, intern("wait:start"), fields, key: startKey, durable: true)
        }
        let waitingOn = kind == "approval" ? "approval: \(Printer.display(prompt))" : "signal: \(name)"
        while true {
            let messages: [InboxMessage]
            do { messages = try store.inbox(run: run.id) } catch {
                throw FlowError(kind: "store", message: "cannot read the inbox of run \(run.id): \(error)", at: range)
            }
            if let cancel = messages.first(where: { $0.kind == "cancel" }) {
                run.log!.consumed.append(cancel.id)
                run.status = .running
                throw CancellationError()
            }
            if let m = messages.first(where: { $0.kind == kind && (kind != "signal" || $0.name == name) }) {
                let value = try decodeStored(m.data, what: "a message for run \(run.id)")
                run.log!.consumed.append(m.id)
                run.status = .running
                run.log!.record.status = "running"
                run.log!.record.waitingOn = nil
                run.log!.dirty = true
                var fields = [MapBox.Entry(key: .str("kind"), value: .str(kind)), MapBox.Entry(key: .str("name"), value: .str(name))]
                if kind == "approval", case .map(let decision) = value { fields.append(contentsOf: decision.entries) } else {
                    fields.append(MapBox.Entry(key: .str("value"), value: value))
                }
                let event = try emitValue(run, intern(kind), fields, key: key, durable: true)
                return try waitOutcome(event, kind: kind, timeout: timeout, at: range)
            }
            if let deadline, clock.wallTime() >= deadline {
                run.status = .running
                run.log!.record.status = "running"
                run.log!.record.waitingOn = nil
                run.log!.dirty = true
                let event = try emitValue(run, intern(kind), [MapBox.Entry(key: .str("kind"), value: .str(kind)),
                                                          MapBox.Entry(key: .str("timed_out"), value: .bool(true))], key: key)
                return try waitOutcome(event, kind: kind, timeout: timeout, at: range)
            }
            if run.status != .waiting {
                run.status = .waiting
                try updateRecord(run) { $0.status = "waiting"; $0.waitingOn = waitingOn }
            }
            try await park(run, on: waitingOn, until: deadline)
        }
    }

    /// What a recorded approval or signal gives back: the decision, the value, or a timeout.
    func waitOutcome(_ event: Value, kind: String, timeout: Int?, at range: SourceRange?) throws -> Value {
        guard case .map(let m) = event else { return .nilValue }
        if m.get("timed_out")?.isTruthy == true {
            let after = timeout.map { " after \(Printer.formatDuration($0))" } ?? ""
            throw FlowError(kind: "timeout", message: "no \(kind) came\(after)", at: range)
        }
        if kind == "approval" { return .bool(m.get("approved")?.isTruthy ?? false) }
        return m.get("value") ?? .nilValue
    }

    /// Waits until woken (a poll found mail, the deadline came) or cancelled.
    func park(_ run: Run, on: String, until deadline: Double?) async throws {
        let waiter = DurableWaiter(run: run, on: on)
        durableWaiters.append(waiter)
        defer { durableWaiters.removeAll { $0 === waiter } }
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (c: UnsafeContinuation<Void, Error>) in
                waiter.wakeup.arm(c)
                if let deadline {
                    let ns = max(0, Int((deadline - configuration.clock.wallTime()) * 1e9))
                    let id = loop.schedule(at: configuration.clock.now() + ns, background: configuration.suspendWhenIdle) {
                        waiter.wakeup.fire(nil)
                    }
                    waiter.wakeup.setTimer(id)
                }
                pollInbox()
                if Task.isCancelled { waiter.wakeup.fire(CancellationError()) }
            }
        } onCancel: {
            if let id = waiter.wakeup.timer { loop.cancelTimer(id) }
            waiter.wakeup.fire(CancellationError())
        }
    }

    /// While runs wait durably, looks for messages every 100 ms (another process — or a
    /// host thread — may have posted one) and wakes the runs that have some.
    func pollInbox() {
        guard !polling, !durableWaiters.isEmpty else { return }
        polling = true
        loop.schedule(at: configuration.clock.now() + 100_000_000, background: true) { [self] in
            polling = false
            guard let store = configuration.store else { return }
            for w in durableWaiters {
                if let mail = try? store.inbox(run: w.run.id), !mail.isEmpty { w.wakeup.fire(nil) }
            }
            pollInbox()
        }
    }

    /// Called by the event loop when nothing can happen any more: every durable waiter
    /// ends with `RunsSuspended`, so their runs unwind and stay waiting in the store.
    func suspendWaiters() -> Bool {
        guard !durableWaiters.isEmpty else { return false }
        let suspended = RunsSuspended(waiting: durableWaiters.map { ($0.run.id, $0.on) })
        for w in durableWaiters {
            if let id = w.wakeup.timer { loop.cancelTimer(id) }
            w.wakeup.fire(suspended)
        }
        return true
    }

    /// Posts an approval or a signal for a run (from a host thread or another process's
    /// store); the run takes it at its next look.
    public func post(_ message: InboxMessage) throws {
        guard let store = configuration.store else { throw StoreError("this host records no runs (no store)") }
        try store.post(message)
    }
}

/// What `approve(…)` and `signal(…)` return: a durable wait that `await` performs.
public final class PendingWait: FlowObject, @unchecked Sendable {
    let kind: String
    let name: String
    let prompt: Value
    let timeout: Int?
    public init(kind: String, name: String, prompt: Value, timeout: Int?) {
        self.kind = kind; self.name = name; self.prompt = prompt; self.timeout = timeout
    }
    public override var typeName: String { kind }
    public override var description: String {
        kind == "approval" ? "<approval \(Printer.repr(prompt))>" : "<signal \(name)>"
    }
}
