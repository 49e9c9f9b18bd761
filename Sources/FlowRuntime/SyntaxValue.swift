import FlowSyntax

/// Code as data: `quote { … }` and `definition("name")` give syntax values — a list of
/// statements that can be inspected (`.source`, `.nodes`, `.definitions`), edited
/// (`insert_after`, `wrap`, `replace`, each giving a new value) and turned into
/// definitions with `define(ast)`, checked exactly like a REPL redefinition.
public final class SyntaxValue: FlowObject, @unchecked Sendable {
    public let statements: [Stmt]
    public lazy var source: String = {
        var s = SourcePrinter.print(statements)
        if s.hasSuffix("\n") { s.removeLast() }
        return s
    }()

    public init(_ statements: [Stmt]) { self.statements = statements }

    public override var typeName: String { "syntax" }
    public override var description: String {
        let first = source.split(separator: "\n").first.map(String.init) ?? ""
        return "<syntax \(first)\(source.split(separator: "\n").count > 1 ? " …" : "")>"
    }

    public override func member(_ name: String) -> Value? {
        switch name {
        case "source": return .str(source)
        case "nodes": return .list(SyntaxEdit.nodeNames(statements).map { .str($0) })
        case "structure":
            // Nodes in order, with their options as source.
            var out: [Value] = []
            SyntaxEdit.visit(statements) { e in
                guard case .node(let n, let opts, _) = e.kind else { return }
                let options = MapBox(opts.compactMap { a in a.label.map { ($0, Value.str(SourcePrinter.print(a.value))) } })
                out.append(.map(MapBox([("node", .str(n)), ("options", .map(options))])))
            }
            return .list(out)
        case "definitions":
            return .list(statements.compactMap { s -> Value? in
                switch s.kind {
                case .fnDecl(let d), .flowDecl(let d): return d.name.map { .str($0) }
                case .typeDecl(let t): return .str(t.name)
                case .letDecl(let n, _, _): return .str(n)
                default: return nil
                }
            })
        default: return nil
        }
    }

    public override func method(_ name: String, interpreter: Interpreter) -> Value? {
        switch name {
        case "find":
            return interpreter.makeBuiltin("syntax.find", parameters: ["node"]) { [self] call in
                let n = try call.string(0)
                var found: Stmt? = nil
                _ = SyntaxEdit.rewriteBlocks(statements) { list in
                    if found == nil, let s = list.first(where: { SyntaxEdit.holdsNode($0, n) }) { found = s }
                    return list
                }
                return found.map { .object(SyntaxValue([$0])) } ?? .nilValue
            }
        case "insert_after":
            return interpreter.makeBuiltin("syntax.insert_after", parameters: ["node", "code"]) { [self] call in
                let n = try call.string(0)
                let inserted = try SyntaxValue.statements(of: call[1], call)
                var count = 0
                let result = SyntaxEdit.rewriteBlocks(statements) { list in
                    var out: [Stmt] = []
                    for s in list {
                        out.append(s)
                        if SyntaxEdit.holdsNode(s, n) { out.append(contentsOf: inserted); count += 1 }
                    }
                    return out
                }
                guard count > 0 else { throw call.error("no node '\(n)' to insert after (nodes: \(SyntaxEdit.nodeNames(statements).joined(separator: ", ")))", kind: "value") }
                return .object(SyntaxValue(result))
            }
        case "wrap":
            return interpreter.makeBuiltin("syntax.wrap", parameters: ["node", "wrapper"]) { [self] call in
                let n = try call.string(0)
                let wrapperText = try call.string(1)
                let wrapper = try SyntaxValue.expression(wrapperText, call)
                guard case .call = wrapper.kind else {
                    throw call.error("a wrapper is a call that takes the node as its block, like \"timeout(5s)\"; found '\(wrapperText)'", kind: "value")
                }
                var count = 0
                func wrapped(_ node: Expr) -> Expr {
                    guard case .call(let callee, let args) = wrapper.kind else { return node }
                    let body = Block([Stmt(.expr(node), node.range)], node.range)
                    let lambda = FunctionDecl(kind: .lambda, name: nil, nameRange: nil, parameters: [], body: body, isArrow: false, range: node.range)
                    count += 1
                    return Expr(.call(callee, args + [Argument(label: nil, labelRange: nil, value: Expr(.lambda(lambda), node.range))]), node.range)
                }
                let result = SyntaxEdit.rewriteBlocks(statements) { list in
                    list.map { s in
                        guard SyntaxEdit.holdsNode(s, n) else { return s }
                        switch s.kind {
                        case .expr(let e): return Stmt(.expr(wrapped(e)), s.range)
                        case .letDecl(let name, let r, let e?): return Stmt(.letDecl(name, r, wrapped(e)), s.range)
                        case .assign(let t, let op, let e): return Stmt(.assign(t, op, wrapped(e)), s.range)
                        case .returnStmt(let e?): return Stmt(.returnStmt(wrapped(e)), s.range)
                        default: return s
                        }
                    }
                }
                guard count > 0 else { throw call.error("no node '\(n)' to wrap (nodes: \(SyntaxEdit.nodeNames(statements).joined(separator: ", ")))", kind: "value") }
                return .object(SyntaxValue(result))
            }
        case "replace":
            return interpreter.makeBuiltin("syntax.replace", parameters: ["old", "new"]) { [self] call in
                let old = try SyntaxValue.printed(call[0], call, at: 0)
                let new = try SyntaxValue.expression(try SyntaxValue.printed(call[1], call, at: 1), call)
                let (result, count) = SyntaxEdit.replace(statements, old, with: new)
                guard count > 0 else { throw call.error("no expression '\(old)' to replace", kind: "value") }
                return .object(SyntaxValue(result))
            }
        default:
            return nil
        }
    }

    /// A syntax value's statements, or a string's, parsed.
    static func statements(of v: Value, _ call: BuiltinCall) throws -> [Stmt] {
        switch v {
        case .object(let o as SyntaxValue): return o.statements
        case .string(let s):
            let (program, errors) = Parser.parse(SourceFile(path: "<code>", text: s.value))
            if let e = errors.first { throw call.error("the code does not parse: \(e.message)", kind: "syntax") }
            return program.statements
        default: throw call.typeError("code (quote { … } or a string of Flow)", at: 1)
        }
    }

    /// One expression, parsed from source.
    static func expression(_ text: String, _ call: BuiltinCall) throws -> Expr {
        let (program, errors) = Parser.parse(SourceFile(path: "<code>", text: text))
        if let e = errors.first { throw call.error("'\(text)' does not parse: \(e.message)", kind: "syntax") }
        guard program.statements.count == 1, case .expr(let e) = program.statements[0].kind else {
            throw call.error("'\(text)' is not one expression", kind: "syntax")
        }
        return e
    }

    /// An expression as source: a string as it is, a syntax value of one expression printed.
    static func printed(_ v: Value, _ call: BuiltinCall, at i: Int) throws -> String {
        switch v {
        case .string(let s): return SourcePrinter.print(try expression(s.value, call))
        case .object(let o as SyntaxValue):
            guard o.statements.count == 1, case .expr(let e) = o.statements[0].kind else {
                throw call.error("expected one expression, found \(o.statements.count) statements", kind: "value")
            }
            return SourcePrinter.print(e)
        default: throw call.typeError("an expression (a string of Flow or quote { … })", at: i)
        }
    }
}

extension Interpreter {
    /// The current source of a definition: from the image (the REPL's, the running file's).
    public func definitionSyntax(_ name: String) -> SyntaxValue? {
        guard let last = image.versions(of: name).last else { return nil }
        let (program, errors) = Parser.parse(SourceFile(path: "<definition>", text: last.source))
        return errors.isEmpty ? SyntaxValue(program.statements) : nil
    }
}
