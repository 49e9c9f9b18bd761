/// Where runs live: scripts, runs, their append-only event logs, and the inbox through
/// which other processes reach a run. The runtime writes through `write`, one atomic
/// batch at a time; a batch that returned is durable as far as the store promises
/// (see each store's documentation).
///
/// Conformance: `Tests/FlowStoreTests/ConformanceSuite.swift` runs the same checks on
/// every store.
public protocol RunStore: AnyObject, Sendable {
    /// Applies a batch atomically: all of it or none of it.
    func write(_ batch: StoreBatch) throws

    func script(id: String) throws -> ScriptRecord?
    /// Scripts with one of these statuses (all when nil), oldest first.
    func scripts(status: [String]?) throws -> [ScriptRecord]

    func run(id: String) throws -> RunRecord?
    /// The run started at `key` by `parent` (or, with no parent, by the script's top level).
    func run(script: String, parent: String?, key: String) throws -> RunRecord?
    /// Runs matching the query, newest first.
    func runs(_ query: RunQuery) throws -> [RunRecord]

    /// A run's events with `seq` greater than `after`, in order.
    func events(run: String, after: Int) throws -> [EventRecord]

    /// Messages waiting for a run, oldest first.
    func inbox(run: String) throws -> [InboxMessage]
    /// Adds a message for a run; returns its id.
    @discardableResult
    func post(_ message: InboxMessage) throws -> Int

    /// Deletes finished root runs that ended before `endedBefore` (unix seconds), with
    /// their child runs, events and messages, and scripts left with no run. Returns how
    /// many runs it deleted.
    @discardableResult
    func prune(endedBefore: Double) throws -> Int
}

/// One atomic write: new or changed scripts and runs, events to append, inbox messages
/// the runtime has taken (deleted in the same transaction as the events recording them).
public struct StoreBatch: Sendable {
    public var scripts: [ScriptRecord] = []
    public var runs: [RunRecord] = []
    public var events: [EventRecord] = []
    public var consumed: [Int] = []

    public init(scripts: [ScriptRecord] = [], runs: [RunRecord] = [], events: [EventRecord] = [], consumed: [Int] = []) {
        self.scripts = scripts; self.runs = runs; self.events = events; self.consumed = consumed
    }

    public var isEmpty: Bool { scripts.isEmpty && runs.isEmpty && events.isEmpty && consumed.isEmpty }
}

extension RunStore {
    public func events(run: String) throws -> [EventRecord] { try events(run: run, after: 0) }
    public func save(_ run: RunRecord) throws { try write(StoreBatch(runs: [run])) }
    public func save(_ script: ScriptRecord) throws { try write(StoreBatch(scripts: [script])) }
}
