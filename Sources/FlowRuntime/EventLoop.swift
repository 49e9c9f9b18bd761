#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The serial executor that runs a program's async code, on the interpreter's thread.
///
/// It has no thread of its own: whoever waits for a result (`run(_:)`) drives the loop,
/// running jobs and firing timers until the result is there. Synchronous Flow code that
/// reaches something that suspends (a call to `sleep`, or to a function that may suspend)
/// waits the same way, so pure code never pays for `async` and suspending code still
/// lets other tasks of the program run while it waits. Timers use the configured clock:
/// with a virtual clock, the loop jumps to the next deadline instead of sleeping.
public final class EventLoop: TaskExecutor, @unchecked Sendable {
    // Locked and waited on through pointers: unchecked, or every lock is an exclusivity check.
    @exclusivity(unchecked) private var mutex = pthread_mutex_t()
    @exclusivity(unchecked) private var condition = pthread_cond_t()
    /// Runnable work, first in first out. Swift tasks' jobs and fibers' turns share the
    /// queue, so they run in the order they became runnable.
    @exclusivity(unchecked) private var jobs = RingQueue<Item>()
    /// Pending timers: a binary min-heap on (deadline, id).
    @exclusivity(unchecked) private var timers = TimerHeap()
    /// Ids of the timers that have neither fired nor been cancelled. A cancelled timer
    /// stays in the heap until it reaches the top, and is dropped there.
    @exclusivity(unchecked) private var pending = IDSet()
    @exclusivity(unchecked) private var nextTimerID = 0
    /// Timers that do not keep the loop alive (polls, deadlines the host lets lapse),
    /// and how many of the others are pending.
    @exclusivity(unchecked) private var background: Set<Int> = []
    @exclusivity(unchecked) private var foreground = 0
    let clock: Clock
    /// The context of the fiber whose turn is running (`Fiber.runOnLoop`), unretained
    /// (the fiber holds it); nil while a Swift job runs. Hot readers take it here
    /// (`Interpreter.executingRun`); `Run.context` finds it through the thread
    /// (`currentTurn`), since a branch's turn binds no task-local.
    @exclusivity(unchecked) var turnContext: Unmanaged<RunContext>? {
        didSet { pthread_setspecific(EventLoop.turnKey, turnContext?.toOpaque()) }
    }

    /// The turn context of the loop running on this thread, if a fiber is stepping.
    static var currentTurn: RunContext? {
        pthread_getspecific(turnKey).map { Unmanaged<RunContext>.fromOpaque($0).takeUnretainedValue() }
    }
    private static let turnKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()
    /// Called when no job can run, before timers fire; true when it made a job runnable
    /// (replay hands back recorded completions here, in log order).
    @exclusivity(unchecked) var onIdle: (() -> Bool)?
    /// Called when nothing but background timers is left; true when it made progress
    /// (durable waiters are suspended here).
    @exclusivity(unchecked) var onStall: (() -> Bool)?
    /// While positive, an idle loop waits for work from other threads instead of ending
    /// (the engine's background mode), and durable waits are not suspended.
    @exclusivity(unchecked) var keepAlive = 0

    /// What the loop runs: a Swift job, or work of the runtime's own (a parked fiber's
    /// next turn, a cancellation sent from another thread).
    enum Item {
        case job(UnownedJob)
        case work(LoopWork)
    }

    struct Timer {
        let deadline: Int
        let id: Int
        let background: Bool
        let fire: @Sendable () -> Void
    }

    init(clock: Clock) {
        self.clock = clock
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
    }

    deinit {
        jobs.release()
        pthread_mutex_destroy(&mutex)
        pthread_cond_destroy(&condition)
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        pthread_mutex_lock(&mutex)
        jobs.push(.job(unowned))
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
    }

    /// Runs `work` on the loop's thread, after what is runnable now. Any thread may post.
    func post(_ work: LoopWork) {
        pthread_mutex_lock(&mutex)
        jobs.push(.work(work))
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
    }

    /// Calls `fire` on the loop's thread once the clock reaches `deadline` (nanoseconds).
    /// Returns the timer's id, for `cancelTimer`.
    @discardableResult
    func schedule(at deadline: Int, background isBackground: Bool = false, _ fire: @escaping @Sendable () -> Void) -> Int {
        pthread_mutex_lock(&mutex)
        nextTimerID += 1
        if isBackground { background.insert(nextTimerID) } else { foreground += 1 }
        pending.insert(nextTimerID)
        let timer = Timer(deadline: deadline, id: nextTimerID, background: isBackground, fire: fire)
        // Equal deadlines fire in the order they were set (the id breaks ties).
        timers.push(timer)
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
        return timer.id
    }

    /// Removes a timer that has not fired; false when it already fired or never was.
    @discardableResult
    func cancelTimer(_ id: Int) -> Bool {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        guard pending.remove(id) else { return false }
        if background.isEmpty || background.remove(id) == nil { foreground -= 1 }
        return true
    }

    /// Suspends the current task for `nanoseconds` on the loop's clock. Cancelling the
    /// task ends the wait at once with `CancellationError`.
    func sleep(nanoseconds: Int) async throws {
        let deadline = clock.now() + max(0, nanoseconds)
        let wait = Wakeup()
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (c: UnsafeContinuation<Void, Error>) in
                wait.arm(c)
                let id = schedule(at: deadline) { wait.fire(nil) }
                wait.setTimer(id)
                if Task.isCancelled { wait.fire(CancellationError()) }
            }
        } onCancel: {
            if let id = wait.timer { cancelTimer(id) }
            wait.fire(CancellationError())
        }
    }
}

/// Work the runtime gives its event loop (`EventLoop.post`).
protocol LoopWork: AnyObject {
    func runOnLoop()
}

/// A continuation resumed exactly once, by the timer or by cancellation, whichever
/// comes first (they may race on different threads, and either may come before the
/// continuation is armed).
final class Wakeup: @unchecked Sendable {
    @exclusivity(unchecked) private var mutex = pthread_mutex_t()
    @exclusivity(unchecked) private var continuation: UnsafeContinuation<Void, Error>?
    @exclusivity(unchecked) private var outcome: Result<Void, Error>?
    @exclusivity(unchecked) private var resumed = false
    @exclusivity(unchecked) private(set) var timer: Int?

    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }

    func arm(_ c: UnsafeContinuation<Void, Error>) {
        pthread_mutex_lock(&mutex)
        if let o = outcome {
            resumed = true
            pthread_mutex_unlock(&mutex)
            c.resume(with: o)
            return
        }
        continuation = c
        pthread_mutex_unlock(&mutex)
    }

    func setTimer(_ id: Int) {
        pthread_mutex_lock(&mutex)
        timer = id
        pthread_mutex_unlock(&mutex)
    }

    func fire(_ error: Error?) {
        pthread_mutex_lock(&mutex)
        if resumed || outcome != nil { pthread_mutex_unlock(&mutex); return }
        let result: Result<Void, Error> = error.map { .failure($0) } ?? .success(())
        if let c = continuation {
            continuation = nil
            resumed = true
            pthread_mutex_unlock(&mutex)
            c.resume(with: result)
            return
        }
        outcome = result
        pthread_mutex_unlock(&mutex)
    }
}

extension EventLoop {

    final class ResultBox<T>: @unchecked Sendable { var result: Result<T, Error>? }

    /// Runs `operation` as a task on this loop and drives the loop until it finishes.
    /// Must be called on the interpreter's thread; may be nested.
    func run<T>(_ operation: @escaping () async throws -> T) throws -> T {
        let box = ResultBox<T>()
        let op = UnsafeSendable(operation)
        // The context of the code waiting: a fiber's turn, which the task would not
        // inherit, or the task's own.
        let context = UnsafeSendable(Run.context)
        Task(executorPreference: self) {
            do {
                box.result = .success(try await Run.inOwnContext(copying: context.value) { try await op.value() })
            } catch { box.result = .failure(error) }
        }
        while box.result == nil {
            if !runOne() {
                throw FlowError(kind: "deadlock", message: "the program is waiting for something that can never happen (no task can run and no timer is set)", at: nil)
            }
        }
        return try box.result!.get()
    }

    /// Runs one job or fires due timers, waiting when there is nothing to do. Returns false
    /// when nothing can ever happen again.
    private func runOne() -> Bool {
        pthread_mutex_lock(&mutex)
        while true {
            if !jobs.isEmpty {
                let item = jobs.pop()
                pthread_mutex_unlock(&mutex)
                switch item {
                case .job(let job):
                    // A task's code finds its run through its task-local context.
                    let turn = turnContext
                    turnContext = nil
                    job.runSynchronously(on: asUnownedTaskExecutor())
                    turnContext = turn
                case .work(let work): work.runOnLoop()
                }
                return true
            }
            if let first = timers.top, !pending.contains(first.id) {
                _ = timers.pop()
                continue
            }
            if let idle = onIdle {
                pthread_mutex_unlock(&mutex)
                if idle() { return true }
                pthread_mutex_lock(&mutex)
                if !jobs.isEmpty { continue }
            }
            if foreground == 0, keepAlive == 0, let stall = onStall {
                pthread_mutex_unlock(&mutex)
                if stall() { return true }
                pthread_mutex_lock(&mutex)
                if !jobs.isEmpty { continue }
            }
            if let first = timers.top {
                let now = clock.now()
                if first.deadline <= now || clock.isVirtual {
                    if clock.isVirtual && first.deadline > now { clock.advance(to: first.deadline) }
                    _ = timers.pop()
                    pending.remove(first.id)
                    if first.background { background.remove(first.id) } else { foreground -= 1 }
                    pthread_mutex_unlock(&mutex)
                    first.fire()
                    return true
                }
                var ts = timespec()
                let wait = first.deadline - now
                clock_gettime(CLOCK_REALTIME, &ts)
                let total = Int(ts.tv_nsec) + wait
                ts.tv_sec += total / 1_000_000_000
                ts.tv_nsec = total % 1_000_000_000
                pthread_cond_timedwait(&condition, &mutex, &ts)
                continue
            }
            if keepAlive > 0 {
                pthread_cond_wait(&condition, &mutex)
                continue
            }
            pthread_mutex_unlock(&mutex)
            return false
        }
    }
}

/// The time source of a program. The host chooses it: the CLI uses the system clock,
/// tests a virtual one that jumps to the next timer instead of waiting.
public protocol Clock: AnyObject, Sendable {
    /// Monotonic nanoseconds, for timers and durations.
    func now() -> Int
    /// Wall-clock seconds since 1970, for `now()` in scripts.
    func wallTime() -> Double
    var isVirtual: Bool { get }
    func advance(to nanoseconds: Int)
}

/// The machine's clock.
public final class SystemClock: Clock {
    public init() {}
    public func now() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int(ts.tv_sec) * 1_000_000_000 + Int(ts.tv_nsec)
    }
    public func wallTime() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
    public var isVirtual: Bool { false }
    public func advance(to nanoseconds: Int) {}
}

/// A clock that only moves when the event loop has nothing to do but wait for a timer:
/// a ten-minute sleep takes no time, and what happens in parallel happens in a fixed order.
public final class VirtualClock: Clock, @unchecked Sendable {
    private var current: Int
    private let epoch: Double
    /// Starts at `start` nanoseconds; `wallTime()` is `epoch` plus the elapsed time.
    public init(start: Int = 0, epoch: Double = 1_767_225_600) { // 2026-01-01T00:00:00Z
        self.current = start
        self.epoch = epoch
    }
    public func now() -> Int { current }
    public func wallTime() -> Double { epoch + Double(current) / 1e9 }
    public var isVirtual: Bool { true }
    public func advance(to nanoseconds: Int) { current = max(current, nanoseconds) }
}

struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// A binary min-heap of timers ordered by (deadline, id). Sifting moves a hole instead
/// of swapping: each level costs one move.
struct TimerHeap {
    private var items: [EventLoop.Timer] = []

    var top: EventLoop.Timer? { items.first }

    private static func before(_ a: EventLoop.Timer, _ b: EventLoop.Timer) -> Bool {
        a.deadline < b.deadline || (a.deadline == b.deadline && a.id < b.id)
    }

    mutating func push(_ t: EventLoop.Timer) {
        items.append(t)
        items.withUnsafeMutableBufferPointer { h in
            var i = h.count - 1
            let moving = (h.baseAddress! + i).move()
            while i > 0 {
                let parent = (i - 1) / 2
                guard TimerHeap.before(moving, h[parent]) else { break }
                (h.baseAddress! + i).moveInitialize(from: h.baseAddress! + parent, count: 1)
                i = parent
            }
            (h.baseAddress! + i).initialize(to: moving)
        }
    }

    mutating func pop() -> EventLoop.Timer? {
        guard !items.isEmpty else { return nil }
        let last = items.removeLast()
        if items.isEmpty { return last }
        return items.withUnsafeMutableBufferPointer { h in
            let base = h.baseAddress!
            let first = base.move()
            let n = h.count
            var i = 0
            while true {
                let l = 2 * i + 1
                if l >= n { break }
                let r = l + 1
                let c = r < n && TimerHeap.before(h[r], h[l]) ? r : l
                guard TimerHeap.before(h[c], last) else { break }
                (base + i).moveInitialize(from: base + c, count: 1)
                i = c
            }
            (base + i).initialize(to: last)
            return first
        }
    }
}

/// A set of the ids a counter hands out, as bits: ids are inserted in increasing order
/// and most are removed soon, so the words before the first live one are dropped now
/// and then.
struct IDSet {
    private var words: [UInt64] = []
    /// The id of the first bit of `words[0]` (a multiple of 64).
    private var base = 0
    /// Words before this one are all zero.
    private var head = 0

    func contains(_ id: Int) -> Bool {
        let w = (id - base) >> 6
        guard id >= base, w < words.count else { return false }
        return words[w] & (1 << UInt64((id - base) & 63)) != 0
    }

    mutating func insert(_ id: Int) {
        if words.isEmpty { base = id & ~63 }
        let w = (id - base) >> 6
        precondition(w >= head, "ids are inserted in increasing order")
        while words.count <= w { words.append(0) }
        words[w] |= 1 << UInt64((id - base) & 63)
    }

    /// Removes `id`; false when it was not there.
    @discardableResult
    mutating func remove(_ id: Int) -> Bool {
        guard contains(id) else { return false }
        let w = (id - base) >> 6
        words[w] &= ~(1 << UInt64((id - base) & 63))
        if w == head && words[w] == 0 {
            while head < words.count && words[head] == 0 { head += 1 }
            if head == words.count {
                words.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 64 && head * 2 >= words.count {
                words.removeFirst(head)
                base += head << 6
                head = 0
            }
        }
        return true
    }
}

/// A first-in-first-out queue in a ring buffer (a power of two, doubled when full):
/// items are moved in and out, so the queue holds only what is waiting.
struct RingQueue<Element> {
    private var buffer: UnsafeMutablePointer<Element>
    private var capacity = 16
    private var head = 0
    private(set) var count = 0

    init() { buffer = Heap.allocate(capacity: capacity) }

    var isEmpty: Bool { count == 0 }

    mutating func push(_ e: consuming Element) {
        if count == capacity { grow() }
        (buffer + ((head + count) & (capacity - 1))).initialize(to: e)
        count += 1
    }

    mutating func pop() -> Element {
        precondition(count > 0, "pop from an empty queue")
        let e = (buffer + head).move()
        head = (head + 1) & (capacity - 1)
        count -= 1
        return e
    }

    private mutating func grow() {
        let larger = capacity * 2
        let bigger = Heap.allocate(Element.self, capacity: larger)
        let first = min(count, capacity - head)
        bigger.moveInitialize(from: buffer + head, count: first)
        (bigger + first).moveInitialize(from: buffer, count: count - first)
        Heap.free(buffer)
        buffer = bigger
        capacity = larger
        head = 0
    }

    /// Frees what is left (the owner calls it once, from its deinit).
    mutating func release() {
        while count > 0 { _ = pop() }
        Heap.free(buffer)
    }
}
