/// Edits of syntax trees, for code as data: trees are immutable, so each edit builds a
/// new tree sharing the parts it does not change.
public enum SyntaxEdit {
    /// The names of every `node` in the statements, outermost first, in source order.
    public static func nodeNames(_ statements: [Stmt]) -> [String] {
        var names: [String] = []
        visit(statements) { e in if case .node(let n, _, _) = e.kind { names.append(n) } }
        return names
    }

    /// Calls `f` on every expression, outer before inner.
    public static func visit(_ statements: [Stmt], _ f: (Expr) -> Void) {
        for s in statements { visit(s, f) }
    }

    static func visit(_ s: Stmt, _ f: (Expr) -> Void) {
        switch s.kind {
        case .letDecl(_, _, let v): if let v { visit(v, f) }
        case .assign(let t, _, let v): visit(t, f); visit(v, f)
        case .expr(let e), .throwStmt(let e): visit(e, f)
        case .fnDecl(let d), .flowDecl(let d): visit(d.body.statements, f)
        case .typeDecl, .importDecl, .breakStmt, .continueStmt: break
        case .whileLoop(let c, let b): visit(c, f); visit(b.statements, f)
        case .forIn(_, _, _, let it, let b, _): visit(it, f); visit(b.statements, f)
        case .returnStmt(let e): if let e { visit(e, f) }
        case .trigger(_, let b): visit(b.statements, f)
        }
    }

    static func visit(_ e: Expr, _ f: (Expr) -> Void) {
        f(e)
        switch e.kind {
        case .template(let parts): for case .expr(let x) in parts { visit(x, f) }
        case .list(let xs): xs.forEach { visit($0, f) }
        case .map(let es):
            for entry in es {
                if case .computed(let k) = entry.key { visit(k, f) }
                visit(entry.value, f)
            }
        case .unary(_, let x), .member(let x, _, _), .await(let x): visit(x, f)
        case .binary(_, let a, let b), .index(let a, let b): visit(a, f); visit(b, f)
        case .call(let c, let args): visit(c, f); args.forEach { visit($0.value, f) }
        case .lambda(let d): visit(d.body.statements, f)
        case .ifExpr(let c, let t, let e):
            visit(c, f); visit(t.statements, f)
            switch e {
            case .block(let b)?: visit(b.statements, f)
            case .elseIf(let x)?: visit(x, f)
            case nil: break
            }
        case .match(let s, let arms): visit(s, f); arms.forEach { visit($0.body.statements, f) }
        case .tryExpr(let b, let cs, let fin):
            visit(b.statements, f); cs.forEach { visit($0.body.statements, f) }; if let fin { visit(fin.statements, f) }
        case .node(_, let opts, let b): opts.forEach { visit($0.value, f) }; visit(b.statements, f)
        case .parallel(let bs), .race(let bs): bs.forEach { visit($0.body.statements, f) }
        case .parallelFor(_, let it, let lim, let b): visit(it, f); if let lim { visit(lim, f) }; visit(b.statements, f)
        case .spawn(let b), .quote(let b): visit(b.statements, f)
        default: break
        }
    }

    /// Whether a statement's own expression is (or assigns, lets, adds) the node `name`.
    public static func holdsNode(_ s: Stmt, _ name: String) -> Bool {
        func isNode(_ e: Expr?) -> Bool {
            guard let e else { return false }
            if case .node(let n, _, _) = e.kind { return n == name }
            return false
        }
        switch s.kind {
        case .expr(let e): return isNode(e)
        case .letDecl(_, _, let v): return isNode(v)
        case .assign(_, _, let v): return isNode(v)
        case .returnStmt(let e): return isNode(e)
        default: return false
        }
    }

    /// Rewrites every statement list (top level, and every block inside) with `f`, which
    /// gets the list after its inner blocks were rewritten. Returns the new statements.
    public static func rewriteBlocks(_ statements: [Stmt], _ f: ([Stmt]) -> [Stmt]) -> [Stmt] {
        f(statements.map { rewrite($0, f) })
    }

    static func block(_ b: Block, _ f: ([Stmt]) -> [Stmt]) -> Block {
        Block(rewriteBlocks(b.statements, f), b.range)
    }

    static func decl(_ d: FunctionDecl, _ f: ([Stmt]) -> [Stmt]) -> FunctionDecl {
        FunctionDecl(kind: d.kind, name: d.name, nameRange: d.nameRange, parameters: d.parameters,
                     body: block(d.body, f), isArrow: d.isArrow, range: d.range)
    }

    static func rewrite(_ s: Stmt, _ f: ([Stmt]) -> [Stmt]) -> Stmt {
        let k: Stmt.Kind
        switch s.kind {
        case .letDecl(let n, let r, let v): k = .letDecl(n, r, v.map { rewrite($0, f) })
        case .assign(let t, let op, let v): k = .assign(t, op, rewrite(v, f))
        case .expr(let e): k = .expr(rewrite(e, f))
        case .throwStmt(let e): k = .throwStmt(rewrite(e, f))
        case .fnDecl(let d): k = .fnDecl(decl(d, f))
        case .flowDecl(let d): k = .flowDecl(decl(d, f))
        case .whileLoop(let c, let b): k = .whileLoop(c, block(b, f))
        case .forIn(let n, let r, let second, let it, let b, let isAwait): k = .forIn(n, r, second, it, block(b, f), isAwait: isAwait)
        case .returnStmt(let e): k = .returnStmt(e.map { rewrite($0, f) })
        case .trigger(let t, let b): k = .trigger(t, block(b, f))
        default: return s
        }
        return Stmt(k, s.range)
    }

    static func rewrite(_ e: Expr, _ f: ([Stmt]) -> [Stmt]) -> Expr {
        let k: Expr.Kind
        switch e.kind {
        case .lambda(let d): k = .lambda(decl(d, f))
        case .ifExpr(let c, let t, let el):
            var newElse: ElseBranch? = nil
            switch el {
            case .block(let b)?: newElse = .block(block(b, f))
            case .elseIf(let x)?: newElse = .elseIf(rewrite(x, f))
            case nil: break
            }
            k = .ifExpr(c, block(t, f), newElse)
        case .match(let s, let arms):
            k = .match(s, arms.map { MatchArm(pattern: $0.pattern, guardExpr: $0.guardExpr, body: block($0.body, f), range: $0.range) })
        case .tryExpr(let b, let cs, let fin):
            k = .tryExpr(block(b, f), cs.map { CatchClause(name: $0.name, nameRange: $0.nameRange, guardExpr: $0.guardExpr, body: block($0.body, f)) },
                         fin.map { block($0, f) })
        case .node(let n, let opts, let b): k = .node(n, opts, block(b, f))
        case .parallel(let bs): k = .parallel(bs.map { Branch(name: $0.name, nameRange: $0.nameRange, body: block($0.body, f)) })
        case .race(let bs): k = .race(bs.map { Branch(name: $0.name, nameRange: $0.nameRange, body: block($0.body, f)) })
        case .parallelFor(let n, let it, let lim, let b): k = .parallelFor(n, it, lim, block(b, f))
        case .spawn(let b): k = .spawn(block(b, f))
        case .call(let c, let args):
            k = .call(c, args.map { Argument(label: $0.label, labelRange: $0.labelRange, value: rewrite($0.value, f)) })
        default: return e
        }
        return Expr(k, e.range)
    }

    /// Replaces every expression that prints as `old` with `new` (in every block).
    public static func replace(_ statements: [Stmt], _ old: String, with new: Expr) -> ([Stmt], Int) {
        var count = 0
        func r(_ e: Expr) -> Expr {
            if SourcePrinter.print(e) == old { count += 1; return new }
            func a(_ args: [Argument]) -> [Argument] { args.map { Argument(label: $0.label, labelRange: $0.labelRange, value: r($0.value)) } }
            let k: Expr.Kind
            switch e.kind {
            case .template(let parts): k = .template(parts.map { if case .expr(let x) = $0 { return .expr(r(x)) }; return $0 })
            case .list(let xs): k = .list(xs.map(r))
            case .map(let es): k = .map(es.map { MapEntry(key: $0.key, keyRange: $0.keyRange, value: r($0.value)) })
            case .unary(let op, let x): k = .unary(op, r(x))
            case .binary(let op, let x, let y): k = .binary(op, r(x), r(y))
            case .call(let c, let args): k = .call(r(c), a(args))
            case .member(let x, let n, let nr): k = .member(r(x), n, nr)
            case .index(let x, let y): k = .index(r(x), r(y))
            case .await(let x): k = .await(r(x))
            case .lambda(let d): k = .lambda(FunctionDecl(kind: d.kind, name: d.name, nameRange: d.nameRange, parameters: d.parameters,
                                                          body: Block(d.body.statements.map(s), d.body.range), isArrow: d.isArrow, range: d.range))
            case .ifExpr(let c, let t, let el):
                var newElse: ElseBranch? = nil
                switch el {
                case .block(let b)?: newElse = .block(Block(b.statements.map(s), b.range))
                case .elseIf(let x)?: newElse = .elseIf(r(x))
                case nil: break
                }
                k = .ifExpr(r(c), Block(t.statements.map(s), t.range), newElse)
            case .node(let n, let opts, let b): k = .node(n, a(opts), Block(b.statements.map(s), b.range))
            case .parallelFor(let n, let it, let lim, let b): k = .parallelFor(n, r(it), lim.map(r), Block(b.statements.map(s), b.range))
            case .parallel(let bs): k = .parallel(bs.map { Branch(name: $0.name, nameRange: $0.nameRange, body: Block($0.body.statements.map(s), $0.body.range)) })
            case .race(let bs): k = .race(bs.map { Branch(name: $0.name, nameRange: $0.nameRange, body: Block($0.body.statements.map(s), $0.body.range)) })
            case .spawn(let b): k = .spawn(Block(b.statements.map(s), b.range))
            case .tryExpr(let b, let cs, let fin):
                k = .tryExpr(Block(b.statements.map(s), b.range),
                             cs.map { CatchClause(name: $0.name, nameRange: $0.nameRange, guardExpr: $0.guardExpr.map(r), body: Block($0.body.statements.map(s), $0.body.range)) },
                             fin.map { Block($0.statements.map(s), $0.range) })
            case .match(let subject, let arms):
                k = .match(r(subject), arms.map { MatchArm(pattern: $0.pattern, guardExpr: $0.guardExpr.map(r), body: Block($0.body.statements.map(s), $0.body.range), range: $0.range) })
            default: return e
            }
            return Expr(k, e.range)
        }
        func s(_ st: Stmt) -> Stmt {
            let k: Stmt.Kind
            switch st.kind {
            case .letDecl(let n, let rr, let v): k = .letDecl(n, rr, v.map(r))
            case .assign(let t, let op, let v): k = .assign(r(t), op, r(v))
            case .expr(let e): k = .expr(r(e))
            case .throwStmt(let e): k = .throwStmt(r(e))
            case .returnStmt(let e): k = .returnStmt(e.map(r))
            case .whileLoop(let c, let b): k = .whileLoop(r(c), Block(b.statements.map(s), b.range))
            case .forIn(let n, let rr, let second, let it, let b, let isAwait): k = .forIn(n, rr, second, r(it), Block(b.statements.map(s), b.range), isAwait: isAwait)
            case .fnDecl(let d): k = .fnDecl(FunctionDecl(kind: d.kind, name: d.name, nameRange: d.nameRange, parameters: d.parameters, body: Block(d.body.statements.map(s), d.body.range), isArrow: d.isArrow, range: d.range))
            case .flowDecl(let d): k = .flowDecl(FunctionDecl(kind: d.kind, name: d.name, nameRange: d.nameRange, parameters: d.parameters, body: Block(d.body.statements.map(s), d.body.range), isArrow: d.isArrow, range: d.range))
            case .trigger(let t, let b): k = .trigger(t, Block(b.statements.map(s), b.range))
            default: return st
            }
            return Stmt(k, st.range)
        }
        return (statements.map(s), count)
    }
}
