import FlowSyntax

// Operator nodes. Each has an inline int fast path and falls back to `Ops`. The
// `…Const` variants fuse a constant right operand, the common `n - 1` and `i < limit`.

final class AddNode: Node {
    let l: Node, r: Node, range: SourceRange
    init(_ l: Node, _ r: Node, _ range: SourceRange) { self.l = l; self.r = r; self.range = range }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let a = try l.eval(fp, m), b = try r.eval(fp, m)
        if case .int(let x) = a, case .int(let y) = b {
            let (s, o) = x.addingReportingOverflow(y)
            if !o { return .int(s) }
        }
        return try Ops.add(a, b, range)
    }
}

/// How `x + c` was written, for the slow path: errors name the operator and the order
/// the program used (`x - k` runs as `x + (-k)`).
enum ConstantForm {
    case added, addedFirst, subtracted

    /// The operator applied to values other than two ints.
    @inline(never)
    static func slow(_ form: ConstantForm, _ a: Value, _ c: Int, _ range: SourceRange) throws -> Value {
        switch form {
        case .added: return try Ops.add(a, .int(c), range)
        case .addedFirst: return try Ops.add(.int(c), a, range)
        case .subtracted: return try Ops.subtract(a, .int(-c), range)
        }
    }
}

/// `x + c`, `c + x` or `x - k` (as `x + (-k)`).
final class AddConstNode: Node {
    let l: Node, c: Int, range: SourceRange, form: ConstantForm
    init(_ l: Node, _ c: Int, _ range: SourceRange, form: ConstantForm = .added) {
        self.l = l; self.c = c; self.range = range; self.form = form
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let a = try l.eval(fp, m)
        if case .int(let x) = a {
            let (s, o) = x.addingReportingOverflow(c)
            if !o { return .int(s) }
        }
        return try ConstantForm.slow(form, a, c, range)
    }
}

/// `local == c` / `local != c` with an int constant.
final class EqLocalConstNode: Node {
    let slot: Int, c: Int, negated: Bool
    init(slot: Int, c: Int, negated: Bool) { self.slot = slot; self.c = c; self.negated = negated }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value { .bool(try evalBool(fp, m)) }
    override func evalBool(_ fp: Frame, _ m: Interpreter) throws -> Bool {
        if case .int(let x) = fp[slot] { return (x == c) != negated }
        return Ops.equal(fp[slot], .int(c)) != negated
    }
}

final class SubNode: Node {
    let l: Node, r: Node, range: SourceRange
    init(_ l: Node, _ r: Node, _ range: SourceRange) { self.l = l; self.r = r; self.range = range }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let a = try l.eval(fp, m), b = try r.eval(fp, m)
        if case .int(let x) = a, case .int(let y) = b {
            let (s, o) = x.subtractingReportingOverflow(y)
            if !o { return .int(s) }
        }
        return try Ops.subtract(a, b, range)
    }
}

final class MulNode: Node {
    let l: Node, r: Node, range: SourceRange
    init(_ l: Node, _ r: Node, _ range: SourceRange) { self.l = l; self.r = r; self.range = range }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let a = try l.eval(fp, m), b = try r.eval(fp, m)
        if case .int(let x) = a, case .int(let y) = b {
            let (s, o) = x.multipliedReportingOverflow(by: y)
            if !o { return .int(s) }
        }
        return try Ops.multiply(a, b, range)
    }
}

final class DivNode: Node {
    let l: Node, r: Node, range: SourceRange
    init(_ l: Node, _ r: Node, _ range: SourceRange) { self.l = l; self.r = r; self.range = range }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        try Ops.divide(try l.eval(fp, m), try r.eval(fp, m), range)
    }
}

final class FloorDivNode: Node {
    let l: Node, r: Node, range: SourceRange
    init(_ l: Node, _ r: Node, _ range: SourceRange) { self.l = l; self.r = r; self.range = range }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        try Ops.floorDivide(try l.eval(fp, m), try r.eval(fp, m), range)
    }
}

final class ModNode: Node {
    let l: Node, r: Node, range: SourceRange
    init(_ l: Node, _ r: Node, _ range: SourceRange) { self.l = l; self.r = r; self.range = range }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let a = try l.eval(fp, m), b = try r.eval(fp, m)
        if case .int(let x) = a, case .int(let y) = b, y > 0, x >= 0 { return .int(x % y) }
        return try Ops.remainder(a, b, range)
    }
}

final class NegNode: Node {
    let operand: Node, range: SourceRange
    init(_ operand: Node, _ range: SourceRange) { self.operand = operand; self.range = range }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        try Ops.negate(try operand.eval(fp, m), range)
    }
}

final class NotNode: Node {
    let operand: Node
    init(_ operand: Node) { self.operand = operand }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value { .bool(!(try operand.evalBool(fp, m))) }
    override func evalBool(_ fp: Frame, _ m: Interpreter) throws -> Bool { !(try operand.evalBool(fp, m)) }
}

/// `x == nil` / `x != nil`.
final class IsNilNode: Node {
    let operand: Node, negated: Bool
    init(_ operand: Node, negated: Bool) { self.operand = operand; self.negated = negated }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value { .bool(try evalBool(fp, m)) }
    override func evalBool(_ fp: Frame, _ m: Interpreter) throws -> Bool {
        try operand.evalIsNil(fp, m) != negated
    }
}

final class EqNode: Node {
    let l: Node, r: Node, negated: Bool
    init(_ l: Node, _ r: Node, negated: Bool) { self.l = l; self.r = r; self.negated = negated }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value { .bool(try evalBool(fp, m)) }
    override func evalBool(_ fp: Frame, _ m: Interpreter) throws -> Bool {
        let a = try l.eval(fp, m), b = try r.eval(fp, m)
        if case .int(let x) = a, case .int(let y) = b { return (x == y) != negated }
        return Ops.equal(a, b) != negated
    }
}

/// `<`, `<=`, `>`, `>=`: `order` is the comparison result that makes it true.
final class CompareNode: Node {
    enum Kind { case less, lessEqual, greater, greaterEqual }
    let l: Node, r: Node, kind: Kind, range: SourceRange, op: String
    init(_ l: Node, _ r: Node, _ kind: Kind, _ op: String, _ range: SourceRange) {
        self.l = l; self.r = r; self.kind = kind; self.op = op; self.range = range
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value { .bool(try evalBool(fp, m)) }
    override func evalBool(_ fp: Frame, _ m: Interpreter) throws -> Bool {
        let a = try l.eval(fp, m), b = try r.eval(fp, m)
        if case .int(let x) = a, case .int(let y) = b {
            switch kind {
            case .less: return x < y
            case .lessEqual: return x <= y
            case .greater: return x > y
            case .greaterEqual: return x >= y
            }
        }
        return try slow(a, b)
    }
    func slow(_ a: Value, _ b: Value) throws -> Bool {
        if let x = a.numberValue, let y = b.numberValue, x.isNaN || y.isNaN { return false }
        let c = try Ops.compare(a, b, op, range)
        switch kind {
        case .less: return c < 0
        case .lessEqual: return c <= 0
        case .greater: return c > 0
        case .greaterEqual: return c >= 0
        }
    }
}

/// `local < 10` and friends: no child call for either operand.
final class CompareLocalConstNode: Node {
    let slot: Int, c: Int, kind: CompareNode.Kind, general: CompareNode
    init(slot: Int, c: Int, general: CompareNode) {
        self.slot = slot; self.c = c; self.kind = general.kind; self.general = general
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value { .bool(try evalBool(fp, m)) }
    override func evalBool(_ fp: Frame, _ m: Interpreter) throws -> Bool {
        if case .int(let x) = fp[slot] {
            switch kind {
            case .less: return x < c
            case .lessEqual: return x <= c
            case .greater: return x > c
            case .greaterEqual: return x >= c
            }
        }
        return try general.slow(fp[slot], .int(c))
    }
}

final class InNode: Node {
    let l: Node, r: Node, range: SourceRange
    init(_ l: Node, _ r: Node, _ range: SourceRange) { self.l = l; self.r = r; self.range = range }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value { .bool(try evalBool(fp, m)) }
    override func evalBool(_ fp: Frame, _ m: Interpreter) throws -> Bool {
        let a = try l.eval(fp, m), b = try r.eval(fp, m)
        return try Ops.contains(b, a, range)
    }
}

// MARK: - Fused forms over local slots

/// `local + c` (and `local - c` as `local + -c`).
final class AddLocalConstNode: Node {
    let slot: Int, c: Int, range: SourceRange, form: ConstantForm
    init(slot: Int, c: Int, range: SourceRange, form: ConstantForm = .added) {
        self.slot = slot; self.c = c; self.range = range; self.form = form
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        if case .int(let x) = fp[slot] {
            let (s, o) = x.addingReportingOverflow(c)
            if !o { return .int(s) }
        }
        return try ConstantForm.slow(form, fp[slot], c, range)
    }
}

/// `a op b` for two plain locals.
final class ArithLocalLocalNode: Node {
    enum Op { case add, subtract, multiply }
    let a: Int, b: Int, op: Op, range: SourceRange
    init(a: Int, b: Int, op: Op, range: SourceRange) { self.a = a; self.b = b; self.op = op; self.range = range }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        if case .int(let x) = fp[a], case .int(let y) = fp[b] {
            let (r, o): (Int, Bool)
            switch op {
            case .add: (r, o) = x.addingReportingOverflow(y)
            case .subtract: (r, o) = x.subtractingReportingOverflow(y)
            case .multiply: (r, o) = x.multipliedReportingOverflow(by: y)
            }
            if !o { return .int(r) }
        }
        switch op {
        case .add: return try Ops.add(fp[a], fp[b], range)
        case .subtract: return try Ops.subtract(fp[a], fp[b], range)
        case .multiply: return try Ops.multiply(fp[a], fp[b], range)
        }
    }
}

/// `x % c` for a positive constant.
final class ModConstNode: Node {
    let l: Node, c: Int, range: SourceRange
    init(_ l: Node, _ c: Int, _ range: SourceRange) { self.l = l; self.c = c; self.range = range }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let v = try l.eval(fp, m)
        if case .int(let x) = v {
            let r = x % c
            return .int(r < 0 ? r + c : r)
        }
        return try Ops.remainder(v, .int(c), range)
    }
}

/// `x = x + e`, `x += e` (also -, *) on a plain local: updated in place.
final class UpdateLocalNode: Node {
    let slot: Int, value: Node, op: ArithLocalLocalNode.Op, range: SourceRange
    init(slot: Int, value: Node, op: ArithLocalLocalNode.Op, range: SourceRange) {
        self.slot = slot; self.value = value; self.op = op; self.range = range
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        try exec(fp, m)
        return .nilValue
    }
    override func exec(_ fp: Frame, _ m: Interpreter) throws {
        let v = try value.eval(fp, m)
        if case .int(let x) = fp[slot], case .int(let y) = v {
            let (r, o): (Int, Bool)
            switch op {
            case .add: (r, o) = x.addingReportingOverflow(y)
            case .subtract: (r, o) = x.subtractingReportingOverflow(y)
            case .multiply: (r, o) = x.multipliedReportingOverflow(by: y)
            }
            if !o { fp[slot] = .int(r); return }
        }
        switch op {
        case .add: fp[slot] = try Ops.add(fp[slot], v, range)
        case .subtract: fp[slot] = try Ops.subtract(fp[slot], v, range)
        case .multiply: fp[slot] = try Ops.multiply(fp[slot], v, range)
        }
    }
}

/// `x += e`, `x = x + e` (and -, *) on a captured variable: updated in its cell, or in its
/// slot before a closure has boxed it.
final class UpdateCellNode: Node {
    let slot: Int, value: Node, op: ArithLocalLocalNode.Op, range: SourceRange
    let cellTag = Borrow.cellTag
    init(slot: Int, value: Node, op: ArithLocalLocalNode.Op, range: SourceRange) {
        self.slot = slot; self.value = value; self.op = op; self.range = range
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let v = try value.eval(fp, m)
        // The cell is borrowed from the slot (bound, it was retained and released).
        if let cell = Borrow.object(fp + slot, cellTag, as: Cell.self) {
            try cell._withUnsafeGuaranteedRef { $0.value = try updated($0.value, v) }
        } else if case .cell(let cell) = fp[slot] {
            cell.value = try updated(cell.value, v)
        } else {
            fp[slot] = try updated(fp[slot], v)
        }
        return .nilValue
    }
    @inline(__always) private func updated(_ x: Value, _ y: Value) throws -> Value {
        if case .int(let a) = x, case .int(let b) = y {
            let (r, o): (Int, Bool)
            switch op {
            case .add: (r, o) = a.addingReportingOverflow(b)
            case .subtract: (r, o) = a.subtractingReportingOverflow(b)
            case .multiply: (r, o) = a.multipliedReportingOverflow(by: b)
            }
            if !o { return .int(r) }
        }
        switch op {
        case .add: return try Ops.add(x, y, range)
        case .subtract: return try Ops.subtract(x, y, range)
        case .multiply: return try Ops.multiply(x, y, range)
        }
    }
}

/// `x += c` / `x = x + c` on a plain local with an int constant.
final class IncrementLocalNode: Node {
    let slot: Int, c: Int, range: SourceRange
    init(slot: Int, c: Int, range: SourceRange) { self.slot = slot; self.c = c; self.range = range }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        try exec(fp, m)
        return .nilValue
    }
    override func exec(_ fp: Frame, _ m: Interpreter) throws {
        if case .int(let x) = fp[slot] {
            let (r, o) = x.addingReportingOverflow(c)
            if !o { fp[slot] = .int(r); return }
        }
        fp[slot] = try Ops.add(fp[slot], .int(c), range)
    }
}
