import FlowSyntax

/// A compiled expression or statement: a final subclass per operation, so evaluation is
/// one virtual call per node — no switch over syntax, no name lookup.
///
/// `eval` is the synchronous path every pure function takes. `evalAsync` exists for nodes
/// that may suspend (`yields`); parents call it only for such children, so code that
/// cannot suspend never enters `async`. Statements return nil and report break, continue
/// and return through `Interpreter.signal`.
class Node {
    /// True when evaluating this node may suspend (it calls something that can).
    @exclusivity(unchecked) var yields = false

    func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        fatalError("\(type(of: self)) has no synchronous form")
    }

    /// The Swift async form, for the few nodes whose work is Swift async code (parallel
    /// branches, tasks, channels): `step` waits for it.
    func evalAsync(_ fp: Frame, _ m: Interpreter) async throws -> Value {
        try eval(fp, m)
    }

    /// One step of this node on the async path (`Fiber`). `a.state` is 0 when the node
    /// starts; `input` is the value of what it last asked for. A node without a stepped
    /// form waits for its Swift async form, unless it cannot suspend.
    func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        if a.state == 0 {
            // A node that cannot suspend (the whole body of a flow like `return x + 1`)
            // is evaluated here: a wait would cost it a Swift task.
            if !yields { return f.done(try eval(a.fp, f.m)) }
            a.state = 1
            let fp = a.fp, m = f.m
            return f.wait { try await self.evalAsync(fp, m) }
        }
        return f.done(input)
    }

    /// On a fiber, the node a block runs where it meets this statement, which may
    /// suspend: the statement itself, or nil when it ran here, its value in `value`. An
    /// `if` whose condition cannot suspend chooses its branch here, so the branch runs
    /// without an activation of the `if` (a node of the engine meets two such `if`s).
    func entry(_ fp: Frame, _ m: Interpreter, value: inout Value) throws -> Unmanaged<Node>? {
        .passUnretained(self)
    }

    /// The same for a statement whose value nobody reads (a block's, a loop's body): an
    /// assignment gives its value's entry instead of taking an activation of its own, and
    /// stores the value when the block hands it back (`resumed`).
    func statementEntry(_ fp: Frame, _ m: Interpreter) throws -> Unmanaged<Node>? {
        var unused = Value.nilValue
        return try entry(fp, m, value: &unused)
    }

    /// What the statement does with the value of its `statementEntry`, which suspended
    /// and has finished: nothing, but an assignment stores it.
    func resumed(_ fp: Frame, _ value: Value) {}

    /// Whether `statementEntry` is an assignment's (its value then goes to `resumed`, so
    /// a block's last statement cannot run in the block's place).
    var assigns: Bool { false }

    /// An assignment's `statementEntry`: its value's entry, or nil when the value came at
    /// once and is stored (`resumed`, as when it comes back later).
    @inline(__always) final func assignmentEntry(_ value: Node, _ fp: Frame, _ m: Interpreter) throws -> Unmanaged<Node>? {
        var v = Value.nilValue
        if let next = try value.entry(fp, m, value: &v) { return next }
        resumed(fp, v)
        return nil
    }

    /// Offered an error raised while this node was at work (by its own step or by what
    /// it asked for): what comes next if the node handles it, nil to let it go on.
    func unwind(_ f: Fiber, _ a: inout Fiber.Activation, _ error: Error) throws -> Step? { nil }

    /// Where the calls this node asks for are made from, for tracebacks.
    var callRange: SourceRange? { nil }

    /// Evaluates as a condition. Comparisons override it to skip making a `Value`.
    func evalBool(_ fp: Frame, _ m: Interpreter) throws -> Bool {
        try eval(fp, m).isTruthy
    }

    /// Whether the value is nil (`x == nil`). An index into a borrowed list overrides it
    /// to look at the item in place instead of copying it out.
    func evalIsNil(_ fp: Frame, _ m: Interpreter) throws -> Bool {
        if case .nilValue = try eval(fp, m) { return true }
        return false
    }

    /// Runs for effect only (a statement whose value nobody reads). Statements override it
    /// so no `Value` is made and destroyed.
    func exec(_ fp: Frame, _ m: Interpreter) throws {
        _ = try eval(fp, m)
    }
}

extension Node {
    /// Evaluates a child from Swift async code: on a fiber only if it may suspend.
    @inline(__always)
    func run(_ n: Node, _ fp: Frame, _ m: Interpreter) async throws -> Value {
        n.yields ? try await Fiber.evaluate(n, fp, m) : try n.eval(fp, m)
    }
}

/// `nil`: no payload to copy.
final class NilNode: Node {
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value { .nilValue }
    override func exec(_ fp: Frame, _ m: Interpreter) throws {}
    override func evalBool(_ fp: Frame, _ m: Interpreter) throws -> Bool { false }
}

final class ConstNode: Node {
    let value: Value
    init(_ value: Value) { self.value = value }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value { value }
}

// MARK: - Variables

final class LocalGet: Node {
    let slot: Int
    init(_ slot: Int) { self.slot = slot }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value { fp[slot] }
}

final class LocalSet: Node {
    let slot: Int
    let value: Node
    init(_ slot: Int, _ value: Node) { self.slot = slot; self.value = value }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        fp[slot] = try value.eval(fp, m)
        return .nilValue
    }
    override func exec(_ fp: Frame, _ m: Interpreter) throws {
        fp[slot] = try value.eval(fp, m)
    }
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        if a.state == 0, value.yields { a.state = 1; return .child(value) }
        a.fp[slot] = a.state == 0 ? try value.eval(a.fp, f.m) : input
        return f.done(.nilValue)
    }
    override func statementEntry(_ fp: Frame, _ m: Interpreter) throws -> Unmanaged<Node>? {
        try assignmentEntry(value, fp, m)
    }
    override func resumed(_ fp: Frame, _ value: Value) { fp[slot] = value }
    override var assigns: Bool { true }
}

/// Reads a variable that a closure captures (or one captured from an enclosing function):
/// from its cell once a closure has boxed it, before that from its slot.
final class CellGet: Node {
    let slot: Int
    init(_ slot: Int) { self.slot = slot }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        if case .cell(let c) = fp[slot] { return c.value }
        return fp[slot]
    }
}

final class CellSet: Node {
    let slot: Int
    let value: Node
    init(_ slot: Int, _ value: Node) { self.slot = slot; self.value = value }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        assign(fp, try value.eval(fp, m))
        return .nilValue
    }
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        if a.state == 0, value.yields { a.state = 1; return .child(value) }
        assign(a.fp, a.state == 0 ? try value.eval(a.fp, f.m) : input)
        return f.done(.nilValue)
    }
    override func statementEntry(_ fp: Frame, _ m: Interpreter) throws -> Unmanaged<Node>? {
        try assignmentEntry(value, fp, m)
    }
    override func resumed(_ fp: Frame, _ value: Value) { assign(fp, value) }
    override var assigns: Bool { true }
    /// Into the variable's cell once a closure has boxed it, before that into its slot.
    @inline(__always) private func assign(_ fp: Frame, _ v: Value) {
        if case .cell(let c) = fp[slot] { c.value = v } else { fp[slot] = v }
    }
}

final class GlobalGet: Node {
    let cell: GlobalCell
    init(_ cell: GlobalCell) { self.cell = cell }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value { cell.value }
}

/// Reads a top-level `let` from a function, which may run before the `let` has.
final class GlobalGetChecked: Node {
    let cell: GlobalCell
    let range: SourceRange
    init(_ cell: GlobalCell, _ range: SourceRange) { self.cell = cell; self.range = range }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        guard cell.isDefined else {
            throw m.error(ErrorKind.name, "'\(cell.name)' is used before its 'let' has run", at: range)
        }
        return cell.value
    }
}

final class GlobalSet: Node {
    let cell: GlobalCell
    let value: Node
    init(_ cell: GlobalCell, _ value: Node) { self.cell = cell; self.value = value }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        cell.value = try value.eval(fp, m)
        cell.isDefined = true
        return .nilValue
    }
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        if a.state == 0, value.yields { a.state = 1; return .child(value) }
        cell.value = a.state == 0 ? try value.eval(a.fp, f.m) : input
        cell.isDefined = true
        return f.done(.nilValue)
    }
}

// MARK: - Sequencing

final class BlockNode: Node {
    let statements: [Node]
    let children: NodeArray
    /// The last statement is an assignment (`assigns`): its value is stored, not the block's.
    let lastAssigns: Bool
    init(_ statements: [Node]) {
        self.statements = statements; children = NodeArray(statements)
        lastAssigns = statements.last?.assigns ?? false
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        var i = 0
        let last = children.count - 1
        while i < last {
            try children.exec(i, fp, m)
            if m.signal != .none { return .nilValue }
            i += 1
        }
        return try children.eval(last, fp, m)
    }
    override func exec(_ fp: Frame, _ m: Interpreter) throws {
        var i = 0
        let n = children.count
        while i < n {
            try children.exec(i, fp, m)
            if m.signal != .none { return }
            i += 1
        }
    }
    // State i > 0: statement i - 1 suspended (`statementEntry`) and has given `input`.
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        let m = f.m
        let n = children.count
        let fp = a.fp
        var i = Int(a.state)
        if i > 0 {
            children.ref(i - 1)._withUnsafeGuaranteedRef { $0.resumed(fp, input) }
            if m.signal != .none || i == n { return f.done(.nilValue) }
        }
        // Statements are read unretained (`NodeArray`): the block keeps them.
        while i < n - 1 {
            i += 1
            if children.yields(i - 1) {
                if let next = try children.ref(i - 1)._withUnsafeGuaranteedRef({ try $0.statementEntry(fp, m) }) {
                    a.state = Int32(i)
                    return .enter(next)
                }
            } else {
                try children.exec(i - 1, fp, m)
            }
            if m.signal != .none { return f.done(.nilValue) }
        }
        if n == 0 { return f.done(.nilValue) }
        // The last statement's value is the block's: it runs in the block's place.
        if children.yields(n - 1) {
            if lastAssigns {
                if let next = try children.ref(n - 1)._withUnsafeGuaranteedRef({ try $0.statementEntry(fp, m) }) {
                    a.state = Int32(n)
                    return .enter(next)
                }
                return f.done(.nilValue)
            }
            var value = Value.nilValue
            if let next = try children.ref(n - 1)._withUnsafeGuaranteedRef({ try $0.entry(fp, m, value: &value) }) {
                return .replace(next)
            }
            return f.done(value)
        }
        return f.done(try children.eval(n - 1, fp, m))
    }
}

/// A loop's body as its statements, which the loop runs itself: a block's `exec` was a
/// call more an iteration (loop.flow: 223 → 199 instructions an iteration).
struct LoopBody {
    let statements: NodeArray
    init(_ body: Node) {
        if let b = body as? BlockNode {
            statements = b.children
        } else if let b = body as? Block2Node {
            statements = NodeArray([b.first, b.second])
        } else {
            statements = NodeArray([body])
        }
    }
    /// Runs the statements as the block would: up to the first that signals (a `return`,
    /// `break` or `continue`).
    @inline(__always) func exec(_ fp: Frame, _ m: Interpreter) throws {
        let n = statements.count
        var i = 0
        while i < n {
            try statements.exec(i, fp, m)
            if m.signal != .none { return }
            i += 1
        }
    }
}

/// Two statements: the most common block, without the array walk.
final class Block2Node: Node {
    let first: Node
    let second: Node
    /// The second statement is an assignment (`assigns`).
    let secondAssigns: Bool
    init(_ first: Node, _ second: Node) { self.first = first; self.second = second; secondAssigns = second.assigns }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        try first.exec(fp, m)
        if m.signal != .none { return .nilValue }
        return try second.eval(fp, m)
    }
    override func exec(_ fp: Frame, _ m: Interpreter) throws {
        try first.exec(fp, m)
        if m.signal != .none { return }
        try second.exec(fp, m)
    }
    // States: 1 the first statement suspended (`statementEntry`), 2 the second, an
    // assignment, did.
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        let m = f.m
        switch a.state {
        case 0:
            if first.yields {
                if let next = try first.statementEntry(a.fp, m) { a.state = 1; return .enter(next) }
            } else {
                try first.exec(a.fp, m)
            }
        case 1:
            first.resumed(a.fp, input)
        default:
            second.resumed(a.fp, input)
            return f.done(.nilValue)
        }
        if m.signal != .none { return f.done(.nilValue) }
        if second.yields {
            if secondAssigns {
                if let next = try second.statementEntry(a.fp, m) { a.state = 2; return .enter(next) }
                return f.done(.nilValue)
            }
            var value = Value.nilValue
            if let next = try second.entry(a.fp, m, value: &value) { return .replace(next) }
            return f.done(value)
        }
        return f.done(try second.eval(a.fp, m))
    }
}

/// Evaluates parts once into temporary slots, in order, then the body that reads them.
/// How `a + sleep(1)` keeps operators free of `async` (the parts that may suspend are
/// evaluated first, the operator reads their slots), and how `a.b += 1` and
/// `xs[i] *= 2` evaluate their receiver and index once.
final class TempNode: Node {
    let slots: [Int]
    let parts: [Node]
    let body: Node
    init(slots: [Int], parts: [Node], body: Node) {
        self.slots = slots; self.parts = parts; self.body = body
        super.init()
        yields = parts.contains { $0.yields } || body.yields
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        for (s, p) in zip(slots, parts) { fp[s] = try p.eval(fp, m) }
        return try body.eval(fp, m)
    }
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        let fp = a.fp, m = f.m
        var i = Int(a.state)
        // State k in 1…parts.count: part k - 1 has its value; past that, the body.
        if i > parts.count { return f.done(input) }
        if i > 0 { fp[slots[i - 1]] = input }
        while i < parts.count {
            let p = parts[i]
            i += 1
            if p.yields { a.state = Int32(i); return .child(p) }
            fp[slots[i - 1]] = try p.eval(fp, m)
        }
        if body.yields { a.state = Int32(parts.count + 1); return .child(body) }
        return f.done(try body.eval(fp, m))
    }
}

// MARK: - Control flow

/// A condition of the form `local < c` (any of < <= > >= with an int constant), tested
/// inline by `if` and `while` instead of through a child node.
struct InlineCompare {
    let slot: Int
    let c: Int
    let kind: CompareNode.Kind
    init?(_ n: Node) {
        guard let cmp = n as? CompareLocalConstNode else { return nil }
        slot = cmp.slot; c = cmp.c; kind = cmp.kind
    }
    /// The result, or nil when the local is not an int (the node then decides).
    @inline(__always) func test(_ fp: Frame) -> Bool? {
        guard case .int(let x) = fp[slot] else { return nil }
        switch kind {
        case .less: return x < c
        case .lessEqual: return x <= c
        case .greater: return x > c
        case .greaterEqual: return x >= c
        }
    }
}

final class IfNode: Node {
    let condition: Node
    let then: Node
    /// A `NilNode` when there is no `else`: not optional, so evaluating it costs no retain.
    let otherwise: Node
    let inline: InlineCompare?
    init(_ condition: Node, _ then: Node, _ otherwise: Node?) {
        self.condition = condition; self.then = then; self.otherwise = otherwise ?? NilNode()
        inline = InlineCompare(condition)
    }
    @inline(__always) func test(_ fp: Frame, _ m: Interpreter) throws -> Bool {
        if let i = inline, let r = i.test(fp) { return r }
        return try condition.evalBool(fp, m)
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        if try test(fp, m) { return try then.eval(fp, m) }
        return try otherwise.eval(fp, m)
    }
    override func exec(_ fp: Frame, _ m: Interpreter) throws {
        if try test(fp, m) { try then.exec(fp, m) } else { try otherwise.exec(fp, m) }
    }
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        let c: Bool
        switch a.state {
        case 0:
            if condition.yields { a.state = 1; return .child(condition) }
            c = try test(a.fp, f.m)
        default: c = input.isTruthy  // the condition, which suspended, has finished
        }
        // Not `let branch = c ? then : otherwise`: binding the node retained it.
        if c {
            if then.yields { return .become(then) }
            return f.done(try then.eval(a.fp, f.m))
        }
        if otherwise.yields { return .become(otherwise) }
        return f.done(try otherwise.eval(a.fp, f.m))
    }
    override func entry(_ fp: Frame, _ m: Interpreter, value: inout Value) throws -> Unmanaged<Node>? {
        if condition.yields { return .passUnretained(self) }
        if try test(fp, m) {
            if then.yields { return try then.entry(fp, m, value: &value) }
            value = try then.eval(fp, m)
            return nil
        }
        if otherwise.yields { return try otherwise.entry(fp, m, value: &value) }
        value = try otherwise.eval(fp, m)
        return nil
    }
}

final class WhileNode: Node {
    let condition: Node
    let body: Node
    let statements: LoopBody
    let inline: InlineCompare?
    init(_ condition: Node, _ body: Node) {
        self.condition = condition; self.body = body
        statements = LoopBody(body)
        inline = InlineCompare(condition)
    }
    @inline(__always) func test(_ fp: Frame, _ m: Interpreter) throws -> Bool {
        if let i = inline, let r = i.test(fp) { return r }
        return try condition.evalBool(fp, m)
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        while try test(fp, m) {
            try statements.exec(fp, m)
            if m.signal != .none && m.endsLoop() { break }
        }
        return .nilValue
    }
    // States: 0 test the condition, 1 the condition's value came, 2 the body finished.
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        let fp = a.fp, m = f.m
        var state = a.state
        while true {
            switch state {
            case 0:
                if condition.yields { a.state = 1; return .child(condition) }
                if !(try test(fp, m)) { return f.done(.nilValue) }
            case 1:
                if !input.isTruthy { return f.done(.nilValue) }
            default:
                body.resumed(fp, input)
                if m.signal != .none && m.endsLoop() { return f.done(.nilValue) }
                state = 0
                continue
            }
            if body.yields {
                if let next = try body.statementEntry(fp, m) { a.state = 2; return .enter(next) }
            } else {
                try body.exec(fp, m)
            }
            if m.signal != .none && m.endsLoop() { return f.done(.nilValue) }
            state = 0
        }
    }
}

/// `for x in xs`, `for i, x in xs`, `for k, v in map`, `for c in string`.
final class ForNode: Node {
    let first: Int
    let second: Int?
    let iterable: Node
    let body: Node
    let range: SourceRange
    let statements: LoopBody
    init(first: Int, second: Int?, iterable: Node, body: Node, range: SourceRange) {
        self.first = first; self.second = second
        statements = LoopBody(body)
        self.iterable = iterable; self.body = body; self.range = range
    }

    @inline(__always) func bind(_ fp: Frame, _ a: Value, _ b: Value) {
        fp[first] = a
        if let s = second { fp[s] = b }
    }

    /// The items to visit, as pairs (index or key, value) produced on demand.
    func sequence(_ v: Value, _ m: Interpreter) throws -> (count: () -> Int, item: (Int) -> (Value, Value)) {
        switch v {
        case .list(let l):
            // The live list: items appended during the loop are visited too.
            return ({ l.count }, { i in (.int(i), l[i]) })
        case .map(let map):
            let keys = map.keys
            let values = map.values
            return ({ keys.count }, { i in (keys[i], values[i]) })
        case .string(let s):
            let chars = Array(s.value)
            return ({ chars.count }, { i in (.int(i), .str(String(chars[i]))) })
        default:
            throw m.error(ErrorKind.type, "cannot iterate over a value of type \(v.typeName) (a list, map or string is needed)", at: range)
        }
    }

    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let v = try iterable.eval(fp, m)
        if second == nil, case .list(let l) = v {
            // Fast path: `for x in list`.
            var i = 0
            while i < l.count {
                fp[first] = l[i]
                i += 1
                try statements.exec(fp, m)
                if m.signal != .none && m.endsLoop() { break }
            }
            return .nilValue
        }
        let seq = try sequence(v, m)
        var i = 0
        while i < seq.count() {
            let (a, b) = seq.item(i)
            i += 1
            if second != nil { bind(fp, a, b) } else if case .map = v { bind(fp, a, b) } else { bind(fp, b, .nilValue) }
            try statements.exec(fp, m)
            if m.signal != .none && m.endsLoop() { break }
        }
        return .nilValue
    }

    /// Where a loop on the async path is in its sequence.
    final class Cursor {
        let count: () -> Int
        let item: (Int) -> (Value, Value)
        let pairs: Bool
        var i = 0
        init(_ seq: (count: () -> Int, item: (Int) -> (Value, Value)), pairs: Bool) {
            count = seq.count; item = seq.item; self.pairs = pairs
        }
    }

    // States: 0 start, 1 the iterable's value came, 2 the body finished.
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        let fp = a.fp, m = f.m
        switch a.state {
        case 0, 1:
            if a.state == 0, iterable.yields { a.state = 1; return .child(iterable) }
            let v = a.state == 0 ? try iterable.eval(fp, m) : input
            var pairs = second != nil
            if case .map = v { pairs = true }
            a.extra = Cursor(try sequence(v, m), pairs: pairs)
        default:
            body.resumed(fp, input)
            if m.signal != .none && m.endsLoop() { return f.done(.nilValue) }
        }
        // The cursor is lent: the activation keeps it while the loop runs.
        return try a.lent(Cursor.self)._withUnsafeGuaranteedRef { cursor in
            while cursor.i < cursor.count() {
                let (x, y) = cursor.item(cursor.i)
                cursor.i += 1
                if cursor.pairs { bind(fp, x, y) } else { bind(fp, y, .nilValue) }
                if body.yields {
                    if let next = try body.statementEntry(fp, m) { a.state = 2; return .enter(next) }
                } else {
                    try body.exec(fp, m)
                }
                if m.signal != .none && m.endsLoop() { break }
            }
            return f.done(.nilValue)
        }
    }
}

final class ReturnNode: Node {
    let value: Node
    init(_ value: Node?) { self.value = value ?? NilNode() }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        m.returnValue = try value.eval(fp, m)
        m.signal = .returnValue
        return .nilValue
    }
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        if a.state == 0, value.yields { a.state = 1; return .child(value) }
        let m = f.m
        m.returnValue = a.state == 0 ? try value.eval(a.fp, m) : input
        m.signal = .returnValue
        return f.done(.nilValue)
    }
}

final class SignalNode: Node {
    let signal: Signal
    init(_ signal: Signal) { self.signal = signal }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        m.signal = signal
        return .nilValue
    }
}

final class ThrowNode: Node {
    let value: Node
    let range: SourceRange
    init(_ value: Node, _ range: SourceRange) { self.value = value; self.range = range }
    func raise(_ v: Value, _ m: Interpreter) -> FlowError {
        switch v {
        case .error(let e): return FlowError(ErrorBox(kind: e.kind, message: e.message, data: e.data), at: range)
        case .string(let s): return FlowError(kind: ErrorKind.user, message: s.value, at: range)
        default: return FlowError(kind: ErrorKind.user, message: Printer.repr(v), at: range, data: v)
        }
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        throw raise(try value.eval(fp, m), m)
    }
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        if a.state == 0, value.yields { a.state = 1; return .child(value) }
        throw raise(a.state == 0 ? try value.eval(a.fp, f.m) : input, f.m)
    }
}

/// `try { } catch e if guard { } … finally { }`.
final class TryNode: Node {
    struct Clause {
        let slot: Int?
        let guardNode: Node?
        let body: Node
    }
    let body: Node
    let clauses: [Clause]
    let finally: Node?
    /// The function the `try` is in, which the traceback a clause sees ends with.
    let function: String
    init(body: Node, clauses: [Clause], finally: Node?, function: String) {
        self.body = body; self.clauses = clauses; self.finally = finally; self.function = function
    }

    /// Finds the clause for an error, binding it; nil when none matches.
    func select(_ e: FlowError, _ fp: Frame, _ m: Interpreter) throws -> Clause? {
        e.value.trace = e.frames + [TraceFrame(function: function, range: e.pending)].filter { $0.range != nil }
        let v = Value.error(e.value)
        for c in clauses {
            if let s = c.slot { fp[s] = v }
            if let g = c.guardNode, !(try g.evalBool(fp, m)) { continue }
            return c
        }
        return nil
    }

    func runFinally(_ fp: Frame, _ m: Interpreter) throws {
        guard let f = finally else { return }
        let savedSignal = m.signal
        let savedValue = m.returnValue
        m.signal = .none
        _ = try f.eval(fp, m)
        if m.signal == .none { m.signal = savedSignal; m.returnValue = savedValue }
    }

    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        var result: Value
        do {
            result = try body.eval(fp, m)
        } catch let e as FlowError {
            do {
                guard let c = try select(e, fp, m) else { throw e }
                result = try c.body.eval(fp, m)
            } catch {
                try runFinally(fp, m)
                throw error
            }
        }
        try runFinally(fp, m)
        return result
    }

    // States: 1 in the body, 2 in a catch clause, 3 finishing (an error now passes).
    // Errors of the body that are not Flow errors (cancellation) pass without `finally`,
    // as in `eval`; any error of a clause runs `finally` first.
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        let fp = a.fp, m = f.m
        let result: Value
        switch a.state {
        case 0:
            // In the body from here: an error its entry raises is this `try`'s to catch.
            a.state = 1
            if body.yields {
                var value = Value.nilValue
                if let next = try body.entry(fp, m, value: &value) { return .enter(next) }
                result = value
            } else {
                result = try body.eval(fp, m)
            }
        default:
            result = input
        }
        a.state = 3
        try runFinally(fp, m)
        return f.done(result)
    }

    override func unwind(_ f: Fiber, _ a: inout Fiber.Activation, _ error: Error) throws -> Step? {
        let fp = a.fp, m = f.m
        switch a.state {
        case 1:
            guard let e = error as? FlowError else { return nil }
            a.state = 3
            let clause: Clause?
            do { clause = try select(e, fp, m) } catch {
                try runFinally(fp, m)
                throw error
            }
            guard let c = clause else {
                try runFinally(fp, m)
                return nil
            }
            a.state = 2
            if c.body.yields { return .child(c.body) }
            let v: Value
            do { v = try c.body.eval(fp, m) } catch {
                a.state = 3
                try runFinally(fp, m)
                throw error
            }
            a.state = 3
            try runFinally(fp, m)
            return f.done(v)
        case 2:
            a.state = 3
            try runFinally(fp, m)
            return nil
        default:
            return nil
        }
    }
}

final class AndNode: Node {
    let left: Node
    let right: Node
    init(_ left: Node, _ right: Node) { self.left = left; self.right = right }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let l = try left.eval(fp, m)
        return l.isTruthy ? try right.eval(fp, m) : l
    }
    override func evalBool(_ fp: Frame, _ m: Interpreter) throws -> Bool {
        try left.evalBool(fp, m) && right.evalBool(fp, m)
    }
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        try shortCircuit(left, right, decidedBy: false, f, &a, input)
    }
}

final class OrNode: Node {
    let left: Node
    let right: Node
    init(_ left: Node, _ right: Node) { self.left = left; self.right = right }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let l = try left.eval(fp, m)
        return l.isTruthy ? l : try right.eval(fp, m)
    }
    override func evalBool(_ fp: Frame, _ m: Interpreter) throws -> Bool {
        try left.evalBool(fp, m) || right.evalBool(fp, m)
    }
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        try shortCircuit(left, right, decidedBy: true, f, &a, input)
    }
}

/// What a two-part step does after its first part: give a value, or evaluate a node
/// whose value is the result.
enum Then {
    case value(Value)
    case node(Node)
}

extension Node {
    /// The step of a node in two parts (`and`, `or`, `match`): the value of `first`
    /// (state 0: evaluated, or asked for if it may suspend; state 1: it came), then what
    /// `then` makes of it (state 2: a node it chose has given its value).
    @inline(__always)
    func twoParts(_ first: Node, _ f: Fiber, _ a: inout Fiber.Activation, _ input: Value,
                  then: (Value) throws -> Then) throws -> Step {
        let v: Value
        switch a.state {
        case 0:
            if first.yields { a.state = 1; return .child(first) }
            v = try first.eval(a.fp, f.m)
        case 1: v = input
        default: return f.done(input)
        }
        switch try then(v) {
        case .value(let result): return f.done(result)
        case .node(let n):
            if n.yields { a.state = 2; return .child(n) }
            return f.done(try n.eval(a.fp, f.m))
        }
    }

    /// `and` (`decided` false) and `or` (true): `left` when its truth decides, else `right`.
    @inline(__always)
    func shortCircuit(_ left: Node, _ right: Node, decidedBy decided: Bool, _ f: Fiber,
                      _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        try twoParts(left, f, &a, input) { l in l.isTruthy == decided ? .value(l) : .node(right) }
    }
}

/// `match subject { pattern if guard => body … }`.
final class MatchNode: Node {
    struct Arm {
        let pattern: PatternNode
        let guardNode: Node?
        let body: Node
    }
    let subject: Node
    let arms: [Arm]
    let range: SourceRange
    init(subject: Node, arms: [Arm], range: SourceRange) {
        self.subject = subject; self.arms = arms; self.range = range
    }
    func select(_ v: Value, _ fp: Frame, _ m: Interpreter) throws -> Arm {
        for arm in arms {
            guard try arm.pattern.match(v, fp, m) else { continue }
            if let g = arm.guardNode, !(try g.evalBool(fp, m)) { continue }
            return arm
        }
        throw m.error(ErrorKind.value, "no match arm matches \(Printer.repr(v, limit: 60))", at: range)
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        try select(try subject.eval(fp, m), fp, m).body.eval(fp, m)
    }
    override func step(_ f: Fiber, _ a: inout Fiber.Activation, _ input: Value) throws -> Step {
        let fp = a.fp
        return try twoParts(subject, f, &a, input) { v in .node(try select(v, fp, f.m).body) }
    }
}

/// A compiled pattern: tests a value and binds names to slots.
class PatternNode {
    func match(_ v: Value, _ fp: Frame, _ m: Interpreter) throws -> Bool { true }
}

final class WildcardPattern: PatternNode {}

final class BindPattern: PatternNode {
    let slot: Int
    init(slot: Int) { self.slot = slot }
    override func match(_ v: Value, _ fp: Frame, _ m: Interpreter) throws -> Bool {
        fp[slot] = v
        return true
    }
}

final class LiteralPattern: PatternNode {
    let value: Value
    init(_ value: Value) { self.value = value }
    override func match(_ v: Value, _ fp: Frame, _ m: Interpreter) throws -> Bool { Ops.equal(v, value) }
}

final class ListPattern: PatternNode {
    let items: [PatternNode]
    let rest: BindPattern?
    init(items: [PatternNode], rest: BindPattern?) { self.items = items; self.rest = rest }
    override func match(_ v: Value, _ fp: Frame, _ m: Interpreter) throws -> Bool {
        guard case .list(let l) = v else { return false }
        if rest == nil ? l.count != items.count : l.count < items.count { return false }
        for (i, p) in items.enumerated() where !(try p.match(l[i], fp, m)) { return false }
        if let r = rest { _ = try r.match(.list(Array(l.items[items.count...])), fp, m) }
        return true
    }
}

final class MapPattern: PatternNode {
    let fields: [(String, PatternNode)]
    init(fields: [(String, PatternNode)]) { self.fields = fields }
    override func match(_ v: Value, _ fp: Frame, _ m: Interpreter) throws -> Bool {
        guard case .map(let map) = v else { return false }
        for (k, p) in fields {
            guard let x = map.get(k), try p.match(x, fp, m) else { return false }
        }
        return true
    }
}

final class AlternativesPattern: PatternNode {
    let options: [PatternNode]
    init(_ options: [PatternNode]) { self.options = options }
    override func match(_ v: Value, _ fp: Frame, _ m: Interpreter) throws -> Bool {
        for o in options where try o.match(v, fp, m) { return true }
        return false
    }
}

/// The children of a node, for iteration without retains: `for n in array` retains the
/// array and each element on every pass. The nodes are owned by `nodes`; `raw` holds
/// unretained references to the same objects, valid for as long as the owner lives.
final class NodeArray {
    let nodes: [Node]
    let count: Int
    private let raw: UnsafeMutablePointer<Unmanaged<Node>>

    init(_ nodes: [Node]) {
        self.nodes = nodes
        count = nodes.count
        raw = .allocate(capacity: max(1, nodes.count))
        for (i, n) in nodes.enumerated() { (raw + i).initialize(to: .passUnretained(n)) }
    }

    deinit { raw.deallocate() }

    @inline(__always) func eval(_ i: Int, _ fp: Frame, _ m: Interpreter) throws -> Value {
        try raw[i]._withUnsafeGuaranteedRef { try $0.eval(fp, m) }
    }

    @inline(__always) func exec(_ i: Int, _ fp: Frame, _ m: Interpreter) throws {
        try raw[i]._withUnsafeGuaranteedRef { try $0.exec(fp, m) }
    }

    var yields: Bool { nodes.contains { $0.yields } }

    /// Whether node `i` may suspend, read without a retain.
    @inline(__always) func yields(_ i: Int) -> Bool {
        raw[i]._withUnsafeGuaranteedRef { $0.yields }
    }

    /// Node `i`, unretained (the array keeps it).
    @inline(__always) func ref(_ i: Int) -> Unmanaged<Node> { raw[i] }
}
