import FlowSyntax

/// The REPL's side of the embedding API: inputs evaluated one after another in one
/// module, whose definitions persist, are versioned in the image, and can be redefined
/// (checked first) and rolled back.
extension Engine {
    /// The outcome of one input: its value (the last statement's), the names it defined.
    public struct Evaluation: @unchecked Sendable {
        public let value: Value
        public let defined: [String]
        /// True when the input was only definitions (the REPL then prints no value).
        public let onlyDefinitions: Bool
        /// Runs offered a redefined flow (they move at their next node boundary).
        public let offered: [String]
    }

    /// Evaluates one input in the REPL's module. A failing check (syntax, names, arity —
    /// also of earlier callers of a function this input redefines) throws
    /// `CompileFailure` and changes nothing; a runtime error throws `FlowError` (the
    /// definitions made before it stay).
    @discardableResult
    public func evaluate(_ text: String, path: String = "<repl>", origin: String = "repl",
                         policy: SwapPolicy = .migrate) throws -> Evaluation {
        try perform { [self] in
            let input = try prepare(text, path: path)
            let value = try execute(input.proto, module: input.module)
            return commit(input, value: value, origin: origin, policy: policy)
        }
    }

    /// Whether an input is a call of a flow defined in the session (`f(…)`): the REPL runs
    /// those in the background.
    public func isFlowCall(_ text: String) -> Bool {
        let (program, errors) = Parser.parse(SourceFile(path: "<repl>", text: text))
        guard errors.isEmpty, program.statements.count == 1, case .expr(let e) = program.statements[0].kind,
              case .call(let callee, _) = e.kind, case .name(let n) = callee.kind else { return false }
        return (try? perform { [self] in replGlobals[n]?.kind == .flow }) ?? false
    }

    /// Starts an input (a flow call) as a task on the event loop and returns at once;
    /// `done` gets its value or error when it ends. Needs `startBackground()`.
    public func evaluateInBackground(_ text: String, path: String = "<repl>", origin: String = "repl",
                                     done: @escaping @Sendable (Result<Value, Error>) -> Void) throws {
        try perform { [self] in
            let input = try prepare(text, path: path)
            _ = commit(input, value: .nilValue, origin: origin)
            let main = Closure(proto: input.proto, captures: [])
            let interpreter = self.interpreter
            backgroundTasks.append(Task(executorPreference: interpreter.loop) {
                do { done(.success(try await interpreter.invokeAsync(.closure(main), [], named: nil, range: Engine.replRange))) } catch {
                    if let e = error as? FlowError { e.finish() }
                    done(.failure(error))
                }
            })
        }
    }

    static let replRange = SourceRange(file: SourceFile(path: "<repl>", text: ""), start: 0, end: 0)

    struct Input {
        let proto: FunctionProto
        let resolution: Resolution
        let file: SourceFile
        let module: Module
    }

    /// Parses, resolves, checks and compiles an input into the REPL's module.
    func prepare(_ text: String, path: String) throws -> Input {
        try loadPreludes()
        let module = replModule ?? Module(path: "<repl>")
        replModule = module
        interpreter.mainModule = module
        let file = SourceFile(path: path, text: text)
        let known = replGlobals
        let sites = replCallSites
        let (proto, diagnostics, resolution) = compile(file, module: module, known: known) { res in
            Engine.checkRedefinitions(res, known: known, sites: sites)
        }
        guard let proto, let resolution, !diagnostics.contains(where: { $0.severity == .error }) else {
            throw CompileFailure(diagnostics: diagnostics)
        }
        warnings = diagnostics.filter { $0.severity == .warning }
        // A name that stops being a function must not be called through its old body.
        for name in resolution.defined {
            if let info = resolution.globals[name], info.kind != .function && info.kind != .flow, let cell = module.globals[name] {
                cell.function = nil
                cell.direct = nil
                cell.directArity = -1
                cell.directBody = nil
            }
        }
        return Input(proto: proto, resolution: resolution, file: file, module: module)
    }

    /// Records what an input defined (in the session and the image).
    func commit(_ input: Input, value: Value, origin: String, policy: SwapPolicy = .migrate) -> Evaluation {
        let resolution = input.resolution
        var offered: [String] = []
        for name in resolution.defined where replGlobals[name] != nil && resolution.globals[name]?.kind == .flow {
            if case .closure(let c)? = input.module.globals[name]?.value {
                let version = (interpreter.image.versions(of: name).last?.number ?? 0) + 1
                offered += interpreter.offer(flow: name, closure: c, version: version, policy: policy)
            }
        }
        for name in resolution.defined { replGlobals[name] = resolution.globals[name] }
        replCallSites.append(contentsOf: resolution.callSites.map { ($0.name, $0.args, $0.range) })
        record(resolution, file: input.file, module: input.module, origin: origin)
        let statements = resolution.program?.statements ?? []
        let onlyDefinitions = !statements.isEmpty && statements.allSatisfy {
            switch $0.kind {
            case .fnDecl, .flowDecl, .typeDecl, .importDecl, .letDecl: return true
            default: return false
            }
        }
        return Evaluation(value: value, defined: resolution.defined, onlyDefinitions: onlyDefinitions, offered: offered)
    }

    /// Adds the definitions an input made to the image, with their source.
    func record(_ res: Resolution, file: SourceFile, module: Module, origin: String) {
        let now = interpreter.configuration.clock.wallTime()
        for s in res.program?.statements ?? [] {
            let name: String, kind: String
            switch s.kind {
            case .fnDecl(let d): name = d.name ?? ""; kind = "fn"
            case .flowDecl(let d): name = d.name ?? ""; kind = "flow"
            case .typeDecl(let t): name = t.name; kind = "type"
            case .letDecl(let n, _, _): name = n; kind = "let"
            case .importDecl(let path, let alias, _): name = alias ?? Resolver.defaultAlias(path); kind = "import"
            default: continue
            }
            guard let info = res.globals[name], let cell = module.globals[name] else { continue }
            let source = file.slice(s.range.start, s.range.end)
            interpreter.image.add(name, source: source, time: now, origin: origin, kind: kind, value: cell.value, info: info)
        }
    }

    /// Arity of earlier callers against the new parameters of the functions an input
    /// redefines.
    static func checkRedefinitions(_ res: Resolution, known: [String: GlobalInfo],
                                   sites: [(name: String, args: [Argument], range: SourceRange)]) -> [Diagnostic] {
        var out: [Diagnostic] = []
        for name in res.defined {
            guard known[name] != nil, let new = res.globals[name] else { continue }
            let callers = sites.filter { $0.name == name }
            guard !callers.isEmpty else { continue }
            let range = new.range
            if new.kind != .function && new.kind != .flow {
                out.append(Diagnostic(.error, "cannot redefine '\(name)' as a value: \(callers.count) earlier definition\(callers.count == 1 ? "" : "s") call\(callers.count == 1 ? "s" : "") it", at: range,
                                      notes: callers.prefix(3).map { Diagnostic.Note("called here", at: $0.range) }))
                continue
            }
            for c in callers {
                if let problem = Resolver.arityProblem(parameters: new.parameters, required: new.required, c.args) {
                    out.append(Diagnostic(.error, "redefining '\(name)' would break an earlier caller: \(problem)", at: range,
                                          notes: [Diagnostic.Note("called here", at: c.range)]))
                    break
                }
            }
        }
        return out
    }

    /// Restores the previous version of a definition (the current one is dropped from
    /// the image). Throws when there is none.
    public func rollback(_ name: String) throws -> Image.Version {
        try perform { [self] in
            let versions = interpreter.image.versions(of: name)
            guard versions.count >= 2, let module = replModule, let cell = module.globals[name] else {
                throw FlowError(kind: ErrorKind.value, message: versions.isEmpty
                                ? "'\(name)' is not defined in this session"
                                : "'\(name)' has only one version: nothing to roll back to", at: nil)
            }
            let previous = versions[versions.count - 2]
            // Callers made since may need the current arity.
            let sites = replCallSites.filter { $0.name == name }
            if previous.info.kind == .function || previous.info.kind == .flow {
                for c in sites {
                    if let problem = Resolver.arityProblem(parameters: previous.info.parameters, required: previous.info.required, c.args) {
                        throw FlowError(kind: ErrorKind.value, message: "rolling back '\(name)' to version \(previous.number) would break a caller at \(c.range.file.path):\(c.range.startLocation.line): \(problem)", at: nil)
                    }
                }
            }
            if case .closure(let c) = previous.value {
                cell.define(c)
                if previous.info.kind == .flow {
                    interpreter.offer(flow: name, closure: c, version: previous.number, policy: .migrate)
                }
            } else {
                cell.value = previous.value
                cell.function = nil
                cell.direct = nil
                cell.directArity = -1
                cell.directBody = nil
            }
            interpreter.image.table[name]?.removeLast()
            replGlobals[name] = previous.info
            return previous
        }
    }

    /// Writes what running runs have buffered, so the store shows them as they are now.
    public func flushRuns() {
        _ = try? perform { [self] in for r in interpreter.runs where r.log != nil { try? interpreter.flush(r) } }
    }

    /// The runs this engine started, oldest first: id, flow, status, what a waiting run waits for.
    public func sessionRuns() -> [(id: String, flow: String, status: String, waitingOn: String?)] {
        (try? perform { [self] in
            interpreter.runs.map { ($0.id, $0.flow, $0.status.rawValue, $0.log?.record.waitingOn) }
        }) ?? []
    }

    /// The image: the definitions of the session, the running file and the engine.
    public var image: Image {
        _ = try? perform { [self] in try loadPreludes() }
        return interpreter.image
    }

    /// The current value of a global defined in the REPL session (for completion and
    /// `:show`).
    public func replValue(_ name: String) -> Value? {
        (try? perform { [self] in replModule?.globals[name].flatMap { $0.isDefined || !$0.value.isNil ? $0.value : nil } }) ?? nil
    }

    /// Names visible to REPL inputs: its globals and the builtins.
    public var replNames: [String] {
        (try? perform { [self] in Array(replGlobals.keys) + interpreter.builtinNames }) ?? []
    }
}
