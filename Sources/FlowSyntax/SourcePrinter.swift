/// Turns a syntax tree back into Flow source. The output parses to the same tree (ranges
/// aside): `parse(print(ast))` prints the same again — a test checks it on every golden
/// script. Layout is canonical: two-space indents, one statement per line, parentheses
/// only where precedence needs them.
public struct SourcePrinter {
    var out = ""
    var indent = 0

    public init() {}

    public static func print(_ program: Program) -> String {
        var p = SourcePrinter()
        p.statements(program.statements)
        return p.out
    }

    public static func print(_ statements: [Stmt]) -> String {
        var p = SourcePrinter()
        p.statements(statements)
        return p.out
    }

    public static func print(_ e: Expr) -> String {
        var p = SourcePrinter()
        p.expr(e)
        return p.out
    }

    // MARK: - Statements

    mutating func line(_ build: (inout SourcePrinter) -> Void) {
        out += String(repeating: "  ", count: indent)
        build(&self)
        out += "\n"
    }

    mutating func statements(_ ss: [Stmt]) {
        for s in ss { line { $0.statement(s) } }
    }

    mutating func block(_ b: Block) {
        if b.statements.isEmpty { out += "{}"; return }
        out += "{\n"
        indent += 1
        statements(b.statements)
        indent -= 1
        out += String(repeating: "  ", count: indent) + "}"
    }

    mutating func statement(_ s: Stmt) {
        switch s.kind {
        case .letDecl(let name, _, let value):
            out += "let \(name)"
            if let value { out += " = "; expr(value) }
        case .assign(let target, let op, let value):
            expr(target); out += " \(op.rawValue) "; expr(value)
        case .expr(let e):
            // A map literal or block-like expression at the start of a statement reads the
            // same way it was written.
            expr(e)
        case .fnDecl(let d), .flowDecl(let d):
            out += d.kind == .flow ? "flow " : "fn "
            out += d.name ?? ""
            parameters(d.parameters)
            out += " "
            block(d.body)
        case .typeDecl(let t):
            out += "type \(t.name) {"
            if t.fields.isEmpty { out += "}"; return }
            out += "\n"
            indent += 1
            for f in t.fields {
                line { p in
                    p.out += f.name + (f.optional ? "?" : "") + ": "
                    p.typeExpr(f.type)
                    if let d = f.defaultValue { p.out += " = "; p.expr(d) }
                }
            }
            indent -= 1
            out += String(repeating: "  ", count: indent) + "}"
        case .importDecl(let path, let alias, _):
            out += "import "
            switch path {
            case .standard(let parts): out += parts.joined(separator: "/")
            case .file(let f): out += SourcePrinter.quote(f)
            }
            if let alias { out += " as \(alias)" }
        case .whileLoop(let cond, let body):
            out += "while "; expr(cond); out += " "; block(body)
        case .forIn(let name, _, let second, let iterable, let body, let isAwait):
            out += isAwait ? "for await " : "for "
            out += name
            if let second { out += ", \(second.0)" }
            out += " in "; expr(iterable); out += " "; block(body)
        case .returnStmt(let e):
            out += "return"
            if let e { out += " "; expr(e) }
        case .breakStmt: out += "break"
        case .continueStmt: out += "continue"
        case .throwStmt(let e): out += "throw "; expr(e)
        case .trigger(let trigger, let body):
            switch trigger {
            case .every(let schedule): out += "every " + SourcePrinter.quote(schedule)
            case .on(let source, let args): out += "on \(source)"; arguments(args)
            }
            out += " "
            block(body)
        }
    }

    mutating func parameters(_ ps: [Parameter]) {
        out += "("
        for (i, p) in ps.enumerated() {
            if i > 0 { out += ", " }
            out += p.name
            if let d = p.defaultValue { out += " = "; expr(d) }
        }
        out += ")"
    }

    mutating func typeExpr(_ t: TypeExpr) {
        switch t {
        case .named(let name, let args, _):
            out += name
            if !args.isEmpty {
                out += "<"
                for (i, a) in args.enumerated() { if i > 0 { out += ", " }; typeExpr(a) }
                out += ">"
            }
        case .literal(let s, _): out += SourcePrinter.quote(s)
        case .union(let parts, _):
            for (i, a) in parts.enumerated() { if i > 0 { out += " | " }; typeExpr(a) }
        }
    }

    // MARK: - Expressions

    static func precedence(_ op: BinaryOp) -> Int {
        switch op {
        case .or: return 1
        case .and: return 2
        case .equal, .notEqual, .less, .lessEqual, .greater, .greaterEqual, .contains: return 3
        case .add, .subtract: return 4
        case .multiply, .divide, .floorDivide, .remainder: return 5
        }
    }

    /// Whether an expression can stand before `.`, `(` or `[` without parentheses.
    static func isPostfixable(_ e: Expr) -> Bool {
        switch e.kind {
        case .nilLiteral, .boolLiteral, .intLiteral, .floatLiteral, .durationLiteral, .stringLiteral, .template,
             .name, .state, .list, .map, .call, .member, .index:
            return true
        default:
            return false
        }
    }

    mutating func parenthesized(_ e: Expr, if needed: Bool) {
        if needed { out += "("; expr(e); out += ")" } else { expr(e) }
    }

    mutating func expr(_ e: Expr) {
        switch e.kind {
        case .nilLiteral: out += "nil"
        case .boolLiteral(let b): out += b ? "true" : "false"
        case .intLiteral(let i): out += String(i)
        case .floatLiteral(let f): out += SourcePrinter.float(f)
        case .durationLiteral(let ns): out += SourcePrinter.duration(ns)
        case .stringLiteral(let s): out += SourcePrinter.quote(s)
        case .template(let parts):
            out += "\""
            for part in parts {
                switch part {
                case .text(let t): out += SourcePrinter.escaped(t)
                case .expr(let x): out += "${"; expr(x); out += "}"
                }
            }
            out += "\""
        case .name(let n): out += n
        case .state: out += "$"
        case .list(let items):
            out += "["
            for (i, x) in items.enumerated() { if i > 0 { out += ", " }; expr(x) }
            out += "]"
        case .map(let entries):
            if entries.isEmpty { out += "{}"; return }
            out += "{"
            for (i, entry) in entries.enumerated() {
                if i > 0 { out += ", " }
                switch entry.key {
                case .name(let n): out += SourcePrinter.isIdentifier(n) ? n : SourcePrinter.quote(n)
                case .computed(let k): out += "["; expr(k); out += "]"
                }
                out += ": "
                expr(entry.value)
            }
            out += "}"
        case .unary(let op, let operand):
            out += op == .not ? "not " : "-"
            if case .unary(.negate, _) = operand.kind, op == .negate { out += "(" ; expr(operand); out += ")"; return }
            parenthesized(operand, if: { if case .binary = operand.kind { return true }; return false }())
        case .binary(let op, let l, let r):
            let p = SourcePrinter.precedence(op)
            parenthesized(l, if: binaryNeedsParens(l, p, right: false))
            out += " \(op.rawValue) "
            parenthesized(r, if: binaryNeedsParens(r, p, right: true))
        case .call(let callee, let args):
            parenthesized(callee, if: !SourcePrinter.isPostfixable(callee))
            arguments(args)
        case .member(let target, let name, _):
            parenthesized(target, if: !SourcePrinter.isPostfixable(target))
            out += "." + name
        case .index(let target, let index):
            parenthesized(target, if: !SourcePrinter.isPostfixable(target))
            out += "["; expr(index); out += "]"
        case .lambda(let d):
            out += "fn"
            parameters(d.parameters)
            if d.isArrow, d.body.statements.count == 1, case .expr(let body) = d.body.statements[0].kind {
                out += " => "
                expr(body)
            } else {
                out += " "
                block(d.body)
            }
        case .ifExpr(let cond, let then, let elseBranch):
            out += "if "; condition(cond); out += " "; block(then)
            switch elseBranch {
            case .none: break
            case .block(let b)?: out += " else "; block(b)
            case .elseIf(let e)?: out += " else "; expr(e)
            }
        case .match(let subject, let arms):
            out += "match "; condition(subject); out += " {\n"
            indent += 1
            for arm in arms {
                line { p in
                    p.pattern(arm.pattern)
                    if let g = arm.guardExpr { p.out += " if "; p.condition(g) }
                    p.out += " => "
                    p.block(arm.body)
                }
            }
            indent -= 1
            out += String(repeating: "  ", count: indent) + "}"
        case .tryExpr(let body, let catches, let finally):
            out += "try "; block(body)
            for c in catches {
                out += " catch"
                if let n = c.name { out += " \(n)" }
                if let g = c.guardExpr { out += " if "; condition(g) }
                out += " "
                block(c.body)
            }
            if let finally { out += " finally "; block(finally) }
        case .node(let name, let options, let body):
            out += "node \(name)"
            if !options.isEmpty { arguments(options) }
            out += " "
            block(body)
        case .parallel(let branches):
            out += "parallel "; self.branches(branches)
        case .parallelFor(let name, let iterable, let limit, let body):
            out += "parallel for \(name) in "; condition(iterable)
            if let limit { out += " limit "; condition(limit) }
            out += " "
            block(body)
        case .race(let branches):
            out += "race "; self.branches(branches)
        case .spawn(let body):
            out += "spawn "; block(body)
        case .await(let operand):
            out += "await "
            // await takes a prefix expression: anything looser needs parentheses.
            parenthesized(operand, if: { if case .binary = operand.kind { return true }; return false }())
        case .quote(let body):
            out += "quote "; block(body)
        }
    }

    func binaryNeedsParens(_ child: Expr, _ parent: Int, right: Bool) -> Bool {
        switch child.kind {
        case .binary(let op, _, _):
            let p = SourcePrinter.precedence(op)
            return right ? p <= parent : p < parent
        case .lambda, .ifExpr, .match, .tryExpr, .node, .parallel, .parallelFor, .race, .spawn, .quote:
            // They end in a block or take the rest of the expression: parenthesized inside
            // an operator, so the operator's other side stays outside them.
            return true
        default:
            return false
        }
    }

    /// An expression before a block (`if`, `while`, `for`, `match`, `catch … if`): a
    /// call's trailing block and a map literal would be read differently there.
    mutating func condition(_ e: Expr) {
        var p = SourcePrinter()
        p.indent = indent
        p.expr(e)
        let needs: Bool
        switch e.kind {
        case .map: needs = true
        default: needs = p.out.contains("{")
        }
        if needs { out += "(" + p.out + ")" } else { out += p.out }
    }

    mutating func arguments(_ args: [Argument]) {
        out += "("
        for (i, a) in args.enumerated() {
            if i > 0 { out += ", " }
            if let label = a.label { out += label + ": " }
            expr(a.value)
        }
        out += ")"
    }

    mutating func branches(_ bs: [Branch]) {
        out += "{\n"
        indent += 1
        for b in bs {
            line { p in
                p.out += b.name + ": "
                p.block(b.body)
            }
        }
        indent -= 1
        out += String(repeating: "  ", count: indent) + "}"
    }

    mutating func pattern(_ p: Pattern) {
        switch p {
        case .wildcard: out += "_"
        case .literal(let e): expr(e)
        case .binding(let n, _): out += n
        case .list(let items, let rest, _):
            out += "["
            for (i, x) in items.enumerated() { if i > 0 { out += ", " }; pattern(x) }
            if let rest { out += (items.isEmpty ? "" : ", ") + ".." + rest.0 }
            out += "]"
        case .map(let fields, _):
            out += "{"
            for (i, f) in fields.enumerated() {
                if i > 0 { out += ", " }
                out += f.0 + ": "
                pattern(f.1)
            }
            out += "}"
        case .alternatives(let alts, _):
            for (i, a) in alts.enumerated() { if i > 0 { out += " | " }; pattern(a) }
        }
    }

    // MARK: - Literals

    /// A string as a Flow literal: quotes, backslashes, `$` and control characters escaped.
    public static func quote(_ s: String) -> String { "\"" + escaped(s) + "\"" }

    static func escaped(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "$": out += "\\$"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if c.value < 0x20 { out += "\\u{\(String(c.value, radix: 16))}" }
                else { out.unicodeScalars.append(c) }
            }
        }
        return out
    }

    static func float(_ f: Double) -> String {
        var s = f.description
        if let e = s.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            if !s[..<e].contains(".") { s.insert(contentsOf: ".0", at: e) }
            return s
        }
        if !s.contains(".") { s += ".0" }
        return s
    }

    static func duration(_ ns: Int) -> String {
        for (unit, size) in [("d", 86_400_000_000_000), ("h", 3_600_000_000_000), ("m", 60_000_000_000),
                             ("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)] where ns != 0 && ns % size == 0 {
            return "\(ns / size)\(unit)"
        }
        return "\(ns)ns"
    }

    static func isIdentifier(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, first == "_" || (first.properties.isAlphabetic) else { return false }
        return s.unicodeScalars.allSatisfy { $0 == "_" || $0.properties.isAlphabetic || ("0"..."9").contains($0) }
    }
}
