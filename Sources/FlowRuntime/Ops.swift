import FlowSyntax

/// The semantics of Flow's operators on values: the slow paths that the operator nodes
/// fall back to when their int fast path does not apply.
enum Ops {
    static func typeError(_ op: String, _ a: Value, _ b: Value, _ range: SourceRange?) -> FlowError {
        FlowError(kind: ErrorKind.type, message: "'\(op)' cannot combine \(a.typeName) and \(b.typeName)", at: range)
    }

    static func overflow(_ op: String, _ range: SourceRange?) -> FlowError {
        FlowError(kind: ErrorKind.arithmetic, message: "integer overflow in '\(op)': the result does not fit in 64 bits", at: range)
    }

    static func add(_ a: Value, _ b: Value, _ r: SourceRange?) throws -> Value {
        switch (a, b) {
        case (.int(let x), .int(let y)):
            let (v, o) = x.addingReportingOverflow(y)
            if o { throw overflow("+", r) }
            return .int(v)
        case (.float(let x), .float(let y)): return .float(x + y)
        case (.int(let x), .float(let y)): return .float(Double(x) + y)
        case (.float(let x), .int(let y)): return .float(x + Double(y))
        case (.string(let x), .string(let y)): return .str(x.value + y.value)
        case (.list(let x), .list(let y)): return .list(x.items + y.items)
        case (.duration(let x), .duration(let y)):
            let (v, o) = x.addingReportingOverflow(y)
            if o { throw overflow("+", r) }
            return .duration(v)
        case (.string, _), (_, .string):
            throw FlowError(kind: ErrorKind.type, message: "'+' cannot combine \(a.typeName) and \(b.typeName); to build a string, use interpolation: \"${a}${b}\" or str(x)", at: r)
        default: throw typeError("+", a, b, r)
        }
    }

    static func subtract(_ a: Value, _ b: Value, _ r: SourceRange?) throws -> Value {
        switch (a, b) {
        case (.int(let x), .int(let y)):
            let (v, o) = x.subtractingReportingOverflow(y)
            if o { throw overflow("-", r) }
            return .int(v)
        case (.float(let x), .float(let y)): return .float(x - y)
        case (.int(let x), .float(let y)): return .float(Double(x) - y)
        case (.float(let x), .int(let y)): return .float(x - Double(y))
        case (.duration(let x), .duration(let y)):
            let (v, o) = x.subtractingReportingOverflow(y)
            if o { throw overflow("-", r) }
            return .duration(v)
        default: throw typeError("-", a, b, r)
        }
    }

    static func multiply(_ a: Value, _ b: Value, _ r: SourceRange?) throws -> Value {
        switch (a, b) {
        case (.int(let x), .int(let y)):
            let (v, o) = x.multipliedReportingOverflow(by: y)
            if o { throw overflow("*", r) }
            return .int(v)
        case (.float(let x), .float(let y)): return .float(x * y)
        case (.int(let x), .float(let y)): return .float(Double(x) * y)
        case (.float(let x), .int(let y)): return .float(x * Double(y))
        case (.duration(let d), .int(let n)), (.int(let n), .duration(let d)):
            let (v, o) = d.multipliedReportingOverflow(by: n)
            if o { throw overflow("*", r) }
            return .duration(v)
        case (.duration(let d), .float(let f)), (.float(let f), .duration(let d)):
            let v = Double(d) * f
            guard abs(v) < 9.2e18 else { throw overflow("*", r) }
            return .duration(Int(v.rounded()))
        case (.string(let s), .int(let n)):
            guard n >= 0 else { throw FlowError(kind: ErrorKind.value, message: "'*' cannot repeat a string a negative number of times (\(n))", at: r) }
            return .str(String(repeating: s.value, count: n))
        default: throw typeError("*", a, b, r)
        }
    }

    static func divide(_ a: Value, _ b: Value, _ r: SourceRange?) throws -> Value {
        if case .duration(let d) = a {
            switch b {
            case .duration(let e):
                guard e != 0 else { throw divisionByZero("/", r) }
                return .float(Double(d) / Double(e))
            case .int, .float:
                let x = b.numberValue!
                guard x != 0 else { throw divisionByZero("/", r) }
                return .duration(Int((Double(d) / x).rounded()))
            default: break
            }
        }
        guard let x = a.numberValue, let y = b.numberValue else { throw typeError("/", a, b, r) }
        guard y != 0 else { throw divisionByZero("/", r) }
        return .float(x / y)
    }

    static func divisionByZero(_ op: String, _ r: SourceRange?) -> FlowError {
        FlowError(kind: ErrorKind.arithmetic, message: "division by zero in '\(op)'", at: r)
    }

    static func floorDivide(_ a: Value, _ b: Value, _ r: SourceRange?) throws -> Value {
        switch (a, b) {
        case (.int(let x), .int(let y)):
            guard y != 0 else { throw divisionByZero("//", r) }
            if x == Int.min && y == -1 { throw overflow("//", r) }
            let q = x / y
            return .int((x % y != 0 && (x < 0) != (y < 0)) ? q - 1 : q)
        default:
            guard let x = a.numberValue, let y = b.numberValue else { throw typeError("//", a, b, r) }
            guard y != 0 else { throw divisionByZero("//", r) }
            return .float((x / y).rounded(.down))
        }
    }

    static func remainder(_ a: Value, _ b: Value, _ r: SourceRange?) throws -> Value {
        switch (a, b) {
        case (.int(let x), .int(let y)):
            guard y != 0 else { throw divisionByZero("%", r) }
            if y == -1 { return .int(0) }
            let m = x % y
            return .int((m != 0 && (m < 0) != (y < 0)) ? m + y : m)
        default:
            guard let x = a.numberValue, let y = b.numberValue else { throw typeError("%", a, b, r) }
            guard y != 0 else { throw divisionByZero("%", r) }
            let m = x.truncatingRemainder(dividingBy: y)
            return .float((m != 0 && (m < 0) != (y < 0)) ? m + y : m)
        }
    }

    static func negate(_ a: Value, _ r: SourceRange?) throws -> Value {
        switch a {
        case .int(let x):
            if x == Int.min { throw overflow("-", r) }
            return .int(-x)
        case .float(let x): return .float(-x)
        case .duration(let d): return .duration(-d)
        default: throw FlowError(kind: ErrorKind.type, message: "'-' cannot negate \(a.typeName)", at: r)
        }
    }

    /// Structural equality: lists and maps compare by contents, numbers across int/float.
    static func equal(_ a: Value, _ b: Value) -> Bool {
        var walk = ContainerWalk()
        return equal(a, b, &walk)
    }

    private static func equal(_ a: Value, _ b: Value, _ walk: inout ContainerWalk) -> Bool {
        switch (a, b) {
        case (.nilValue, .nilValue): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.int(let x), .int(let y)): return x == y
        case (.float(let x), .float(let y)): return x == y
        case (.int(let x), .float(let y)): return Double(x) == y
        case (.float(let x), .int(let y)): return x == Double(y)
        case (.duration(let x), .duration(let y)): return x == y
        case (.string(let x), .string(let y)): return x === y || x.value == y.value
        case (.list(let x), .list(let y)):
            if x === y { return true }
            guard x.count == y.count else { return false }
            // The same pair met again deeper down is a cycle that has not differed so far.
            guard walk.enter(x, y) else { return true }
            defer { walk.leave(x, y) }
            var i = 0
            while i < x.count {
                if !equal(x[i], y[i], &walk) { return false }
                i += 1
            }
            return true
        case (.map(let x), .map(let y)):
            if x === y { return true }
            guard x.count == y.count else { return false }
            guard walk.enter(x, y) else { return true }
            defer { walk.leave(x, y) }
            for e in x.entries {
                guard let w = y.get(e.key), equal(e.value, w, &walk) else { return false }
            }
            return true
        case (.closure(let x), .closure(let y)): return x === y
        case (.builtin(let x), .builtin(let y)): return x === y
        case (.error(let x), .error(let y)): return x === y || (x.kind == y.kind && x.message == y.message)
        case (.object(let x), .object(let y)): return x === y
        default: return false
        }
    }

    /// The pairs of containers a comparison is inside, so that comparing values that
    /// contain themselves ends. Shallow comparisons (the usual case) record nothing: pairs
    /// are tracked only below `untracked` levels, where any cycle is bound to come round.
    struct ContainerWalk {
        private struct Pair: Hashable { let a: ObjectIdentifier, b: ObjectIdentifier }
        private static let untracked = 64
        private var depth = 0
        private var active: Set<Pair> = []

        /// False when this pair is already being compared further up.
        mutating func enter(_ a: AnyObject, _ b: AnyObject) -> Bool {
            depth += 1
            guard depth > Self.untracked else { return true }
            if active.insert(Pair(a: ObjectIdentifier(a), b: ObjectIdentifier(b))).inserted { return true }
            depth -= 1
            return false
        }

        mutating func leave(_ a: AnyObject, _ b: AnyObject) {
            if depth > Self.untracked { active.remove(Pair(a: ObjectIdentifier(a), b: ObjectIdentifier(b))) }
            depth -= 1
        }
    }

    /// Ordering for `<` and sorting: numbers, strings, durations, and lists of those.
    static func compare(_ a: Value, _ b: Value, _ op: String, _ r: SourceRange?) throws -> Int {
        var walk = ContainerWalk()
        return try compare(a, b, op, r, &walk)
    }

    private static func compare(_ a: Value, _ b: Value, _ op: String, _ r: SourceRange?,
                                _ walk: inout ContainerWalk) throws -> Int {
        switch (a, b) {
        case (.int(let x), .int(let y)): return x < y ? -1 : (x == y ? 0 : 1)
        case (.string(let x), .string(let y)): return x.value < y.value ? -1 : (x.value == y.value ? 0 : 1)
        case (.duration(let x), .duration(let y)): return x < y ? -1 : (x == y ? 0 : 1)
        case (.list(let x), .list(let y)):
            // Lists that contain themselves: a pair met again orders as equal so far.
            guard walk.enter(x, y) else { return 0 }
            defer { walk.leave(x, y) }
            var i = 0
            while i < x.count && i < y.count {
                let c = try compare(x[i], y[i], op, r, &walk)
                if c != 0 { return c }
                i += 1
            }
            return x.count < y.count ? -1 : (x.count == y.count ? 0 : 1)
        default:
            if let x = a.numberValue, let y = b.numberValue {
                if x.isNaN || y.isNaN { return 1 }
                return x < y ? -1 : (x == y ? 0 : 1)
            }
            throw FlowError(kind: ErrorKind.type, message: "'\(op)' cannot compare \(a.typeName) and \(b.typeName)", at: r)
        }
    }

    /// `x in xs`: membership in a list, key in a map, substring in a string.
    static func contains(_ container: Value, _ item: Value, _ r: SourceRange?) throws -> Bool {
        switch container {
        case .list(let l): return l.items.contains { equal($0, item) }
        case .map(let m):
            return m.get(item) != nil
        case .string(let s):
            guard case .string(let sub) = item else {
                throw FlowError(kind: ErrorKind.type, message: "'in' needs a string on the left when the right is a string, found \(item.typeName)", at: r)
            }
            return sub.value.isEmpty || s.value.contains(sub.value)
        default:
            throw FlowError(kind: ErrorKind.type, message: "'in' needs a list, map or string on the right, found \(container.typeName)", at: r)
        }
    }
}

extension Value: Equatable {
    /// Flow's `==`: structural for lists and maps, numeric across int and float.
    public static func == (a: Value, b: Value) -> Bool { Ops.equal(a, b) }

    /// Flow's ordering (what `<` and `sort` use): negative, zero or positive.
    /// Throws a `type` error for values that have no order between them.
    public static func order(_ a: Value, _ b: Value) throws -> Int { try Ops.compare(a, b, "<", nil) }
}

extension Interpreter {
    /// Suspends the calling task for a duration on the interpreter's clock.
    /// Throws `CancellationError` when the task is cancelled while it waits.
    public func sleep(nanoseconds: Int) async throws { try await loop.sleep(nanoseconds: nanoseconds) }
}
