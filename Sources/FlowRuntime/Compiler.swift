import FlowSyntax

/// Turns a resolved program into nodes (closure compilation): every name is already a
/// slot, a cell or a constant, every operator a node class of its own.
///
/// In a function that can suspend, an operator whose operand may suspend has that operand
/// evaluated first into a temporary slot (`TempNode`), so only statements and calls need
/// an async form.
struct Compiler {
    let interpreter: Interpreter
    let module: Module
    let res: Resolution
    var scope: FunctionScope
    var temps = 0
    var maxTemps = 0

    init(interpreter: Interpreter, module: Module, resolution: Resolution) {
        self.interpreter = interpreter
        self.module = module
        self.res = resolution
        self.scope = resolution.main
    }

    var asyncMode: Bool { scope.suspends }
    /// The function being compiled, as tracebacks name it (`Interpreter.describe`).
    var functionName = "<main>"
    var localBase: Int { scope.parameters.count + scope.captures.count }

    func slot(_ v: VarInfo) -> Int { v.isParameter ? v.index : localBase + v.index }

    mutating func temp() -> Int {
        let s = localBase + scope.maxLocals + temps
        temps += 1
        maxTemps = max(maxTemps, temps)
        return s
    }

    // MARK: - Module

    /// Compiles the module's main code: defines its functions first (so they may call one
    /// another in any order), then runs its statements in order.
    mutating func compileMain(_ program: Program) -> FunctionProto {
        for name in res.globalOrder where module.globals[name] == nil {
            module.globals[name] = GlobalCell(name: name)
        }
        module.exports = res.globalOrder
        var prologue: [Node] = []
        var body: [Node] = []
        for s in program.statements {
            switch s.kind {
            case .fnDecl(let d), .flowDecl(let d):
                let cell = module.globals[d.name!]!
                prologue.append(DefineFunctionNode(cell, Closure(proto: compileFunction(d), captures: [])))
            case .typeDecl(let t):
                prologue.append(GlobalSet(module.globals[t.name]!, ConstNode(.object(typeValue(t)))))
            case .importDecl(let path, let alias, _):
                let name = alias ?? Resolver.defaultAlias(path)
                if let m = res.globals[name]?.module, let ns = m.namespace {
                    prologue.append(GlobalSet(module.globals[name]!, ConstNode(.map(ns))))
                }
            case .letDecl(let name, _, let value):
                body.append(GlobalSet(module.globals[name]!, value.map { expr($0) } ?? ConstNode(.nilValue)))
            default:
                body.append(statement(s))
            }
        }
        let proto = FunctionProto(name: "<main>", parameters: [], defaults: [], range: nil)
        proto.body = sequence(prologue + body)
        proto.frameSize = localBase + scope.maxLocals + maxTemps
        proto.isAsync = scope.suspends
        return proto
    }

    /// The value a `type` binds: its fields, their specs and default thunks.
    mutating func typeValue(_ t: TypeDecl) -> TypeValue {
        let value = TypeValue(name: t.name)
        value.fields = t.fields.map { f in
            let thunk = res.fieldDefaults[f.nameRange.start].map { Closure(proto: compileFunction($0), captures: []) }
            return FieldSpec(name: f.name, box: interpreter.intern(f.name), type: spec(f.type), optional: f.optional, makeDefault: thunk)
        }
        return value
    }

    func spec(_ t: TypeExpr) -> TypeSpec {
        switch t {
        case .literal(let s, _): return .literal(s)
        case .union(let options, _): return .union(options.map { spec($0) })
        case .named(let n, let args, _):
            switch n {
            case "any": return .any
            case "string": return .string
            case "int": return .int
            case "float": return .float
            case "number": return .number
            case "bool": return .bool
            case "duration": return .duration
            case "function": return .function
            case "nil": return .nilType
            case "list": return .list(args.first.map { spec($0) })
            case "map": return .map(args.first.map { spec($0) })
            default: return module.globals[n].map { .named(n, $0) } ?? .any
            }
        }
    }

    mutating func compileFunction(_ d: FunctionDecl) -> FunctionProto {
        let inner = res.functions[ObjectIdentifier(d)]!
        let saved = (scope, temps, maxTemps, functionName)
        scope = inner
        temps = 0
        maxTemps = 0
        functionName = Interpreter.describe(name: d.name ?? "<lambda>", isFlow: d.kind == .flow)
        defer { (scope, temps, maxTemps, functionName) = saved }
        let defaults: [Node?] = d.parameters.map { p in p.defaultValue.map { expr($0) } }
        let proto = FunctionProto(name: d.name ?? "<lambda>", parameters: d.parameters.map { $0.name },
                                  defaults: defaults, range: d.nameRange ?? d.range)
        proto.isAsync = inner.suspends
        proto.isFlow = d.kind == .flow
        proto.declarationRange = d.range
        proto.body = tail(d.body.statements[...])
        proto.frameSize = localBase + inner.maxLocals + maxTemps
        return proto
    }

    /// A closure over the current frame's cells for each variable the function captures.
    mutating func closure(_ d: FunctionDecl) -> Node {
        let proto = compileFunction(d)
        let inner = res.functions[ObjectIdentifier(d)]!
        let slots = inner.captures.map { v -> Int in
            if v.function === scope { return slot(v) }
            return scope.parameters.count + scope.captureIndex(of: v)
        }
        return MakeClosureNode(proto: proto, captureSlots: slots)
    }

    // MARK: - Statements

    /// Compiles statements whose value is the function's result. A `return` there is just
    /// the value, and `if c { …; return x }` followed by more statements becomes
    /// `if c { …; x } else { more }`: early returns cost no signal.
    mutating func tail(_ statements: ArraySlice<Stmt>) -> Node {
        var nodes: [Node] = []
        var i = statements.startIndex
        while i < statements.endIndex {
            let s = statements[i]
            let isLast = i == statements.endIndex - 1
            if case .returnStmt(let v) = s.kind {
                // Anything after a return is unreachable.
                nodes.append(v.map { expr($0) } ?? ConstNode(.nilValue))
                return sequence(nodes)
            }
            if case .expr(let e) = s.kind, case .ifExpr(let c, let then, let otherwise) = e.kind {
                if isLast {
                    nodes.append(tailIf(c, then, otherwise))
                    return sequence(nodes)
                }
                if otherwise == nil, endsInReturn(then.statements) {
                    let cn = expr(c)
                    let tn = tail(then.statements[...])
                    let rest = tail(statements[(i + 1)...])
                    nodes.append(marked(IfNode(cn, tn, rest), [cn, tn, rest]))
                    return sequence(nodes)
                }
            }
            nodes.append(statement(s))
            i += 1
        }
        return sequence(nodes)
    }

    mutating func tailIf(_ c: Expr, _ then: Block, _ otherwise: ElseBranch?) -> Node {
        let cn = expr(c)
        let withScope = tail(then.statements[...])
        var on: Node? = nil
        switch otherwise {
        case .block(let b): on = tail(b.statements[...])
        case .elseIf(let x):
            if case .ifExpr(let c2, let t2, let o2) = x.kind { on = tailIf(c2, t2, o2) } else { on = expr(x) }
        case nil: break
        }
        return marked(IfNode(cn, withScope, on), [cn, withScope, on])
    }

    func endsInReturn(_ statements: [Stmt]) -> Bool {
        guard let last = statements.last else { return false }
        if case .returnStmt = last.kind { return true }
        return false
    }

    func sequence(_ nodes: [Node]) -> Node {
        let n: Node
        switch nodes.count {
        case 0: n = ConstNode(.nilValue)
        case 1: return nodes[0]
        case 2: n = Block2Node(nodes[0], nodes[1])
        default: n = BlockNode(nodes)
        }
        n.yields = nodes.contains { $0.yields }
        return n
    }

    mutating func block(_ b: Block) -> Node {
        sequence(b.statements.map { statement($0) })
    }

    func marked(_ n: Node, _ children: [Node?]) -> Node {
        n.yields = children.contains { $0?.yields == true }
        return n
    }

    mutating func statement(_ s: Stmt) -> Node {
        switch s.kind {
        case .letDecl(let name, let r, let value):
            let v = value.map { expr($0) } ?? ConstNode(.nilValue)
            if let info = res.decls[r.start], info.function === scope {
                // A captured variable too starts in its slot: the first closure that
                // captures it boxes it (`MakeClosureNode`).
                return marked(LocalSet(slot(info), v), [v])
            }
            // A top-level let inside main code compiles through compileMain; nested ones
            // at the top level of main are globals too.
            return marked(GlobalSet(module.globals[name]!, v), [v])
        case .assign(let target, let op, let value):
            return assignment(target, op, value, s.range)
        case .expr(let e):
            return expr(e)
        case .fnDecl(let d):
            let info = res.decls[(d.nameRange ?? d.range).start]!
            let make = closure(d)
            if info.captured {
                // A fresh variable first, which the function captures, so that it can
                // call itself.
                return Block2Node(LocalSet(slot(info), ConstNode(.nilValue)), CellSet(slot(info), make))
            }
            return LocalSet(slot(info), make)
        case .whileLoop(let c, let body):
            let cn = expr(c), bn = block(body)
            return marked(WhileNode(cn, bn), [cn, bn])
        case .forIn(_, let r, let second, let iterable, let body, let isAwait):
            let it = expr(iterable)
            let first = res.decls[r.start]!
            if isAwait {
                return ForAwaitNode(slot: slot(first), iterable: it, body: block(body), range: iterable.range)
            }
            let secondInfo = second.flatMap { res.decls[$0.1.start] }
            let bn = block(body)
            return marked(ForNode(first: slot(first), second: secondInfo.map { slot($0) },
                                  iterable: it, body: bn, range: iterable.range), [it, bn])
        case .returnStmt(let v):
            let n = v.map { expr($0) }
            return marked(ReturnNode(n), [n])
        case .breakStmt:
            return SignalNode(.breakLoop)
        case .continueStmt:
            return SignalNode(.continueLoop)
        case .throwStmt(let v):
            let n = expr(v)
            return marked(ThrowNode(n, s.range), [n])
        case .flowDecl, .typeDecl, .importDecl, .trigger:
            // Rejected by the resolver (or handled by compileMain).
            return ConstNode(.nilValue)
        }
    }

    mutating func read(_ ref: Ref, _ range: SourceRange) -> Node {
        switch ref {
        case .local(let v): return v.captured ? CellGet(slot(v)) : LocalGet(slot(v))
        case .capture(let i, _): return CellGet(scope.parameters.count + i)
        case .global(let name):
            let cell = module.globals[name]!
            if res.globals[name]?.kind == .variable && !scope.isMain { return GlobalGetChecked(cell, range) }
            return GlobalGet(cell)
        case .builtin(let name): return ConstNode(interpreter.builtins[name]!)
        }
    }

    mutating func write(_ ref: Ref, _ value: Node) -> Node {
        switch ref {
        case .local(let v): return marked(v.captured ? CellSet(slot(v), value) : LocalSet(slot(v), value), [value])
        case .capture(let i, _): return marked(CellSet(scope.parameters.count + i, value), [value])
        case .global(let name): return marked(GlobalSet(module.globals[name]!, value), [value])
        case .builtin: return ConstNode(.nilValue) // rejected by the resolver
        }
    }

    mutating func assignment(_ target: Expr, _ op: AssignOp, _ valueExpr: Expr, _ range: SourceRange) -> Node {
        func combine(_ c: inout Compiler, _ current: Node) -> Node {
            let rhs = c.expr(valueExpr)
            let binary: BinaryOp
            switch op {
            case .assign: return rhs
            case .add: binary = .add
            case .subtract: binary = .subtract
            case .multiply: binary = .multiply
            case .divide: binary = .divide
            }
            return c.binaryNode(binary, current, rhs, range, leftExpr: target, rightExpr: valueExpr)
        }
        if let parts = statePath(target) {
            let current: Node = op == .assign ? ConstNode(.nilValue) : expr(target)
            let v = combine(&self, current)
            return hoist([v]) { StateAssignNode(parts: parts, value: $0[0], range: target.range) }
        }
        switch target.kind {
        case .name:
            guard let ref = res.refs[ObjectIdentifier(target)] else { return ConstNode(.nilValue) }
            if let fused = fusedLocalUpdate(target, op, valueExpr, range) { return fused }
            let current = op == .assign ? ConstNode(.nilValue) : read(ref, target.range)
            return write(ref, combine(&self, current))
        case .member(let o, let name, let nameRange):
            let box = interpreter.intern(name)
            if op == .assign {
                let on = expr(o), v = combine(&self, ConstNode(.nilValue))
                return hoist([on, v]) { MemberSetNode($0[0], name, box, $0[1], target.range) }
            }
            // `a.b += e` evaluates `a` once: into a temporary that the read and the write share.
            let on = expr(o), s = temp()
            let v = combine(&self, MemberNode(LocalGet(s), name, box, nameRange))
            let set = hoist([LocalGet(s), v]) { MemberSetNode($0[0], name, box, $0[1], target.range) }
            return TempNode(slots: [s], parts: [on], body: set)
        case .index(let o, let i):
            if op == .assign {
                let on = expr(o), ix = expr(i), v = combine(&self, ConstNode(.nilValue))
                return hoist([on, ix, v]) { IndexSetNode($0[0], $0[1], $0[2], target.range) }
            }
            // `xs[i] += e` evaluates `xs` and `i` once each.
            let on = expr(o), ix = expr(i), so = temp(), si = temp()
            let v = combine(&self, IndexNode(LocalGet(so), LocalGet(si), target.range))
            let set = hoist([LocalGet(so), LocalGet(si), v]) { IndexSetNode($0[0], $0[1], $0[2], target.range) }
            return TempNode(slots: [so, si], parts: [on, ix], body: set)
        default:
            return ConstNode(.nilValue)
        }
    }

    // MARK: - Expressions

    /// Builds an operation over children; in async code, children that may suspend (and
    /// the ones before them, to keep evaluation order) are evaluated into temporaries.
    mutating func hoist(_ children: [Node], _ build: ([Node]) -> Node) -> Node {
        guard asyncMode, let last = children.lastIndex(where: { $0.yields }) else { return build(children) }
        var slots: [Int] = []
        var replaced = children
        for i in 0...last {
            let s = temp()
            slots.append(s)
            replaced[i] = LocalGet(s)
        }
        return TempNode(slots: slots, parts: Array(children[0...last]), body: build(replaced))
    }

    mutating func expr(_ e: Expr) -> Node {
        switch e.kind {
        case .nilLiteral: return NilNode()
        case .boolLiteral(let b): return ConstNode(.bool(b))
        case .intLiteral(let i): return ConstNode(.int(i))
        case .floatLiteral(let f): return ConstNode(.float(f))
        case .durationLiteral(let d): return ConstNode(.duration(d))
        case .stringLiteral(let s): return ConstNode(.string(interpreter.intern(s)))
        case .template(let parts):
            let nodes = parts.map { p -> Node in
                switch p {
                case .text(let t): return ConstNode(.string(interpreter.intern(t)))
                case .expr(let x): return expr(x)
                }
            }
            return hoist(nodes) { TemplateNode($0) }
        case .name:
            guard let ref = res.refs[ObjectIdentifier(e)] else { return ConstNode(.nilValue) }
            return read(ref, e.range)
        case .list(let items):
            return hoist(items.map { expr($0) }) { ListNode($0) }
        case .map(let entries):
            // Constant names (distinct: the parser rejects duplicates) make a record.
            let names = entries.compactMap { en -> StringBox? in
                if case .name(let n) = en.key { return interpreter.intern(n) }
                return nil
            }
            if names.count == entries.count {
                let values = entries.map { expr($0.value) }
                return hoist(values) { RecordNode(names: names, values: $0) }
            }
            var keys: [Node] = []
            var values: [Node] = []
            for en in entries {
                switch en.key {
                case .name(let n): keys.append(ConstNode(.string(interpreter.intern(n))))
                case .computed(let k): keys.append(expr(k))
                }
                values.append(expr(en.value))
            }
            let n = keys.count
            let ranges = entries.map { $0.keyRange }
            // Interleave so evaluation order is key, value, key, value…
            var children: [Node] = []
            for i in 0..<n { children.append(keys[i]); children.append(values[i]) }
            return hoist(children) { c in
                MapNode(keys: stride(from: 0, to: c.count, by: 2).map { c[$0] },
                        values: stride(from: 1, to: c.count, by: 2).map { c[$0] }, keyRanges: ranges)
            }
        case .unary(let op, let x):
            let n = expr(x)
            return hoist([n]) { c in op == .negate ? NegNode(c[0], e.range) : NotNode(c[0]) }
        case .binary(let op, let l, let r):
            let ln = expr(l), rn = expr(r)
            if op == .and { return marked(AndNode(ln, rn), [ln, rn]) }
            if op == .or { return marked(OrNode(ln, rn), [ln, rn]) }
            return binaryNode(op, ln, rn, e.range, leftExpr: l, rightExpr: r)
        case .call(let callee, let args):
            return call(callee, args, e.range)
        case .member(let o, let name, let nameRange):
            if let g = moduleMember(o, name) { return GlobalGet(g) }
            let on = expr(o)
            let box = interpreter.intern(name)
            return hoist([on]) { MemberNode($0[0], name, box, nameRange) }
        case .index(let o, let i):
            let on = expr(o), ix = expr(i)
            return hoist([on, ix]) { IndexNode($0[0], $0[1], e.range) }
        case .lambda(let d):
            return closure(d)
        case .ifExpr(let c, let then, let otherwise):
            let cn = expr(c), tn = block(then)
            var on: Node? = nil
            switch otherwise {
            case .block(let b): on = block(b)
            case .elseIf(let x): on = expr(x)
            case nil: break
            }
            return marked(IfNode(cn, tn, on), [cn, tn, on])
        case .match(let subject, let arms):
            let sn = expr(subject)
            var compiled: [MatchNode.Arm] = []
            var children: [Node?] = [sn]
            for arm in arms {
                let p = pattern(arm.pattern)
                let g = arm.guardExpr.map { expr($0) }
                let b = block(arm.body)
                children.append(g); children.append(b)
                compiled.append(MatchNode.Arm(pattern: p, guardNode: g, body: b))
            }
            return marked(MatchNode(subject: sn, arms: compiled, range: e.range), children)
        case .tryExpr(let body, let catches, let finally):
            let bn = block(body)
            var children: [Node?] = [bn]
            let clauses = catches.map { c -> TryNode.Clause in
                let info = c.nameRange.flatMap { res.decls[$0.start] }
                let g = c.guardExpr.map { expr($0) }
                let b = block(c.body)
                children.append(g); children.append(b)
                return TryNode.Clause(slot: info.map { slot($0) }, guardNode: g, body: b)
            }
            let fn = finally.map { block($0) }
            children.append(fn)
            return marked(TryNode(body: bn, clauses: clauses, finally: fn, function: functionName), children)
        case .state:
            return StateNode(e.range)
        case .node(let name, let options, _):
            let body = closure(res.nodeBodies[ObjectIdentifier(e)]!)
            let names = options.map { interpreter.intern($0.label ?? "") }
            let values = options.map { expr($0.value) }
            let n = NodeNode(name: name, nameBox: interpreter.intern(name), options: RecordNode(names: names, values: values), body: body, range: e.range)
            n.yields = true
            return n
        case .parallel(let branches), .race(let branches):
            let bodies = branches.map { closure(res.branchBodies[ObjectIdentifier($0.body)]!) }
            var isRace = false
            if case .race = e.kind { isRace = true }
            return ParallelNode(names: branches.map { $0.name }, bodies: bodies, isRace: isRace, range: e.range)
        case .parallelFor(_, let iterable, let limit, let body):
            return ParallelForNode(iterable: expr(iterable), limit: limit.map { expr($0) },
                                   body: closure(res.branchBodies[ObjectIdentifier(body)]!), range: e.range)
        case .spawn(let body):
            let n = SpawnNode(body: closure(res.branchBodies[ObjectIdentifier(body)]!), range: e.range)
            return n
        case .await(let x):
            return AwaitNode(expr(x), e.range)
        case .quote(let block):
            // Code as data: the statements, not run.
            return ConstNode(.object(SyntaxValue(block.statements)))
        }
    }

    /// The parts of a `$.a.b[i]` target, outermost first; nil when the target is not a
    /// state path.
    mutating func statePath(_ target: Expr) -> [StateAssignNode.Part]? {
        switch target.kind {
        case .member(let o, let name, _):
            if case .state = o.kind { return [.name(interpreter.intern(name))] }
            guard let inner = statePath(o) else { return nil }
            return inner + [.name(interpreter.intern(name))]
        case .index(let o, let i):
            if case .state = o.kind { return [.index(expr(i))] }
            guard let inner = statePath(o) else { return nil }
            return inner + [.index(expr(i))]
        default:
            return nil
        }
    }

    /// `util.f` where `util` is an imported module: its global cell, bound statically.
    func moduleMember(_ object: Expr, _ name: String) -> GlobalCell? {
        guard case .name = object.kind, case .global(let g)? = res.refs[ObjectIdentifier(object)],
              let info = res.globals[g], info.kind == .importBinding, let m = info.module else { return nil }
        return m.globals[name]
    }

    /// The slot of an expression that is a plain (uncaptured) local of this function.
    func plainLocal(_ e: Expr) -> Int? {
        if case .name = e.kind, case .local(let v)? = res.refs[ObjectIdentifier(e)], !v.captured { return slot(v) }
        return nil
    }

    /// `x += e` or `x = x op e` for +, -, *: the operation and `e`; nil for other shapes.
    func updateShape(_ target: Expr, _ op: AssignOp, _ valueExpr: Expr) -> (ArithLocalLocalNode.Op, Expr)? {
        switch op {
        case .add: return (.add, valueExpr)
        case .subtract: return (.subtract, valueExpr)
        case .multiply: return (.multiply, valueExpr)
        case .divide: return nil
        case .assign:
            guard case .binary(let bop, let l, let r) = valueExpr.kind, sameVariable(l, target) else { return nil }
            switch bop {
            case .add: return (.add, r)
            case .subtract: return (.subtract, r)
            case .multiply: return (.multiply, r)
            default: return nil
            }
        }
    }

    /// The slot holding the cell of a captured variable (declared here or captured).
    func cellSlot(_ e: Expr) -> Int? {
        guard case .name = e.kind, let ref = res.refs[ObjectIdentifier(e)] else { return nil }
        switch ref {
        case .local(let v) where v.captured: return slot(v)
        case .capture(let i, _): return scope.parameters.count + i
        default: return nil
        }
    }

    func sameVariable(_ a: Expr, _ b: Expr) -> Bool {
        guard case .name(let x) = a.kind, case .name(let y) = b.kind, x == y else { return false }
        switch (res.refs[ObjectIdentifier(a)], res.refs[ObjectIdentifier(b)]) {
        case (.local(let v)?, .local(let w)?): return v === w
        case (.capture(let i, _)?, .capture(let j, _)?): return i == j
        default: return false
        }
    }

    /// `x += e`, `x = x + e` (and -, *) on a plain local or a captured variable: one node
    /// that updates in place.
    mutating func fusedLocalUpdate(_ target: Expr, _ op: AssignOp, _ valueExpr: Expr, _ range: SourceRange) -> Node? {
        guard let (arith, operand) = updateShape(target, op, valueExpr) else { return nil }
        if let cs = cellSlot(target) {
            let v = expr(operand)
            if v.yields { return nil }
            return UpdateCellNode(slot: cs, value: v, op: arith, range: range)
        }
        guard let s = plainLocal(target) else { return nil }
        if case .intLiteral(let c) = operand.kind, arith != .multiply, c != Int.min {
            return IncrementLocalNode(slot: s, c: arith == .add ? c : -c, range: range)
        }
        let v = expr(operand)
        if v.yields { return nil }
        return UpdateLocalNode(slot: s, value: v, op: arith, range: range)
    }

    mutating func binaryNode(_ op: BinaryOp, _ ln: Node, _ rn: Node, _ range: SourceRange, leftExpr: Expr, rightExpr: Expr) -> Node {
        var constant: Int? = nil
        if case .intLiteral(let c) = rightExpr.kind { constant = c }
        let localSlot = plainLocal(leftExpr)
        if let a = localSlot, let b = plainLocal(rightExpr) {
            switch op {
            case .add: return ArithLocalLocalNode(a: a, b: b, op: .add, range: range)
            case .subtract: return ArithLocalLocalNode(a: a, b: b, op: .subtract, range: range)
            case .multiply: return ArithLocalLocalNode(a: a, b: b, op: .multiply, range: range)
            default: break
            }
        }
        if op == .equal || op == .notEqual {
            if case .nilLiteral = rightExpr.kind { return hoist([ln]) { IsNilNode($0[0], negated: op == .notEqual) } }
            if case .nilLiteral = leftExpr.kind { return hoist([rn]) { IsNilNode($0[0], negated: op == .notEqual) } }
        }
        if op == .add, !rn.yields, case .intLiteral(let c) = leftExpr.kind {
            return AddConstNode(rn, c, range, form: .addedFirst)
        }
        if !ln.yields && !rn.yields, let c = constant {
            switch op {
            case .equal, .notEqual:
                if let s = localSlot { return EqLocalConstNode(slot: s, c: c, negated: op == .notEqual) }
            case .add:
                if let s = localSlot { return AddLocalConstNode(slot: s, c: c, range: range) }
                return AddConstNode(ln, c, range)
            case .subtract where c != Int.min:
                if let s = localSlot { return AddLocalConstNode(slot: s, c: -c, range: range, form: .subtracted) }
                return AddConstNode(ln, -c, range, form: .subtracted)
            case .remainder where c > 0: return ModConstNode(ln, c, range)
            case .less, .lessEqual, .greater, .greaterEqual:
                if let s = localSlot {
                    return CompareLocalConstNode(slot: s, c: c, general: Compiler.compareNode(op, ln, rn, range))
                }
            default: break
            }
        }
        return hoist([ln, rn]) { c in
            let l = c[0], r = c[1]
            switch op {
            case .add: return AddNode(l, r, range)
            case .subtract: return SubNode(l, r, range)
            case .multiply: return MulNode(l, r, range)
            case .divide: return DivNode(l, r, range)
            case .floorDivide: return FloorDivNode(l, r, range)
            case .remainder: return ModNode(l, r, range)
            case .equal: return EqNode(l, r, negated: false)
            case .notEqual: return EqNode(l, r, negated: true)
            case .less, .lessEqual, .greater, .greaterEqual: return Compiler.compareNode(op, l, r, range)
            case .contains: return InNode(l, r, range)
            case .and: return AndNode(l, r)
            case .or: return OrNode(l, r)
            }
        }
    }

    static func compareNode(_ op: BinaryOp, _ l: Node, _ r: Node, _ range: SourceRange) -> CompareNode {
        switch op {
        case .less: return CompareNode(l, r, .less, "<", range)
        case .lessEqual: return CompareNode(l, r, .lessEqual, "<=", range)
        case .greater: return CompareNode(l, r, .greater, ">", range)
        default: return CompareNode(l, r, .greaterEqual, ">=", range)
        }
    }

    /// Whether a call may suspend: calls of known functions know; calls of values do not,
    /// so in async code they are treated as possible suspension points.
    func callMaySuspend(_ callee: Expr) -> Bool {
        if case .name = callee.kind, let ref = res.refs[ObjectIdentifier(callee)] {
            switch ref {
            case .builtin(let b):
                if case .builtin(let builtin)? = interpreter.builtins[b] { return builtin.suspends }
                return false
            case .global(let g):
                if let info = res.globals[g], info.kind == .function {
                    return res.functions.values.first { $0.decl?.name == g && $0.parent === res.main && $0.decl?.kind == .function }?.suspends ?? false
                }
            default: break
            }
        }
        return asyncMode
    }

    /// A call. In async code, a callee, receiver or argument that may suspend is evaluated
    /// first into a temporary (`hoist`), so a call node itself only waits for the call:
    /// its step (`Fiber`) evaluates the rest synchronously.
    mutating func call(_ callee: Expr, _ args: [Argument], _ range: SourceRange) -> Node {
        let positional = args.filter { $0.label == nil }.map { expr($0.value) }
        let named = args.compactMap { a in a.label.map { ($0, expr(a.value)) } }
        // The arguments among the children `hoist` gives back, after the callee or receiver.
        func arguments(_ c: [Node]) -> CompiledArguments {
            CompiledArguments(positional: Array(c[1..<1 + positional.count]),
                              named: zip(named, c[(1 + positional.count)...]).map { ($0.0.0, $0.1) })
        }
        // `receiver.method(…)`, unless the receiver is an imported module.
        if case .member(let o, let name, _) = callee.kind, moduleMember(o, name) == nil {
            let recv = expr(o)
            let id = interpreter.methodID(name)
            let async = asyncMode
            return hoist([recv] + positional + named.map { $0.1 }) { c in
                let n = MethodCallNode(receiver: c[0], name: name, id: id, args: arguments(c), range: range)
                n.yields = async
                return n
            }
        }
        let calleeNode = expr(callee)
        let suspends = callMaySuspend(callee)
        if asyncMode, calleeNode.yields || positional.contains(where: { $0.yields }) || named.contains(where: { $0.1.yields }) {
            return hoist([calleeNode] + positional + named.map { $0.1 }) { c in
                let n = CallNode(callee: c[0], args: arguments(c), range: range)
                n.yields = suspends
                return n
            }
        }
        let compiledArgs = CompiledArguments(positional: positional, named: named)
        let n: Node
        if named.isEmpty, case .name(let fname) = callee.kind, case .global(let g)? = res.refs[ObjectIdentifier(callee)],
           res.globals[g]?.kind == .function, let cell = module.globals[fname] {
            switch positional.count {
            case 0: n = CallGlobal0Node(cell: cell, range: range)
            case 1: n = CallGlobal1Node(cell: cell, a0: positional[0], range: range)
            case 2: n = CallGlobal2Node(cell: cell, a0: positional[0], a1: positional[1], range: range)
            default: n = CallGlobalNNode(cell: cell, args: positional, range: range)
            }
        } else if named.isEmpty, case .builtin(let b)? = (calleeNode as? ConstNode)?.value, !b.suspends {
            if b === interpreter.emitBuiltin, positional.count >= 2, positional.count <= 3, let record = positional[1] as? RecordNode {
                n = EmitRecordNode(type: positional[0], record: record, key: positional.count > 2 ? positional[2] : NilNode(), range: range)
            } else {
                n = CallBuiltinNode(b, args: positional, range: range)
            }
        } else if named.isEmpty {
            switch positional.count {
            case 0: n = Call0Node(callee: calleeNode, range: range)
            case 1: n = Call1Node(callee: calleeNode, a0: positional[0], range: range)
            case 2: n = Call2Node(callee: calleeNode, a0: positional[0], a1: positional[1], range: range)
            default: n = CallNode(callee: calleeNode, args: compiledArgs, range: range)
            }
        } else {
            n = CallNode(callee: calleeNode, args: compiledArgs, range: range)
        }
        n.yields = suspends || calleeNode.yields || compiledArgs.yields
        return n
    }

    mutating func pattern(_ p: Pattern) -> PatternNode {
        switch p {
        case .wildcard: return WildcardPattern()
        case .literal(let e):
            switch e.kind {
            case .intLiteral(let i): return LiteralPattern(.int(i))
            case .floatLiteral(let f): return LiteralPattern(.float(f))
            case .durationLiteral(let d): return LiteralPattern(.duration(d))
            case .stringLiteral(let s): return LiteralPattern(.str(s))
            case .boolLiteral(let b): return LiteralPattern(.bool(b))
            default: return LiteralPattern(.nilValue)
            }
        case .binding(_, let r):
            let v = res.decls[r.start]!
            return BindPattern(slot: slot(v))
        case .list(let items, let rest, _):
            let restNode = rest.map { r -> BindPattern in
                let v = res.decls[r.1.start]!
                return BindPattern(slot: slot(v))
            }
            return ListPattern(items: items.map { pattern($0) }, rest: restNode)
        case .map(let fields, _):
            return MapPattern(fields: fields.map { ($0.0, pattern($0.1)) })
        case .alternatives(let options, _):
            return AlternativesPattern(options.map { pattern($0) })
        }
    }
}
