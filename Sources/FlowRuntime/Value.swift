import FlowSyntax

/// A Flow value.
///
/// Sixteen bytes: every payload is at most one word, so strings are boxed (a Swift
/// `String` payload would make the enum 17 bytes and its stride 24). Lists and maps are
/// references, as in Lua and Python: assigning one shares it.
public enum Value: @unchecked Sendable {
    /// The value of `v`, moved out (nil is left): for handing a value on without a
    /// retain and a release where a closure or a stored variable holds it (a closure
    /// cannot `consume` what it captures).
    @inlinable @inline(__always)
    public static func take(_ v: inout Value) -> Value {
        var moved = Value.nilValue
        swap(&moved, &v)
        return moved
    }

    case nilValue
    case bool(Bool)
    case int(Int)
    case float(Double)
    /// A duration in nanoseconds (`250ms`).
    case duration(Int)
    case string(StringBox)
    case list(ListBox)
    case map(MapBox)
    case closure(Closure)
    case builtin(Builtin)
    case error(ErrorBox)
    /// Any other kind of value a host or a later stage defines (types, tasks, channels…).
    case object(FlowObject)
    /// A captured variable's cell. Lives only in frame slots, never in user-visible values.
    case cell(Cell)

    public static func str(_ s: String) -> Value { .string(StringBox(s)) }
    public static func list(_ items: [Value]) -> Value { .list(ListBox.make(items)) }

    /// The Flow name of the value's type, as `type(x)` returns it and errors print it.
    public var typeName: String {
        switch self {
        case .nilValue: return "nil"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .duration: return "duration"
        case .string: return "string"
        case .list: return "list"
        case .map: return "map"
        case .closure, .builtin: return "function"
        case .error: return "error"
        case .object(let o): return o.typeName
        case .cell: return "cell"
        }
    }

    /// Only `nil` and `false` are false.
    @inline(__always) public var isTruthy: Bool {
        switch self {
        case .nilValue: return false
        case .bool(let b): return b
        default: return true
        }
    }

    public var isNil: Bool { if case .nilValue = self { return true }; return false }

    /// The string payload, or nil.
    public var stringValue: String? { if case .string(let s) = self { return s.value }; return nil }
    public var intValue: Int? { if case .int(let i) = self { return i }; return nil }
    /// A number as a Double (ints convert).
    public var numberValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .float(let f): return f
        default: return nil
        }
    }
}

/// An immutable string. Counts characters once, on demand.
public final class StringBox: @unchecked Sendable {
    public let value: String
    @exclusivity(unchecked) private var cachedCount = -1
    @exclusivity(unchecked) private var cachedHash = 0
    @exclusivity(unchecked) private var hasHash = false
    /// For the interpreter's one box of this string (`Interpreter.intern`): the number of
    /// that interpreter's table, or 0. Two boxes interned by the same table are equal only
    /// if they are the same box.
    @exclusivity(unchecked) var table: UInt32 = 0
    var isInterned: Bool { table != 0 }
    public init(_ value: String) { self.value = value }
    /// The string's hash, computed once (map keys hash it on every lookup).
    public var hash: Int {
        if !hasHash { cachedHash = value.hashValue; hasHash = true }
        return cachedHash
    }
    /// The number of characters (what `len` returns).
    public var count: Int {
        if cachedCount < 0 { cachedCount = value.count }
        return cachedCount
    }
}

/// A mutable list, shared by reference.
///
/// A list literal keeps its items in the same allocation as the list object
/// (tail-allocated, as many as it was made with): `[left, right]` costs one `malloc`, not
/// one for the object and one for an array buffer. A list that grows past them, or that
/// is handed out as a Swift array (`items`), moves its items to an array (`spilled`) for
/// good; a list made from an array (`make`) keeps that array. `count`, the subscript and
/// the methods below work on either without moving.
public final class ListBox: ManagedBuffer<ListBox.Header, Value>, @unchecked Sendable {
    public struct Header {
        /// Items in the tail (0 once spilled).
        var count: Int
        /// Room in the tail, as asked for (not what malloc rounded it to).
        let capacity: Int
        /// The items, once they live in an array.
        var spilled: [Value]?
    }

    /// A list of `items`, which it keeps as they are (no copy: what builtins make, like
    /// the results of `map` or `range`, can be long). List literals use the tail.
    public static func make(_ items: [Value] = []) -> ListBox {
        unsafeDowncast(create(minimumCapacity: 0) { _ in
            Header(count: 0, capacity: 0, spilled: items)
        }, to: ListBox.self)
    }

    /// A list whose `count` items the caller initializes in `body`, in order; if it throws,
    /// the ones initialized so far are kept (`initialized` says how many).
    static func make(count: Int, _ body: (UnsafeMutablePointer<Value>, _ initialized: inout Int) throws -> Void) rethrows -> ListBox {
        let box = unsafeDowncast(create(minimumCapacity: count) { _ in
            Header(count: 0, capacity: count, spilled: nil)
        }, to: ListBox.self)
        try box.withUnsafeMutablePointers { h, e in
            try body(e, &h.pointee.count)
        }
        return box
    }

    deinit {
        // One by one, moved out and dropped: a small list's items are released inline,
        // without the runtime's generic array destroy or value witness.
        withUnsafeMutablePointers { h, e in
            var i = 0
            let n = h.pointee.count
            while i < n { _ = (e + i).move(); i += 1 }
        }
    }

    /// The items as an array. Reading or changing them through it moves a tail list to
    /// an array first (once): use `count` and the subscript on hot paths.
    public var items: [Value] {
        get {
            spill()
            return head.pointee.spilled.unsafelyUnwrapped
        }
        _modify {
            spill()
            yield &head.pointee.spilled!
        }
        set {
            spill()
            head.pointee.spilled = newValue
        }
    }

    /// The header, through its address: `header` is a class property, and each access to
    /// it was checked for exclusivity at run time (a begin and an end access, about 70
    /// instructions, on every `push` to a list past its tail). The object is alive while
    /// its method runs, and the header does not move.
    @inline(__always)
    private var head: UnsafeMutablePointer<Header> { withUnsafeMutablePointerToHeader { $0 } }

    /// Moves the tail's items to an array, if they are not in one.
    @inline(__always)
    private func spill() {
        if head.pointee.spilled == nil { moveToArray() }
    }

    @inline(never)
    private func moveToArray() {
        let moved: [Value] = withUnsafeMutablePointers { h, e in
            let n = h.pointee.count
            h.pointee.count = 0
            return Array(unsafeUninitializedCapacity: n) { buffer, initialized in
                if n > 0 { buffer.baseAddress!.moveInitialize(from: e, count: n) }
                initialized = n
            }
        }
        head.pointee.spilled = moved
    }

    public var count: Int {
        withUnsafeMutablePointerToHeader { h in h.pointee.spilled?.count ?? h.pointee.count }
    }

    /// The item at `i`, which must be in range.
    public subscript(_ i: Int) -> Value {
        get {
            withUnsafeMutablePointers { h, e in
                if h.pointee.spilled != nil { return h.pointee.spilled.unsafelyUnwrapped[i] }
                precondition(i >= 0 && i < h.pointee.count, "list index out of range")
                return e[i]
            }
        }
        set {
            withUnsafeMutablePointers { h, e in
                if h.pointee.spilled != nil { h.pointee.spilled![i] = newValue; return }
                precondition(i >= 0 && i < h.pointee.count, "list index out of range")
                e[i] = newValue
            }
        }
    }

    /// Whether the item at `i`, which must be in range, is nil (no copy of it is made).
    func isNil(at i: Int) -> Bool {
        withUnsafeMutablePointers { h, e in
            if h.pointee.spilled != nil {
                if case .nilValue = h.pointee.spilled.unsafelyUnwrapped[i] { return true }
                return false
            }
            if case .nilValue = e[i] { return true }
            return false
        }
    }

    public func append(_ v: consuming Value) {
        // The value moves in (`Value.take`).
        var item = v
        let appended: Bool = withUnsafeMutablePointers { h, e in
            guard h.pointee.spilled == nil, h.pointee.count < h.pointee.capacity else { return false }
            (e + h.pointee.count).initialize(to: Value.take(&item))
            h.pointee.count += 1
            return true
        }
        if !appended { items.append(item) }
    }
    public func removeLast() -> Value { items.removeLast() }
    public func insert(_ v: Value, at i: Int) { items.insert(v, at: i) }
}

/// A heap cell holding a variable that a closure captures. (A closure can be the cell of
/// the variable it captures: `Closure` is its only subclass.)
public class Cell: @unchecked Sendable {
    @exclusivity(unchecked) public final var value: Value
    public init(_ value: Value) { self.value = value }
}

/// A Flow error value: a kind (`"type"`, `"timeout"`, a user's own…), a message and
/// optional data. `try`/`catch` binds one; `throw` raises one.
public final class ErrorBox: @unchecked Sendable {
    public let kind: String
    public let message: String
    public let data: Value
    /// Where it was raised, most recent call first, once it has unwound (for `e.trace`).
    public var trace: [TraceFrame] = []
    /// The path of the parallel branch it came from, if any (`e.path`).
    public var path: String?

    public init(kind: String, message: String, data: Value = .nilValue) {
        self.kind = kind
        self.message = message
        self.data = data
    }
}

/// The base class of values that Flow does not build in: hosts and later stages subclass
/// it (types, tasks, channels, syntax trees).
open class FlowObject: @unchecked Sendable {
    public init() {}
    /// The name `type(x)` returns.
    open var typeName: String { "object" }
    /// How `print` shows it.
    open var description: String { "<\(typeName)>" }
    /// Member lookup (`x.name`); nil when there is no such member.
    open func member(_ name: String) -> Value? { nil }
    /// A method (`x.name(…)`) as a callable value; nil when there is none.
    open func method(_ name: String, interpreter: Interpreter) -> Value? { nil }
    /// Calling the value (`x(…)`); nil when it cannot be called.
    open func call(_ args: [Value], named: [(String, Value)]?, interpreter: Interpreter, range: SourceRange?) throws -> Value? { nil }
}
