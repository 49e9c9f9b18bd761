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
        try perform { [self] in
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
