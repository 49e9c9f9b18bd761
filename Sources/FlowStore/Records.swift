/// What a store keeps. Values cross the store as text (tagged JSON made by the runtime),
/// so a store knows nothing of Flow's values and any store can hold any run.

/// One execution of a script: the top-level code that starts runs. Resuming a run
/// re-executes its script from this record (the source as it was when it started).
public struct ScriptRecord: Sendable, Equatable {
    public var id: String
    /// The file's path as given on the command line (or a host's name for it).
    public var path: String
    /// The source text the script started with.
    public var source: String
    /// Command-line arguments (`args()`), as a JSON array of strings.
    public var arguments: String
    /// The working directory it ran in (file imports and relative paths resolve here).
    public var directory: String
    /// running, waiting, completed, failed or cancelled.
    public var status: String
    /// Who is executing it now: "host:pid", or nil when no process is.
    public var owner: String?
    /// Unix seconds.
    public var startedAt: Double
    public var endedAt: Double?
    /// The files the script imported, as it imported them: a JSON object from path to
    /// source. A resume re-executes these, not what the files hold by then.
    public var imports: String

    public init(id: String, path: String, source: String, arguments: String = "[]", directory: String = "",
                status: String = "running", owner: String? = nil, startedAt: Double, endedAt: Double? = nil,
                imports: String = "{}") {
        self.id = id; self.path = path; self.source = source; self.arguments = arguments
        self.directory = directory; self.status = status; self.owner = owner
        self.startedAt = startedAt; self.endedAt = endedAt; self.imports = imports
    }
}

/// One run of a flow.
public struct RunRecord: Sendable, Equatable {
    public var id: String
    /// The script whose execution started it (directly, or through its parent).
    public var script: String
    public var parent: String?
    public var flow: String
    /// Where the call that started it sits: its stable key in the parent run's log, or in
    /// the script's top-level code for a root run (`daily#0`).
    public var key: String
    /// Arguments, as tagged JSON (a list).
    public var arguments: String
    /// running, waiting, completed, failed, cancelled or continued.
    public var status: String
    /// The result (completed), the error (failed), or — continued — `{args, state}` its
    /// successor started with, as tagged JSON.
    public var outcome: String?
    /// What a waiting run waits for (`approval: Deploy?`, `signal: go`).
    public var waitingOn: String?
    /// Unix seconds.
    public var startedAt: Double
    public var endedAt: Double?
    /// For a fork made by `rewind`: the run it was forked from and the event it forked at.
    public var forkOf: String?
    public var forkAt: Int?

    public init(id: String, script: String, parent: String? = nil, flow: String, key: String, arguments: String = "[]",
                status: String = "running", outcome: String? = nil, waitingOn: String? = nil,
                startedAt: Double, endedAt: Double? = nil, forkOf: String? = nil, forkAt: Int? = nil) {
        self.id = id; self.script = script; self.parent = parent; self.flow = flow; self.key = key
        self.arguments = arguments; self.status = status; self.outcome = outcome; self.waitingOn = waitingOn
        self.startedAt = startedAt; self.endedAt = endedAt; self.forkOf = forkOf; self.forkAt = forkAt
    }

    /// Completed, failed, cancelled, or continued (ended by `continue_as_new`: its
    /// successor runs on under the key `KEY+`).
    public var isFinished: Bool { status == "completed" || status == "failed" || status == "cancelled" || status == "continued" }
}

/// One event of a run's log, in the order appended (`seq` counts from 1 within a run).
public struct EventRecord: Sendable, Equatable {
    public var run: String
    public var seq: Int
    public var type: String
    /// The stable key of what the event records (a node's completion, a timer, a state
    /// write…): replay finds recorded results by it.
    public var key: String
    /// Unix seconds.
    public var at: Double
    /// The event's fields, as tagged JSON (a map).
    public var data: String

    public init(run: String, seq: Int, type: String, key: String, at: Double, data: String) {
        self.run = run; self.seq = seq; self.type = type; self.key = key; self.at = at; self.data = data
    }
}

/// A message for a run from outside its process: an approval, a signal, a cancellation.
/// The run's own process moves it into the log when the run takes it, so a log has one
/// writer.
public struct InboxMessage: Sendable, Equatable {
    public var id: Int
    public var run: String
    /// approval, signal or cancel.
    public var kind: String
    /// The signal's name; empty for the others.
    public var name: String
    /// Tagged JSON.
    public var data: String
    public var at: Double

    public init(id: Int = 0, run: String, kind: String, name: String = "", data: String = "null", at: Double) {
        self.id = id; self.run = run; self.kind = kind; self.name = name; self.data = data; self.at = at
    }
}

/// Which runs `RunStore.runs` returns; nil fields match everything. Newest first.
public struct RunQuery: Sendable {
    public var status: [String]?
    public var flow: String?
    public var script: String?
    public var parent: String?
    /// Only runs with no parent.
    public var rootsOnly = false
    public var startedAfter: Double?
    public var startedBefore: Double?
    public var limit: Int?

    public init(status: [String]? = nil, flow: String? = nil, script: String? = nil, parent: String? = nil,
                rootsOnly: Bool = false, startedAfter: Double? = nil, startedBefore: Double? = nil, limit: Int? = nil) {
        self.status = status; self.flow = flow; self.script = script; self.parent = parent
        self.rootsOnly = rootsOnly; self.startedAfter = startedAfter; self.startedBefore = startedBefore; self.limit = limit
    }

    public func matches(_ r: RunRecord) -> Bool {
        if let status, !status.contains(r.status) { return false }
        if let flow, r.flow != flow { return false }
        if let script, r.script != script { return false }
        if let parent, r.parent != parent { return false }
        if rootsOnly && r.parent != nil { return false }
        if let startedAfter, r.startedAt < startedAfter { return false }
        if let startedBefore, r.startedAt >= startedBefore { return false }
        return true
    }
}

public struct StoreError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
