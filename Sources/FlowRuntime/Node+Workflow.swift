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
    /// `nameBox` is the name interned: paths count nodes by it (`PathScope.next(node:)`).
    init(name: String, nameBox: StringBox, options: Node, body: Node, range: SourceRange) {
        precondition(nameBox.isInterned && nameBox.value == name)
        self.name = name; self.nameBox = nameBox; self.options = options; self.body = body; self.range = range
    }

    func prepare(_ fp: Frame, _ m: Interpreter, _ context: RunContext?, depth: CallDepth) throws -> (Value, [Value], PathScope, RunContext) {
        guard let context, let run = context.run else {
            throw m.error(ErrorKind.value, "node '\(name)' runs only inside a flow (nodes are steps of a run)", at: range)
        }
        try m.checkSwap(run)
        let path = (context.scope ?? run.rootScope).next(node: nameBox)
        let k = m.keys
        let node = MapBox(distinct: [
            MapBox.Entry(key: .string(k.name), value: .string(nameBox)),
            MapBox.Entry(key: .string(k.path), value: .str(path)),
            MapBox.Entry(key: .string(k.options), value: try options.eval(fp, m)),
            MapBox.Entry(key: .string(k.run), value: .string(run.idBox)),
        ])
        guard let runner = m.runNode else {
            throw m.error(ErrorKind.value, "node '\(name)': the engine (std/engine) is not loaded", at: range)
        }
        return (runner, [.map(node), try body.eval(fp, m)], PathScope(prefix: path, depth: depth), context)
    }

    // The engine runs the node in the node's own path scope: what happens inside it
    // (nested nodes, timers, effects) is keyed under the node's path, so a replay that
    // skips a recorded node skips exactly its part of the log.
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let (runner, args, scope, context) = try prepare(fp, m, Run.context, depth: m.callDepth)
        let outer = context.scope
        context.scope = scope
        defer { context.scope = outer }
        return try m.invoke(runner, args, named: nil, range: range)
    }

    // State 1: the engine runs the node, in the node's scope (`a.extra` keeps the
    // scope to go back to, `a.value` the step map).
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        if a.state != 0 {
            a.state = 2
            f.context?.scope = a.extra.map { unsafeDowncast($0, to: PathScope.self) }
            return .done(input)
        }
        let (runner, args, scope, context) = try prepare(a.fp, f.m, f.context, depth: f.depth)
        a.extra = context.scope
        a.value = args[0]
        context.scope = scope
        a.state = 1
        return f.call(runner, args, nil)
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
        f.context?.scope = a.extra.map { unsafeDowncast($0, to: PathScope.self) }
        return nil
    }

    override var callRange: SourceRange? { range }
}

/// `parallel { a: …, b: … }` (all branches; a record of their results) and
/// `race { a: …, b: … }` (the first to succeed; the others are cancelled).
///
/// Branches run as child tasks on the run's event loop, so they interleave only where
/// they suspend. An error in a `parallel` branch cancels its siblings and surfaces with
/// the branch's path (`e.path`); a cancelled branch emits `branch:cancelled`.
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
        let closures = try bodies.map { try $0.eval(fp, m) }
        return try m.loop.run { [self] in try await self.branches(closures, m) }
    }

    override func evalAsync(_ fp: Frame, _ m: Interpreter) async throws -> Value {
        let closures = try bodies.map { try $0.eval(fp, m) }
        return try await branches(closures, m)
    }

    func branches(_ closures: [Value], _ m: Interpreter) async throws -> Value {
        guard let run = Run.current else {
            throw m.error(ErrorKind.value, "'\(isRace ? "race" : "parallel")' runs only inside a flow", at: range)
        }
        let scope = Run.scope ?? run.rootScope
        let base = scope.next(isRace ? "race" : "parallel")
        let depth = m.callDepth.value
        let work = closures.enumerated().map { (i, c) in (i, c, PathScope(prefix: "\(base)/\(names[i])", depth: CallDepth(depth))) }
        if isRace {
            let (i, v) = try await m.race(work, run: run, range: range)
            try m.emit(run, "race:won", [("path", .str(base)), ("branch", .str(names[i]))])
            return v
        }
        let values = try await m.all(work, limit: work.count, run: run, range: range)
        return .map(MapBox(zip(names, values).map { ($0, $1) }))
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

    func prepare(_ fp: Frame, _ m: Interpreter) throws -> ([Value], Int, Value) {
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
        return (items, max(1, n), try body.eval(fp, m))
    }

    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let (items, n, f) = try prepare(fp, m)
        return try m.loop.run { [self] in try await self.run(items, n, f, m) }
    }

    override func evalAsync(_ fp: Frame, _ m: Interpreter) async throws -> Value {
        let (items, n, f) = try prepare(fp, m)
        return try await run(items, n, f, m)
    }

    func run(_ items: [Value], _ limit: Int, _ f: Value, _ m: Interpreter) async throws -> Value {
        guard let run = Run.current else {
            throw m.error(ErrorKind.value, "'parallel for' runs only inside a flow", at: range)
        }
        let base = (Run.scope ?? run.rootScope).next("parallel")
        let depth = m.callDepth.value
        let work = items.indices.map { i in (i, f, PathScope(base: base, index: i, depth: CallDepth(depth))) }
        return .list(try await m.all(work, arguments: items, limit: limit, run: run, range: range))
    }
}

extension Interpreter {
    /// Runs branches with at most `limit` at once; results in branch order. The first
    /// error cancels the rest and is thrown, marked with its branch's path.
    func all(_ work: [(Int, Value, PathScope)], arguments: [Value]? = nil, limit: Int, run: Run, range: SourceRange) async throws -> [Value] {
        // Results are written through a buffer: a captured array would be checked for
        // exclusive access on every write.
        let results = UnsafeMutableBufferPointer<Value>.allocate(capacity: max(1, work.count))
        results.initialize(repeating: .nilValue)
        defer { results.deinitialize(); results.deallocate() }
        try await withThrowingTaskGroup(of: (Int, Value).self) { group in
            var next = 0
            func start() {
                let (i, f, path) = work[next]
                let args = arguments.map { [$0[i]] } ?? []
                next += 1
                group.addTask { [self] in (i, try await branch(f, args, path: path, run: run, range: range)) }
            }
            while next < min(limit, work.count) { start() }
            do {
                while let (i, v) = try await group.next() {
                    results[i] = v
                    if next < work.count { start() }
                }
            } catch {
                group.cancelAll()
                throw error
            }
        }
        return Array(results.prefix(work.count))
    }

    /// Runs branches until one succeeds; cancels the rest. When all fail, throws the
    /// first branch's error.
    func race(_ work: [(Int, Value, PathScope)], run: Run, range: SourceRange) async throws -> (Int, Value) {
        try await withThrowingTaskGroup(of: (Int, Result<Value, Error>).self) { group in
            for (i, f, path) in work {
                group.addTask { [self] in
                    do { return (i, .success(try await branch(f, [], path: path, run: run, range: range))) } catch { return (i, .failure(error)) }
                }
            }
            var failures: [(Int, Error)] = []
            while let (i, r) = try await group.next() {
                switch r {
                case .success(let v):
                    group.cancelAll()
                    return (i, v)
                case .failure(let e):
                    failures.append((i, e))
                }
            }
            throw failures.min { $0.0 < $1.0 }?.1 ?? FlowError(kind: ErrorKind.value, message: "race has no branches", at: range)
        }
    }

    /// One branch: its own path scope, `branch:cancelled` when cancelled, errors marked
    /// with the branch's path.
    func branch(_ f: Value, _ args: [Value], path scope: PathScope, run: Run, range: SourceRange) async throws -> Value {
        run.branches += 1
        defer { run.branches -= 1 }
        do {
            return try await Run.within(run, scope: scope) {
                try await invokeAsync(f, args, named: nil, range: range)
            }
        } catch let e as FlowError {
            if e.value.path == nil { e.value.path = scope.prefix }
            throw e
        } catch is CancellationError {
            _ = try? emit(run, "branch:cancelled", [("path", .str(scope.prefix))])
            throw CancellationError()
        }
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
