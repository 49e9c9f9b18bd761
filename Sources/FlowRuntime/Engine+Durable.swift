import FlowSyntax
import FlowStore

extension Engine {
    /// Runs a file as a recorded script execution: with a store configured, every flow it
    /// calls is a durable run, recorded as it goes. `resuming: true` re-executes a script
    /// the store already has (its record's id): finished runs give their recorded
    /// outcomes, unfinished ones replay their logs and continue live.
    ///
    /// Throws `RunsSuspended` when runs are left waiting for approvals or signals (the
    /// script is then `waiting`), `ReplayDivergence` when the code no longer matches a
    /// run's log, and otherwise what `run(_:)` throws.
    @discardableResult
    public func run(_ file: SourceFile, script: ScriptRecord, resuming: Bool = false,
                    beforeRunning: (([Diagnostic]) -> Void)? = nil) throws -> Value {
        // The record keeps the source the script ran with: resumes and forks re-execute it.
        var script = script
        if script.source.isEmpty { script.source = file.text }
        if script.path.isEmpty { script.path = file.path }
        return try perform { [self] in
            try interpreter.beginScript(script, resuming: resuming)
            do {
                let v = try run(file, beforeRunning: beforeRunning)
                try interpreter.endScript(status: "completed")
                return v
            } catch let e as RunsSuspended {
                try? interpreter.endScript(status: "waiting")
                throw e
            } catch let e as ReplayDivergence {
                try? interpreter.endScript(status: "running")
                throw e
            } catch {
                try? interpreter.endScript(status: "failed")
                throw error
            }
        }
    }

    /// Approves (or rejects) what a waiting run asks for; the run takes the decision at
    /// its next look (a running process polls its inbox; otherwise resume the script).
    public func approve(run: String, approved: Bool = true, reason: String? = nil, by: String? = nil) throws {
        var fields: [(String, Value)] = [("approved", .bool(approved))]
        if let reason { fields.append(("reason", .str(reason))) }
        if let by { fields.append(("by", .str(by))) }
        try post(run: run, kind: "approval", name: "", value: .map(MapBox(fields)))
    }

    /// Sends a signal to a run (`await signal(name)` in it gives `value`).
    public func signal(run: String, name: String, value: Value) throws {
        try post(run: run, kind: "signal", name: name, value: value)
    }

    func post(run: String, kind: String, name: String, value: Value) throws {
        let interpreter = self.interpreter
        guard let store = interpreter.configuration.store else { throw StoreError("this engine records no runs (no store)") }
        guard let record = try store.run(id: run) else { throw StoreError("no run '\(run)' in the store") }
        guard !record.isFinished else { throw StoreError("run \(run) has already \(record.status == "completed" ? "completed" : "ended (\(record.status))")") }
        let data = try JSONText.encode(value, tagged: true)
        try interpreter.post(InboxMessage(run: run, kind: kind, name: name, data: data,
                                          at: interpreter.configuration.clock.wallTime()))
    }
}

extension Engine {
    // MARK: - Time travel (the CLI's history, rewind and diff)

    /// A run's events as maps `{seq, type, key, at, …fields}`.
    public func history(run: String) throws -> [Value] {
        try perform { [self] in try interpreter.timeline(of: run) }
    }

    /// A run's state after event `at` (after its last event when nil).
    public func state(run: String, at: Int? = nil) throws -> MapBox {
        try perform { [self] in try interpreter.state(of: run, at: at) }
    }

    /// Two runs compared: status, result, differing state keys, first differing event.
    public func diff(_ a: String, _ b: String) throws -> Value {
        try perform { [self] in try interpreter.compare(a, b) }
    }

    /// Forks root run `run` at event `to`, applies `set` (state paths to values) where the
    /// copied log ends, and runs the fork by re-executing the run's script from its
    /// recorded source. Returns the fork's id and its outcome (its result, or its error
    /// thrown).
    @discardableResult
    public func rewind(run: String, to: Int, set changes: [(path: [String], value: Value)] = [],
                       scriptID: String? = nil) throws -> (run: String, result: Value) {
        let (script, fork) = try perform { [self] in
            try interpreter.prepareFork(of: run, at: to, changes: changes.map { ($0.path.map { Value.str($0) }, $0.value) },
                                        newScriptID: scriptID ?? "f\(Int(interpreter.configuration.clock.wallTime() * 1000) % 1_000_000_000)")
        }
        try self.run(SourceFile(path: script.path, text: script.source), script: script, resuming: true)
        let outcome = try perform { [self] in
            try interpreter.outcome(of: try interpreter.storedRun(fork.id), at: nil)
        }
        return (fork.id, outcome)
    }
}
