import FlowSyntax

/// The compiled form of a function, flow or lambda: shared by every closure made from it.
public final class FunctionProto: @unchecked Sendable {
    public let name: String
    public let parameters: [String]
    /// Default-value expressions, evaluated in the callee's frame when an argument is
    /// missing; nil where the parameter is required.
    var defaults: [Node?]
    /// The number of leading parameters without a default.
    public let requiredCount: Int
    /// Slots in a frame: parameters, then captured cells, then locals and temporaries.
    @exclusivity(unchecked) var frameSize: Int = 0
    @exclusivity(unchecked) var body: Node = ConstNode(.nilValue) {
        didSet { bodyRef = Unmanaged.passUnretained(body) }
    }
    /// `body` without the retain a class property read costs on every call.
    @exclusivity(unchecked) var bodyRef: Unmanaged<Node>
    /// True when the body can suspend (sleep, and later awaits and nodes): such a function
    /// runs on the async path; every other one runs synchronously.
    @exclusivity(unchecked) public internal(set) var isAsync = false
    /// The name as the interpreter interned it, once a run of it has started.
    @exclusivity(unchecked) var internedName: StringBox?
    /// True for a `flow`: calling it starts a run.
    @exclusivity(unchecked) public internal(set) var isFlow = false
    public let range: SourceRange?
    /// The whole definition's range (for its source in the image).
    @exclusivity(unchecked) public internal(set) var declarationRange: SourceRange?

    init(name: String, parameters: [String], defaults: [Node?], range: SourceRange?) {
        self.name = name
        self.parameters = parameters
        self.defaults = defaults
        self.arity = parameters.count
        self.requiredCount = defaults.firstIndex(where: { $0 != nil }) ?? defaults.count
        self.range = range
        self.bodyRef = Unmanaged.passUnretained(body)
    }

    /// `parameters.count`, stored: it is checked on every call.
    public let arity: Int
}

/// A Flow function value: a prototype and the cells it captured. The first capture is
/// held inline (most closures capture one variable), so making one allocates no array.
///
/// A closure is also a cell: the first closure that captures a variable, when it captures
/// nothing else, holds the variable's value itself and the frame's slot refers to it as
/// the variable's cell (`MakeClosureNode`); it is then its own first capture
/// (`ownsCapture`).
public final class Closure: Cell, @unchecked Sendable {
    /// True when the closure is the cell of the variable it captures. (Declared first, it
    /// takes the byte after the cell's value, which would otherwise be padding.)
    let ownsCapture: Bool
    public let proto: FunctionProto
    /// The first captured cell, unless the closure is that cell (a reference to itself
    /// would keep it alive forever).
    ///
    /// The captures are retained and released by hand: a subclass with two fields to
    /// release when it is freed was retained and released around them, two atomic
    /// operations more per closure.
    private let first: Unmanaged<Cell>?
    /// Every captured cell, when there are two or more.
    private let all: Unmanaged<CaptureList>?

    init(proto: FunctionProto, captures: [Cell]) {
        self.ownsCapture = false
        self.proto = proto
        self.first = captures.first.map { Unmanaged.passRetained($0) }
        self.all = captures.count > 1 ? Unmanaged.passRetained(CaptureList(captures)) : nil
        super.init(.nilValue)
    }
    init(proto: FunctionProto, capture: Cell) {
        self.ownsCapture = false
        self.proto = proto
        self.first = Unmanaged.passRetained(capture)
        self.all = nil
        super.init(.nilValue)
    }
    /// A closure that is the cell of the one variable it captures, holding `value`.
    init(proto: FunctionProto, owning value: consuming Value) {
        self.ownsCapture = true
        self.proto = proto
        self.first = nil
        self.all = nil
        super.init(value)
    }
    deinit {
        if !ownsCapture { first?.release() }
        all?.release()
    }

    /// The cell of the first capture: the closure itself when it owns it.
    var firstCapture: Cell? {
        ownsCapture ? self : first?.takeUnretainedValue()
    }
    var hasCaptures: Bool { ownsCapture || first != nil }

    /// The address of the first capture's cell, unretained.
    @inline(__always) private var firstAddress: UnsafeRawPointer? {
        ownsCapture ? UnsafeRawPointer(Unmanaged.passUnretained(self).toOpaque()) : first.map { UnsafeRawPointer($0.toOpaque()) }
    }

    /// Places the captured cells in their slots lent, unretained (`Borrow.lend`), for a
    /// synchronous call, during which the caller keeps the closure, and so its cells,
    /// alive; the call forgets them before it drops the frame. (A function never assigns
    /// the slot of a captured variable: it assigns the cell's value.) Returns how many
    /// it lent: none when `Borrow` cannot write a cell, and they are placed retained.
    @inline(__always) func lendCaptures(_ fp: UnsafeMutablePointer<Value>, after arity: Int) -> Int {
        guard let first = firstAddress else { return 0 }
        guard Borrow.lend(address: first, tag: Borrow.cellTag, into: fp + arity) else {
            placeCaptures(fp, after: arity)
            return 0
        }
        guard let all else { return 1 }
        return all._withUnsafeGuaranteedRef { list in
            for i in 1..<list.cells.count { _ = Borrow.lend(list.cells[i], tag: Borrow.cellTag, into: fp + arity + i) }
            return list.cells.count
        }
    }

    /// Places the captured cells in their slots, after the parameters.
    @inline(__always) func placeCaptures(_ fp: UnsafeMutablePointer<Value>, after arity: Int) {
        guard let first = firstCapture else { return }
        fp[arity] = .cell(first)
        guard let all else { return }
        all._withUnsafeGuaranteedRef { list in
            for i in 1..<list.cells.count { fp[arity + i] = .cell(list.cells[i]) }
        }
    }
}

/// The cells of a closure that captures two or more variables.
final class CaptureList {
    let cells: [Cell]
    init(_ cells: [Cell]) { self.cells = cells }
}

/// Owns a heap copy of arguments for a builtin that suspends.
final class ArgumentStorage {
    let base: UnsafeMutablePointer<Value>
    let count: Int
    /// The file of the call's range and the builtin, which the call refers to without a
    /// retain.
    let file: SourceFile?
    let builtin: Builtin
    init(copying source: UnsafeMutablePointer<Value>, count: Int, file: SourceFile?, builtin: Builtin) {
        base = Heap.allocate(Value.self, capacity: count)
        base.initialize(from: source, count: count)
        self.count = count
        self.file = file
        self.builtin = builtin
    }
    deinit {
        base.deinitialize(count: count)
        Heap.free(base)
    }
}

/// What a builtin receives: its arguments (a method's receiver first), the names of any
/// named ones already mapped to positions, and the interpreter to call back into.
public struct BuiltinCall {
    /// The builtin called, unretained: its caller holds it (the `owner` of a call that
    /// suspends, or of a host's call).
    unowned(unsafe) let builtin: Builtin
    public var name: String { builtin.name }
    /// The arguments, in a window of the interpreter's value stack (or a buffer the call
    /// owns): valid only during the call. Copy what you keep, or `take` it.
    @usableFromInline let base: UnsafeMutablePointer<Value>
    public let count: Int
    /// The arguments from this one on are the call's own (a window its caller pushed and
    /// drops after it): `take` moves them out. Before it they are lent: a method's
    /// receiver borrowed from a local's slot, an array the caller keeps.
    let ownedFrom: Int
    public unowned(unsafe) let interpreter: Interpreter
    /// Where the call is, for errors: kept as its parts, the file unretained (the calling
    /// node, or the `owner` of a call that suspends, keeps it alive), so a call costs no
    /// retain for it.
    unowned(unsafe) let rangeFile: SourceFile?
    let rangeStart: Int, rangeEnd: Int
    public var range: SourceRange? {
        rangeFile.map { SourceRange(file: $0, start: rangeStart, end: rangeEnd) }
    }
    /// Keeps the argument buffer of a suspending call, or a host's builtin, alive.
    let owner: AnyObject?

    /// A call without arguments, for hosts that reuse a builtin's Swift code outside a
    /// call (its errors then carry no location).
    public init(name: String, interpreter: Interpreter) {
        let named = Builtin(name: name, parameters: [], requiredCount: 0, variadic: true, isMethod: false, body: { _ in .nilValue })
        self.init(named, base: interpreter.top, count: 0, interpreter: interpreter, range: nil, owner: named)
    }

    init(_ builtin: Builtin, base: UnsafeMutablePointer<Value>, count: Int, ownedFrom: Int? = nil, interpreter: Interpreter,
         range: SourceRange?, owner: AnyObject? = nil) {
        self.builtin = builtin; self.base = base; self.count = count; self.ownedFrom = ownedFrom ?? count
        self.interpreter = interpreter
        rangeFile = range?.file; rangeStart = range?.start ?? 0; rangeEnd = range?.end ?? 0
        self.owner = owner
    }

    /// Argument `i`, moved out of the call when it is the call's own (nil is left in its
    /// place), copied otherwise: for a builtin that keeps it (`push`).
    public mutating func take(_ i: Int) -> Value {
        guard i < count else { return .nilValue }
        guard i >= ownedFrom else { return base[i] }
        return Value.take(&base[i])
    }

    /// The length of argument `i` when it is a string (in characters), a list or a map,
    /// read where the call keeps it (a copy would retain and release it); nil otherwise.
    public func length(_ i: Int) -> Int? {
        guard i < count else { return nil }
        let slot = base + i
        if let l = Borrow.list(slot, Borrow.listTag) { return l._withUnsafeGuaranteedRef { $0.count } }
        if let m = Borrow.map(slot, Borrow.mapTag) { return m._withUnsafeGuaranteedRef { $0.count } }
        if let s = Borrow.string(slot, Borrow.stringTag) { return s._withUnsafeGuaranteedRef { $0.count } }
        switch slot.pointee {
        case .string(let s): return s.count
        case .list(let l): return l.count
        case .map(let m): return m.count
        default: return nil
        }
    }

    /// The list argument `i`, lent to `body` from the arguments without a retain.
    @inlinable @inline(__always)
    public func withList<R>(_ i: Int, _ body: (ListBox) throws -> R) throws -> R {
        guard i < count, let l = Borrow.list(base + i, Borrow.listTag) else { return try body(try list(i)) }
        return try l._withUnsafeGuaranteedRef(body)
    }

    /// The interpreter, lent to `body` with no retain: a builtin that reads `interpreter`
    /// retains and releases it around what it calls (the engine's builtins run at every
    /// node).
    @inlinable @inline(__always)
    public func withInterpreter<T>(_ body: (Interpreter) throws -> T) rethrows -> T {
        try Unmanaged.passUnretained(interpreter)._withUnsafeGuaranteedRef(body)
    }

    /// The arguments as an array (a copy).
    public var args: [Value] { Array(UnsafeBufferPointer(start: base, count: count)) }
    public subscript(_ i: Int) -> Value { i < count ? base[i] : .nilValue }

    /// A Flow error of kind `kind` whose message starts with the builtin's name.
    public func error(_ message: String, kind: String = "type") -> FlowError {
        FlowError(kind: kind, message: "\(name): \(message)", at: range)
    }

    /// "expects a list as argument 1, found int"
    public func typeError(_ expected: String, at index: Int) -> FlowError {
        error("expects \(expected) as argument \(index + 1), found \(self[index].typeName)")
    }

    public func string(_ i: Int) throws -> String {
        guard case .string(let s) = self[i] else { throw typeError("a string", at: i) }
        return s.value
    }
    public func int(_ i: Int) throws -> Int {
        switch self[i] {
        case .int(let v): return v
        case .float(let f) where f.rounded() == f && abs(f) < 9.2e18: return Int(f)
        default: throw typeError("an int", at: i)
        }
    }
    public func number(_ i: Int) throws -> Double {
        guard let d = self[i].numberValue else { throw typeError("a number", at: i) }
        return d
    }
    public func list(_ i: Int) throws -> ListBox {
        guard case .list(let l) = self[i] else { throw typeError("a list", at: i) }
        return l
    }
    public func map(_ i: Int) throws -> MapBox {
        guard case .map(let m) = self[i] else { throw typeError("a map", at: i) }
        return m
    }
    /// Calls a Flow function value passed to the builtin (a callback).
    public func call(_ f: Value, _ args: [Value]) throws -> Value {
        try interpreter.call(f, args, at: range)
    }

    /// Calls a callback on the async path: a suspending callback is awaited (and can be
    /// cancelled) instead of waited for.
    public func callAsync(_ f: Value, _ args: [Value]) async throws -> Value {
        try await interpreter.invokeAsync(f, args, named: nil, range: range ?? SourceRange(file: SourceFile(path: "<builtin>", text: ""), start: 0, end: 0))
    }
}

/// A function implemented in Swift and registered through `Interpreter.define`.
public final class Builtin: @unchecked Sendable {
    public let name: String
    /// Parameter names, for named arguments and arity checks. A method's receiver is not
    /// among them.
    public let parameters: [String]
    /// How many parameters must be given; `parameters.count` when none is optional.
    public let requiredCount: Int
    /// True when it takes any number of arguments past its parameters.
    public let variadic: Bool
    let body: (inout BuiltinCall) throws -> Value
    /// For a method that changes its receiver and gives it back (`push`): the change
    /// alone, for a call whose value is unused (`body` is the change, then the receiver).
    let change: ((inout BuiltinCall) throws -> Void)?
    /// The async implementation, for builtins that suspend (`sleep`). Calls from
    /// synchronous code wait for it on the interpreter's event loop.
    let suspendingBody: ((BuiltinCall) async throws -> Value)?
    /// For builtins defined by `defineWaiting`: checks the arguments synchronously and
    /// gives the wait alone, which a fiber awaits in its own frame (no argument storage,
    /// no chain of async frames held while it waits).
    let prepareWait: ((inout BuiltinCall) throws -> Wait)?
    /// What `prepareWait` gives: the wait of a call.
    public enum Wait {
        /// Swift async work, awaited in a task (a branch's fiber gets one for it).
        case work(() async throws -> Value)
        /// A timer on the interpreter's clock, ending with nil: a fiber waits for it
        /// parked, with no Swift task or frame of its own.
        case timer(nanoseconds: Int)
    }
    /// True for methods: the receiver is passed as the first argument.
    let isMethod: Bool

    /// True when it has an async implementation (stored: checked on every call).
    public let suspends: Bool
    /// True when the Swift body is complete by itself and the async one is only better
    /// on the async path (callbacks awaited, so cancellation reaches them): synchronous
    /// callers then use the body, not a nested wait.
    let prefersBody: Bool

    init(name: String, parameters: [String], requiredCount: Int?, variadic: Bool, isMethod: Bool,
         body: @escaping (inout BuiltinCall) throws -> Value,
         suspendingBody: ((BuiltinCall) async throws -> Value)? = nil, prefersBody: Bool = false,
         prepareWait: ((inout BuiltinCall) throws -> Wait)? = nil, change: ((inout BuiltinCall) throws -> Void)? = nil) {
        self.name = name
        self.change = change
        self.parameters = parameters
        self.requiredCount = requiredCount ?? parameters.count
        self.variadic = variadic
        self.isMethod = isMethod
        self.body = body
        self.suspendingBody = suspendingBody
        self.prepareWait = prepareWait
        // A builtin with a complete Swift body only *prefers* its async twin; it never
        // makes a synchronous caller wait.
        self.suspends = suspendingBody != nil && !prefersBody
        self.prefersBody = prefersBody
    }

    /// Describes the accepted argument counts: "1 argument", "1 to 2 arguments".
    var arityDescription: String {
        let max = parameters.count
        if variadic { return "at least \(requiredCount) argument\(requiredCount == 1 ? "" : "s")" }
        if requiredCount == max { return "\(max) argument\(max == 1 ? "" : "s")" }
        return "\(requiredCount) to \(max) arguments"
    }

    func accepts(_ n: Int) -> Bool { n >= requiredCount && (variadic || n <= parameters.count) }
}
