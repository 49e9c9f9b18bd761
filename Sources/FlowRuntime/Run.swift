import FlowSyntax
import FlowStore

/// One execution of a flow: its id, arguments, state `$`, status, parent and child runs,
/// and the ordered stream of its events.
///
/// Events are maps (`{seq, type, run, at, …}`) so scripts, hosts and the store see the same
/// values. A run keeps them compact (`RunEvent`) and makes each map the first time someone
/// looks: most events of most runs are never looked at. A run's code runs on the
/// interpreter's event loop; the current run follows the task (`Run.current`), so `$`
/// inside any function a flow calls is that flow's state.
public final class Run: @unchecked Sendable {
    public enum Status: String, Sendable { case running, waiting, completed, failed, cancelled, continued }

    public let id: String
    public let flow: String
    public let arguments: [Value]
    /// `$`.
    public let state = MapBox()
    @exclusivity(unchecked) public internal(set) var status: Status = .running
    @exclusivity(unchecked) public weak var parent: Run?
    @exclusivity(unchecked) public internal(set) var children: [Run] = []
    /// The events so far, as maps.
    public var events: [Value] {
        var out: [Value] = []
        out.reserveCapacity(log_.count)
        for i in log_.indices { out.append(event(i)) }
        return out
    }
    /// The events as kept (`events` makes their maps).
    @exclusivity(unchecked) var log_: [RunEvent] = []
    @exclusivity(unchecked) public internal(set) var result: Value = .nilValue
    /// Monotonic nanoseconds on the interpreter's clock.
    public let startedAt: Int
    @exclusivity(unchecked) public internal(set) var endedAt: Int?
    /// Undo steps of completed nodes (and of completed child runs), in completion order:
    /// run in reverse if this run fails.
    @exclusivity(unchecked) var compensations: [(path: String, undo: Value, result: Value)] = []
    /// The id as a string value, made once.
    lazy var idBox = StringBox(id)
    /// The flow's name, interned (its function's, shared by all its runs), when known.
    @exclusivity(unchecked) var flowBox: StringBox?
    /// Tasks started by `spawn`; any still running when the run ends are cancelled.
    @exclusivity(unchecked) var tasks: [Task<Value, Error>] = []
    /// The path scope of the run's own code (branches get scopes of their own).
    lazy var rootScope = PathScope(prefix: flow, depth: callDepth ?? CallDepth(0))
    /// The call depth of the task that started the run (its code counts on from there).
    @exclusivity(unchecked) var callDepth: CallDepth?

    /// True once the run has ended, one way or another.
    public var isFinished: Bool {
        switch status {
        case .completed, .failed, .cancelled, .continued: return true
        case .running, .waiting: return false
        }
    }

    /// The durable log, when the run is recorded in a store.
    @exclusivity(unchecked) var log: RunLog?
    /// Branches of this run running now (parallel, race, spawn): replay orders recorded
    /// completions only when there are some.
    @exclusivity(unchecked) var branches = 0
    /// For a successor started by `continue_as_new`: the key of the call that started the
    /// first run of the chain (the parent records the chain's end under it).
    @exclusivity(unchecked) var callKey: String?
    /// The version of the flow the run executes, and a newer one offered to it (taken at
    /// its next node boundary: HotSwap.swift).
    @exclusivity(unchecked) var closure: Closure?
    @exclusivity(unchecked) var pendingSwap: SwapRequest?

    /// Where the code running now runs: its run, and the scope its node paths are made
    /// in. While a fiber steps on the loop's thread, its context (`EventLoop.currentTurn`);
    /// otherwise the task's (`bound`). One box per task or fiber that runs Flow code,
    /// changed in place as the code enters and leaves nodes (a binding per node cost a
    /// task-local push and a closure frame, and lengthened every lookup).
    static var context: RunContext? { EventLoop.currentTurn ?? bound }
    /// The context of a task that runs Flow code, bound for the task's life. A branch's
    /// turns bind nothing: binding cost a malloc and a task-status lock a turn.
    @TaskLocal static var bound: RunContext?
    static var current: Run? { context?.run }
    /// The scope node paths are made in: the run's root, a parallel branch, or a node.
    static var scope: PathScope? { context?.scope }

    /// Runs `body` as code of `run`, its paths made in `scope`, in a box of its own.
    static func within<T>(_ run: Run?, scope: PathScope?, _ body: () async throws -> T) async throws -> T {
        try await $bound.withValue(RunContext(run: run, scope: scope), operation: body)
    }

    /// Runs `body` in a copy of the current context: for a task that runs Flow code, so
    /// that the nodes it enters do not change the box of the task that started it.
    static func inOwnContext<T>(_ body: () async throws -> T) async throws -> T {
        try await inOwnContext(copying: context, body)
    }

    /// Runs `body` in a copy of `c`, the context of the code that made the task running
    /// it (a task started during a fiber's turn does not inherit the turn's context).
    static func inOwnContext<T>(copying c: RunContext?, _ body: () async throws -> T) async throws -> T {
        guard let c else { return try await body() }
        return try await $bound.withValue(RunContext(run: c.run, scope: c.scope), operation: body)
    }

    /// The interpreter's event keys, for the maps of this run's events.
    let keys: EventKeys

    init(id: String, flow: String, arguments: [Value], parent: Run?, startedAt: Int, keys: EventKeys) {
        self.id = id
        self.flow = flow
        self.arguments = arguments
        self.parent = parent
        self.startedAt = startedAt
        self.keys = keys
        // Every run has a few events (its start, a node's start and end): room for them
        // at once instead of growing one by one.
        log_.reserveCapacity(4)
    }

    /// Event `i` as a map, made once: later looks get the same map.
    func event(_ i: Int) -> Value {
        if let made = maps[i] { return .map(made) }
        let map = self.map(of: log_[i])
        maps[i] = map
        return .map(map)
    }

    /// The maps of the events looked at (by hooks, hosts or scripts), by position.
    @exclusivity(unchecked) private var maps: [Int: MapBox] = [:]

    /// The map of an event of this run: `{seq, type, run, at}` and the event's fields.
    func map(of e: RunEvent) -> MapBox {
        let kind = kinds[Int(e.kind)]
        var entries = baseEntries(seq: e.seq, type: kind.type, at: e.at, room: kind.names.count)
        var i = 0
        for name in kind.names {
            entries.append(MapBox.Entry(key: .string(name), value: e.values![i]))
            i += 1
        }
        return MapBox(distinct: entries)
    }

    /// The map of an event that is not kept: `{seq, type, run, at}` and `fields`.
    func map(seq: Int, type: StringBox, at: Int, fields: [MapBox.Entry]) -> MapBox {
        var entries = baseEntries(seq: seq, type: type, at: at, room: fields.count)
        entries.append(contentsOf: fields)
        return MapBox(distinct: entries)
    }

    private func baseEntries(seq: Int, type: StringBox, at: Int, room: Int) -> [MapBox.Entry] {
        let k = keys
        var entries: [MapBox.Entry] = []
        entries.reserveCapacity(4 + room)
        entries.append(MapBox.Entry(key: .string(k.seq), value: .int(seq)))
        entries.append(MapBox.Entry(key: .string(k.type), value: .string(type)))
        entries.append(MapBox.Entry(key: .string(k.run), value: .string(idBox)))
        entries.append(MapBox.Entry(key: .string(k.at), value: .duration(at)))
        return entries
    }

    /// The values of the run's events' fields live in chunks of `chunkValues` (a larger
    /// event's in one of its own), each linked to the one before: an event's values are
    /// contiguous in one chunk, and its field names are an array it shares (the engine's
    /// events share their `emit` site's). Nothing moves or is freed before the run: a
    /// malloc every few events instead of an array an event, no fragments left by
    /// growing, no retain of each field's name, and values freed one by one in code made
    /// for them (an array of entries went through the generic value witnesses, about 800
    /// instructions an event of a node).
    @exclusivity(unchecked) private var chunk: UnsafeMutableRawPointer? = nil
    @exclusivity(unchecked) private var chunkUsed = 0
    @exclusivity(unchecked) private var chunkCapacity = 0
    static let chunkValues = 16
    /// A chunk starts with the link to the one before, padded to a value's alignment.
    private static let chunkHeader = max(MemoryLayout<UnsafeMutableRawPointer?>.stride, MemoryLayout<Value>.alignment)

    deinit {
        for e in log_ {
            guard let p = e.values else { continue }
            var i = 0
            let n = kinds[Int(e.kind)].names.count
            while i < n { _ = (p + i).move(); i += 1 }
        }
        var c = chunk
        while let this = c {
            c = this.load(as: UnsafeMutableRawPointer?.self)
            Heap.free(this)
        }
    }

    /// Room for `n` values (at least one), taken: the caller initializes all of them and
    /// adds their event (`addEvent(…names:values:)`) before anything else is emitted.
    func valueSpace(_ n: Int) -> UnsafeMutablePointer<Value> {
        if chunkUsed + n > chunkCapacity { newChunk(max(n, Run.chunkValues)) }
        let p = (chunk! + Run.chunkHeader).assumingMemoryBound(to: Value.self) + chunkUsed
        chunkUsed += n
        return p
    }

    @inline(never)
    private func newChunk(_ capacity: Int) {
        let size = Run.chunkHeader + capacity * MemoryLayout<Value>.stride
        let c = Heap.raw(byteCount: size)
        c.storeBytes(of: chunk, as: UnsafeMutableRawPointer?.self)
        chunk = c
        chunkUsed = 0
        chunkCapacity = capacity
    }

    /// Adds an event whose `names.count` values were just put in `valueSpace`; gives its
    /// index.
    func addEvent(seq: Int, type: StringBox, at: Int, names: [StringBox], values: UnsafeMutablePointer<Value>?) -> Int {
        log_.append(RunEvent(seq: seq, at: at, values: names.isEmpty ? nil : values, kind: kind(type, names)))
        return log_.count - 1
    }

    /// The types and field names of this run's events, each pair kept once: an event
    /// names its pair by position (`RunEvent.kind`), so keeping it retains nothing.
    @exclusivity(unchecked) private(set) var kinds: [EventKind] = []

    /// The position of `(type, names)` in `kinds`, added if it is not among the last few
    /// (a run's events are mostly of a handful of kinds, emitted by the same sites; a run
    /// that emits many kinds keeps some twice rather than searching them all).
    private func kind(_ type: StringBox, _ names: [StringBox]) -> Int32 {
        var i = kinds.count - 1
        let stop = max(0, kinds.count - Run.kindsSearched)
        while i >= stop {
            if kinds[i].type === type && EventKind.same(kinds[i].names, names) { return Int32(i) }
            i -= 1
        }
        // A run's start, its nodes' start and end and its end are four kinds.
        if kinds.isEmpty { kinds.reserveCapacity(4) }
        kinds.append(EventKind(type: type, names: names))
        return Int32(kinds.count - 1)
    }
    static let kindsSearched = 8

    /// Adds an event with a copy of `fields`, whose keys are strings; gives its index.
    func addEvent(seq: Int, type: StringBox, at: Int, fields: [MapBox.Entry]) -> Int {
        let n = fields.count
        guard n > 0 else { return addEvent(seq: seq, type: type, at: at, names: [], values: nil) }
        var names: [StringBox] = []
        names.reserveCapacity(n)
        let dest = valueSpace(n)
        var i = 0
        for f in fields {
            guard case .string(let name) = f.key else { preconditionFailure("an event's field names are strings") }
            names.append(name)
            (dest + i).initialize(to: f.value)
            i += 1
        }
        return addEvent(seq: seq, type: type, at: at, names: names, values: dest)
    }
}


/// An event as a run keeps it: the fields every event has and the values of the
/// emitter's own fields, in the run's chunks (`Run.valueSpace`); its type and field names
/// are the run's `kinds[kind]`. Nothing in it is counted: keeping an event and freeing it
/// retain and release nothing. The map scripts and hosts see is made at the first look
/// (`Run.event`).
struct RunEvent {
    let seq: Int
    /// Nanoseconds since the run started.
    let at: Int
    let values: UnsafeMutablePointer<Value>?
    let kind: Int32
}

/// An event's type and field names.
struct EventKind {
    let type: StringBox
    let names: [StringBox]

    /// The same names: the same array (an `emit` site's), or the same boxes.
    static func same(_ a: [StringBox], _ b: [StringBox]) -> Bool {
        let n = a.count
        guard n == b.count else { return false }
        if n == 0 { return true }
        let identical = a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in x.baseAddress == y.baseAddress } }
        if identical { return true }
        var i = 0
        while i < n {
            if a[i] !== b[i] { return false }
            i += 1
        }
        return true
    }
}

/// Where a task's code runs (`Run.context`): its run and its path scope. Each task that
/// runs Flow code has its own; a node sets `scope` while the engine runs it and puts the
/// old one back after.
///
/// A node's own scope is made only when something asks for it (`scope`): a nested node,
/// a branch, a timer's key. Most nodes ask for none, and making one was about 300
/// instructions and a malloc a node (`enterNode`, `leaveNode`).
final class RunContext: @unchecked Sendable {
    @exclusivity(unchecked) var run: Run?
    /// The scope paths are made in: made now if it is a node's that nothing asked for yet.
    var scope: PathScope? {
        get {
            if pendingPath != nil { makePending() }
            return made
        }
        set {
            pendingPath = nil
            made = newValue
        }
    }
    /// The async call depth the scope counts in, read without making a node's scope.
    var depth: CallDepth? {
        if pendingPath != nil { return pendingDepth }
        return made?.depth
    }
    @exclusivity(unchecked) private var made: PathScope?
    /// The path of the node whose scope is not made yet, and its depth (the node's fiber,
    /// or the caller's scope, keeps that alive while the node runs).
    @exclusivity(unchecked) private var pendingPath: String?
    @exclusivity(unchecked) private unowned(unsafe) var pendingDepth: CallDepth?

    init(run: Run?, scope: PathScope?) { self.run = run; self.made = scope }

    @inline(never)
    private func makePending() {
        made = PathScope(prefix: pendingPath.unsafelyUnwrapped, depth: pendingDepth.unsafelyUnwrapped)
        pendingPath = nil
        pendingDepth = nil
    }

    /// A node starts: its scope, whose path is `path`, replaces the current one (which
    /// goes to `saved`, nil before) and is made when first asked for. The current scope
    /// is made already: the node's path was taken from it.
    @inline(__always)
    func enterNode(path: String, depth: CallDepth, saving saved: inout AnyObject?) {
        RunContext.exchange(&made, &saved)
        pendingPath = path
        pendingDepth = depth
    }

    /// The node is over (or unwound): the scope `enterNode` saved comes back; the node's,
    /// if it was made, goes.
    @inline(__always)
    func leaveNode(restoring saved: inout AnyObject?) {
        pendingPath = nil
        pendingDepth = nil
        made = nil
        RunContext.exchange(&made, &saved)
    }

    /// Swaps a scope with the one an activation keeps: moved both ways, with no retain
    /// or release (`Activation.extra` is an `AnyObject?`, one pointer as a `PathScope?`
    /// is, and holds only path scopes for a node).
    @inline(__always)
    private static func exchange(_ scope: inout PathScope?, _ extra: inout AnyObject?) {
        withUnsafeMutablePointer(to: &extra) { p in
            p.withMemoryRebound(to: PathScope?.self, capacity: 1) { swap(&scope, &$0.pointee) }
        }
    }
}

/// How deeply the async Flow calls of one task are nested, for the call-depth limit of
/// code that suspends (its frames are on the heap, so a runaway recursion would only
/// grow memory). Counted in the task's path scope rather than in a task-local value
/// pushed per call: a push per call cost every suspended run a kilobyte.
final class CallDepth: @unchecked Sendable {
    @exclusivity(unchecked) var value: Int
    init(_ value: Int) { self.value = value }
}

/// Where stable paths are made: a prefix (`flow`, `flow/parallel#0/a`, `flow/parallel#1/[3]`)
/// and, per name, how many children of that name have been made here. Each branch has
/// its own scope, so a path does not depend on the order in which branches run.
public final class PathScope: @unchecked Sendable {
    /// The scope's path. A branch of `parallel for` makes it on first use (`base/[index]`):
    /// most branches never ask for it.
    public var prefix: String {
        if let p = made { return p }
        let p = "\(base)/[\(index)]"
        made = p
        return p
    }
    @exclusivity(unchecked) private var made: String?
    private let base: String
    private let index: Int
    @exclusivity(unchecked) private var counts: [String: Int] = [:]
    /// The async call depth of the task this scope's code runs in: the scopes of one task
    /// share it, a branch's scope (a task of its own) has its own.
    let depth: CallDepth
    init(prefix: String, depth: CallDepth) {
        self.made = prefix
        self.base = ""
        self.index = 0
        self.depth = depth
    }
    /// A branch's scope, whose path is `base/[index]`.
    init(base: String, index: Int, depth: CallDepth) {
        self.base = base
        self.index = index
        self.depth = depth
    }

    /// The count before it goes up: one dictionary lookup, through the modify accessor.
    private static func bump(_ count: inout Int) -> Int {
        defer { count += 1 }
        return count
    }

    /// The path `next(name)` will give, without taking it.
    func peek(_ name: String) -> String { path(name, counts[name, default: 0]) }

    /// The path of the next child called `name`: `prefix/name#k`.
    func next(_ name: String) -> String { path(name, Self.bump(&counts[name, default: 0])) }

    /// The same for a node, whose name is an identifier interned by the compiler: counted
    /// by pointer in a short list (a scope holds few node names) instead of hashing the
    /// name at every node. No other child's name is an identifier (theirs are keywords or
    /// have a prefix like `flow:`), so the two counts never share a name.
    func next(node name: StringBox) -> String {
        var i = 0
        while i < nodeCounts.count {
            if nodeCounts[i].name === name {
                let k = nodeCounts[i].count
                nodeCounts[i].count = k + 1
                // From the second node of a name on, its path is its stem and the count.
                while stems.count <= i { stems.append("") }
                if stems[i].isEmpty { stems[i] = path(name.value, nil) }
                var stem = stems[i]
                return stem.withUTF8 { PathScope.path($0, k) }
            }
            i += 1
        }
        // Room for a few names at once: a flow's nodes are a handful of names.
        if nodeCounts.isEmpty { nodeCounts.reserveCapacity(4) }
        nodeCounts.append((name, 1))
        return path(name.value, 0)
    }
    /// Each node name met in this scope and how many nodes had it.
    @exclusivity(unchecked) private var nodeCounts: [(name: StringBox, count: Int)] = []
    /// Once a second node of `nodeCounts[i]`'s name came, `stems[i]` is their paths before
    /// the count (`prefix/name#`; up to 15 bytes it is held inline), else "". A scope whose
    /// names are met once each (a run's steps) makes none.
    @exclusivity(unchecked) private var stems: [String] = []

    /// `prefix/name#k` (`prefix/name#` for no `k`), written byte by byte into a string of
    /// the right size: appending the pieces cost five appends and a number's description,
    /// a path per node.
    private func path(_ name: String, _ k: Int?) -> String {
        var p = prefix
        var n = name
        let count = (p.isEmpty ? 0 : p.utf8.count + 1) + n.utf8.count + 1 + (k.map(PathScope.digits) ?? 0)
        return String(unsafeUninitializedCapacity: count) { out in
            var i = 0
            if !p.isEmpty {
                p.withUTF8 { for b in $0 { out[i] = b; i += 1 } }
                out[i] = UInt8(ascii: "/"); i += 1
            }
            n.withUTF8 { for b in $0 { out[i] = b; i += 1 } }
            out[i] = UInt8(ascii: "#"); i += 1
            guard let k else { return i }
            return PathScope.write(k, into: out, at: i)
        }
    }

    /// A node's path: the stem's bytes (`prefix/name#`), then `k`'s digits.
    private static func path(_ stem: UnsafeBufferPointer<UInt8>, _ k: Int) -> String {
        String(unsafeUninitializedCapacity: stem.count + digits(k)) { out in
            out.baseAddress.unsafelyUnwrapped.update(from: stem.baseAddress.unsafelyUnwrapped, count: stem.count)
            return write(k, into: out, at: stem.count)
        }
    }

    @inline(__always) private static func digits(_ k: Int) -> Int {
        var digits = 1
        var rest = k / 10
        while rest > 0 { digits += 1; rest /= 10 }
        return digits
    }

    /// Writes `k` (not negative) in decimal at `i`; gives the index after it.
    @inline(__always) private static func write(_ k: Int, into out: UnsafeMutableBufferPointer<UInt8>, at i: Int) -> Int {
        let end = i + digits(k)
        var v = k
        var j = end - 1
        repeat { out[j] = UInt8(ascii: "0") + UInt8(v % 10); v /= 10; j -= 1 } while v > 0
        return end
    }
}

extension Interpreter {
    /// Where a `continue_as_new` chain goes on: the predecessor's key, the key of the call
    /// that started the chain, and the state carried over.
    typealias Successor = (key: String?, callKey: String?, state: MapBox)

    /// What a flow call finds before it runs (`planFlowCall`).
    enum FlowCall {
        /// The parent's log has the child's end: deliver it in turn.
        case recordedChild(seq: Int, event: Value)
        /// A finished run in the store: its outcome.
        case finished(RunRecord, key: String)
        /// A run ended by continue_as_new: go on with its successor.
        case follow(args: [Value], Successor)
        /// Run it: new (with its key, if recorded) or resumed from the store.
        case start(key: String?, resumed: RunRecord?)
    }

    /// What `runFlow` does next, decided synchronously: small, because `runFlow`'s frame
    /// holds it while the run is suspended.
    enum FlowStep {
        case replay(seq: Int, event: Value)
        case outcome(Value)
        case follow(args: [Value], Successor)
        case run(Run, resumed: Bool)
    }

    /// Runs a flow's body as a new run (a child of the current run, if any), emitting
    /// `run:start` and `run:end`. With a store, a call the store already knows is that run
    /// again: a finished one gives its recorded outcome, an unfinished one resumes.
    ///
    /// Kept small, with the work in separate functions: an async function's frame is
    /// allocated for every call and stays while the run is suspended, and one large
    /// function made every suspended run cost kilobytes more.
    func runFlow(_ c: Closure, _ args: [Value], named: [(String, Value)]?, at range: SourceRange?,
                 successorOf previous: Successor? = nil) async throws -> Value {
        let parent = Run.current
        switch try prepareFlowCall(c, args, parent: parent, previous: previous, at: range) {
        case .replay(let seq, let event):
            await awaitTurn(parent!, seq)
            return try childOutcome(event, at: range)
        case .outcome(let value):
            return value
        case .follow(let nextArgs, let successor):
            return try await runFlow(c, nextArgs, named: nil, at: range, successorOf: successor)
        case .run(let run, let resumed):
            return try await startRun(run, c, args, named: named, at: range, resumed: resumed)
        }
    }

    @inline(never)
    func prepareFlowCall(_ c: Closure, _ args: [Value], parent: Run?, previous: Successor?,
                         at range: SourceRange?) throws -> FlowStep {
        switch try planFlowCall(c, parent: parent, previous: previous) {
        case .recordedChild(let seq, let event):
            return .replay(seq: seq, event: event)
        case .finished(let found, let key):
            if let parent { try recordChild(parent, key: previous?.callKey ?? key, found) }
            return .outcome(try outcome(of: found, at: range))
        case .follow(let nextArgs, let successor):
            return .follow(args: nextArgs, successor)
        case .start(let key, let resumed):
            return .run(try makeRun(c, args, parent: parent, key: key, resumed: resumed, previous: previous),
                        resumed: resumed != nil)
        }
    }

    @inline(never)
    func startRun(_ run: Run, _ c: Closure, _ args: [Value], named: [(String, Value)]?, at range: SourceRange?,
                  resumed: Bool) async throws -> Value {
        try await Run.within(run, scope: run.rootScope) {
            try await runBody(run, c, args, named: named, at: range, resumed: resumed)
        }
    }

    /// Looks a flow call up in the store (when runs are recorded).
    @inline(never)
    func planFlowCall(_ c: Closure, parent: Run?, previous: Successor?) throws -> FlowCall {
        if let forced = forcedRun {
            forcedRun = nil
            return .start(key: forced.key, resumed: forced)
        }
        guard let session, let store = configuration.store, parent == nil || parent?.log != nil else {
            return .start(key: nil, resumed: nil)
        }
        let key: String
        if let previous {
            guard let k = previous.key else { return .start(key: nil, resumed: nil) }
            key = k + "+"
        } else if let parent {
            key = (Run.scope ?? parent.rootScope).next("flow:" + c.proto.name)
            if let r = try takeRecorded(key, in: parent) { return .recordedChild(seq: r.seq, event: r.event) }
        } else {
            key = session.scope.next(c.proto.name)
        }
        var stored = try store.run(script: session.record.id, parent: parent?.id, key: key)
        if stored == nil, parent == nil, previous == nil, let base = session.base, key != session.forkKey {
            // A fork: the calls before the forked one are the base script's.
            stored = try store.run(script: base, parent: nil, key: key).flatMap { $0.isFinished ? $0 : nil }
        }
        if key == session.forkKey { session.base = nil }
        guard let found = stored else {
            if parent == nil && previous == nil { session.rootsToReach = 0 }
            return .start(key: key, resumed: nil)
        }
        if parent == nil && previous == nil { session.rootsToReach -= 1 }
        if found.status == "continued" {
            // Ended by continue_as_new: follow the chain to its successor.
            let next = try decodeStored(found.outcome ?? "null", what: "the successor of run \(found.id)")
            guard case .map(let m) = next, case .list(let nextArgs)? = m.get("args") else {
                throw FlowError(kind: "store", message: "run \(found.id) continued, but its successor's arguments are unreadable", at: nil)
            }
            let carried: MapBox
            if case .map(let st)? = m.get("state") { carried = st } else { carried = MapBox() }
            return .follow(args: nextArgs.items, (found.key, previous?.callKey ?? found.key, carried))
        }
        if found.isFinished { return .finished(found, key: key) }
        return .start(key: key, resumed: found)
    }

    /// A new run, or one the store has, loaded with its log.
    @inline(never)
    func makeRun(_ c: Closure, _ args: [Value], parent: Run?, key: String?, resumed: RunRecord?, previous: Successor?) throws -> Run {
        let run: Run
        if let resumed {
            run = Run(id: resumed.id, flow: resumed.flow, arguments: args, parent: parent,
                      startedAt: configuration.clock.now() - Int((configuration.clock.wallTime() - resumed.startedAt) * 1e9), keys: keys)
            run.log = try loadLog(resumed, into: run)
            run.log!.record.status = "running"
            run.log!.record.waitingOn = nil
            run.log!.dirty = true
        } else {
            let id: String
            if let session, key != nil {
                try recordScript(session)
                session.nextRunNumber += 1
                id = "\(session.record.id)-\(session.nextRunNumber)"
            } else {
                nextRunNumber += 1
                id = "run-\(nextRunNumber)"
            }
            run = Run(id: id, flow: c.proto.name, arguments: args, parent: parent, startedAt: monotonicNow, keys: keys)
            run.flowBox = c.proto.internedName ?? {
                let b = intern(c.proto.name)
                c.proto.internedName = b
                return b
            }()
            if let key { run.log = newLog(for: run, key: key) }
        }
        if let previous {
            run.callKey = previous.callKey
            // The successor starts with its predecessor's state.
            for e in previous.state.entries { _ = run.state.set(e.key, e.value) }
        }
        // The run's code counts its calls on from the calling task's depth.
        run.callDepth = callDepth
        parent?.children.append(run)
        runs.append(run)
        return run
    }

    /// The depth counter of the calling task.
    var callDepth: CallDepth { Run.context?.depth ?? rootDepth }

    /// The run's body, and how it ended.
    /// Like `runFlow`, its frame stays while the run is suspended: the rare endings are
    /// functions of their own.
    @inline(never)
    func runBody(_ run: Run, _ c: Closure, _ args: [Value], named: [(String, Value)]?, at range: SourceRange?,
                 resumed: Bool, swapBack: Closure? = nil) async throws -> Value {
        try beginBody(run, c, args, resumed: resumed)
        // Only the body's wait is here: what happens after it is in functions of their own,
        // so the frame a suspended run keeps is small.
        let result: Value
        do {
            result = try await Fiber.body(self, c, args, named: named, at: range)
        } catch {
            return try await bodyFailed(run, error, c, args, named: named, at: range, swapBack: swapBack)
        }
        return try await bodyEnded(run, result, c, args, named: named, at: range, swapBack: swapBack)
    }

    /// A run's body returned: the run completes (after the tasks it spawned).
    @inline(never)
    func bodyEnded(_ run: Run, _ result: Value, _ c: Closure, _ args: [Value], named: [(String, Value)]?,
                   at range: SourceRange?, swapBack: Closure?) async throws -> Value {
        do {
            if let log = run.log, log.migration != nil, log.effectsLeft > 0 { throw unfinishedReplay(run, log) }
            await finishTasks(run)
            try endCompleted(run, result)
            return result
        } catch {
            return try await bodyFailed(run, error, c, args, named: named, at: range, swapBack: swapBack)
        }
    }

    /// A run's body (or its ending) threw: the run fails, is cancelled, goes on as its
    /// successor or on another version, or stays suspended.
    @inline(never)
    func bodyFailed(_ run: Run, _ error: Error, _ c: Closure, _ args: [Value], named: [(String, Value)]?,
                    at range: SourceRange?, swapBack: Closure?) async throws -> Value {
        do {
            throw error
        } catch let e as FlowError {
            await finishTasks(run)
            await compensate(run)
            endFailed(run, e)
            throw e
        } catch let next as ContinueAsNew {
            return try await continueAsNew(run, next, c, at: range)
        } catch let request as SwapRequest {
            return try await swap(run, to: request, from: c, args, named: named, at: range)
        } catch let d as ReplayDivergence where run.log?.migration != nil && swapBack != nil {
            return try await swapRefused(run, d, back: swapBack!, args, named: named, at: range)
        } catch let e where e is RunsSuspended || e is ReplayDivergence {
            // The run stays as the store has it, to be resumed.
            for t in run.tasks { t.cancel() }
            try? flush(run)
            throw e
        } catch {
            await finishTasks(run)
            await compensate(run)
            throw endCancelled(run, error, at: range)
        }
    }

    /// How a body starts: the run's start, or the report of a swap replaying its log.
    @inline(never)
    func beginBody(_ run: Run, _ c: Closure, _ args: [Value], resumed: Bool) throws {
        run.closure = c
        if let log = run.log, let (version, _) = log.migration, version >= 0 {
            try emit(run, intern("swap:start"), [MapBox.Entry(key: .str("flow"), value: .str(run.flow)),
                                                 MapBox.Entry(key: .str("version"), value: .int(version)),
                                                 MapBox.Entry(key: .str("stopped"), value: .float(log.swapBegan ?? configuration.clock.wallTime()))],
                     key: "event:swap:start#\(log.nextSeq)")
            if log.effectsLeft == 0 { try finishMigration(run, log) }
        } else if run.log?.migration != nil {
            // Back on the version the run had (after a refused swap): replayed leniently,
            // like the swap that brought it there.
        } else {
            try beginRun(run, args, resumed: resumed)
        }
    }

    @inline(never)
    func continueAsNew(_ run: Run, _ next: ContinueAsNew, _ c: Closure, at range: SourceRange?) async throws -> Value {
        await finishTasks(run)
        let successor = try endContinued(run, next)
        return try await Run.within(run.parent, scope: Run.scope) {
            try await runFlow(c, next.arguments, named: nil, at: range, successorOf: successor)
        }
    }

    /// The new version does not agree with the log: back to the one that does.
    @inline(never)
    func swapRefused(_ run: Run, _ d: ReplayDivergence, back swapBack: Closure, _ args: [Value],
                     named: [(String, Value)]?, at range: SourceRange?) async throws -> Value {
        let log = run.log!
        log.migration = nil
        _ = try? emit(run, intern("swap:refused"), [MapBox.Entry(key: .str("flow"), value: .str(run.flow)),
                                                    MapBox.Entry(key: .str("reason"), value: .str(d.message))],
                      key: "event:swap:refused#\(log.nextSeq)", durable: true)
        for t in run.tasks { t.cancel() }
        try flush(run)
        // The version it goes back to may itself have come by a swap (with nodes the
        // log skipped): it is replayed the same lenient way, without a report.
        let fresh = try reload(run, migrating: SwapRequest(closure: swapBack, transform: nil, version: -1))
        return try await Run.within(fresh, scope: fresh.rootScope) {
            try await runBody(fresh, swapBack, args, named: named, at: range, resumed: true)
        }
    }

    @inline(never)
    func beginRun(_ run: Run, _ args: [Value], resumed: Bool) throws {
        let k = keys
        // The flow's name is interned once (one box for every run of it), the parent's id
        // is its box: a run's start makes no string boxes.
        let flow = run.flowBox ?? intern(run.flow)
        if let log = run.log, resumed {
            let lineage = [EventKeys.field(k.flow, .string(flow)), EventKeys.field(k.args, .list(args)),
                           EventKeys.field(k.parent, run.parent.map { .string($0.idBox) } ?? .nilValue)]
            try emit(run, intern("run:resumed"), lineage, key: "event:run:resumed#\(log.nextSeq)")
        } else {
            try emitFields(run, k.runStart, k.lineage) {
                try push(.string(flow), nil)
                try push(.list(args), nil)
                try push(run.parent.map { .string($0.idBox) } ?? .nilValue, nil)
            }
        }
    }

    /// Emits one of the runtime's own events, whose field names are a constant of
    /// `EventKeys`: `push` pushes one value a name, which move from the value stack into
    /// the event (as `emit(type, {record})` does) — no array of fields, no names made.
    func emitFields(_ run: Run, _ type: StringBox, _ names: [StringBox], _ push: () throws -> Void) throws {
        let base = top
        do {
            try push()
            precondition(top - base == names.count, "one value a field name")
            try emitRecord(run, type, names: names, values: base, key: nil)
        } catch {
            pop(to: base)
            throw error
        }
        pop(to: base)
    }

    /// A run ended: past `Configuration.keptRuns` finished root runs, the oldest go (with
    /// their child runs) in one pass, so a long-lived engine does not keep every run it
    /// ever ran. The pass waits until half as many again have finished.
    func forgetOldRuns(after run: Run) {
        guard run.parent == nil else { return }
        finishedRoots += 1
        let keep = max(0, configuration.keptRuns)
        guard finishedRoots > keep + max(1, keep / 2) else { return }
        var excess = finishedRoots - keep
        var dropped = Set<ObjectIdentifier>()
        for r in runs where excess > 0 && r.parent == nil && r.isFinished {
            dropped.insert(ObjectIdentifier(r))
            excess -= 1
        }
        // Decided while every run is alive (parents are weak references).
        let gone = Set(runs.filter { r in
            var root = r
            while let p = root.parent { root = p }
            return dropped.contains(ObjectIdentifier(root))
        }.map(ObjectIdentifier.init))
        runs.removeAll { gone.contains(ObjectIdentifier($0)) }
        finishedRoots = runs.reduce(0) { $0 + ($1.parent == nil && $1.isFinished ? 1 : 0) }
    }

    @inline(never)
    func endCompleted(_ run: Run, _ result: Value) throws {
        if let log = run.log, !log.overrides.isEmpty { try applyOverrides(run, log) }
        // A completed child's undo steps belong to the parent's saga from now on.
        run.parent?.compensations.append(contentsOf: run.compensations)
        run.result = result
        run.status = .completed
        run.endedAt = monotonicNow
        let k = keys
        try emitFields(run, k.runEnd, k.completion) {
            try push(.string(k.completed), nil)
            try push(result, nil)
        }
        try finishRecord(run, parent: run.parent)
        forgetOldRuns(after: run)
    }

    @inline(never)
    func endFailed(_ run: Run, _ e: FlowError) {
        run.status = .failed
        run.endedAt = monotonicNow
        let k = keys
        try? emitFields(run, k.runEnd, k.failure) {
            try push(.string(k.failed), nil)
            try push(.error(e.value), nil)
        }
        try? finishRecord(run, parent: run.parent, error: e.value)
        forgetOldRuns(after: run)
    }

    /// The run ends here; a successor starts with the new arguments and this run's state,
    /// and its result is this call's result.
    @inline(never)
    func endContinued(_ run: Run, _ next: ContinueAsNew) throws -> Successor {
        run.parent?.compensations.append(contentsOf: run.compensations)
        run.status = .continued
        run.endedAt = monotonicNow
        let carried = MapBox(distinct: run.state.entries)
        run.result = .map(MapBox([("args", .list(next.arguments)), ("state", .map(carried))]))
        let k = keys
        try emit(run, k.runEnd, [EventKeys.field(k.status, .string(k.continued)), EventKeys.field(k.next, .list(next.arguments))])
        try finishRecord(run, parent: nil)
        forgetOldRuns(after: run)
        return (run.log?.record.key, run.callKey ?? run.log?.record.key, carried)
    }

    @inline(never)
    func endCancelled(_ run: Run, _ error: Error, at range: SourceRange?) -> Error {
        run.status = .cancelled
        run.endedAt = monotonicNow
        _ = try? emit(run, keys.runEnd, [EventKeys.field(keys.status, .string(keys.cancelled))])
        try? finishRecord(run, parent: run.parent)
        forgetOldRuns(after: run)
        if run.parent == nil, session != nil, error is CancellationError {
            // Cancelled from outside (flow cancel): the script sees a Flow error.
            return FlowError(kind: "cancelled", message: "run \(run.id) (\(run.flow)) was cancelled", at: range)
        }
        return error
    }

    /// Writes a durable run's end (status, outcome) and, in its parent's log, the child's
    /// completion under the key of the call.
    func finishRecord(_ run: Run, parent: Run?, error: ErrorBox? = nil) throws {
        guard let log = run.log else { return }
        try updateRecord(run) { r in
            r.status = run.status.rawValue
            r.waitingOn = nil
            r.endedAt = configuration.clock.wallTime()
            r.outcome = error.map { encodeStored(.error($0)) }
                ?? (run.status == .completed || run.status == .continued ? encodeStored(run.result) : nil)
        }
        if let parent, parent.log != nil { try recordChild(parent, key: run.callKey ?? log.record.key, log.record) }
    }

    /// A field key that is not the emitter's: not a string, or one of the base fields.
    @inline(__always)
    private func isForeign(_ key: Value) -> Bool {
        guard case .string(let s) = key else { return true }
        let k = keys
        if s === k.seq || s === k.type || s === k.run || s === k.at { return true }
        return !s.isInterned && ["seq", "type", "run", "at"].contains(s.value)
    }

    /// An emitter's fields without the ones that are not its own (`isForeign`).
    private func ownFields(_ fields: [MapBox.Entry]) -> [MapBox.Entry] {
        for f in fields where isForeign(f.key) { return fields.filter { !isForeign($0.key) } }
        return fields
    }

    /// Emits an event and gives its map (made even when replay found the event recorded
    /// already, for the callers that read what they emitted).
    func emitValue(_ run: Run, _ type: StringBox, _ fields: [MapBox.Entry], key: String? = nil, durable: Bool = false) throws -> Value {
        if let index = try emit(run, type, fields, key: key, durable: durable) { return run.event(index) }
        return .map(run.map(seq: run.log?.nextSeq ?? run.log_.count + 1, type: type,
                            at: monotonicNow - run.startedAt, fields: ownFields(fields)))
    }

    /// Records in the parent's log that a child run ended (an effect: replay returns it).
    func recordChild(_ parent: Run, key: String, _ child: RunRecord) throws {
        var fields: [MapBox.Entry] = [MapBox.Entry(key: .str("child"), value: .str(child.id)),
                                      MapBox.Entry(key: .str("flow"), value: .str(child.flow)),
                                      MapBox.Entry(key: .str("status"), value: .str(child.status))]
        let outcome = try decodeStored(child.outcome ?? "null", what: "the outcome of run \(child.id)")
        fields.append(MapBox.Entry(key: .str(child.status == "failed" ? "error" : "result"), value: outcome))
        try emit(parent, intern("child:end"), fields, key: key)
    }

    /// What a recorded `child:end` says the call returned (or threw).
    func childOutcome(_ event: Value, at range: SourceRange?) throws -> Value {
        guard case .map(let m) = event else { return .nilValue }
        switch m.get("status")?.stringValue {
        case "completed": return m.get("result") ?? .nilValue
        case "failed":
            if case .error(let e)? = m.get("error") { throw FlowError(e, at: range) }
            throw FlowError(kind: ErrorKind.value, message: "run \(m.get("child").map(Printer.display) ?? "?") failed", at: range)
        default:
            throw FlowError(kind: "cancelled", message: "run \(m.get("child").map(Printer.display) ?? "?") was cancelled", at: range)
        }
    }

    /// Runs the undo steps of a failed run, newest first, each with the result of the node
    /// it undoes. They run in a task of their own, so cancelling the run does not cancel
    /// them; a failing one is reported (`compensate:failed`) and the rest still run.
    func compensate(_ run: Run) async {
        let steps = run.compensations.reversed()
        run.compensations = []
        guard !steps.isEmpty else { return }
        let task = Task(executorPreference: loop) { [self] in
            try? await Run.within(run, scope: Run.scope) {
                for step in steps {
                    _ = try? emit(run, "compensate:start", [("path", .str(step.path))])
                    do {
                        _ = try await invokeAsync(step.undo, [step.result], named: nil, range: SourceRange(file: SourceFile(path: "<engine>", text: ""), start: 0, end: 0))
                        _ = try? emit(run, "compensate:end", [("path", .str(step.path))])
                    } catch let e as FlowError {
                        _ = try? emit(run, "compensate:failed", [("path", .str(step.path)), ("error", .error(e.value))])
                    } catch {
                        _ = try? emit(run, "compensate:failed", [("path", .str(step.path))])
                    }
                }
            }
        }
        await task.value
    }

    /// Registers an undo step for the current run (the engine calls it for a node with
    /// the `compensate` option once the node succeeded).
    public func registerCompensation(_ undo: Value, result: Value, path: String, at range: SourceRange?) throws {
        guard let run = Run.current else {
            throw FlowError(kind: ErrorKind.value, message: "compensations belong to a run: no flow is running", at: range)
        }
        run.compensations.append((path, undo, result))
    }

    /// Cancels and waits for the run's spawned tasks that have not finished: nothing a run
    /// started outlives it.
    func finishTasks(_ run: Run) async {
        for t in run.tasks { t.cancel() }
        for t in run.tasks { _ = try? await t.value }
        run.tasks = []
    }

    /// Appends an event to a run and delivers it to the host's and the scripts' hooks.
    /// Script hooks run synchronously, in order of subscription; an error in one surfaces
    /// where the event was emitted.
    @discardableResult
    func emit(_ run: Run, _ type: String, _ fields: [(String, Value)]) throws -> Int? {
        try emit(run, intern(type), fields.map { MapBox.Entry(key: .string(intern($0.0)), value: $0.1) })
    }

    /// Emits an event whose extra fields are already entries (keys boxed). Returns the
    /// event's position in the run's events, or nil when replay re-created an event the
    /// log holds (it is in the run's events already).
    @discardableResult
    func emit(_ run: Run, _ type: StringBox, _ fields: [MapBox.Entry], key: String? = nil, durable: Bool = false) throws -> Int? {
        // The base fields are the emitter's; keys that are not strings are not fields.
        let own = ownFields(fields)
        let seq = run.log?.nextSeq ?? run.log_.count + 1
        let at = monotonicNow - run.startedAt
        if let log = run.log, try !record(run, log, type: type.value, key: key, fields: own, durable: durable) {
            // Replay re-created an event the log holds: it is already in `run.events`.
            return nil
        }
        return try deliver(run, type, run.addEvent(seq: seq, type: type, at: at, fields: own))
    }

    /// `emit(type, {record}, key)` from `EmitRecordNode`: the record's values are in a
    /// window of the value stack (`values`, `names.count` of them, left nil here) and
    /// move straight into the event's fields. No key of `names` is a base field. Gives
    /// the event's time on `monotonic()`'s clock.
    @discardableResult
    func emitRecord(_ run: Run, _ type: StringBox, names: [StringBox], values: Frame, key: String?) throws -> Int {
        let n = names.count
        let seq = run.log?.nextSeq ?? run.log_.count + 1
        let now = monotonicNow
        let at = now - run.startedAt
        if let log = run.log {
            var fields: [MapBox.Entry] = []
            fields.reserveCapacity(n)
            for i in 0..<n { fields.append(MapBox.Entry(key: .string(names[i]), value: values[i])) }
            if try !record(run, log, type: type.value, key: key, fields: fields) { return now }
        }
        guard n > 0 else {
            _ = try deliver(run, type, run.addEvent(seq: seq, type: type, at: at, names: [], values: nil))
            return now
        }
        let dest = run.valueSpace(n)
        var i = 0
        while i < n {
            // Moved, with the window's slot left nil.
            (dest + i).initialize(to: (values + i).move())
            (values + i).initialize(to: .nilValue)
            i += 1
        }
        _ = try deliver(run, type, run.addEvent(seq: seq, type: type, at: at, names: names, values: dest))
        return now
    }

    /// An event now in its run: to the host's callback and the scripts' hooks. Gives its
    /// index.
    private func deliver(_ run: Run, _ type: StringBox, _ index: Int) throws -> Int? {
        if let onEvent = configuration.onEvent { onEvent(run.event(index)) }
        if hooks.isEmpty { return index }
        if !emitting, let handlers = hooks[type.value] ?? nil, !handlers.isEmpty {
            // A hook that emits events does not re-enter hooks (no event storms).
            emitting = true
            defer { emitting = false }
            let value = run.event(index)
            for h in handlers { _ = try call(h, [value]) }
        }
        if !emitting, let all = hooks["*"], !all.isEmpty {
            emitting = true
            defer { emitting = false }
            let value = run.event(index)
            for h in all { _ = try call(h, [value]) }
        }
        return index
    }
}

/// A flow's run on the fiber of the code that called it (`Fiber.startFlow`): the run's
/// start and end are this node's steps and its body runs as activations above it, so a
/// flow call costs no Swift async frames (`runFlow`, `startRun`, `runBody`) and no fiber
/// of its own. The task's context box says that the run's code is running — as a node
/// sets its scope — and gets the caller's back when the run ends. How it ends mirrors
/// `runBody`: the rare endings (failure, `continue_as_new`, a swap) are its Swift code.
final class RunNode: Node {
    nonisolated(unsafe) static let shared = RunNode()

    /// The run being executed, and what to put back in the context when it ends.
    final class Started {
        let run: Run
        let closure: Closure
        let arguments: [Value]
        let named: [(String, Value)]?
        let range: SourceRange?
        let resumed: Bool
        let context: RunContext
        var outerRun: Run?
        var outerScope: PathScope?
        var result = Value.nilValue

        init(run: Run, closure: Closure, arguments: [Value], named: [(String, Value)]?, range: SourceRange?,
             resumed: Bool, context: RunContext) {
            self.run = run; self.closure = closure; self.arguments = arguments; self.named = named
            self.range = range; self.resumed = resumed; self.context = context
        }

        func enter() {
            outerRun = context.run
            outerScope = context.scope
            context.run = run
            context.scope = run.rootScope
        }

        func leave() {
            context.run = outerRun
            context.scope = outerScope
        }
    }

    // States: 1 starting, 2 the body runs, 3 waiting for the tasks it spawned, 4 ending
    // by `bodyFailed`, 5 over.
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        // The activation keeps its `Started`: it is lent to the step, not retained (nor
        // is each of its fields as the step reads them).
        try a.lent(Started.self)._withUnsafeGuaranteedRef { s in try step(s, f, &a, input) }
    }

    @inline(__always)
    private func step(_ s: Started, _ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        let m = f.m
        switch a.state {
        case 0:
            s.enter()
            a.state = 1
            try m.beginBody(s.run, s.closure, s.arguments, resumed: s.resumed)
            a.state = 2
            return f.callBody(s.closure, s.arguments, s.named)
        case 2:
            s.result = input
            if let log = s.run.log, log.migration != nil, log.effectsLeft > 0 { throw m.unfinishedReplay(s.run, log) }
            if !s.run.tasks.isEmpty {
                a.state = 3
                let run = s.run
                return f.wait {
                    await m.finishTasks(run)
                    return .nilValue
                }
            }
        case 3:
            break
        default:
            // `bodyFailed` gave the call's value (a successor's, a swapped version's).
            a.state = 5
            s.leave()
            return f.done(input)
        }
        try m.endCompleted(s.run, s.result)
        a.state = 5
        s.leave()
        return f.done(s.result)
    }

    override func unwind(_ f: Fiber, _ a: inout Fiber.Activation, _ error: Error) throws -> Step? {
        let s = unsafeDowncast(a.extra!, to: Started.self)
        switch a.state {
        case 2, 3:
            a.state = 4
            let m = f.m
            return f.wait {
                try await m.bodyFailed(s.run, error, s.closure, s.arguments, named: s.named, at: s.range, swapBack: nil)
            }
        case 1, 4:
            a.state = 5
            s.leave()
            return nil
        default:
            return nil
        }
    }
}
