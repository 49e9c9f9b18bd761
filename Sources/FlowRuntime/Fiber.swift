import FlowSyntax

/// What a node's `step` asks its fiber to do next. What goes with it is in the fiber's
/// registers (`Fiber.done`, `call`, `wait`, `park`), so a step is a word with no
/// reference to copy or release.
enum Step {
    /// The node has finished with the value in `Fiber.done`: it goes to the node below.
    case done
    /// Evaluate this child (one that may suspend) in the same frame, then step again with
    /// its value (`Step.child`).
    case enter(Unmanaged<Node>)
    /// Evaluate this child in the node's place: its value is the node's, and the node has
    /// nothing left to do (an `if`'s branch, a block's last statement). The activation is
    /// reused, so the node is not stepped again just to pass the value on (`Step.become`).
    case replace(Unmanaged<Node>)
    /// Call the function the node put in the fiber (`Fiber.call`), then step again with
    /// the result.
    case call
    /// Wait for the Swift async work in `Fiber.wait` (a task, a channel, a run's ending),
    /// then step again with its result.
    case wait
    /// Wait for the runtime's waiter in `Fiber.park` (a timer, branches), then step again
    /// with its result: a branch's fiber parks, with no Swift task.
    case park

    /// Evaluate `n`, then step again with its value.
    static func child(_ n: Node) -> Step { .enter(.passUnretained(n)) }

    /// Evaluate `n` in place of the node stepping: its value is the node's. Only for a
    /// node that keeps nothing in its activation and does nothing when an error passes.
    static func become(_ n: Node) -> Step { .replace(.passUnretained(n)) }
}

/// The async path of Flow code: an explicit stack of activations, one per node at work,
/// run by one loop.
///
/// A node that may suspend does not get a Swift `async` function of its own: it has a
/// `step` that does what it can synchronously and then asks for a child, a call or a
/// wait. Only the waits are Swift `await`s. So a call of a Flow function that may
/// suspend costs an activation pushed on an array instead of a Swift async frame, a
/// task allocation and an executor hop per syntax level; and a suspended run holds its
/// activations (a few dozen bytes each) and the frames of its calls, instead of a
/// chain of Swift async frames, about 230 bytes a level (docs/interpreter.md).
///
/// A fiber is run one of two ways. Swift async code that calls Flow code runs a fiber
/// in its own task (`run`), awaiting its waits. The branches of `parallel`, `parallel
/// for` and `race` are fibers with no task (`begin`, `Branches`): the event loop gives
/// each its turns, and between them it is parked on a waiter (a timer, its own
/// branches) or, for other Swift async work, on a task made for that wait alone.
final class Fiber: WaitTarget, LoopWork, @unchecked Sendable {
    struct Activation {
        /// Unretained: the node belongs to the body of a function that a closure below
        /// (or the fiber's caller) keeps alive.
        var node: Unmanaged<Node>
        let fp: Frame
        /// What a node keeps between its steps (a `try`'s result, a node's step map…).
        var value = Value.nilValue
        /// Where the node is in its work: 0 when it starts; each node numbers its own.
        /// (32 bits, after `value`'s tag: an activation takes 48 bytes.)
        var state: Int32 = 0
        var extra: AnyObject? = nil
        /// On the body of a call: the callee, whose frame this activation owns.
        var callee: Closure? = nil

        init(node: Unmanaged<Node>, fp: Frame) { self.node = node; self.fp = fp }

        /// What the node keeps in `extra` (it must be there, of class `T`), lent to the
        /// step without a retain: the activation holds it.
        @inline(__always) func lent<T: AnyObject>(_ type: T.Type) -> Unmanaged<T> {
            Unmanaged.fromOpaque(unsafeBitCast(extra.unsafelyUnwrapped, to: UnsafeRawPointer.self))
        }
    }

    /// Strong, so that a step reads it without a retain.
    let m: Interpreter
    /// The task's run and path scope: the same box while the fiber lives (a task binds a
    /// new one only around Swift code the fiber waits for).
    let context: RunContext?
    /// The call depth of the task (calls on the async path count there).
    let depth: CallDepth
    /// The call site of the fiber's first call, for tracebacks.
    let range: SourceRange?
    /// The activations, innermost last: `count` of `capacity` slots.
    private var stack: UnsafeMutablePointer<Activation>
    private var count = 0
    private var capacity = 4
    /// A freed call frame kept for the next call (`frame`, `release`), and its size.
    private var spare: Frame? = nil
    private var spareSize = 0
    /// The call a step asked for (`call`).
    private var callee = Value.nilValue
    private var arguments: [Value] = []
    private var named: [(String, Value)]? = nil
    /// The arguments of a call of one or two (a node's engine call, most calls), held
    /// here instead of in an array: how many, or -1 when `arguments` has them.
    private var arg0 = Value.nilValue
    private var arg1 = Value.nilValue
    private var registered = -1
    /// The call is a flow's body, run as its run's code (`RunNode`), not a new run.
    private var asRun = false
    /// What goes with a step: the value of `done`, the work of `wait`, the waiter of `park`.
    private var result = Value.nilValue
    private var work: (() async throws -> Value)? = nil
    private var waiter: Waiter? = nil
    /// A branch's fiber: its branches and index there, what it is parked on, how its
    /// next turn starts, and whether it has been cancelled.
    private var branches: Branches?
    private var index = 0
    private var parked: Waiter?
    private var parkedTask: Task<Void, Never>?
    private var outcome: Result<Value, Error>?
    private var starting = false
    private var cancelled = false

    /// A fiber whose stack is made at its first push (a branch's: `grow`).
    init(_ m: Interpreter, range: SourceRange?, context: RunContext?, depth: CallDepth) {
        self.m = m
        self.context = context
        self.depth = depth
        self.range = range
        stack = Fiber.noStack
        capacity = 0
    }

    /// The stack of a fiber that has none yet: never written to, never freed.
    nonisolated(unsafe) private static let noStack = UnsafeMutablePointer<Activation>.allocate(capacity: 1)

    /// A fiber for Swift async code of the current task.
    convenience init(_ m: Interpreter, range: SourceRange?) {
        let context = Run.context
        self.init(m, range: range, context: context, depth: context?.depth ?? m.rootDepth)
        stack = Heap.allocate(capacity: 4)
        capacity = 4
    }

    deinit {
        stack.deinitialize(count: count)
        if capacity > 0 { Heap.free(stack) }
        if let spare { Heap.free(spare) }
    }

    /// A step's request to call `f` (`return f.call(…)`).
    @inline(__always)
    func call(_ f: Value, _ args: [Value], _ named: [(String, Value)]? = nil) -> Step {
        callee = f
        arguments = args
        self.named = named
        return .call
    }

    /// A step's value: the node is done.
    @inline(__always)
    func done(_ v: consuming Value) -> Step {
        result = v
        return .done
    }

    /// A step's request to wait for Swift async work.
    func wait(_ w: @escaping () async throws -> Value) -> Step {
        work = w
        return .wait
    }

    /// A step's request to wait for a waiter of the runtime.
    func park(_ w: Waiter) -> Step {
        waiter = w
        return .park
    }

    /// A step's request to call `f` with one argument.
    @inline(__always)
    func call(_ f: Value, _ a0: consuming Value) -> Step {
        callee = f
        arg0 = a0
        registered = 1
        return .call
    }

    /// A step's request to call `f` with two arguments.
    @inline(__always)
    func call(_ f: Value, _ a0: consuming Value, _ a1: consuming Value) -> Step {
        callee = f
        arg0 = a0
        arg1 = a1
        registered = 2
        return .call
    }

    /// The registered arguments, moved into `arguments` (for the calls that need an array).
    @inline(never)
    private func spill() {
        switch registered {
        case 0: arguments = []
        case 1: arguments = [arg0]
        default: arguments = [arg0, arg1]
        }
        arg0 = .nilValue
        arg1 = .nilValue
        registered = -1
    }

    /// The call a step asked for, taken out of the fiber's registers.
    @inline(__always)
    private func takeCall() -> (Value, [Value], [(String, Value)]?) {
        if registered >= 0 { spill() }
        defer {
            callee = .nilValue
            arguments = []
            named = nil
        }
        return (callee, arguments, named)
    }

    /// A run's request to run its flow's body (`RunNode`).
    func callBody(_ c: Closure, _ args: [Value], _ named: [(String, Value)]?) -> Step {
        asRun = true
        return call(.closure(c), args, named)
    }

    @inline(__always)
    private func push(_ a: consuming Activation) {
        if count == capacity { grow() }
        (stack + count).initialize(to: a)
        count += 1
    }

    /// Grown by half: a suspended run keeps its fiber's stack. A branch's first stack is
    /// as large as its siblings' grew (`Branches.stackSize`), so the branches after the
    /// first do not grow one step at a time.
    @inline(never)
    private func grow() {
        let larger = capacity == 0 ? max(4, branches?.stackSize ?? 4) : capacity + capacity / 2
        let bigger = Heap.allocate(Activation.self, capacity: larger)
        if capacity > 0 {
            bigger.moveInitialize(from: stack, count: count)
            Heap.free(stack)
        }
        stack = bigger
        capacity = larger
        if let b = branches, larger > b.stackSize { b.stackSize = larger }
    }

    /// Runs a closure's body on a new fiber (`callClosureAsync`; a flow's body when it
    /// runs as its run's code).
    @inline(never)
    static func body(_ m: Interpreter, _ c: Closure, _ args: [Value], named: [(String, Value)]?, at range: SourceRange?) async throws -> Value {
        let f = Fiber(m, range: range)
        let first: Step?
        do {
            if let v = try f.enter(.closure(c), args, named) { return v }
            first = nil
        } catch {
            first = try f.unwind(error)
        }
        return try await f.run(first)
    }

    /// Evaluates a node of the current frame on a new fiber (the body of a `for await`,
    /// the operand of an `await`…).
    static func evaluate(_ n: Node, _ fp: Frame, _ m: Interpreter) async throws -> Value {
        let f = Fiber(m, range: nil)
        f.push(Activation(node: .passUnretained(n), fp: fp))
        return try await f.run(nil)
    }

    /// Why a fiber's steps stopped: its stack emptied with a value, or it must wait.
    private enum Halt {
        case value(Value)
        /// Swift async work, awaited in a task.
        case work(() async throws -> Value)
        /// A waiter of the runtime.
        case park(Waiter)
    }

    /// Runs in the current task until the stack is empty, awaiting each wait: `first` is
    /// the work to start with (or nil to step the activation on top).
    func run(_ first: Step?) async throws -> Value {
        var next: Step
        if let first { next = first } else { next = try stepTop(.nilValue) }
        while true {
            let input: Value
            do {
                switch try advanceInTurn(next) {
                case .value(let v): return v
                case .work(let work):
                    dropSpare()
                    input = try await work()
                case .park(let w):
                    dropSpare()
                    input = try await Fiber.park(w, on: m.loop)
                }
            } catch {
                next = try unwind(error)
                continue
            }
            if count == 0 { return input }
            next = try stepTop(input)
        }
    }

    /// `advance` with this fiber's context as the loop's turn context (for the code of a
    /// task, between its waits: `Interpreter.executingRun`).
    private func advanceInTurn(_ first: Step) throws -> Halt {
        try inTurn { try advance(first) }
    }

    /// Runs `body` with this fiber's context as the loop's turn context, then puts back
    /// the one it found (turns nest when synchronous code waits on the loop).
    @inline(__always)
    private func inTurn<T>(_ body: () throws -> T) rethrows -> T {
        let loop = m.loop
        let outer = loop.turnContext
        loop.turnContext = context.map { .passUnretained($0) }
        defer { loop.turnContext = outer }
        return try body()
    }

    /// Steps until the stack empties or a wait comes. An error no activation handles
    /// leaves the fiber; one raised by a wait is the caller's to unwind.
    private func advance(_ first: Step) throws -> Halt {
        var next = first
        while true {
            let input: Value
            switch next {
            case .done:
                var v = Value.nilValue
                swap(&v, &result)
                input = finishTop(v)
            case .enter(let n):
                push(Activation(node: n, fp: stack[count - 1].fp))
                input = .nilValue
            case .replace(let n):
                // The frame and the callee whose frame it is stay with the activation.
                let top = stack + (count - 1)
                assert(top.pointee.extra == nil, "a node that keeps something is not replaced")
                top.pointee.node = n
                top.pointee.state = 0
                input = .nilValue
            case .call:
                do {
                    switch try startCall() {
                    case .value(let v): input = v
                    case let halt: return halt
                    }
                } catch {
                    next = try unwind(error)
                    continue
                }
            case .wait:
                let w = work!
                work = nil
                return .work(w)
            case .park:
                let w = waiter!
                waiter = nil
                return .park(w)
            }
            if count == 0 { return .value(input) }
            next = try stepTop(input)
        }
    }

    /// The call a step asked for: a value when it ended at once (nil when its body's
    /// activation is on top), or the wait it needs.
    private func startCall() throws -> Halt {
        if asRun || !waits(callee) {
            asRun = false
            if registered >= 0, named == nil, case .closure(let c) = callee, c.proto.isAsync, c.proto.arity == registered {
                try enterRegistered(c)
                return .value(.nilValue)
            }
            let (f, args, named) = takeCall()
            return .value(try enter(f, args, named) ?? .nilValue)
        }
        if case .closure(let c) = callee, context != nil, count > 0 {
            // A flow called by code that has a run: its run goes on this fiber.
            let (_, args, named) = takeCall()
            switch try startFlow(c, args, named) {
            case .value(let v): return .value(v)
            case .pushed: return .value(.nilValue)
            case .wait(let work): return .work(work)
            }
        }
        if case .builtin(let b) = callee, let prepare = b.prepareWait, named == nil {
            let wait: Builtin.Wait
            if registered == 1 {
                // `sleep(d)`: the argument is the call's window, with no array made for it.
                callee = .nilValue
                registered = -1
                var a = Value.nilValue
                swap(&a, &arg0)
                wait = try withUnsafeMutablePointer(to: &a) { try self.m.preparedWait(b, prepare, base: $0, count: 1, at: callSite) }
            } else {
                let (_, args, _) = takeCall()
                wait = try self.m.preparedWait(b, prepare, args, at: callSite)
            }
            switch wait {
            case .work(let work): return .work(work)
            case .timer(let ns): return .park(TimerWait(m.loop, nanoseconds: ns))
            }
        }
        let (f, args, named) = takeCall()
        let site = callSite
        let m = self.m
        return .work {
            if case .closure(let c) = f { return try await m.runFlow(c, args, named: named, at: site) }
            guard case .builtin(let b) = f else { return .nilValue }
            return try await m.callBuiltinAsync(b, args, named: named, at: site)
        }
    }

    /// Awaits a waiter from Swift async code; cancelling the task cancels the waiter.
    static func park(_ w: Waiter, on loop: EventLoop) async throws -> Value {
        let target = ContinuationTarget()
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (c: UnsafeContinuation<Value, Error>) in
                target.continuation = c
                w.start(target)
            }
        } onCancel: {
            loop.post(CancelWait(w))
        }
    }

    /// Starts a branch, on the loop's thread: its first turn, now, calls `f` with `item`
    /// (`parallel for`) or nothing.
    func begin(_ owner: Branches, index i: Int, _ f: Value, _ item: Value?) {
        branches = owner
        index = i
        callee = f
        if let item {
            arg0 = item
            registered = 1
        } else {
            registered = 0
        }
        starting = true
        runOnLoop()
    }

    /// A branch's waiter ended: its next turn goes on with the outcome.
    func resume(_ outcome: Result<Value, Error>) {
        self.outcome = outcome
        m.loop.post(self)
    }

    /// A branch's turn, on the loop's thread: with its context bound, it steps until it
    /// waits again or ends; then what it waits for starts (outside the binding, so a
    /// task made for it does not copy it).
    func runOnLoop() {
        parked = nil
        parkedTask = nil
        guard let halt = inTurn(turn) else { return }
        dropSpare()
        // A cancelled branch's waits are cancelled as they start, as a cancelled task's
        // are: those that check end at once, the others (a run's ending) go on.
        switch halt {
        case .park(let w):
            parked = w
            w.start(self)
            if cancelled { w.cancel() }
        case .work(let work):
            let t = task(for: work)
            parkedTask = t
            if cancelled { t.cancel() }
        case .value:
            break
        }
    }

    /// Steps a branch until it waits (the wait is returned) or ends (nil).
    private func turn() -> Halt? {
        do {
            let next: Step
            if starting {
                starting = false
                next = .call
            } else {
                let o = outcome!
                outcome = nil
                switch o {
                case .success(let v):
                    if count == 0 { ended(.success(v)); return nil }
                    next = try stepTop(v)
                case .failure(let e):
                    next = try unwind(e)
                }
            }
            let halt = try advance(next)
            if case .value(let v) = halt { ended(.success(v)); return nil }
            return halt
        } catch {
            ended(.failure(error))
            return nil
        }
    }

    /// Swift async work a branch waits for, in a task made for it: the fiber's next turn
    /// gets its outcome.
    private func task(for work: @escaping () async throws -> Value) -> Task<Void, Never> {
        let w = UnsafeSendable(work)
        return Task(executorPreference: m.loop) { [self] in
            let outcome: Result<Value, Error>
            do {
                outcome = .success(try await Run.$bound.withValue(context) { try await w.value() })
            } catch {
                outcome = .failure(error)
            }
            resume(outcome)
        }
    }

    private func ended(_ outcome: Result<Value, Error>) {
        let b = branches
        branches = nil
        b?.ended(index, outcome)
    }

    /// Cancels a branch (on the loop's thread): what it is parked on ends now, and it
    /// stops at its next wait.
    func cancel() {
        if cancelled { return }
        cancelled = true
        parked?.cancel()
        parkedTask?.cancel()
    }

    /// How a flow call starts on a fiber (`startFlow`).
    private enum FlowStart {
        /// The store or the log already has the call's value.
        case value(Value)
        /// Its run's activation is on top: step it.
        case pushed
        /// Swift work to wait for: following a `continue_as_new` chain, a replayed child's
        /// turn.
        case wait(() async throws -> Value)
    }

    /// Starts a flow call on this fiber: a run to execute gets a `RunNode` activation on
    /// top, which runs the flow's body here, as more activations, and ends the run.
    private func startFlow(_ c: Closure, _ args: [Value], _ named: [(String, Value)]?) throws -> FlowStart {
        let site = callSite
        let m = self.m
        switch try m.prepareFlowCall(c, args, parent: context?.run, previous: nil, at: site) {
        case .outcome(let v):
            return .value(v)
        case .replay(let seq, let event):
            let parent = context!.run!
            return .wait {
                await m.awaitTurn(parent, seq)
                return try m.childOutcome(event, at: site)
            }
        case .follow(let nextArgs, let successor):
            return .wait { try await m.runFlow(c, nextArgs, named: nil, at: site, successorOf: successor) }
        case .run(let run, let resumed):
            var a = Activation(node: .passUnretained(RunNode.shared), fp: stack[count - 1].fp)
            a.extra = RunNode.Started(run: run, closure: c, arguments: args, named: named, range: site,
                                      resumed: resumed, context: context!)
            push(a)
            return .pushed
        }
    }

    /// Whether calling `f` is a Swift wait: a flow (a run of its own) or a builtin that
    /// suspends.
    @inline(__always)
    private func waits(_ f: Value) -> Bool {
        if case .closure(let c) = f { return c.proto.isFlow }
        if case .builtin(let b) = f { return b.suspendingBody != nil }
        return false
    }

    /// Steps the activation on top; an error it throws unwinds.
    @inline(__always)
    private func stepTop(_ input: Value) throws -> Step {
        let top = stack + (count - 1)
        let next: Step
        do {
            next = try top.pointee.node._withUnsafeGuaranteedRef { try $0.step(self, &top.pointee, input) }
        } catch {
            return try unwind(error)
        }
        return next
    }

    /// Where the activation on top called from: its node's range, or the fiber's.
    private var callSite: SourceRange? {
        count > 0 ? stack[count - 1].node._withUnsafeGuaranteedRef { $0.callRange } ?? range : range
    }

    /// Starts a call that needs no Swift `await`: a synchronous function or builtin runs
    /// at once (its result is returned); a Flow function that may suspend gets its frame
    /// and its body's activation (nil is returned: the body steps next).
    private func enter(_ f: Value, _ args: [Value], _ named: [(String, Value)]?) throws -> Value? {
        guard case .closure(let c) = f else { return try m.invoke(f, args, named: named, range: callSite ?? Fiber.noRange) }
        if !c.proto.isAsync { return try m.callClosure(c, args, named: named, at: callSite) }
        let site = callSite
        let fp = try pushBody(c)
        // A bad argument unwinds through the callee, like an error of its body.
        try m.bind(c, args, named: named, into: fp, at: site)
        return nil
    }

    /// Starts the call of an async closure that takes exactly the registered arguments:
    /// they move into its frame.
    private func enterRegistered(_ c: Closure) throws {
        callee = .nilValue
        let n = registered
        registered = -1
        let fp: Frame
        do { fp = try pushBody(c) } catch {
            arg0 = .nilValue
            arg1 = .nilValue
            throw error
        }
        // Swapped with the frame's cleared slots: moved, with no retain or release.
        swap(&fp[0], &arg0)
        if n == 2 { swap(&fp[1], &arg1) }
        m.completeFrame(c, fp)
    }

    /// Pushes the activation of a call of the async closure `c`, with a frame of its own.
    @inline(__always)
    private func pushBody(_ c: Closure) throws -> Frame {
        let p = c.proto
        // Async calls count their depth per task: a suspended call holds no native stack,
        // and thousands of tasks suspended at once are not a deep recursion.
        guard depth.value + m.depth < m.maxCallDepth else { throw m.recursionError(callSite) }
        // Async frames live on the heap: a suspended call must not pin the value stack.
        let fp = frame(p.frameSize)
        clearFrame(fp, p.frameSize)
        depth.value += 1
        var a = Activation(node: p.bodyRef, fp: fp)
        a.callee = c
        push(a)
        return fp
    }

    static let noRange = SourceRange(file: SourceFile(path: "<fiber>", text: ""), start: 0, end: 0)

    /// Pops the activation on top, which finished with `v`; for the body of a call, the
    /// frame goes and a `return` gives the result.
    @inline(__always)
    private func finishTop(_ v: Value) -> Value {
        count -= 1
        let a = (stack + count).move()
        // Not bound to a name: that retained and released the callee.
        guard a.callee != nil else { return v }
        var r = v
        if m.signal == .returnValue { m.signal = .none; r = m.returnValue; m.returnValue = .nilValue }
        release(a.fp, size: a.callee.unsafelyUnwrapped.proto.frameSize)
        return r
    }

    /// A frame of `size` slots for a call: the spare one if it is large enough.
    @inline(__always)
    private func frame(_ size: Int) -> Frame {
        if let f = spare, spareSize >= size {
            spare = nil
            return f
        }
        return Heap.allocate(Value.self, capacity: size)
    }

    /// Frees the spare frame: a fiber that waits keeps no memory it does not use.
    @inline(__always)
    private func dropSpare() {
        if let spare { Heap.free(spare) }
        spare = nil
    }

    private func release(_ fp: Frame, size: Int) {
        dropFrame(fp, size)
        // The larger of the frames freed since the last wait is kept for the next call
        // (every node calls the engine): no malloc and free per call.
        if let old = spare {
            if size > spareSize { Heap.free(old); spare = fp; spareSize = size } else { Heap.free(fp) }
        } else {
            spare = fp
            spareSize = max(1, size)
        }
        depth.value -= 1
    }

    /// Offers an error to the activations from the top down: the first whose node handles
    /// it (a `try`) says what comes next; the others are popped, each call adding its
    /// callee to the traceback. When none handles it, it leaves the fiber.
    private func unwind(_ error: Error) throws -> Step {
        var e = error
        while count > 0 {
            let top = stack + (count - 1)
            do {
                if let next = try top.pointee.node._withUnsafeGuaranteedRef({ try $0.unwind(self, &top.pointee, e) }) { return next }
            } catch let other {
                e = other
            }
            count -= 1
            let a = (stack + count).move()
            if let c = a.callee {
                release(a.fp, size: c.proto.frameSize)
                if let fe = e as? FlowError { fe.unwind(through: m.describe(c.proto), calledFrom: callSite) }
            }
        }
        throw e
    }
}
