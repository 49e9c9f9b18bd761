import FlowSyntax
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A bounded channel between tasks of a program: `send` waits while it is full (or drops,
/// per its overflow policy), `receive` waits while it is empty and gives nil once it is
/// closed and drained; `for await x in ch` receives until then.
///
/// Its state is guarded by a mutex because cancellation handlers may run on any thread;
/// the waiting itself happens on the interpreter's event loop.
final class ChannelValue: FlowObject, @unchecked Sendable {
    enum Overflow: String { case block, dropOldest = "drop-oldest", dropNewest = "drop-newest" }

    let capacity: Int
    let overflow: Overflow
    private var mutex = pthread_mutex_t()
    private var buffer: [Value] = []
    private var closed = false
    private var nextWaiter = 0
    /// Waiting receivers; resumed with nil when the channel closes.
    private var receivers: [(Int, CheckedContinuation<Value?, Error>)] = []
    private var senders: [(Int, Value, CheckedContinuation<Void, Error>)] = []
    /// How many values were dropped by the overflow policy.
    private var dropped = 0

    init(capacity: Int, overflow: Overflow) {
        self.capacity = capacity
        self.overflow = overflow
        pthread_mutex_init(&mutex, nil)
    }
    deinit { pthread_mutex_destroy(&mutex) }

    override var typeName: String { "channel" }
    override var description: String {
        lock { "<channel \(buffer.count)/\(capacity)\(closed ? " closed" : "")>" }
    }

    private func lock<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }

    override func member(_ name: String) -> Value? {
        switch name {
        case "capacity": return .int(capacity)
        case "count": return .int(lock { buffer.count })
        case "closed": return .bool(lock { closed })
        case "dropped": return .int(lock { dropped })
        case "overflow": return .str(overflow.rawValue)
        default: return nil
        }
    }

    override func method(_ name: String, interpreter m: Interpreter) -> Value? {
        switch name {
        case "send":
            return m.makeSuspendingBuiltin("send", parameters: ["value"]) { [self] call in
                try await send(call[0], call)
                return .nilValue
            }
        case "receive":
            return m.makeSuspendingBuiltin("receive", parameters: []) { [self] _ in try await receive() ?? .nilValue }
        case "close":
            return m.makeBuiltin("close", parameters: []) { [self] _ in close(); return .nilValue }
        default: return nil
        }
    }

    func send(_ v: Value, _ call: BuiltinCall) async throws {
        enum Step { case done, wait, closedError }
        let step: Step = lock {
            if closed { return .closedError }
            if let (_, r) = receivers.first {
                receivers.removeFirst()
                r.resume(returning: v)
                return .done
            }
            if buffer.count < capacity { buffer.append(v); return .done }
            switch overflow {
            case .block: return .wait
            case .dropOldest: buffer.removeFirst(); buffer.append(v); dropped += 1; return .done
            case .dropNewest: dropped += 1; return .done
            }
        }
        switch step {
        case .done: return
        case .closedError: throw call.error("cannot send on a closed channel", kind: "value")
        case .wait:
            let id = lock { nextWaiter += 1; return nextWaiter }
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
                    let resumeNow: Error?? = lock {
                        if closed { return .some(call.error("cannot send on a closed channel", kind: "value")) }
                        if buffer.count < capacity { buffer.append(v); return .some(nil) }
                        if Task.isCancelled { return .some(CancellationError()) }
                        senders.append((id, v, c))
                        return .none
                    }
                    if let r = resumeNow { if let e = r { c.resume(throwing: e) } else { c.resume() } }
                }
            } onCancel: {
                let waiting = lock { () -> CheckedContinuation<Void, Error>? in
                    guard let i = senders.firstIndex(where: { $0.0 == id }) else { return nil }
                    return senders.remove(at: i).2
                }
                waiting?.resume(throwing: CancellationError())
            }
        }
    }

    /// The next value, or nil once the channel is closed and drained.
    func receive() async throws -> Value? {
        let ready: Value?? = lock {
            if !buffer.isEmpty {
                let v = buffer.removeFirst()
                admitSender()
                return .some(v)
            }
            if closed { return .some(nil) }
            return nil
        }
        if let ready { return ready }
        let id = lock { nextWaiter += 1; return nextWaiter }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Value?, Error>) in
                let now: Result<Value?, Error>? = lock {
                    if !buffer.isEmpty { let v = buffer.removeFirst(); admitSender(); return .success(v) }
                    if closed { return .success(nil) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    receivers.append((id, c))
                    return nil
                }
                if let now { c.resume(with: now) }
            }
        } onCancel: {
            let waiting = lock { () -> CheckedContinuation<Value?, Error>? in
                guard let i = receivers.firstIndex(where: { $0.0 == id }) else { return nil }
                return receivers.remove(at: i).1
            }
            waiting?.resume(throwing: CancellationError())
        }
    }

    /// Moves the first blocked sender's value into the buffer (caller holds the lock).
    private func admitSender() {
        guard buffer.count < capacity, let (_, v, c) = senders.first else { return }
        senders.removeFirst()
        buffer.append(v)
        c.resume()
    }

    /// No more sends; receivers drain what is buffered, then get nil.
    func close() {
        let (waitingReceivers, waitingSenders) = lock { () -> ([CheckedContinuation<Value?, Error>], [CheckedContinuation<Void, Error>]) in
            closed = true
            let r = buffer.isEmpty ? receivers.map { $0.1 } : []
            if buffer.isEmpty { receivers = [] }
            let s = senders.map { $0.2 }
            senders = []
            return (r, s)
        }
        for r in waitingReceivers { r.resume(returning: nil) }
        for s in waitingSenders { s.resume(throwing: FlowError(kind: "value", message: "send: the channel was closed while waiting to send", at: nil)) }
    }
}

/// `for await x in ch { … }`: receives until the channel is closed and drained.
final class ForAwaitNode: Node {
    let slot: Int
    let iterable: Node
    let body: Node
    let range: SourceRange
    init(slot: Int, iterable: Node, body: Node, range: SourceRange) {
        self.slot = slot; self.iterable = iterable; self.body = body; self.range = range
        super.init()
        yields = true
    }

    func channel(_ v: Value, _ m: Interpreter) throws -> ChannelValue {
        if case .object(let o) = v, let c = o as? ChannelValue { return c }
        throw m.error(ErrorKind.type, "for await needs a channel, found \(v.typeName)", at: range)
    }

    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let frame = UnsafeSendable(fp)
        return try m.loop.run { [self] in try await self.evalAsync(frame.value, m) }
    }

    override func evalAsync(_ fp: Frame, _ m: Interpreter) async throws -> Value {
        let ch = try channel(try await run(iterable, fp, m), m)
        while true {
            guard let v = try await ch.receive() else { break }
            fp[slot] = v
            _ = try await run(body, fp, m)
            if m.signal != .none && m.endsLoop() { break }
        }
        return .nilValue
    }
}
