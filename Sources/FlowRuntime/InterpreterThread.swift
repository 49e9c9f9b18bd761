import CStack
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where the interpreter runs: a large native stack that runs submitted work one item at
/// a time, so deep Flow recursion reaches the call-depth limit, never a stack overflow.
///
/// The stack is a thread's of its own, or — when the engine is made to run on its
/// caller's thread (`Configuration.runsOnCallingThread`) — a region the calling thread
/// switches its stack pointer to for each piece of work, so the process keeps one thread
/// (glibc's malloc locks nothing in a process that never had a second one). Work posted
/// to run without waiting (`post`: the engine's background mode) needs a thread that
/// goes on while the host does something else: the first post starts the thread, and
/// from then on all work runs there.
final class InterpreterThread: @unchecked Sendable {
    /// The stack's size: the size asked for, or a quarter or a sixteenth of it when the
    /// process may not reserve that much address space (`ulimit -v`). Deep recursion
    /// uses far less than the full size: 10,000 nested calls through `map` callbacks
    /// and `try` took 50 MiB in a debug build, 12 MiB in a release build.
    private var stackSize: Int
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var queue: [() -> Void] = []
    private var thread: pthread_t? = nil
    private var threadID: pthread_t? = nil
    private var stopped = false

    /// Calling-thread mode: held by the thread whose work runs on the switched stack, so
    /// callers on other threads wait their turn.
    private var switching = pthread_mutex_t()
    /// Whether work runs on the caller's thread (until a post starts the thread).
    @exclusivity(unchecked) private var onCallingThread: Bool
    /// The switched stack, made at the first work (nil before, or in thread mode), and
    /// the thread whose work is running on it.
    @exclusivity(unchecked) private var stack: UnsafeMutableRawPointer? = nil
    @exclusivity(unchecked) private var stackRunner: pthread_t? = nil

    init(stackSize: Int, onCallingThread: Bool = false) {
        self.stackSize = stackSize
        self.onCallingThread = onCallingThread
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
        pthread_mutex_init(&switching, nil)
        if !onCallingThread { start() }
    }

    deinit {
        if let stack { munmap(stack, stackSize) }
    }

    /// How the switched stack is mapped: private, reserved but not committed.
    #if os(Linux)
    private static let stackFlags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK
    #else
    private static let stackFlags = MAP_PRIVATE | MAP_ANON | MAP_NORESERVE
    #endif

    /// The sizes to try, largest first.
    private var stackSizes: [Int] { [stackSize, stackSize / 4, stackSize / 16] }

    private func start() {
        var failure: Int32 = 0
        for size in stackSizes {
            var attr = pthread_attr_t()
            pthread_attr_init(&attr)
            pthread_attr_setstacksize(&attr, size)
            let box = Unmanaged.passRetained(self)
            var t = pthread_t()
            failure = pthread_create(&t, &attr, { arg in
                let me = Unmanaged<InterpreterThread>.fromOpaque(arg!).takeRetainedValue()
                me.loop()
                return nil
            }, box.toOpaque())
            pthread_attr_destroy(&attr)
            if failure == 0 {
                stackSize = size
                thread = t
                return
            }
            box.release()
        }
        fatalError("cannot start the interpreter's thread with a stack of \((stackSize / 16) >> 20) MiB or more: \(String(cString: strerror(failure)))")
    }

    private func loop() {
        threadID = pthread_self()
        while true {
            pthread_mutex_lock(&mutex)
            while queue.isEmpty && !stopped { pthread_cond_wait(&condition, &mutex) }
            if queue.isEmpty && stopped { pthread_mutex_unlock(&mutex); return }
            let work = queue.removeFirst()
            pthread_mutex_unlock(&mutex)
            work()
        }
    }

    /// Lets the thread finish its queue and exit.
    func stop() {
        pthread_mutex_lock(&mutex)
        stopped = true
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
        if let t = thread { pthread_detach(t) }
    }

    /// Whether the caller is running on the interpreter's stack.
    var isCurrent: Bool {
        if let id = threadID { return pthread_equal(id, pthread_self()) != 0 }
        if let id = stackRunner { return pthread_equal(id, pthread_self()) != 0 }
        return false
    }

    /// Queues `work` on the thread without waiting (starting the thread if the work ran
    /// on its callers' threads so far).
    func post(_ work: @escaping () -> Void) {
        if onCallingThread {
            pthread_mutex_lock(&switching)
            leaveCallingThread()
            pthread_mutex_unlock(&switching)
        }
        pthread_mutex_lock(&mutex)
        queue.append(work)
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
    }

    /// From now on, work runs on the thread (started here). The caller holds `switching`.
    private func leaveCallingThread() {
        guard onCallingThread else { return }
        onCallingThread = false
        start()
    }

    /// Runs `work` on the interpreter's stack and waits; runs it inline when already there.
    func sync<T>(_ work: @escaping () throws -> T) throws -> T {
        if isCurrent { return try work() }
        if onCallingThread {
            pthread_mutex_lock(&switching)
            defer { pthread_mutex_unlock(&switching) }
            if onCallingThread, let result = onSwitchedStack(work) { return try result.get() }
            // The stack could not be made (no address space for it): from now on the work
            // runs on a thread, whose stack the system may still find room for.
            leaveCallingThread()
        }
        var result: Result<T, Error>? = nil
        var done = pthread_cond_t()
        pthread_cond_init(&done, nil)
        defer { pthread_cond_destroy(&done) }
        withUnsafeMutablePointer(to: &result) { resultPointer in
            withUnsafeMutablePointer(to: &done) { donePointer in
                let r = UnsafeSendable(resultPointer)
                let d = UnsafeSendable(donePointer)
                pthread_mutex_lock(&mutex)
                queue.append { [self] in
                    let value = Result { try work() }
                    pthread_mutex_lock(&mutex)
                    r.value.pointee = value
                    pthread_cond_signal(d.value)
                    pthread_mutex_unlock(&mutex)
                }
                pthread_cond_signal(&condition)
                while resultPointer.pointee == nil { pthread_cond_wait(donePointer, &mutex) }
                pthread_mutex_unlock(&mutex)
            }
        }
        return try result!.get()
    }

    /// Runs `work` on this thread with its stack switched to the interpreter's (made at
    /// the first call: reserved, not committed, with an inaccessible page below it so an
    /// overflow faults instead of writing over other memory). nil when it cannot be made.
    private func onSwitchedStack<T>(_ work: () throws -> T) -> Result<T, Error>? {
        if stack == nil {
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            for size in stackSizes {
                let region = mmap(nil, size, PROT_READ | PROT_WRITE, InterpreterThread.stackFlags, -1, 0)
                guard let region, region != MAP_FAILED else { continue }
                mprotect(region, page, PROT_NONE)
                stack = region
                stackSize = size
                break
            }
            if stack == nil { return nil }
        }
        var result: Result<T, Error>? = nil
        withoutActuallyEscaping(work) { work in
            var body = { result = Result { try work() } }
            stackRunner = pthread_self()
            _ = withUnsafeMutablePointer(to: &body) { body in
                flow_call_on_stack(stack, stackSize, { context in
                    context!.assumingMemoryBound(to: (() -> Void).self).pointee()
                }, body)
            }
            stackRunner = nil
        }
        return result
    }
}
