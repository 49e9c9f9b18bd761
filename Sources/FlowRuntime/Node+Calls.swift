import FlowSyntax

extension Interpreter {
    /// Calls any callable value with evaluated arguments (the general, slower path).
    func invoke(_ f: Value, _ args: [Value], named: [(String, Value)]?, range: SourceRange) throws -> Value {
        switch f {
        case .closure(let c): return try callClosure(c, args, named: named, at: range)
        case .builtin(let b): return try callBuiltin(b, args, named: named, at: range)
        case .object(let o):
            if let r = try o.call(args, named: named, interpreter: self, range: range) { return r }
            throw error(ErrorKind.type, "cannot call a value of type \(f.typeName)", at: range)
        default: throw error(ErrorKind.type, "cannot call a value of type \(f.typeName)", at: range)
        }
    }

    @inline(never)
    func invokeAsync(_ f: Value, _ args: [Value], named: [(String, Value)]?, range: SourceRange) async throws -> Value {
        switch f {
        case .closure(let c):
            if c.proto.isAsync { return try await callClosureAsync(c, args, named: named, at: range) }
            return try callClosure(c, args, named: named, at: range)
        case .builtin(let b): return try await callBuiltinAsync(b, args, named: named, at: range)
        case .object: return try invoke(f, args, named: named, range: range)
        default: throw error(ErrorKind.type, "cannot call a value of type \(f.typeName)", at: range)
        }
    }
}

/// Arguments as compiled: positional nodes, then named ones.
struct CompiledArguments {
    let positional: [Node]
    let named: [(String, Node)]
    let list: NodeArray
    init(positional: [Node], named: [(String, Node)]) {
        self.positional = positional
        self.named = named
        self.list = NodeArray(positional)
    }
    var yields: Bool { positional.contains { $0.yields } || named.contains { $0.1.yields } }

    func evaluate(_ fp: Frame, _ m: Interpreter) throws -> ([Value], [(String, Value)]?) {
        var values: [Value] = []
        let n = list.count
        values.reserveCapacity(n)
        var i = 0
        while i < n { values.append(try list.eval(i, fp, m)); i += 1 }
        if named.isEmpty { return (values, nil) }
        return (values, try named.map { ($0.0, try $0.1.eval(fp, m)) })
    }
}

/// A call of any callee with any arguments.
final class CallNode: Node {
    let callee: Node
    let args: CompiledArguments
    let range: SourceRange
    init(callee: Node, args: CompiledArguments, range: SourceRange) {
        self.callee = callee; self.args = args; self.range = range
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let f = try callee.eval(fp, m)
        if case .builtin(let b) = f, args.named.isEmpty {
            // Arguments go in a window of the value stack: no array.
            let mark = m.top
            defer { m.pop(to: mark) }
            let list = args.list
            var i = 0
            while i < list.count { try m.push(try list.eval(i, fp, m), range); i += 1 }
            return try m.callBuiltin(b, base: mark, count: list.count, ownedFrom: 0, named: nil, at: range)
        }
        let (values, named) = try args.evaluate(fp, m)
        if named == nil, case .closure(let c) = f, c.proto.arity == values.count, !c.proto.isAsync, m.hasRoom(c.proto.frameSize) {
            let nfp = m.top
            for (i, v) in values.enumerated() { (nfp + i).initialize(to: v) }
            return try m.runClosure(c, nfp, argc: values.count, range)
        }
        return try m.invoke(f, values, named: named, range: range)
    }
    // On the async path the callee and the arguments never suspend (the compiler
    // evaluates the ones that may into temporaries first): the call is all that waits.
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        if a.state != 0 { return f.done(input) }
        a.state = 1
        let callee = try self.callee.eval(a.fp, f.m)
        let (values, named) = try args.evaluate(a.fp, f.m)
        return f.call(callee, values, named)
    }
    override var callRange: SourceRange? { range }
}

/// A call of a builtin by its name (`len(x)`, `emit(…)`) with positional arguments, for a
/// builtin that does not suspend. Builtin names cannot be rebound, so the builtin is
/// known when the code is compiled: the call reads no callee and retains nothing for it.
/// The arguments go in a window of the value stack.
final class CallBuiltinNode: Node {
    let builtin: Builtin
    let args: NodeArray
    let range: SourceRange
    /// The slots of the arguments when every one is a plain local (`len(o)`): they are
    /// lent to the builtin, as a method's receiver is (`MethodCallNode.callLent`); else nil.
    let lentSlots: UnsafeMutablePointer<Int>?
    /// No arguments, and the builtin takes none (`replaying()`, `monotonic()`): its body is
    /// called at once, with no window, arity check or named arguments to place.
    let nullary: Bool
    init(_ builtin: Builtin, args: [Node], range: SourceRange) {
        precondition(!builtin.suspends)
        self.builtin = builtin; self.args = NodeArray(args); self.range = range
        nullary = args.isEmpty && builtin.accepts(0) && !builtin.isMethod
        if !args.isEmpty, args.allSatisfy({ $0 is LocalGet }) {
            let slots = UnsafeMutablePointer<Int>.allocate(capacity: args.count)
            for (i, a) in args.enumerated() { (slots + i).initialize(to: slotOf(a)) }
            lentSlots = slots
        } else {
            lentSlots = nil
        }
    }
    deinit { lentSlots?.deallocate() }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        if nullary {
            var call = BuiltinCall(builtin, base: m.top, count: 0, interpreter: m, range: range)
            return try builtin.body(&call)
        }
        let mark = m.top
        let n = args.count
        if let slots = lentSlots {
            defer { m.forget(mark, 0..<(m.top - mark)); m.top = mark }
            var i = 0
            while i < n { try m.pushLent(fp + slots[i], range); i += 1 }
            return try m.callBuiltin(builtin, base: mark, count: n, named: nil, at: range)
        }
        defer { m.pop(to: mark) }
        var i = 0
        while i < n { try m.push(try args.eval(i, fp, m), range); i += 1 }
        return try m.callBuiltin(builtin, base: mark, count: n, ownedFrom: 0, named: nil, at: range)
    }
    override var callRange: SourceRange? { range }
}

/// A call with no arguments of a value (`f()`), without building an argument array.
final class Call0Node: Node {
    let callee: Node
    let range: SourceRange
    let calleeSlot: Int
    let closureTag = Borrow.closureTag
    init(callee: Node, range: SourceRange) { self.callee = callee; self.range = range; calleeSlot = slotOf(callee) }
    /// The call of a synchronous closure in a plain local, borrowed from its slot; nil
    /// when the callee is anything else.
    @inline(__always)
    private func borrowedCall(_ fp: Frame, _ m: Interpreter) throws -> Value? {
        guard calleeSlot >= 0, let borrowed = Borrow.closure(fp + calleeSlot, closureTag) else { return nil }
        return try borrowed._withUnsafeGuaranteedRef { c in
            guard m.runsAtOnce(c, argc: 0) else { return nil }
            return try m.runClosure(c, m.top, argc: 0, range)
        }
    }

    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        if let result = try borrowedCall(fp, m) { return result }
        let f = try callee.eval(fp, m)
        if case .closure(let c) = f, m.runsAtOnce(c, argc: 0) {
            return try m.runClosure(c, m.top, argc: 0, range)
        }
        if case .builtin(let b) = f { return try m.callBuiltin(b, base: m.top, count: 0, named: nil, at: range) }
        return try m.invoke(f, [], named: nil, range: range)
    }
    // A synchronous callee runs at once, as in `eval` (the engine's `body()` of a node
    // that does not suspend): no trip through the fiber's call registers.
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        if a.state != 0 { return f.done(input) }
        if let result = try borrowedCall(a.fp, f.m) { return f.done(result) }
        a.state = 1
        return f.call(try callee.eval(a.fp, f.m), [], nil)
    }
    // The same where a block meets the call: no activation when it runs at once.
    override func entry(_ fp: Frame, _ m: Interpreter, value: inout Value) throws -> Unmanaged<Node>? {
        if let result = try borrowedCall(fp, m) { value = result; return nil }
        return .passUnretained(self)
    }
    override var callRange: SourceRange? { range }
}

/// A call with one positional argument (`fib(n - 1)`).
final class Call1Node: Node {
    let callee: Node
    let a0: Node
    let range: SourceRange
    /// The callee's slot when it is a plain local and the argument inert (`Borrow`), or -1.
    let calleeSlot: Int
    let closureTag = Borrow.closureTag
    init(callee: Node, a0: Node, range: SourceRange) {
        self.callee = callee; self.a0 = a0; self.range = range
        calleeSlot = Borrow.isInert(a0) ? slotOf(callee) : -1
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        if calleeSlot >= 0, let borrowed = Borrow.closure(fp + calleeSlot, closureTag) {
            if borrowed._withUnsafeGuaranteedRef({ c in m.runsAtOnce(c, argc: 1) }) {
                // The argument moves into the frame: a copy would retain and release it.
                let nfp = m.top
                nfp.initialize(to: try a0.eval(fp, m))
                return try borrowed._withUnsafeGuaranteedRef { c in try m.runClosure(c, nfp, argc: 1, range) }
            }
        }
        let f = try callee.eval(fp, m)
        let x = try a0.eval(fp, m)
        if case .closure(let c) = f, m.runsAtOnce(c, argc: 1) { return try callNow(c, x, m) }
        if case .builtin(let b) = f {
            let mark = m.top
            defer { m.pop(to: mark) }
            try m.push(x, range)
            return try m.callBuiltin(b, base: mark, count: 1, ownedFrom: 0, named: nil, at: range)
        }
        return try m.invoke(f, [x], named: nil, range: range)
    }
    // A synchronous closure runs at once, as in `eval`.
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        if a.state != 0 { return f.done(input) }
        let m = f.m
        let callee = try self.callee.eval(a.fp, m)
        let x = try a0.eval(a.fp, m)
        if case .closure(let c) = callee, m.runsAtOnce(c, argc: 1) { return f.done(try callNow(c, x, m)) }
        a.state = 1
        return f.call(callee, x)
    }
    /// Runs `c` with `x`, which moves into its frame (a copy would retain and release it).
    @inline(__always)
    private func callNow(_ c: Closure, _ x: consuming Value, _ m: Interpreter) throws -> Value {
        let nfp = m.top
        nfp.initialize(to: x)
        return try m.runClosure(c, nfp, argc: 1, range)
    }
    override var callRange: SourceRange? { range }
}

/// A call with two positional arguments.
final class Call2Node: Node {
    let callee: Node
    let a0: Node, a1: Node
    let range: SourceRange
    init(callee: Node, a0: Node, a1: Node, range: SourceRange) {
        self.callee = callee; self.a0 = a0; self.a1 = a1; self.range = range
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let f = try callee.eval(fp, m)
        let x = try a0.eval(fp, m), y = try a1.eval(fp, m)
        if case .closure(let c) = f, m.runsAtOnce(c, argc: 2) { return try callNow(c, x, y, m) }
        if case .builtin(let b) = f {
            let mark = m.top
            defer { m.pop(to: mark) }
            try m.push(x, range)
            try m.push(y, range)
            return try m.callBuiltin(b, base: mark, count: 2, ownedFrom: 0, named: nil, at: range)
        }
        return try m.invoke(f, [x, y], named: nil, range: range)
    }
    // A synchronous closure runs at once, as in `eval`.
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        if a.state != 0 { return f.done(input) }
        let m = f.m
        let callee = try self.callee.eval(a.fp, m)
        let x = try a0.eval(a.fp, m), y = try a1.eval(a.fp, m)
        if case .closure(let c) = callee, m.runsAtOnce(c, argc: 2) { return f.done(try callNow(c, x, y, m)) }
        a.state = 1
        return f.call(callee, x, y)
    }
    /// Runs `c` with `x` and `y`, which move into its frame.
    @inline(__always)
    private func callNow(_ c: Closure, _ x: consuming Value, _ y: consuming Value, _ m: Interpreter) throws -> Value {
        let nfp = m.top
        nfp.initialize(to: x)
        (nfp + 1).initialize(to: y)
        return try m.runClosure(c, nfp, argc: 2, range)
    }
    override var callRange: SourceRange? { range }
}

/// `receiver.name(args)`: a map's function-valued entry if it has one (modules, records of
/// functions), otherwise the method of the receiver's type.
final class MethodCallNode: Node {
    let receiver: Node
    let name: String
    let key: StringBox
    let id: Int
    let args: CompiledArguments
    let range: SourceRange
    /// The receiver's slot when it is a plain local and the arguments are inert and
    /// positional (`xs.push(x)`): it is lent to the method from its slot (`Borrow`), or -1.
    let receiverSlot: Int
    init(receiver: Node, name: String, id: Int, args: CompiledArguments, range: SourceRange) {
        self.receiver = receiver; self.name = name; self.key = StringBox(name); self.id = id
        self.args = args; self.range = range
        receiverSlot = args.named.isEmpty && args.positional.allSatisfy(Borrow.isInert) ? slotOf(receiver) : -1
    }

    /// Calls builtin method `b` with the receiver, then the arguments, in a window of the
    /// value stack (no array).
    @inline(__always)
    private func callMethod(_ b: Builtin, receiver: consuming Value, _ named: Bool, _ fp: Frame, _ m: Interpreter,
                            unused: Bool) throws -> Value {
        let mark = m.top
        defer { m.pop(to: mark) }
        try m.push(consume receiver, range)
        let list = args.list
        var i = 0
        while i < list.count { try m.push(try list.eval(i, fp, m), range); i += 1 }
        let named = named ? try args.named.map { ($0.0, try $0.1.eval(fp, m)) } : nil
        return try m.callBuiltin(b, base: mark, count: m.top - mark, ownedFrom: 0, named: named, unused: unused, at: range)
    }

    /// Calls builtin method `b` with the value in `slot` as its receiver, lent: the window
    /// holds the receiver's bits, unretained, and forgets them after the call. (No argument
    /// can assign the slot, and nothing else can: a local another function sees is a cell.)
    @inline(__always)
    private func callLent(_ b: Builtin, receiver slot: Frame, _ fp: Frame, _ m: Interpreter, unused: Bool) throws -> Value {
        let mark = m.top
        try m.pushLent(slot, range)
        defer { m.forget(mark, 0..<1); m.pop(to: mark) }
        let list = args.list
        var i = 0
        while i < list.count { try m.push(try list.eval(i, fp, m), range); i += 1 }
        return try m.callBuiltin(b, base: mark, count: m.top - mark, ownedFrom: 1, named: nil, unused: unused, at: range)
    }

    enum Target { case value(Value), method(Builtin) }

    func target(_ r: Value, _ m: Interpreter) throws -> Target {
        if case .map(let map) = r, let f = map.get(box: key) { return .value(f) }
        if case .object(let o) = r, let f = o.member(name) ?? o.method(name, interpreter: m) { return .value(f) }
        if let b = m.method(id, for: r) { return .method(b) }
        var message = "\(r.typeName) has no method '\(name)'"
        if case .map = r { message = "map has no key or method '\(name)'" }
        let names = m.methodNames(for: r)
        if let near = Suggest.closest(to: name, in: names) { message += "; did you mean '\(near)'?" }
        throw m.error(ErrorKind.type, message, at: range)
    }

    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value { try call(fp, m, unused: false) }

    /// As a statement: a method that changes its receiver (`xs.push(x)`) does not give
    /// it back.
    override func exec(_ fp: Frame, _ m: Interpreter) throws { _ = try call(fp, m, unused: true) }

    @inline(__always)
    private func call(_ fp: Frame, _ m: Interpreter, unused: Bool) throws -> Value {
        if receiverSlot >= 0 {
            let slot = fp + receiverSlot
            switch ValueKind(slot.pointee) {
            case .map, .object: break
            default:
                if let b = m.methodRef(id, for: slot.pointee) {
                    return try b._withUnsafeGuaranteedRef { try callLent($0, receiver: slot, fp, m, unused: unused) }
                }
            }
        }
        let r = try receiver.eval(fp, m)
        // A method of a list, string, number…: the builtin is held unretained. (A map's
        // field or an object's member can take a method's place: those go to `target`.)
        switch r {
        case .map, .object: break
        default:
            if let b = m.methodRef(id, for: r) {
                return try b._withUnsafeGuaranteedRef { try callMethod($0, receiver: r, !args.named.isEmpty, fp, m, unused: unused) }
            }
        }
        switch try target(r, m) {
        case .value(let f):
            let (values, named) = try args.evaluate(fp, m)
            return try m.invoke(f, values, named: named, range: range)
        case .method(let b):
            return try callMethod(b, receiver: r, !args.named.isEmpty, fp, m, unused: unused)
        }
    }

    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        if a.state != 0 { return f.done(input) }
        a.state = 1
        let r = try receiver.eval(a.fp, f.m)
        let (values, named) = try args.evaluate(a.fp, f.m)
        switch try target(r, f.m) {
        case .value(let callee): return f.call(callee, values, named)
        case .method(let b): return f.call(.builtin(b), [r] + values, named)
        }
    }
    override var callRange: SourceRange? { range }
}

/// Makes a closure, capturing the variables in the given slots of the current frame.
///
/// A captured variable lives in its slot until a closure captures it; then it moves into a
/// cell and the slot refers to the cell, which every later closure shares. The first
/// closure to capture a variable of its own, when it captures nothing else, is that cell
/// (`Closure.ownsCapture`): a closure made in a loop for a variable of the loop's body
/// (`let counter = i; fs.push(fn() { … counter … })`) is one object, not two.
final class MakeClosureNode: Node {
    let proto: FunctionProto
    let captureSlots: [Int]
    init(proto: FunctionProto, captureSlots: [Int]) { self.proto = proto; self.captureSlots = captureSlots }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        if captureSlots.isEmpty { return .closure(Closure(proto: proto, captures: [])) }
        if captureSlots.count == 1 {
            let slot = fp + captureSlots[0]
            if case .cell(let c) = slot.pointee { return .closure(Closure(proto: proto, capture: c)) }
            let closure = Closure(proto: proto, owning: slot.move())
            slot.initialize(to: .cell(closure))
            return .closure(closure)
        }
        var cells: [Cell] = []
        cells.reserveCapacity(captureSlots.count)
        for s in captureSlots {
            let slot = fp + s
            if case .cell(let c) = slot.pointee {
                cells.append(c)
            } else {
                let c = Cell(slot.move())
                slot.initialize(to: .cell(c))
                cells.append(c)
            }
        }
        return .closure(Closure(proto: proto, captures: cells))
    }
}

/// Edit distance suggestions for did-you-mean notes.
public enum Suggest {
    public static func closest(to name: String, in candidates: [String]) -> String? {
        let limit = max(1, name.count / 3)
        var best: (String, Int)? = nil
        for c in candidates where c != name {
            let d = distance(name, c)
            if d <= limit && d < name.count && (best == nil || d < best!.1) { best = (c, d) }
        }
        return best?.0
    }

    /// Edits between two names, a swap of neighbouring letters counting as one
    /// (optimal string alignment): `nmae` is one edit from `name`.
    static func distance(_ a: String, _ b: String) -> Int {
        let x = Array(a), y = Array(b)
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        var d = Array(repeating: Array(repeating: 0, count: y.count + 1), count: x.count + 1)
        for i in 0...x.count { d[i][0] = i }
        for j in 0...y.count { d[0][j] = j }
        for i in 1...x.count {
            for j in 1...y.count {
                let cost = x[i - 1] == y[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, x[i - 1] == y[j - 2], x[i - 2] == y[j - 1] {
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
                }
            }
        }
        return d[x.count][y.count]
    }
}
