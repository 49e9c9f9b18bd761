import FlowSyntax

// Calls of functions defined by `fn` at the top of a module, by positional arguments:
// the hot path of recursive code. The callee is reached through the global cell's
// unretained reference, so a call costs no retain, no array and no lookup.

/// Defines a top-level `fn` when its module starts.
final class DefineFunctionNode: Node {
    let cell: GlobalCell
    let closure: Closure
    init(_ cell: GlobalCell, _ closure: Closure) { self.cell = cell; self.closure = closure }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        cell.define(closure)
        return .nilValue
    }
}

extension Interpreter {
    /// Finishes a direct call: runs the body in the frame the caller filled, pops it.
    /// The caller has initialized the arguments; the rest of the frame is cleared here.
    @inline(__always)
    func runDirect(_ p: FunctionProto, _ fp: Frame, argc: Int, _ range: SourceRange) throws -> Value {
        let size = p.frameSize
        var k = argc
        while k < size { (fp + k).initialize(to: .nilValue); k += 1 }
        return try execute(p.bodyRef, fp, size: size, range) { self.describe(p) }
    }

    /// Runs a direct callee's body in a frame whose arguments the caller initialized.
    @inline(__always)
    func runBody(_ body: Unmanaged<Node>, _ fp: Frame, size: Int, argc: Int, _ cell: GlobalCell, _ range: SourceRange) throws -> Value {
        var k = argc
        while k < size { (fp + k).initialize(to: .nilValue); k += 1 }
        return try execute(body, fp, size: size, range) {
            cell.direct.map { self.describe($0.takeUnretainedValue()) } ?? "fn '\(cell.name)'"
        }
    }

    /// Runs a synchronous closure whose first `argc` arguments the caller initialized at
    /// `fp` (= `top`): clears the rest, places captures, runs the body, pops the frame.
    @inline(__always)
    func runClosure(_ c: Closure, _ fp: Frame, argc: Int, _ range: SourceRange) throws -> Value {
        let p = c.proto
        let size = p.frameSize
        var k = argc
        while k < size { (fp + k).initialize(to: .nilValue); k += 1 }
        let lent = c.lendCaptures(fp, after: argc)
        return try execute(p.bodyRef, fp, size: size, lent: argc..<(argc + lent), range) { self.describe(p) }
    }

    /// The common end of every direct call: push the frame, run the body, turn a `return`
    /// signal into the result, pop the frame (also when the body throws, adding the
    /// callee to the error's traceback).
    @inline(__always)
    func execute(_ body: Unmanaged<Node>, _ fp: Frame, size: Int, lent: Range<Int> = 0..<0, _ range: SourceRange,
                 _ callee: () -> String) throws -> Value {
        top = fp + size
        depth &+= 1
        do {
            var r = try body._withUnsafeGuaranteedRef { try $0.eval(fp, self) }
            if signal == .returnValue { signal = .none; r = returnValue; returnValue = .nilValue }
            forget(fp, lent)
            dropFrame(fp, size)
            top = fp
            depth &-= 1
            return r
        } catch {
            forget(fp, lent)
            dropFrame(fp, size)
            top = fp
            depth &-= 1
            if let e = error as? FlowError { e.unwind(through: callee(), calledFrom: range) }
            throw error
        }
    }

    /// Clears the slots of `fp` in `lent`, which hold references they do not own
    /// (`Closure.lendCaptures`), without releasing them.
    @inline(__always) func forget(_ fp: Frame, _ lent: Range<Int>) {
        var k = lent.lowerBound
        while k < lent.upperBound { (fp + k).initialize(to: .nilValue); k += 1 }
    }

    /// True when a frame of `size` slots fits and the depth limit allows one more call.
    @inline(__always) func hasRoom(_ size: Int) -> Bool {
        depth < maxCallDepth && top + size <= stackEnd
    }

    /// Whether a call of `c` with `argc` arguments runs at once on the value stack:
    /// synchronous, of that arity, with room for its frame.
    @inline(__always) func runsAtOnce(_ c: Closure, argc: Int) -> Bool {
        c.proto.arity == argc && !c.proto.isAsync && hasRoom(c.proto.frameSize)
    }
}

/// `f()` for a top-level `fn f`.
final class CallGlobal0Node: Node {
    let cell: GlobalCell
    let range: SourceRange
    init(cell: GlobalCell, range: SourceRange) { self.cell = cell; self.range = range }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        if let d = cell.direct {
            return try d._withUnsafeGuaranteedRef { p in
                guard p.arity == 0, m.hasRoom(p.frameSize) else { return try m.invoke(cell.value, [], named: nil, range: range) }
                return try m.runDirect(p, m.top, argc: 0, range)
            }
        }
        return try m.invoke(cell.value, [], named: nil, range: range)
    }
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        if a.state != 0 { return f.done(input) }
        a.state = 1
        return f.call(cell.value, [], nil)
    }
    override var callRange: SourceRange? { range }
}

/// `f(x)` for a top-level `fn f`.
final class CallGlobal1Node: Node {
    let cell: GlobalCell
    let a0: Node
    let range: SourceRange
    /// When the argument is `local + c` (or `- c`), it is computed here: `fib(n - 1)`.
    let argSlot: Int, argConst: Int
    init(cell: GlobalCell, a0: Node, range: SourceRange) {
        self.cell = cell; self.a0 = a0; self.range = range
        if let add = a0 as? AddLocalConstNode { argSlot = add.slot; argConst = add.c } else { argSlot = -1; argConst = 0 }
    }
    @inline(__always) func argument(_ fp: Frame, _ m: Interpreter) throws -> Value {
        if argSlot >= 0, case .int(let v) = fp[argSlot] {
            let (r, o) = v.addingReportingOverflow(argConst)
            if !o { return .int(r) }
        }
        return try a0.eval(fp, m)
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let x = try argument(fp, m)
        let size = cell.directFrameSize
        guard cell.directArity == 1, m.hasRoom(size), let body = cell.directBody else {
            return try m.invoke(cell.value, [x], named: nil, range: range)
        }
        // The argument moves into the frame: a copy would retain and release it.
        let nfp = m.top
        nfp.initialize(to: consume x)
        return try m.runBody(body, nfp, size: size, argc: 1, cell, range)
    }
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        if a.state != 0 { return f.done(input) }
        a.state = 1
        return f.call(cell.value, try a0.eval(a.fp, f.m))
    }
    override var callRange: SourceRange? { range }
}

/// `f(x, y)` for a top-level `fn f`.
final class CallGlobal2Node: Node {
    let cell: GlobalCell
    let a0: Node, a1: Node
    let range: SourceRange
    init(cell: GlobalCell, a0: Node, a1: Node, range: SourceRange) {
        self.cell = cell; self.a0 = a0; self.a1 = a1; self.range = range
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let x = try a0.eval(fp, m), y = try a1.eval(fp, m)
        let size = cell.directFrameSize
        guard cell.directArity == 2, m.hasRoom(size), let body = cell.directBody else {
            return try m.invoke(cell.value, [x, y], named: nil, range: range)
        }
        // The arguments move into the frame: a copy would retain and release them.
        let nfp = m.top
        nfp.initialize(to: consume x)
        (nfp + 1).initialize(to: consume y)
        return try m.runBody(body, nfp, size: size, argc: 2, cell, range)
    }
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        if a.state != 0 { return f.done(input) }
        a.state = 1
        let x = try a0.eval(a.fp, f.m), y = try a1.eval(a.fp, f.m)
        return f.call(cell.value, x, y)
    }
    override var callRange: SourceRange? { range }
}

/// `f(a, b, c, …)` for a top-level `fn f`.
final class CallGlobalNNode: Node {
    let cell: GlobalCell
    let args: [Node]
    let list: NodeArray
    let range: SourceRange
    init(cell: GlobalCell, args: [Node], range: SourceRange) {
        self.cell = cell; self.args = args; self.list = NodeArray(args); self.range = range
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        // The arguments are pushed where the callee's frame will start (a call inside one
        // pushes its frame above them): they are in place, with no array and no copies.
        let mark = m.top
        let n = list.count
        var i = 0
        while i < n {
            do { try m.push(try list.eval(i, fp, m), range) } catch {
                m.pop(to: mark)
                throw error
            }
            i += 1
        }
        m.top = mark
        let size = cell.directFrameSize
        if cell.directArity == n, m.hasRoom(size), let body = cell.directBody {
            return try m.runBody(body, mark, size: size, argc: n, cell, range)
        }
        let values = Array(UnsafeBufferPointer(start: mark, count: n))
        dropFrame(mark, n)
        return try m.invoke(cell.value, values, named: nil, range: range)
    }
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        if a.state != 0 { return f.done(input) }
        a.state = 1
        var values: [Value] = []
        values.reserveCapacity(args.count)
        for x in args { values.append(try x.eval(a.fp, f.m)) }
        return f.call(cell.value, values, nil)
    }
    override var callRange: SourceRange? { range }
}
