import FlowSyntax
import FlowStore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a host decides for the programs it runs. The runtime touches the outside world
/// only through these hooks, so a host sandboxes a script by not granting a capability.
public struct Configuration: @unchecked Sendable {
    /// Where `print` writes. Default: standard output.
    public var output: @Sendable (String) -> Void = { text in
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { write(1, $0.baseAddress, $0.count) }
    }
    /// The clock for `now()`, `sleep` and timers. Default: the system clock.
    public var clock: Clock = SystemClock()
    /// Call-depth limit (see `Interpreter.defaultMaxCallDepth`).
    public var maxCallDepth = Interpreter.defaultMaxCallDepth
    /// Reads a source file for `import "path"`. Default: nil — file imports are refused,
    /// so an embedded script reads no file unless the host grants it.
    public var readSource: (@Sendable (String) -> String?)? = nil
    /// Sources of the standard library modules (`import std/name`), by name. FlowStdlib
    /// fills it with the copies compiled into the binary.
    public var standardLibrary: [String: String] = [:]
    /// Names of standard modules whose definitions every program sees without an import.
    public var preludes: [String] = []
    /// The script's command-line arguments (`args()`).
    public var arguments: [String] = []
    /// Receives every event of every run (run and node lifecycle, state changes, the
    /// scripts' own), as the map scripts see. Default: nil.
    public var onEvent: (@Sendable (Value) -> Void)? = nil
    /// Where runs are recorded. nil: runs live in memory only and nothing can be resumed.
    /// With a store, every flow called while a script is recorded (`Engine.run(_:script:)`)
    /// is a durable run.
    public var store: (any RunStore)? = nil
    /// Who executes scripts (written into their records, so another process can tell
    /// whether a script's executor is still alive). Default: "host:pid".
    public var owner: String = Configuration.defaultOwner
    /// When only durable waits (approvals, signals) are left, end them with
    /// `RunsSuspended` at once instead of keeping their deadline timers (the CLI: the
    /// process exits and a later `flow resume` honours the deadlines).
    public var suspendWhenIdle = false
    /// Writes (or, with `append: true`, appends to) a file for `fs.write` / `fs.append`.
    /// Default: nil — scripts write no file unless the host grants it. Reads go through
    /// `readSource`.
    public var writeFile: (@Sendable (_ path: String, _ text: String, _ append: Bool) throws -> Void)? = nil
    /// How long finished runs are kept: when a script starts, root runs that ended longer
    /// ago than this are pruned from the store with their children. nil keeps everything.
    public var retention: Int? = nil
    /// Finished root runs kept in memory (`runs()`, `run_events`, `Engine.run(id:)`): past
    /// this many, the oldest are dropped with their child runs. Unfinished runs are always
    /// kept; with a store, a dropped run's history is still there.
    public var keptRuns = 1000
    /// Environment variables scripts may read with `env(name)`; nil refuses all.
    public var environment: [String: String]? = nil
    /// Whether the interpreter runs on the thread that calls the engine, on a large stack
    /// of its own that the thread switches to for each call, instead of on a thread of
    /// its own (the default). The process then keeps the threads it has: glibc's malloc
    /// takes no lock in a process that never had a second thread (`flow run` of the
    /// binary-trees benchmark: 14% faster). Any thread may still call; calls wait for
    /// each other. `startBackground` moves the interpreter onto a thread of its own for
    /// good.
    public var runsOnCallingThread = false

    public init() {}

    public static var defaultOwner: String {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, 255)
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + ":\(getpid())"
    }
}

/// A program that failed its static checks: every diagnostic, in source order.
public struct CompileFailure: Error, Sendable {
    public let diagnostics: [Diagnostic]
}

/// The embedding API: create one with a configuration, register host functions, load
/// source, call functions.
///
/// Isolation: everything runs on the engine's own interpreter thread (a large native
/// stack, so deep Flow recursion hits the call-depth limit, never a stack overflow), or
/// on the calling thread switched to such a stack (`Configuration.runsOnCallingThread`);
/// public methods may be called from any thread and wait for their result.
///
/// ```swift
/// let engine = Engine(configuration: Configuration())
/// Stdlib.install(into: engine)
/// let result = try engine.run(SourceFile(path: "main.flow", text: "print(1 + 2)"))
/// ```
public final class Engine: @unchecked Sendable {
    /// The interpreter's native stack (its thread's, or the region the calling thread
    /// switches to): room for `maxCallDepth` nested Flow calls in a debug build with a
    /// wide margin (they used 50 MiB). Reserved, not committed: untouched pages cost
    /// nothing. Where the process may not reserve this much, a quarter or a sixteenth.
    public static let threadStackSize = 1 << 30

    public let interpreter: Interpreter
    private let thread: InterpreterThread
    /// Warnings of the last file `run` compiled (a program with only warnings runs).
    public internal(set) var warnings: [Diagnostic] = []
    private var preludeLoaded = false
    /// Set while the engine runs in the background: finishing it ends that mode.
    var background: Completion<Void>?
    /// Tasks started by `evaluateInBackground`.
    var backgroundTasks: [Task<Void, Never>] = []
    /// The REPL's module, its globals' shapes and its calls of globals (Engine+REPL).
    var replModule: Module?
    var replGlobals: [String: GlobalInfo] = [:]
    var replCallSites: [(name: String, args: [Argument], range: SourceRange)] = []

    public init(configuration: Configuration = Configuration()) {
        interpreter = Interpreter(configuration: configuration)
        thread = InterpreterThread(stackSize: Engine.threadStackSize, onCallingThread: configuration.runsOnCallingThread)
        interpreter.defineHook = { [unowned self] source in try evaluate(source, path: "<define>", origin: "define").defined }
    }

    deinit { thread.stop() }

    /// Runs `work` on the interpreter thread and waits for it. While the engine runs in
    /// the background (`startBackground`), the work is a task on its event loop, so flows
    /// started earlier go on between and during calls.
    public func perform<T>(_ work: @escaping () throws -> T) throws -> T {
        if background != nil && !thread.isCurrent {
            let done = Completion<T>()
            let w = UnsafeSendable(work)
            Task(executorPreference: interpreter.loop) { done.finish(Result { try w.value() }) }
            return try done.wait().get()
        }
        return try thread.sync(work)
    }

    /// Keeps the event loop running on the interpreter thread until `stopBackground`:
    /// what `perform` submits runs between the loop's other tasks, and flows started
    /// with `startInBackground` go on while the host does something else (the REPL
    /// waits for a line).
    public func startBackground() {
        guard background == nil else { return }
        let stop = Completion<Void>()
        background = stop
        let loop = interpreter.loop
        loop.keepAlive += 1
        thread.post { [self] in
            // After the stop, what was started in the background finishes first (runs
            // left waiting for an approval or a signal are suspended, as in `run`).
            _ = try? loop.run { [self] in
                await stop.waitAsync()
                while let t = backgroundTasks.popLast() { await t.value }
            }
        }
    }

    /// Ends background mode: what was started in the background runs to its end (a run
    /// left waiting for an approval or a signal is suspended), then the loop stops.
    /// Returns once it has.
    public func stopBackground() {
        guard let stop = background else { return }
        interpreter.loop.keepAlive -= 1
        stop.finish(.success(()))
        // Wait for the loop to finish by queueing behind it on its thread.
        background = nil
        _ = try? thread.sync { }
    }

    // MARK: - Loading and running

    /// Checks a file without running it: syntax, names, arity — every static error.
    public func check(_ file: SourceFile) -> [Diagnostic] {
        (try? perform { [self] in
            try loadPreludes()
            return compile(file, module: Module(path: file.path)).1
        }) ?? []
    }

    /// Compiles and runs a file's top-level code; returns the value of its last statement.
    /// Throws `CompileFailure` (nothing ran) or `FlowError` (it failed while running).
    /// `beforeRunning` receives the file's warnings once it compiled, before anything runs
    /// (the CLI prints them ahead of the script's output).
    @discardableResult
    public func run(_ file: SourceFile, beforeRunning: (([Diagnostic]) -> Void)? = nil) throws -> Value {
        try perform { [self] in
            try loadPreludes()
            let module = Module(path: file.path)
            interpreter.mainModule = module
            let (proto, diagnostics, resolution) = compile(file, module: module, known: [:])
            guard let proto, let resolution, !diagnostics.contains(where: { $0.severity == .error }) else {
                throw CompileFailure(diagnostics: diagnostics)
            }
            warnings = diagnostics.filter { $0.severity == .warning }
            beforeRunning?(warnings)
            // The file's module is the one later definitions (`define`, a REPL's inputs)
            // go into, checked against what it defines and calls.
            replModule = module
            replGlobals = [:]
            replCallSites = []
            _ = commit(Input(proto: proto, resolution: resolution, file: file, module: module), value: .nilValue, origin: file.path)
            // The image holds the values the definitions have once the file's code ran.
            defer { interpreter.image.fillValues(from: module) }
            return try execute(proto, module: module)
        }
    }

    /// Calls a function value from the host.
    public func call(_ function: Value, _ args: [Value]) throws -> Value {
        try perform { [self] in try interpreter.call(function, args) }
    }

    func execute(_ proto: FunctionProto, module: Module) throws -> Value {
        let main = Closure(proto: proto, captures: [])
        do {
            let v = try interpreter.call(.closure(main), [])
            module.hasRun = true
            return v
        } catch let e as FlowError {
            interpreter.signal = .none
            e.finish()
            throw e
        }
    }

    /// Loads the prelude modules once: their definitions become globals of every program.
    func loadPreludes() throws {
        guard !preludeLoaded else { return }
        preludeLoaded = true
        for name in interpreter.configuration.preludes {
            let m = try loadStandardModule(name, from: nil)
            for export in m.exports { if let cell = m.globals[export] { interpreter.builtins[export] = cell.value } }
        }
        // The engine's node policy, when the host ships it (FlowStdlib does).
        if interpreter.configuration.standardLibrary["engine"] != nil {
            let engine = try loadStandardModule("engine", from: nil)
            // The engine's functions are definitions of the image like any other.
            for name in engine.exports {
                if case .closure(let c)? = engine.globals[name]?.value { interpreter.recordEngineFunction(name, c, origin: "std/engine") }
            }
        }
    }

    /// Parses, loads imports, resolves and compiles. Returns nil with diagnostics on errors.
    func compile(_ file: SourceFile, module: Module) -> (FunctionProto?, [Diagnostic]) {
        let (proto, diagnostics, _) = compile(file, module: module, known: [:])
        return (proto, diagnostics)
    }

    /// The same, into a module that already has globals (`known`: the REPL's earlier
    /// inputs); also gives the resolution, for the image and the redefinition checks.
    func compile(_ file: SourceFile, module: Module, known: [String: GlobalInfo],
                 check: ((Resolution) -> [Diagnostic])? = nil) -> (FunctionProto?, [Diagnostic], Resolution?) {
        let (program, parseErrors) = Parser.parse(file)
        var diagnostics = parseErrors
        var imports: [String: Module] = [:]
        for s in program.statements {
            guard case .importDecl(let path, let alias, let range) = s.kind else { continue }
            do {
                let m: Module
                switch path {
                case .standard(let parts):
                    guard parts.count > 1, parts[0] == "std" else {
                        throw FlowError(kind: "import", message: "'\(parts.joined(separator: "/"))' is not a module path: standard modules are 'std/name', files are quoted ('import \"lib/util.flow\"')", at: range)
                    }
                    m = try loadStandardModule(parts.dropFirst().joined(separator: "/"), from: range)
                case .file(let p): m = try loadFileModule(p, from: range)
                }
                imports[alias ?? Resolver.defaultAlias(path)] = m
            } catch let f as CompileFailure {
                diagnostics.append(contentsOf: f.diagnostics)
            } catch let e as FlowError {
                diagnostics.append(e.diagnostic ?? Diagnostic(.error, e.message, at: range))
            } catch {
                diagnostics.append(Diagnostic(.error, "\(error)", at: range))
            }
        }
        var resolver = Resolver(interpreter: interpreter, module: module, imports: imports, known: known)
        let resolution = resolver.resolve(program)
        diagnostics.append(contentsOf: resolver.diagnostics.items)
        if !diagnostics.contains(where: { $0.severity == .error }), let check { diagnostics.append(contentsOf: check(resolution)) }
        diagnostics.sort { ($0.range.file.path, $0.range.start) < ($1.range.file.path, $1.range.start) }
        if diagnostics.contains(where: { $0.severity == .error }) { return (nil, diagnostics, resolution) }
        var compiler = Compiler(interpreter: interpreter, module: module, resolution: resolution)
        return (compiler.compileMain(program), diagnostics, resolution)
    }

    func loadStandardModule(_ name: String, from range: SourceRange?) throws -> Module {
        let key = "std/" + name
        guard let source = interpreter.configuration.standardLibrary[name] else {
            let known = interpreter.configuration.standardLibrary.keys.sorted()
            var message = "no standard module 'std/\(name)'"
            if let near = Suggest.closest(to: name, in: known) { message += "; did you mean 'std/\(near)'?" }
            throw FlowError(kind: "import", message: message, at: range)
        }
        return try loadModule(key, SourceFile(path: "<std>/\(name).flow", text: source), from: range)
    }

    func loadFileModule(_ path: String, from range: SourceRange?) throws -> Module {
        guard let read = interpreter.configuration.readSource else {
            throw FlowError(kind: "import", message: "cannot import '\(path)': this host does not allow reading files", at: range)
        }
        // Relative to the importing file's folder.
        var full = path
        if !path.hasPrefix("/"), let importer = range?.file.path, let slash = importer.lastIndex(of: "/") {
            full = String(importer[...slash]) + path
        }
        if !full.hasSuffix(".flow") { full += ".flow" }
        // A resumed script imports what it imported the first time (its record has it).
        guard let text = interpreter.recordedImports[full] ?? read(full) else {
            throw FlowError(kind: "import", message: "cannot import '\(path)': no file at '\(full)'", at: range)
        }
        interpreter.importedSources[full] = text
        return try loadModule(full, SourceFile(path: full, text: text), from: range)
    }

    func loadModule(_ key: String, _ file: SourceFile, from range: SourceRange?) throws -> Module {
        if let m = interpreter.modules[key] { return m }
        if interpreter.modulesLoading.contains(key) {
            throw FlowError(kind: "import", message: "import cycle: '\(key)' imports itself through other modules", at: range)
        }
        interpreter.modulesLoading.insert(key)
        defer { interpreter.modulesLoading.remove(key) }
        let module = Module(path: key)
        let (proto, diagnostics) = compile(file, module: module)
        guard let proto, !diagnostics.contains(where: { $0.severity == .error }) else {
            throw CompileFailure(diagnostics: diagnostics)
        }
        _ = try execute(proto, module: module)
        module.namespace = MapBox(module.exports.compactMap { n in module.globals[n].map { (n, $0.value) } })
        interpreter.modules[key] = module
        return module
    }
}

/// A result handed from one thread to another: `wait` blocks a thread, `waitAsync`
/// suspends a task, until `finish` is called (once).
final class Completion<T>: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var result: Result<T, Error>?
    private var continuation: CheckedContinuation<Void, Never>?

    init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
    }
    deinit {
        pthread_mutex_destroy(&mutex)
        pthread_cond_destroy(&condition)
    }

    func finish(_ r: Result<T, Error>) {
        pthread_mutex_lock(&mutex)
        guard result == nil else { pthread_mutex_unlock(&mutex); return }
        result = r
        let c = continuation
        continuation = nil
        pthread_cond_broadcast(&condition)
        pthread_mutex_unlock(&mutex)
        c?.resume()
    }

    func wait() -> Result<T, Error> {
        pthread_mutex_lock(&mutex)
        while result == nil { pthread_cond_wait(&condition, &mutex) }
        let r = result!
        pthread_mutex_unlock(&mutex)
        return r
    }

    func waitAsync() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            pthread_mutex_lock(&mutex)
            if result != nil {
                pthread_mutex_unlock(&mutex)
                c.resume()
                return
            }
            continuation = c
            pthread_mutex_unlock(&mutex)
        }
    }
}
