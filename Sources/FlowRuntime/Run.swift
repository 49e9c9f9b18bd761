import FlowSyntax

/// One execution of a flow: its id, arguments, state `$`, status, parent and child runs,
/// and the ordered stream of its events.
///
/// Events are maps (`{seq, type, run, at, …}`) so scripts, hosts and, later, the store see
/// the same values. A run's code runs on the interpreter's event loop; the current run
/// follows the task (`Run.current`), so `$` inside any function a flow calls is that
/// flow's state.
public final class Run: @unchecked Sendable {
    public enum Status: String, Sendable { case running, waiting, completed, failed, cancelled }

    public let id: String
    public let flow: String
    public let arguments: [Value]
    /// `$`.
    public let state = MapBox()
    public internal(set) var status: Status = .running
    public weak var parent: Run?
    public internal(set) var children: [Run] = []
    public internal(set) var events: [Value] = []
    public internal(set) var result: Value = .nilValue
    /// Monotonic nanoseconds on the interpreter's clock.
    public let startedAt: Int
    public internal(set) var endedAt: Int?
    /// How many nodes of each name have started: the k of a node's path.
    var nodeCounts: [String: Int] = [:]

    @TaskLocal static var current: Run?

    init(id: String, flow: String, arguments: [Value], parent: Run?, startedAt: Int) {
        self.id = id
        self.flow = flow
        self.arguments = arguments
        self.parent = parent
        self.startedAt = startedAt
    }

}

extension Interpreter {
    /// Runs a flow's body as a new run (a child of the current run, if any), emitting
    /// `run:start` and `run:end`.
    func runFlow(_ c: Closure, _ args: [Value], named: [(String, Value)]?, at range: SourceRange?) async throws -> Value {
        nextRunNumber += 1
        let parent = Run.current
        let run = Run(id: "run-\(nextRunNumber)", flow: c.proto.name, arguments: args, parent: parent,
                      startedAt: configuration.clock.now())
        parent?.children.append(run)
        runs.append(run)
        return try await Run.$current.withValue(run) {
            try emit(run, "run:start", [("flow", .str(run.flow)), ("args", .list(args)),
                                        ("parent", parent.map { .str($0.id) } ?? .nilValue)])
            do {
                let result = try await callClosureAsync(c, args, named: named, at: range, asRun: true)
                run.result = result
                run.status = .completed
                run.endedAt = configuration.clock.now()
                try emit(run, "run:end", [("status", .str("completed")), ("result", result)])
                return result
            } catch let e as FlowError {
                run.status = .failed
                run.endedAt = configuration.clock.now()
                try? emit(run, "run:end", [("status", .str("failed")), ("error", .error(e.value))])
                throw e
            }
        }
    }

    /// Appends an event to a run and delivers it to the host's and the scripts' hooks.
    /// Script hooks run synchronously, in order of subscription; an error in one surfaces
    /// where the event was emitted.
    @discardableResult
    func emit(_ run: Run, _ type: String, _ fields: [(String, Value)]) throws -> Value {
        let event = MapBox([("seq", .int(run.events.count + 1)), ("type", .str(type)), ("run", .str(run.id)),
                            ("at", .duration(configuration.clock.now() - run.startedAt))] + fields)
        let value = Value.map(event)
        run.events.append(value)
        configuration.onEvent?(value)
        if !emitting, let handlers = hooks[type] ?? nil, !handlers.isEmpty {
            // A hook that emits events does not re-enter hooks (no event storms).
            emitting = true
            defer { emitting = false }
            for h in handlers { _ = try call(h, [value]) }
        }
        if !emitting, let all = hooks["*"], !all.isEmpty {
            emitting = true
            defer { emitting = false }
            for h in all { _ = try call(h, [value]) }
        }
        return value
    }
}
