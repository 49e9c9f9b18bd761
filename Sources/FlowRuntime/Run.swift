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
    @exclusivity(unchecked) public internal(set) var status: Status = .running
    public weak var parent: Run?
    @exclusivity(unchecked) public internal(set) var children: [Run] = []
    @exclusivity(unchecked) public internal(set) var events: [Value] = []
    @exclusivity(unchecked) public internal(set) var result: Value = .nilValue
    /// Monotonic nanoseconds on the interpreter's clock.
    public let startedAt: Int
    @exclusivity(unchecked) public internal(set) var endedAt: Int?
    /// Undo steps of completed nodes (and of completed child runs), in completion order:
    /// run in reverse if this run fails.
    @exclusivity(unchecked) var compensations: [(path: String, undo: Value, result: Value)] = []
    /// The id as a string value, made once.
    lazy var idBox = StringBox(id)
    /// Tasks started by `spawn`; any still running when the run ends are cancelled.
    @exclusivity(unchecked) var tasks: [Task<Value, Error>] = []
    /// The path scope of the run's own code (branches get scopes of their own).
    lazy var rootScope = PathScope(prefix: flow)

    @TaskLocal static var current: Run?
    /// The scope node paths are made in: the run's root, or a parallel branch.
    @TaskLocal static var scope: PathScope?

    init(id: String, flow: String, arguments: [Value], parent: Run?, startedAt: Int) {
        self.id = id
        self.flow = flow
        self.arguments = arguments
        self.parent = parent
        self.startedAt = startedAt
    }

}

/// Where stable paths are made: a prefix (`flow`, `flow/parallel#0/a`, `flow/parallel#1/[3]`)
/// and, per name, how many children of that name have been made here. Each branch has
/// its own scope, so a path does not depend on the order in which branches run.
public final class PathScope: @unchecked Sendable {
    /// The scope's path, made on first use: most branches never ask for it.
    public lazy var prefix: String = makePrefix()
    private let makePrefix: () -> String
    @exclusivity(unchecked) private var counts: [String: Int] = [:]
    init(prefix: String) {
        let p = prefix
        self.makePrefix = { p }
    }
    /// A scope whose path is `base/[index]`, built only if a node needs it.
    init(base: String, index: Int) {
        self.makePrefix = { "\(base)/[\(index)]" }
    }

    /// The path of the next child called `name`: `prefix/name#k`.
    func next(_ name: String) -> String {
        let k = counts[name, default: 0]
        counts[name] = k + 1
        return "\(prefix)/\(name)#\(k)"
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
        return try await Run.$current.withValue(run) { try await Run.$scope.withValue(run.rootScope) {
            try emit(run, "run:start", [("flow", .str(run.flow)), ("args", .list(args)),
                                        ("parent", parent.map { .str($0.id) } ?? .nilValue)])
            do {
                let result = try await callClosureAsync(c, args, named: named, at: range, asRun: true)
                await finishTasks(run)
                // A completed child's undo steps belong to the parent's saga from now on.
                parent?.compensations.append(contentsOf: run.compensations)
                run.result = result
                run.status = .completed
                run.endedAt = configuration.clock.now()
                try emit(run, "run:end", [("status", .str("completed")), ("result", result)])
                return result
            } catch let e as FlowError {
                await finishTasks(run)
                await compensate(run)
                run.status = .failed
                run.endedAt = configuration.clock.now()
                try? emit(run, "run:end", [("status", .str("failed")), ("error", .error(e.value))])
                throw e
            } catch {
                await finishTasks(run)
                await compensate(run)
                run.status = .cancelled
                run.endedAt = configuration.clock.now()
                try? emit(run, "run:end", [("status", .str("cancelled"))])
                throw error
            }
        } }
    }

    /// Runs the undo steps of a failed run, newest first, each with the result of the node
    /// it undoes. They run in a task of their own, so cancelling the run does not cancel
    /// them; a failing one is reported (`compensate:failed`) and the rest still run.
    func compensate(_ run: Run) async {
        let steps = run.compensations.reversed()
        run.compensations = []
        guard !steps.isEmpty else { return }
        let task = Task(executorPreference: loop) { [self] in
            await Run.$current.withValue(run) {
                for step in steps {
                    try? emit(run, "compensate:start", [("path", .str(step.path))])
                    do {
                        _ = try await invokeAsync(step.undo, [step.result], named: nil, range: SourceRange(file: SourceFile(path: "<engine>", text: ""), start: 0, end: 0))
                        try? emit(run, "compensate:end", [("path", .str(step.path))])
                    } catch let e as FlowError {
                        try? emit(run, "compensate:failed", [("path", .str(step.path)), ("error", .error(e.value))])
                    } catch {
                        try? emit(run, "compensate:failed", [("path", .str(step.path))])
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
    func emit(_ run: Run, _ type: String, _ fields: [(String, Value)]) throws -> Value {
        try emit(run, intern(type), fields.map { MapBox.Entry(key: .string(intern($0.0)), value: $0.1) })
    }

    /// Emits an event whose extra fields are already entries (keys boxed).
    @discardableResult
    func emit(_ run: Run, _ type: StringBox, _ fields: [MapBox.Entry]) throws -> Value {
        // Keys, the type and the run id are interned: a run keeps all its events, and
        // boxing each key again would be most of their memory.
        let k = keys
        var entries: [MapBox.Entry] = []
        entries.reserveCapacity(4 + fields.count)
        entries.append(MapBox.Entry(key: .string(k.seq), value: .int(run.events.count + 1)))
        entries.append(MapBox.Entry(key: .string(k.type), value: .string(type)))
        entries.append(MapBox.Entry(key: .string(k.run), value: .string(run.idBox)))
        entries.append(MapBox.Entry(key: .string(k.at), value: .duration(configuration.clock.now() - run.startedAt)))
        for f in fields {
            if case .string(let s) = f.key, s === k.seq || s === k.type || s === k.run || s === k.at { continue }
            entries.append(f)
        }
        let type = type.value
        let value = Value.map(MapBox(distinct: entries))
        run.events.append(value)
        configuration.onEvent?(value)
        if hooks.isEmpty { return value }
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
