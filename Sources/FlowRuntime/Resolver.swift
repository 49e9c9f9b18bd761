import FlowSyntax

/// A variable declared in a function: a parameter or a local.
final class VarInfo {
    let name: String
    let range: SourceRange
    unowned let function: FunctionScope
    /// Parameter index, or index among the function's locals.
    let index: Int
    let isParameter: Bool
    /// True once a nested function refers to it: it then lives in a cell.
    var captured = false
    init(name: String, range: SourceRange, function: FunctionScope, index: Int, isParameter: Bool) {
        self.name = name; self.range = range; self.function = function; self.index = index; self.isParameter = isParameter
    }
}

/// What a name refers to.
enum Ref {
    case local(VarInfo)
    /// The i-th captured variable of the current function.
    case capture(Int, VarInfo)
    case global(String)
    case builtin(String)
}

/// Facts about one function (or the module's main code) that the compiler needs.
final class FunctionScope {
    let decl: FunctionDecl?
    let name: String
    weak var parent: FunctionScope?
    var parameters: [VarInfo] = []
    var captures: [VarInfo] = []
    var localCount = 0
    var maxLocals = 0
    var loopDepth = 0
    /// Names of module globals called directly, for the suspension fixpoint.
    var calledGlobals: Set<String> = []
    /// True when it suspends by itself (`sleep`, `await`…).
    var suspendsDirectly = false
    /// Lambdas it passes to calls (`xs.map(fn(x) { node … })`): if one can suspend, the
    /// call can, so this function runs on the async path too.
    var passedLambdas: [FunctionScope] = []
    var suspends = false
    init(decl: FunctionDecl?, name: String, parent: FunctionScope?) {
        self.decl = decl; self.name = name; self.parent = parent
    }
    var isMain: Bool { decl == nil }

    func captureIndex(of v: VarInfo) -> Int {
        if let i = captures.firstIndex(where: { $0 === v }) { return i }
        captures.append(v)
        return captures.count - 1
    }
}

/// What kind of top-level definition a global is.
enum GlobalKind { case function, flow, type, importBinding, variable }

struct GlobalInfo {
    let kind: GlobalKind
    let range: SourceRange
    /// For functions: parameter names and how many are required, for arity checks.
    var parameters: [String] = []
    var required = 0
    /// For imports: the module.
    var module: Module?
}

/// The resolver's output: bindings of names and the shape of every function.
final class Resolution {
    var refs: [ObjectIdentifier: Ref] = [:]
    /// Declarations keyed by the byte offset of the declared name.
    var decls: [Int: VarInfo] = [:]
    var functions: [ObjectIdentifier: FunctionScope] = [:]
    var main: FunctionScope!
    var globals: [String: GlobalInfo] = [:]
    var globalOrder: [String] = []
    /// The thunks that make the defaults of `type` fields, by the field name's offset.
    var fieldDefaults: [Int: FunctionDecl] = [:]
    /// The body of each `node`, as a function without parameters, by the node expression.
    var nodeBodies: [ObjectIdentifier: FunctionDecl] = [:]
    /// The body of each parallel or race branch (and of each `parallel for`), as a
    /// function, by the body block.
    var branchBodies: [ObjectIdentifier: FunctionDecl] = [:]
    /// Calls of module globals by name (a redefinition is checked against them).
    var callSites: [(name: String, args: [Argument], range: SourceRange)] = []
    /// The globals this program defines itself (the others were known before it).
    var defined: [String] = []
    /// The program resolved (the image records its definitions' source from it).
    var program: Program?
}

/// Binds every name of a program and reports every static error before anything runs:
/// undefined names (with a did-you-mean), duplicate definitions, misplaced return / break /
/// continue, wrong arity of calls to known functions. Marks which functions can suspend.
struct Resolver {
    let interpreter: Interpreter
    let module: Module
    var diagnostics = DiagnosticBag()
    let res = Resolution()
    var scopes: [[String: VarInfo]] = []
    var function: FunctionScope!
    /// Top-level `let`s declared so far (main code may not read one before it).
    var declaredGlobals: Set<String> = []
    /// Modules imported, by binding name, resolved by the caller beforehand.
    let imports: [String: Module]

    /// Globals defined by earlier programs in the same module (the REPL's inputs): visible
    /// here, and redefinable.
    let known: [String: GlobalInfo]

    init(interpreter: Interpreter, module: Module, imports: [String: Module], known: [String: GlobalInfo] = [:]) {
        self.interpreter = interpreter
        self.module = module
        self.imports = imports
        self.known = known
        declaredGlobals = Set(known.keys)
    }

    mutating func error(_ message: String, at range: SourceRange, notes: [Diagnostic.Note] = []) {
        diagnostics.error(message, at: range, notes: notes)
    }

    // MARK: - Entry

    mutating func resolve(_ program: Program) -> Resolution {
        let main = FunctionScope(decl: nil, name: "<main>", parent: nil)
        res.main = main
        res.program = program
        function = main
        scopes = [[:]]
        declareGlobals(program.statements)
        for s in program.statements { statement(s, topLevel: true) }
        computeSuspension()
        return res
    }

    /// Declares top-level definitions first, so functions can call ones defined later.
    mutating func declareGlobals(_ statements: [Stmt]) {
        res.globals = known
        res.globalOrder = Array(known.keys).sorted()
        for s in statements {
            var name: String? = nil
            var info: GlobalInfo? = nil
            switch s.kind {
            case .fnDecl(let d), .flowDecl(let d):
                name = d.name
                var g = GlobalInfo(kind: d.kind == .flow ? .flow : .function, range: d.nameRange ?? d.range)
                g.parameters = d.parameters.map { $0.name }
                g.required = d.parameters.firstIndex { $0.defaultValue != nil } ?? d.parameters.count
                info = g
            case .typeDecl(let t):
                name = t.name
                info = GlobalInfo(kind: .type, range: t.nameRange)
            case .importDecl(let path, let alias, let r):
                let n = alias ?? Resolver.defaultAlias(path)
                name = n
                var g = GlobalInfo(kind: .importBinding, range: r)
                g.module = imports[n]
                info = g
            case .letDecl(let n, let r, _):
                name = n
                info = GlobalInfo(kind: .variable, range: r)
            default: break
            }
            guard let n = name, let i = info else { continue }
            if let first = res.globals[n], res.defined.contains(n) {
                error("duplicate definition of '\(n)'", at: i.range,
                      notes: [Diagnostic.Note("first defined", at: first.range)])
                continue
            }
            if res.globals[n] == nil { res.globalOrder.append(n) }
            res.globals[n] = i
            res.defined.append(n)
        }
    }

    static func defaultAlias(_ path: ImportPath) -> String {
        switch path {
        case .standard(let parts): return parts.last ?? "module"
        case .file(let p):
            var name = p.split(separator: "/").last.map(String.init) ?? p
            if name.hasSuffix(".flow") { name.removeLast(5) }
            return name.map { $0.isLetter || $0.isNumber ? $0 : "_" }.reduce("") { $0 + String($1) }
        }
    }

    /// A function suspends if it suspends directly or calls a module function that does.
    mutating func computeSuspension() {
        let all = Array(res.functions.values) + [res.main!]
        var byName: [String: FunctionScope] = [:]
        for f in all where f.decl?.kind != .lambda { if let n = f.decl?.name { byName[n] = f } }
        for f in all { f.suspends = f.suspendsDirectly }
        var changed = true
        while changed {
            changed = false
            for f in all where !f.suspends {
                if f.calledGlobals.contains(where: { byName[$0]?.suspends == true })
                    || f.passedLambdas.contains(where: { $0.suspends }) {
                    f.suspends = true
                    changed = true
                }
            }
        }
    }

    // MARK: - Scopes

    mutating func declare(_ name: String, _ range: SourceRange) {
        if let existing = scopes[scopes.count - 1][name], existing.function === function {
            error("'\(name)' is already declared in this scope", at: range,
                  notes: [Diagnostic.Note("first declared", at: existing.range)])
            return
        }
        let v = VarInfo(name: name, range: range, function: function, index: function.localCount, isParameter: false)
        function.localCount += 1
        function.maxLocals = max(function.maxLocals, function.localCount)
        scopes[scopes.count - 1][name] = v
        res.decls[range.start] = v
    }

    mutating func withBlockScope(_ body: (inout Resolver) -> Void) {
        scopes.append([:])
        let saved = function.localCount
        body(&self)
        function.localCount = saved
        scopes.removeLast()
    }

    /// Finds a name: locals outward through enclosing functions (capturing), then module
    /// globals, then builtins.
    mutating func lookup(_ name: String, at range: SourceRange, inMainCode: Bool) -> Ref? {
        for scope in scopes.reversed() {
            guard let v = scope[name] else { continue }
            if v.function === function { return .local(v) }
            v.captured = true
            // Thread the capture through every function between the declaring one and here.
            var chain: [FunctionScope] = []
            var f: FunctionScope? = function
            while let cur = f, cur !== v.function { chain.append(cur); f = cur.parent }
            for fn in chain.reversed() { _ = fn.captureIndex(of: v) }
            return .capture(function.captureIndex(of: v), v)
        }
        if let g = res.globals[name] {
            if g.kind == .variable && inMainCode && function.isMain && !declaredGlobals.contains(name) {
                error("'\(name)' is used before its declaration", at: range,
                      notes: [Diagnostic.Note("declared", at: g.range)])
            }
            return .global(name)
        }
        if interpreter.builtins[name] != nil { return .builtin(name) }
        return nil
    }

    func visibleNames() -> [String] {
        var names = Set(res.globals.keys).union(interpreter.builtins.keys)
        for s in scopes { names.formUnion(s.keys) }
        return Array(names)
    }

    mutating func undefined(_ name: String, at range: SourceRange) {
        var notes: [Diagnostic.Note] = []
        if let near = Suggest.closest(to: name, in: visibleNames()) {
            var where_: SourceRange? = nil
            for s in scopes.reversed() { if let v = s[near] { where_ = v.range; break } }
            if where_ == nil { where_ = res.globals[near]?.range }
            notes.append(Diagnostic.Note(where_ != nil ? "did you mean '\(near)'? declared" : "did you mean '\(near)'?", at: where_))
        }
        error("undefined name '\(name)'", at: range, notes: notes)
    }

    /// Constructs whose runtime arrives with the workflow engine.
    mutating func unavailable(_ what: String, at range: SourceRange) {
        error("\(what) needs the workflow engine, which this version of Flow does not include yet", at: range)
    }

    // MARK: - Statements

    mutating func block(_ b: Block) {
        withBlockScope { r in for s in b.statements { r.statement(s, topLevel: false) } }
    }

    mutating func statement(_ s: Stmt, topLevel: Bool) {
        switch s.kind {
        case .letDecl(let name, let r, let value):
            if let v = value { expr(v) }
            if topLevel && function.isMain { declaredGlobals.insert(name) } else { declare(name, r) }
        case .assign(let target, _, let value):
            assignTarget(target)
            expr(value)
        case .expr(let e):
            expr(e)
        case .fnDecl(let d):
            if !topLevel {
                // A nested named function is a local bound to a closure.
                declare(d.name ?? "", d.nameRange ?? d.range)
            }
            functionBody(d)
        case .flowDecl(let d):
            if !topLevel { error("'flow' must be declared at the top level of a file", at: d.range); return }
            functionBody(d)
        case .typeDecl(let t):
            if !topLevel { error("'type' must be declared at the top level of a file", at: t.range); return }
            typeDeclaration(t)
        case .importDecl(_, _, let r):
            if !topLevel { error("'import' must be at the top level of a file", at: r) }
        case .whileLoop(let c, let body):
            expr(c)
            function.loopDepth += 1
            block(body)
            function.loopDepth -= 1
        case .forIn(let name, let r, let second, let iterable, let body, let isAwait):
            expr(iterable)
            if isAwait { function.suspendsDirectly = true }
            withBlockScope { rr in
                rr.declare(name, r)
                if let (n2, r2) = second { rr.declare(n2, r2) }
                rr.function.loopDepth += 1
                rr.block(body)
                rr.function.loopDepth -= 1
            }
        case .returnStmt(let v):
            if function.isMain { error("'return' outside a function", at: s.range) }
            if let v { expr(v) }
        case .breakStmt:
            if function.loopDepth == 0 { error("'break' outside a loop", at: s.range) }
        case .continueStmt:
            if function.loopDepth == 0 { error("'continue' outside a loop", at: s.range) }
        case .throwStmt(let v):
            expr(v)
        case .trigger(_, let body):
            error("a trigger needs the workflow engine, which this version of Flow does not include yet", at: s.range)
            _ = body
        }
    }

    /// Checks a `type`: distinct fields, known type names; each default becomes a thunk
    /// (a function without parameters) run for every record built.
    mutating func typeDeclaration(_ t: TypeDecl) {
        var seen: [String: SourceRange] = [:]
        for f in t.fields {
            if let first = seen[f.name] {
                error("duplicate field '\(f.name)' in type '\(t.name)'", at: f.nameRange, notes: [Diagnostic.Note("first declared", at: first)])
            }
            seen[f.name] = f.nameRange
            typeExpression(f.type)
            if let d = f.defaultValue {
                let body = Block([Stmt(.expr(d), d.range)], d.range)
                let thunk = FunctionDecl(kind: .lambda, name: "\(t.name).\(f.name)", nameRange: f.nameRange, parameters: [], body: body, isArrow: true, range: d.range)
                res.fieldDefaults[f.nameRange.start] = thunk
                functionBody(thunk)
            }
        }
    }

    mutating func typeExpression(_ t: TypeExpr) {
        switch t {
        case .literal: break
        case .union(let options, _): for o in options { typeExpression(o) }
        case .named(let n, let args, let r):
            if n == "list" || n == "map" {
                if args.count > 1 { error("'\(n)' takes one type argument (\(n)<T>), found \(args.count)", at: r) }
            } else if !args.isEmpty {
                error("'\(n)' takes no type arguments", at: r)
            }
            for a in args { typeExpression(a) }
            if TypeSpec.builtinNames.contains(n) { return }
            if res.globals[n]?.kind == .type { return }
            let declared = res.globals.filter { $0.value.kind == .type }.map { $0.key }
            var notes: [Diagnostic.Note] = []
            if let near = Suggest.closest(to: n, in: TypeSpec.builtinNames + declared) { notes.append(Diagnostic.Note("did you mean '\(near)'?")) }
            let kind = res.globals[n].map { " ('\(n)' is a \(describe($0.kind)), not a type)" } ?? ""
            error("unknown type '\(n)'\(kind)", at: r, notes: notes)
        }
    }

    mutating func assignTarget(_ target: Expr) {
        switch target.kind {
        case .name(let n):
            guard let ref = lookup(n, at: target.range, inMainCode: true) else {
                error("undefined name '\(n)'; declare it first with 'let \(n) = …'", at: target.range)
                return
            }
            switch ref {
            case .builtin: error("cannot assign to builtin '\(n)'; declare a variable with 'let \(n) = …' to shadow it", at: target.range)
            case .global(let g):
                if let info = res.globals[g], info.kind != .variable {
                    error("cannot assign to \(describe(info.kind)) '\(n)'", at: target.range)
                }
            default: break
            }
            res.refs[ObjectIdentifier(target)] = ref
        case .member(let o, _, _): expr(o)
        case .index(let o, let i): expr(o); expr(i)
        default: expr(target)
        }
    }

    func describe(_ k: GlobalKind) -> String {
        switch k {
        case .function: return "function"
        case .flow: return "flow"
        case .type: return "type"
        case .importBinding: return "module"
        case .variable: return "variable"
        }
    }

    mutating func functionBody(_ d: FunctionDecl) {
        let scope = FunctionScope(decl: d, name: d.name ?? "<lambda>", parent: function)
        // A flow always runs as a run on the event loop: it is async by nature.
        if d.kind == .flow { scope.suspendsDirectly = true }
        res.functions[ObjectIdentifier(d)] = scope
        let savedFunction = function
        let savedScopes = scopes
        function = scope
        scopes.append([:])
        var seen: [String: SourceRange] = [:]
        var sawDefault = false
        for (i, p) in d.parameters.enumerated() {
            if let first = seen[p.name] {
                error("duplicate parameter '\(p.name)'", at: p.range, notes: [Diagnostic.Note("first declared", at: first)])
            }
            seen[p.name] = p.range
            if p.defaultValue != nil { sawDefault = true } else if sawDefault {
                error("parameter '\(p.name)' has no default but follows one that has; put required parameters first", at: p.range)
            }
            let v = VarInfo(name: p.name, range: p.range, function: scope, index: i, isParameter: true)
            scope.parameters.append(v)
            scopes[scopes.count - 1][p.name] = v
            res.decls[p.range.start] = v
        }
        // Defaults see the parameters before them.
        for p in d.parameters { if let dv = p.defaultValue { expr(dv) } }
        for s in d.body.statements { statement(s, topLevel: false) }
        scopes = savedScopes
        function = savedFunction
    }

    // MARK: - Expressions

    mutating func expr(_ e: Expr) {
        switch e.kind {
        case .nilLiteral, .boolLiteral, .intLiteral, .floatLiteral, .durationLiteral, .stringLiteral:
            break
        case .template(let parts):
            for case .expr(let x) in parts { expr(x) }
        case .name(let n):
            guard let ref = lookup(n, at: e.range, inMainCode: true) else { undefined(n, at: e.range); return }
            res.refs[ObjectIdentifier(e)] = ref
        case .state:
            break
        case .list(let items):
            for i in items { expr(i) }
        case .map(let entries):
            for en in entries {
                if case .computed(let k) = en.key { expr(k) }
                expr(en.value)
            }
        case .unary(_, let x):
            expr(x)
        case .binary(_, let l, let r):
            expr(l); expr(r)
        case .call(let callee, let args):
            call(callee, args, e.range)
        case .member(let o, let name, let nameRange):
            expr(o)
            checkModuleMember(o, name, nameRange)
        case .index(let o, let i):
            expr(o); expr(i)
        case .lambda(let d):
            functionBody(d)
        case .ifExpr(let c, let then, let otherwise):
            expr(c)
            block(then)
            switch otherwise {
            case .block(let b): block(b)
            case .elseIf(let x): expr(x)
            case nil: break
            }
        case .match(let subject, let arms):
            expr(subject)
            for arm in arms {
                withBlockScope { r in
                    r.pattern(arm.pattern)
                    if let g = arm.guardExpr { r.expr(g) }
                    r.block(arm.body)
                }
            }
        case .tryExpr(let body, let catches, let finally):
            block(body)
            for c in catches {
                withBlockScope { r in
                    if let n = c.name, let nr = c.nameRange { r.declare(n, nr) }
                    if let g = c.guardExpr { r.expr(g) }
                    r.block(c.body)
                }
            }
            if let f = finally { block(f) }
        case .node(let name, let options, let body):
            nodeExpression(e, name, options, body)
        case .parallel(let branches), .race(let branches):
            function.suspendsDirectly = true
            for b in branches { branchFunction(b.body, name: b.name, parameter: nil) }
        case .parallelFor(let name, let iterable, let limit, let body):
            expr(iterable)
            if let limit { expr(limit) }
            function.suspendsDirectly = true
            branchFunction(body, name: "parallel for", parameter: name)
        case .spawn(let body):
            function.suspendsDirectly = true
            branchFunction(body, name: "spawn", parameter: nil)
        case .await(let x):
            function.suspendsDirectly = true
            expr(x)
        case .quote:
            // Quoted code is data: its names are resolved when it is defined.
            break
        }
    }

    /// The options the engine understands, and those that need what is not built yet.
    static let nodeOptions = ["retry", "backoff", "delay", "max_delay", "timeout", "compensate"]
    static let laterNodeOptions: [String] = []

    /// A `node`: known options, and a body that becomes a function the engine calls.
    mutating func nodeExpression(_ e: Expr, _ name: String, _ options: [Argument], _ body: Block) {
        for o in options {
            guard let label = o.label else { continue }
            if Resolver.laterNodeOptions.contains(label) {
                error("node option '\(label)' needs cancellation and unwinding, which this version of the engine does not include yet", at: o.labelRange ?? o.value.range)
            } else if !Resolver.nodeOptions.contains(label) {
                // A warning, not an error: a redefined run_node may read options of its own.
                var notes: [Diagnostic.Note] = []
                if let near = Suggest.closest(to: label, in: Resolver.nodeOptions + Resolver.laterNodeOptions) { notes.append(Diagnostic.Note("did you mean '\(near)'?")) }
                diagnostics.append(Diagnostic(.warning, "unknown node option '\(label)': the standard engine ignores it (its options: \(Resolver.nodeOptions.joined(separator: ", ")))", at: o.labelRange ?? o.value.range, notes: notes))
            }
            expr(o.value)
        }
        let decl = FunctionDecl(kind: .lambda, name: name, nameRange: nil, parameters: [], body: body, isArrow: false, range: body.range)
        res.nodeBodies[ObjectIdentifier(e)] = decl
        function.suspendsDirectly = true
        functionBody(decl)
    }

    /// A branch body becomes a function (of the loop variable, for `parallel for`): each
    /// branch runs as a task of its own, with its own frame.
    mutating func branchFunction(_ body: Block, name: String, parameter: String?) {
        let params = parameter.map { [Parameter(name: $0, range: SourceRange(file: body.range.file, start: body.range.start, end: body.range.start + 1), defaultValue: nil)] } ?? []
        let decl = FunctionDecl(kind: .lambda, name: name, nameRange: nil, parameters: params, body: body, isArrow: false, range: body.range)
        res.branchBodies[ObjectIdentifier(body)] = decl
        functionBody(decl)
    }

    mutating func pattern(_ p: Pattern) {
        switch p {
        case .wildcard, .literal: break
        case .binding(let n, let r): declare(n, r)
        case .list(let items, let rest, _):
            for i in items { pattern(i) }
            if let (n, r) = rest { declare(n, r) }
        case .map(let fields, _):
            for (_, f) in fields { pattern(f) }
        case .alternatives(let options, _):
            for o in options { pattern(o) }
        }
    }

    /// `module.name` must name something the module defines.
    mutating func checkModuleMember(_ object: Expr, _ name: String, _ range: SourceRange) {
        guard case .name(let n) = object.kind, case .global(let g)? = res.refs[ObjectIdentifier(object)],
              let info = res.globals[g], info.kind == .importBinding, let m = info.module else { return }
        if !m.exports.contains(name) {
            var notes: [Diagnostic.Note] = []
            if let near = Suggest.closest(to: name, in: m.exports) { notes.append(Diagnostic.Note("did you mean '\(near)'?")) }
            error("module '\(n)' has no definition '\(name)'", at: range, notes: notes)
        }
    }

    mutating func call(_ callee: Expr, _ args: [Argument], _ range: SourceRange) {
        expr(callee)
        for a in args {
            expr(a.value)
            if case .lambda(let d) = a.value.kind, let scope = res.functions[ObjectIdentifier(d)] {
                function.passedLambdas.append(scope)
            }
        }
        if case .member(_, let name, _) = callee.kind, interpreter.suspendingMethodNames.contains(name) {
            function.suspendsDirectly = true
        }
        guard case .name(let n) = callee.kind, let ref = res.refs[ObjectIdentifier(callee)] else { return }
        switch ref {
        case .global(let g):
            function.calledGlobals.insert(g)
            res.callSites.append((g, args, range))
            if let info = res.globals[g], info.kind == .function || info.kind == .flow {
                checkArity("'\(n)'", parameters: info.parameters, required: info.required, variadic: false, args, range)
            }
        case .builtin(let b):
            if case .builtin(let builtin)? = interpreter.builtins[b] {
                if builtin.suspends { function.suspendsDirectly = true }
                checkArity("'\(n)'", parameters: builtin.parameters, required: builtin.requiredCount, variadic: builtin.variadic, args, range)
            }
        default: break
        }
    }

    /// Why a call with `args` does not fit these parameters, or nil when it does.
    static func arityProblem(parameters: [String], required: Int, _ args: [Argument]) -> String? {
        let positional = args.filter { $0.label == nil }.count
        if positional > parameters.count { return "it is called with \(positional) arguments and would take \(parameters.count)" }
        var given = Set(0..<positional)
        for a in args {
            guard let label = a.label else { continue }
            guard let i = parameters.firstIndex(of: label) else { return "it is called with argument '\(label)', which it would not have" }
            given.insert(i)
        }
        for i in 0..<required where !given.contains(i) {
            return "it is called without '\(parameters[i])', which it would require"
        }
        return nil
    }

    mutating func checkArity(_ name: String, parameters: [String], required: Int, variadic: Bool, _ args: [Argument], _ range: SourceRange) {
        let positional = args.filter { $0.label == nil }.count
        let takes = required == parameters.count && !variadic
            ? "\(required) argument\(required == 1 ? "" : "s")"
            : variadic ? "at least \(required) argument\(required == 1 ? "" : "s")" : "\(required) to \(parameters.count) arguments"
        if !variadic && positional > parameters.count {
            error("\(name) takes \(takes), found \(args.count)", at: range)
            return
        }
        var given = Set(0..<min(positional, parameters.count))
        for a in args {
            guard let label = a.label else { continue }
            guard let i = parameters.firstIndex(of: label) else {
                error("\(name) has no parameter '\(label)'", at: a.labelRange ?? range,
                      notes: [Diagnostic.Note("its parameters: \(parameters.isEmpty ? "none" : parameters.joined(separator: ", "))")])
                return
            }
            if given.contains(i) { error("\(name) got argument '\(label)' twice", at: a.labelRange ?? range); return }
            given.insert(i)
        }
        for i in 0..<required where !given.contains(i) {
            error("\(name) is missing argument '\(parameters[i])' (takes \(takes))", at: range)
            return
        }
    }
}
