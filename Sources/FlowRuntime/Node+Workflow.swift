import FlowSyntax

/// `node name(options) { body }`: asks the engine (`run_node` in Stdlib/engine.flow) to run
/// the body, passing `{name, path, options, run}`. The path is stable within a run —
/// `flow/name#k`, k counting earlier nodes of that name — because durable logs will be
/// keyed by it.
final class NodeNode: Node {
    let name: String
    let nameBox: StringBox
    let options: Node
    let body: Node
    let range: SourceRange
    /// The node has no options (`{}`).
    let optionless: Bool
    /// The step map of the last node made here. When nothing else holds it any more (the
    /// engine kept no reference), the next node gets it with its own values: a map and,
    /// for a node without options, its empty options map, neither allocated nor freed.
    @exclusivity(unchecked) private var lastStep: MapBox?
    /// `nameBox` is the name interned: paths count nodes by it (`PathScope.next(node:)`).
    init(name: String, nameBox: StringBox, options: Node, body: Node, range: SourceRange) {
        precondition(nameBox.isInterned && nameBox.value == name)
        self.name = name; self.nameBox = nameBox; self.options = options; self.body = body; self.range = range
        optionless = (options as? RecordNode)?.names.isEmpty ?? false
    }

    /// The step map `{name, path, options, run}`: the last one made here when no one else
    /// holds it, else a new one, kept for the next node.
    @inline(__always)
    private func stepMap(_ path: String, _ run: Run, _ fp: Frame, _ m: Interpreter) throws -> MapBox {
        if isKnownUniquelyReferenced(&lastStep), lastStep.unsafelyUnwrapped.isInlineRecord {
            let step = lastStep.unsafelyUnwrapped
            var options = step.takeField(2)
            if optionless, case .map(var o) = consume options, isKnownUniquelyReferenced(&o), o.isPlainEmpty {
                options = .map(o)
            } else {
                options = try self.options.eval(fp, m)
            }
            step.refill(.string(nameBox), .str(path), consume options, .string(run.idBox))
            return step
        }
        let options = try self.options.eval(fp, m)
        let step = MapBox(shape: m.keys.step, .string(nameBox), .str(path), consume options, .string(run.idBox))
        lastStep = step
        return step
    }

    /// The engine's function, the step map, the body and the node's scope. The run is
    /// borrowed from the context, which holds it.
    func prepare(_ fp: Frame, _ m: Interpreter, _ context: RunContext) throws -> (Value, Value, Value, String) {
        guard let run = context.run.map(Unmanaged.passUnretained) else { throw outsideAFlow(m) }
        return try run._withUnsafeGuaranteedRef { run in
            try m.checkSwap(run)
            guard let runner = m.runNode else {
                throw m.error(ErrorKind.value, "node '\(name)': the engine (std/engine) is not loaded", at: range)
            }
            // Not `(context.scope ?? run.rootScope)`: `??` gives a retained scope.
            // The scope is borrowed from the context (bound, it was retained and released).
            let path: String
            if let scope = context.scope.map(Unmanaged.passUnretained) {
                path = scope._withUnsafeGuaranteedRef { $0.next(node: nameBox) }
            } else {
                path = run.rootScope.next(node: nameBox)
            }
            // The options move into the step map.
            let node = try stepMap(path, run, fp, m)
            // The runner moves into the result (a copy was a retain and a release).
            return (consume runner, .map(node), try body.eval(fp, m), path)
        }
    }

    private func outsideAFlow(_ m: Interpreter) -> FlowError {
        m.error(ErrorKind.value, "node '\(name)' runs only inside a flow (nodes are steps of a run)", at: range)
    }

    // The engine runs the node in the node's own path scope: what happens inside it
    // (nested nodes, timers, effects) is keyed under the node's path, so a replay that
    // skips a recorded node skips exactly its part of the log.
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        guard let context = Run.context else { throw outsideAFlow(m) }
        let depth = m.callDepth
        let (runner, step, body, path) = try prepare(fp, m, context)
        var saved: AnyObject? = nil
        context.enterNode(path: path, depth: depth, saving: &saved)
        defer { context.leaveNode(restoring: &saved) }
        return try m.invoke(runner, [step, body], named: nil, range: range)
    }

    // State 1: the engine runs the node, in the node's scope (`a.extra` keeps the
    // scope to go back to, `a.value` the step map).
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        if a.state != 0 {
            a.state = 2
            f.context?.leaveNode(restoring: &a.extra)
            return f.done(input)
        }
        // The fiber holds its context: lent, not retained.
        guard let context = f.context.map(Unmanaged.passUnretained) else { throw outsideAFlow(f.m) }
        return try context._withUnsafeGuaranteedRef { context in
            let (runner, step, body, path) = try prepare(a.fp, f.m, context)
            context.enterNode(path: path, depth: f.depth, saving: &a.extra)
            a.value = step
            a.state = 1
            return f.call(runner, step, body)
        }
    }

    override func unwind(_ f: Fiber, _ a: inout Fiber.Activation, _ error: Error) throws -> Step? {
        guard a.state == 1 else { return nil }
        a.state = 2
        if error is CancellationError {
            // Cancellation is not a Flow error (the engine cannot catch it), so the
            // interpreter reports the node's end.
            let m = f.m
            if let run = f.context?.run, case .map(let node) = a.value, let path = node.get(box: m.keys.path) {
                _ = try? m.emit(run, "node:cancelled", [("node", .str(name)), ("path", path)])
            }
        }
        f.context?.leaveNode(restoring: &a.extra)
        return nil
    }

    override var callRange: SourceRange? { range }
}

/// `parallel { a: …, b: … }` (all branches; a record of their results) and
/// `race { a: …, b: … }` (the first to succeed; the others are cancelled).
///
/// Branches are fibers the run's event loop runs (`Branches`), so they interleave only
/// where they suspend. An error in a `parallel` branch cancels its siblings and surfaces
/// with the branch's path (`e.path`); a cancelled branch emits `branch:cancelled`.
final class ParallelNode: Node {
    let names: [String]
    let bodies: [Node]
    let isRace: Bool
    let range: SourceRange
    init(names: [String], bodies: [Node], isRace: Bool, range: SourceRange) {
        self.names = names; self.bodies = bodies; self.isRace = isRace; self.range = range
        super.init()
        yields = true
    }

    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let b = try branches(fp, m, Run.context)
        return try finish(b, try m.loop.run { try await Fiber.park(b, on: m.loop) }, m)
    }

    // State 1: the branches run (`a.extra`).
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        if a.state == 0 {
            let b = try branches(a.fp, f.m, f.context)
            a.extra = b
            a.state = 1
            return f.park(b)
        }
        return f.done(try finish(unsafeDowncast(a.extra!, to: Branches.self), input, f.m))
    }

    private func branches(_ fp: Frame, _ m: Interpreter, _ context: RunContext?) throws -> Branches {
        guard let run = context?.run else {
            throw m.error(ErrorKind.value, "'\(isRace ? "race" : "parallel")' runs only inside a flow", at: range)
        }
        let closures = try bodies.map { try $0.eval(fp, m) }
        let base = (context?.scope ?? run.rootScope).next(isRace ? "race" : "parallel")
        let depth = (context?.scope?.depth ?? m.rootDepth).value
        let names = self.names
        return Branches(m, run: run, path: base, functions: closures, items: nil, limit: closures.count,
                        race: isRace, range: range) { i in PathScope(prefix: "\(base)/\(names[i])", depth: CallDepth(depth)) }
    }

    private func finish(_ b: Branches, _ v: Value, _ m: Interpreter) throws -> Value {
        if isRace {
            try m.emit(b.run, "race:won", [("path", .str(b.path)), ("branch", .str(names[b.winner ?? 0]))])
            return v
        }
        guard case .list(let values) = v else { return v }
        return .map(MapBox(zip(names, values.items).map { ($0, $1) }))
    }
}

/// `parallel for x in xs limit n { … }`: a list of results in input order, at most n
/// branches at once (all when there is no limit).
final class ParallelForNode: Node {
    let iterable: Node
    let limit: Node?
    let body: Node
    let range: SourceRange
    init(iterable: Node, limit: Node?, body: Node, range: SourceRange) {
        self.iterable = iterable; self.limit = limit; self.body = body; self.range = range
        super.init()
        yields = true
    }

    private func branches(_ fp: Frame, _ m: Interpreter, _ context: RunContext?) throws -> Branches {
        let items: [Value]
        switch try iterable.eval(fp, m) {
        case .list(let l): items = l.items
        case .map(let map): items = map.keys
        case let other:
            throw m.error(ErrorKind.type, "parallel for needs a list or map to go over, found \(other.typeName)", at: range)
        }
        var n = items.count
        if let limit {
            guard case .int(let l) = try limit.eval(fp, m), l >= 1 else {
                throw m.error(ErrorKind.value, "the limit of parallel for must be an int of at least 1", at: range)
            }
            n = l
        }
        let f = try body.eval(fp, m)
        guard let run = context?.run else {
            throw m.error(ErrorKind.value, "'parallel for' runs only inside a flow", at: range)
        }
        let base = (context?.scope ?? run.rootScope).next("parallel")
        let depth = (context?.scope?.depth ?? m.rootDepth).value
        return Branches(m, run: run, path: base, functions: [f], items: items, limit: n, race: false,
                        range: range) { i in PathScope(base: base, index: i, depth: CallDepth(depth)) }
    }

    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let b = try branches(fp, m, Run.context)
        return try m.loop.run { try await Fiber.park(b, on: m.loop) }
    }

    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        if a.state == 0 {
            a.state = 1
            return f.park(try branches(a.fp, f.m, f.context))
        }
        return f.done(input)
    }
}

extension Interpreter {
    /// A spawned task's code: its own path scope, `branch:cancelled` when cancelled,
    /// errors marked with its path (`branchError`, as for the branches of `parallel`).
    func branch(_ f: Value, _ args: [Value], path scope: PathScope, run: Run, range: SourceRange) async throws -> Value {
        run.branches += 1
        defer { run.branches -= 1 }
        do {
            return try await Run.within(run, scope: scope) {
                try await invokeAsync(f, args, named: nil, range: range)
            }
        } catch {
            throw branchError(error, path: scope.prefix, run: run)
        }
    }

    /// A branch's error as the code that waits for it sees it: a Flow error knows the
    /// branch's path; a cancellation is an event of the run (`branch:cancelled`).
    func branchError(_ e: Error, path: @autoclosure () -> String, run: Run) -> Error {
        if let fe = e as? FlowError {
            if fe.value.path == nil { fe.value.path = path() }
        } else if e is CancellationError {
            _ = try? emit(run, "branch:cancelled", [("path", .str(path()))])
        }
        return e
    }
}

/// A task started by `spawn`: `await t` gives its result (or throws its error).
final class TaskValue: FlowObject, @unchecked Sendable {
    let task: Task<Value, Error>
    let path: String
    init(task: Task<Value, Error>, path: String) { self.task = task; self.path = path }
    override var typeName: String { "task" }
    override var description: String { "<task \(path)>" }
    override func member(_ name: String) -> Value? {
        name == "path" ? .str(path) : nil
    }
}

/// `spawn { … }`: starts the block as a task of the current run and returns at once.
final class SpawnNode: Node {
    let body: Node
    let range: SourceRange
    init(body: Node, range: SourceRange) { self.body = body; self.range = range }

    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        guard let run = Run.current else {
            throw m.error(ErrorKind.value, "'spawn' runs only inside a flow", at: range)
        }
        let f = try body.eval(fp, m)
        let path = (Run.scope ?? run.rootScope).next("spawn")
        let range = self.range
        let scope = PathScope(prefix: path, depth: CallDepth(m.callDepth.value))
        let task = Task(executorPreference: m.loop) { () async throws -> Value in
            try await m.branch(f, [], path: scope, run: run, range: range)
        }
        run.tasks.append(task)
        return .object(TaskValue(task: task, path: path))
    }
}

/// `await t`: the result of a spawned task.
final class AwaitNode: Node {
    let operand: Node
    let range: SourceRange
    init(_ operand: Node, _ range: SourceRange) {
        self.operand = operand; self.range = range
        super.init()
        yields = true
    }

    /// A spawned task's result, or a durable wait's (`await approve(…)`, `await signal(…)`).
    func wait(_ v: Value, _ m: Interpreter) async throws -> Value {
        if case .object(let o) = v {
            if let t = o as? TaskValue { return try await t.task.value }
            if let w = o as? PendingWait {
                return try await m.durableWait(kind: w.kind, name: w.name, prompt: w.prompt, timeout: w.timeout, at: range)
            }
        }
        throw m.error(ErrorKind.type, "await needs a task (made by spawn), an approve(…) or a signal(…), found \(v.typeName)", at: range)
    }

    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let v = try operand.eval(fp, m)
        return try m.loop.run { [self] in try await wait(v, m) }
    }

    override func evalAsync(_ fp: Frame, _ m: Interpreter) async throws -> Value {
        try await wait(try await run(operand, fp, m), m)
    }
}

extension Interpreter {
    /// Runs `f` with a time limit on the interpreter's clock: its result, or a `timeout`
    /// error once `nanoseconds` have passed (the function is cancelled at its next
    /// suspension point; code that never suspends cannot be interrupted).
    public func withTimeout(_ nanoseconds: Int, _ f: Value, at range: SourceRange?) async throws -> Value {
        let r = range ?? SourceRange(file: SourceFile(path: "<timeout>", text: ""), start: 0, end: 0)
        return try await withThrowingTaskGroup(of: Value?.self) { group in
            group.addTask { [self] in try await Run.inOwnContext { try await invokeAsync(f, [], named: nil, range: r) } }
            group.addTask { [self] in
                try await sleep(nanoseconds: nanoseconds)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next() else { return .nilValue }
            if let value = first { return value }
            throw FlowError(kind: "timeout", message: "timed out after \(Printer.formatDuration(nanoseconds))", at: range)
        }
    }
}
