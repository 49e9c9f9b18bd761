import FlowSyntax

/// Something a fiber waits for without a Swift task: a timer, the branches of a
/// `parallel`. Started on the event loop's thread, it ends by calling `resume` on its
/// target once, on that thread; `cancel` (also on that thread) makes it end soon, with
/// `CancellationError` unless it has already ended.
class Waiter: @unchecked Sendable {
    func start(_ target: WaitTarget) { fatalError("\(type(of: self)) cannot start") }
    func cancel() {}
}

/// Who a waiter resumes: a branch's fiber (its next turn is posted to the loop) or the
/// continuation of Swift code that awaits the waiter (`Fiber.park`).
protocol WaitTarget: AnyObject {
    func resume(_ outcome: Result<Value, Error>)
}

/// A timer on the interpreter's clock: `sleep` outside a durable run.
final class TimerWait: Waiter, @unchecked Sendable {
    private let loop: EventLoop
    private let deadline: Int
    private var id = 0
    private var target: WaitTarget?

    init(_ loop: EventLoop, nanoseconds: Int) {
        self.loop = loop
        deadline = loop.clock.now() + max(0, nanoseconds)
    }

    override func start(_ target: WaitTarget) {
        self.target = target
        id = loop.schedule(at: deadline) { [self] in end(.success(.nilValue)) }
    }

    override func cancel() {
        if target != nil, loop.cancelTimer(id) { end(.failure(CancellationError())) }
    }

    private func end(_ outcome: Result<Value, Error>) {
        guard let t = target else { return }
        target = nil
        t.resume(outcome)
    }
}

/// Resumes Swift code that awaits a waiter.
final class ContinuationTarget: WaitTarget {
    var continuation: UnsafeContinuation<Value, Error>?
    func resume(_ outcome: Result<Value, Error>) {
        continuation?.resume(with: outcome)
        continuation = nil
    }
}

/// A waiter's cancellation, sent to the loop's thread from the thread that cancelled.
final class CancelWait: LoopWork {
    let waiter: Waiter
    init(_ waiter: Waiter) { self.waiter = waiter }
    func runOnLoop() { waiter.cancel() }
}

/// The branches of a `parallel`, `parallel for` or `race`: each a fiber that the event
/// loop runs, parked (no Swift task, no frames) while it waits. They start in order, at
/// most `limit` at once; the code that started them waits for all of them to end.
///
/// `parallel` ends with the list of results in branch order, or with the first error
/// (marked with its branch's path), after cancelling the branches still running. `race`
/// ends with the first success (`winner` says whose), after cancelling the others; when
/// all fail, with the error of the first branch. A cancelled branch emits
/// `branch:cancelled`. Cancelling the waiter cancels every branch still running.
final class Branches: Waiter, LoopWork, @unchecked Sendable {
    private let m: Interpreter
    let run: Run
    /// The path of the `parallel` or `race` (its branches' paths start with it).
    let path: String
    /// One function per branch, or one for all (`parallel for`), called with its item.
    private let functions: [Value]
    private let items: [Value]?
    private let count: Int
    private let limit: Int
    private let isRace: Bool
    private let range: SourceRange
    /// The path scope of branch `i`, made when the branch starts.
    private let scope: (Int) -> PathScope
    // Only the loop's thread touches a `Branches`, one access at a time: without
    // `@exclusivity(unchecked)`, writing an element of `results` or `fibers` was checked
    // at run time (a begin and an end access), three times a branch.
    @exclusivity(unchecked) private var results: [Value]
    /// The fibers of the branches running now.
    @exclusivity(unchecked) private var fibers: [Fiber?]
    /// Branches launched (`next`), started on the loop (`started`), not ended (`active`).
    @exclusivity(unchecked) private var next = 0
    @exclusivity(unchecked) private var started = 0
    @exclusivity(unchecked) private var active = 0
    @exclusivity(unchecked) private var failure: Error?
    @exclusivity(unchecked) private var failures: [(Int, Error)] = []
    /// For a race: the branch that won.
    @exclusivity(unchecked) private(set) var winner: Int?
    @exclusivity(unchecked) private var won = Value.nilValue
    @exclusivity(unchecked) private var target: WaitTarget?
    /// The largest stack (in activations) a branch's fiber has needed: the next ones
    /// start with that much.
    @exclusivity(unchecked) var stackSize = 4

    init(_ m: Interpreter, run: Run, path: String, functions: [Value], items: [Value]?, limit: Int, race: Bool,
         range: SourceRange, scope: @escaping (Int) -> PathScope) {
        self.m = m
        self.run = run
        self.path = path
        self.functions = functions
        self.items = items
        count = items?.count ?? functions.count
        self.limit = max(1, limit)
        isRace = race
        self.range = range
        self.scope = scope
        results = race ? [] : Array(repeating: .nilValue, count: count)
        fibers = Array(repeating: nil, count: count)
    }

    override func start(_ target: WaitTarget) {
        self.target = target
        while next < min(limit, count) { launch() }
        if active == 0 { end() }
    }

    override func cancel() {
        guard target != nil else { return }
        if failure == nil && winner == nil { failure = CancellationError() }
        cancelRunning()
        if active == 0 { end() }
    }

    /// Launches the next branch: the loop starts it in its turn (`runOnLoop`).
    private func launch() {
        next += 1
        active += 1
        run.branches += 1
        m.loop.post(self)
    }

    /// Starts the next launched branch: its fiber, scope and context are made now, when
    /// it runs, rather than all at once when the branches are launched (so a thousand
    /// branches do not make a thousand fibers that wait, cold, for their turn).
    func runOnLoop() {
        let i = started
        started += 1
        let s = scope(i)
        let fiber = Fiber(m, range: range, context: RunContext(run: run, scope: s), depth: s.depth)
        fibers[i] = fiber
        // Launched before the others were cancelled, it starts cancelled (as a task added
        // to a cancelled group does): it runs until its first wait.
        if failure != nil || winner != nil { fiber.cancel() }
        fiber.begin(self, index: i, items == nil ? functions[i] : functions[0], items?[i])
    }

    /// Branch `i` ended (on its fiber's last turn).
    func ended(_ i: Int, _ outcome: Result<Value, Error>) {
        fibers[i] = nil
        active -= 1
        run.branches -= 1
        switch outcome {
        case .success(let v):
            if !isRace {
                results[i] = v
            } else if winner == nil && failure == nil {
                winner = i
                won = v
                cancelRunning()
            }
        case .failure(let e):
            let marked = m.branchError(e, path: scope(i).prefix, run: run)
            if isRace {
                failures.append((i, marked))
            } else if failure == nil {
                failure = marked
                cancelRunning()
            }
        }
        if failure == nil && winner == nil && next < count { launch() }
        if active == 0 && (next == count || failure != nil || winner != nil) { end() }
    }

    private func cancelRunning() {
        for f in fibers { f?.cancel() }
    }

    private func end() {
        guard let t = target else { return }
        target = nil
        if isRace, winner != nil {
            t.resume(.success(won))
        } else if let failure {
            t.resume(.failure(failure))
        } else if isRace {
            t.resume(.failure(failures.min { $0.0 < $1.0 }?.1
                ?? FlowError(kind: ErrorKind.value, message: "race has no branches", at: range)))
        } else {
            t.resume(.success(.list(results)))
        }
    }
}
