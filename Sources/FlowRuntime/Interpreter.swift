import FlowSyntax
import FlowStore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

typealias Frame = UnsafeMutablePointer<Value>

/// How control leaves a statement: normally, or by break / continue / return. Statements
/// set it on the interpreter instead of throwing, so `return` costs a store, not an unwind.
enum Signal: UInt8 { case none, breakLoop, continueLoop, returnValue }

/// The kinds of value that have method tables.
enum ValueKind: Int, CaseIterable {
    case nilValue, bool, int, float, duration, string, list, map, function, error, object

    @inline(__always) init(_ v: borrowing Value) {
        switch v {
        case .nilValue: self = .nilValue
        case .bool: self = .bool
        case .int: self = .int
        case .float: self = .float
        case .duration: self = .duration
        case .string: self = .string
        case .list: self = .list
        case .map: self = .map
        case .closure, .builtin: self = .function
        case .error: self = .error
        case .object, .cell: self = .object
        }
    }
}

/// Where a method is defined: the Flow type of its receiver.
public enum MethodReceiver: Sendable {
    case string, list, map, int, float, duration, function, error
    var kinds: [ValueKind] {
        switch self {
        case .string: return [.string]
        case .list: return [.list]
        case .map: return [.map]
        case .int: return [.int]
        case .float: return [.float]
        case .duration: return [.duration]
        case .function: return [.function]
        case .error: return [.error]
        }
    }
}

/// The machine that runs compiled Flow code: one value stack for synchronous frames, the
/// call-depth count, the registries of builtins and methods, and the event loop.
///
/// Isolation: an interpreter is used from one thread at a time — the `Engine` runs
/// everything on its own interpreter thread. Builtins receive it to call back into Flow.
public final class Interpreter: @unchecked Sendable {
    /// How deep Flow calls may nest before the call is refused with a `recursion` error.
    /// Deep enough for recursive algorithms over inputs of thousands; shallow enough that
    /// the interpreter thread's native stack (`Engine.threadStackSize`) can never overflow,
    /// even in debug builds where a Flow call uses a few KiB of it.
    public static let defaultMaxCallDepth = 10_000
    /// Value-stack slots for synchronous frames (16 bytes each; pages are touched only
    /// as they are used). Room for the deepest recursion with ~400 slots per frame.
    static let stackSlots = 1 << 22

    let stackBase: Frame
    // The registers of the hot path: no dynamic exclusivity checks (one thread uses them).
    @exclusivity(unchecked) var top: Frame
    let stackEnd: Frame
    @exclusivity(unchecked) var depth = 0
    /// How deep the current task is in async calls (see `callClosureAsync`).
    /// The async call depth of code outside any run.
    let rootDepth = CallDepth(0)
    let maxCallDepth: Int
    @exclusivity(unchecked) var signal: Signal = .none
    @exclusivity(unchecked) var returnValue: Value = .nilValue

    public let configuration: Configuration
    let loop: EventLoop

    /// Global builtins and namespaces, by name, as scripts see them.
    var builtins: [String: Value] = [:]
    /// `emit`, a primitive of the engine: defined here, so the compiler knows it
    /// (`EmitRecordNode`) for as long as nobody redefines the name.
    let emitBuiltin = Builtin(name: "emit", parameters: ["event", "fields", "key"], requiredCount: 1, variadic: false,
                              isMethod: false, body: { call in
                                  .duration(try call.interpreter.emitEvent(call))
                              })
    var methodIDs: [String: Int] = [:]
    var methodNames: [String] = []
    /// methods[kind * methodStride + id]: one flat block of unretained references, so a
    /// lookup retains neither a table nor the method (`installedMethods` owns them).
    @exclusivity(unchecked) var methods = Interpreter.methodTable(stride: 64)
    /// Every method builtin ever installed, replaced ones too: a call holds its method
    /// unretained (`methodRef`), so none may go while the interpreter lives.
    private var installedMethods: [Builtin] = []
    @exclusivity(unchecked) var methodStride = 64
    @exclusivity(unchecked) var modules: [String: Module] = [:] {
        didSet { runNodeCell = nil }
    }
    /// Every run started, in order.
    /// The runs in memory: every unfinished one and the last `keptRuns` finished roots.
    @exclusivity(unchecked) public internal(set) var runs: [Run] = []
    /// How many of `runs` are finished roots.
    @exclusivity(unchecked) var finishedRoots = 0
    @exclusivity(unchecked) var nextRunNumber = 0
    /// Script hooks by event type (`"*"` for every event).
    @exclusivity(unchecked) var hooks: [String: [Value]] = [:]
    @exclusivity(unchecked) var emitting = false
    /// The script execution being recorded, when there is a store.
    @exclusivity(unchecked) public internal(set) var session: ScriptSession?
    /// Replayed completions waiting for their turn (see `awaitTurn`).
    /// Every definition made in the REPL, with its versions.
    public let image = Image()
    /// The module of the file `Engine.run` runs (where `rewind` finds flows by name).
    @exclusivity(unchecked) var mainModule: Module?
    /// Defines code in the running program (`define(ast)`): set by the engine, checked like
    /// a REPL redefinition. Returns the names defined.
    @exclusivity(unchecked) public var defineHook: ((String) throws -> [String])?
    /// The stored run the next flow call is (a fork `rewind` prepared).
    @exclusivity(unchecked) var forcedRun: RunRecord?
    @exclusivity(unchecked) var durableWaiters: [DurableWaiter] = []
    @exclusivity(unchecked) var polling = false
    @exclusivity(unchecked) var replayTurns: [(seq: Int, continuation: CheckedContinuation<Void, Never>)] = []
    /// The keys every event and node context has, boxed once (an object, so that using
    /// them retains one reference rather than each box).
    /// Made at the end of `init` (they are interned here); a stored property, not `lazy`:
    /// every event reads it.
    @exclusivity(unchecked) private(set) var keys = EventKeys.unset
    /// One box per constant string of the compiled code: record keys and member names
    /// then compare by pointer.
    @exclusivity(unchecked) var interned: [String: StringBox] = [:]
    /// This interpreter's number for its interned boxes (`StringBox.table`).
    let internTable = Interpreter.newInternTable()
    private static func newInternTable() -> UInt32 { InternTables.shared.next() }
    /// The files this script imported, by path, as read: recorded with the script.
    @exclusivity(unchecked) var importedSources: [String: String] = [:]
    /// For a resumed script, the files it imported the first time: used instead of the
    /// files as they are now.
    @exclusivity(unchecked) var recordedImports: [String: String] = [:]
    /// The engine module's `run_node` cell, once looked up (`runNode`); forgotten when
    /// a module is loaded.
    @exclusivity(unchecked) var runNodeCell: GlobalCell?

    func intern(_ s: String) -> StringBox {
        if let b = interned[s] { return b }
        let b = StringBox(s)
        b.table = internTable
        interned[s] = b
        return b
    }

    /// The interned box of a string value: itself when it already is (constants of the
    /// compiled code are), without a lookup.
    func intern(_ box: StringBox) -> StringBox { box.isInterned ? box : intern(box.value) }
    var modulesLoading: Set<String> = []

    /// Whether the configuration has a store: runs have logs only then.
    let hasStore: Bool
    /// The configured clock when it is the system's: called directly, with no retain of
    /// the configuration's existential (four reads a node).
    private let systemClock: SystemClock?

    /// Monotonic nanoseconds of the configured clock (`monotonic()`, event times).
    @inline(__always) public var monotonicNow: Int {
        if let c = systemClock { return c.now() }
        return configuration.clock.now()
    }

    public init(configuration: Configuration) {
        self.configuration = configuration
        self.hasStore = configuration.store != nil
        self.systemClock = configuration.clock as? SystemClock
        self.maxCallDepth = configuration.maxCallDepth
        stackBase = Frame.allocate(capacity: Interpreter.stackSlots)
        top = stackBase
        stackEnd = stackBase + Interpreter.stackSlots
        loop = EventLoop(clock: configuration.clock)
        loop.onIdle = { [unowned self] in releaseTurn() }
        loop.onStall = { [unowned self] in suspendWaiters() }
        keys = EventKeys(self)
        builtins["emit"] = .builtin(emitBuiltin)
    }

    deinit {
        methods.deallocate()
        stackBase.deinitialize(count: top - stackBase)
        stackBase.deallocate()
    }

    // MARK: - Registering builtins (the embedding API's door)

    /// Defines a global function implemented in Swift.
    public func define(_ name: String, parameters: [String], required: Int? = nil, variadic: Bool = false,
                       _ body: @escaping (inout BuiltinCall) throws -> Value) {
        builtins[name] = .builtin(Builtin(name: name, parameters: parameters, requiredCount: required,
                                          variadic: variadic, isMethod: false, body: body))
    }

    /// Defines a global function that suspends (it has an async implementation).
    public func defineSuspending(_ name: String, parameters: [String], required: Int? = nil,
                                 blocking: @escaping (inout BuiltinCall) throws -> Value,
                                 _ body: @escaping (BuiltinCall) async throws -> Value) {
        builtins[name] = .builtin(Builtin(name: name, parameters: parameters, requiredCount: required,
                                          variadic: false, isMethod: false, body: blocking, suspendingBody: body))
    }

    /// Defines a global function that waits, in two parts: `prepare` checks the arguments
    /// (synchronously, copying what it needs) and gives the wait itself. Code on the async
    /// path awaits only that; synchronous code waits for it on the event loop.
    public func defineWaiting(_ name: String, parameters: [String], required: Int? = nil,
                              _ prepare: @escaping (inout BuiltinCall) throws -> Builtin.Wait) {
        builtins[name] = .builtin(Builtin(name: name, parameters: parameters, requiredCount: required,
                                          variadic: false, isMethod: false,
                                          body: { call in throw call.error("cannot wait here", kind: "internal") },
                                          suspendingBody: { call in
                                              var c = call
                                              return try await c.interpreter.wait(for: try prepare(&c))
                                          },
                                          prepareWait: prepare))
    }

    /// Defines a namespace of functions and constants (`json.encode`, `math.pi`).
    public func define(namespace: String, _ members: [(String, Value)]) {
        builtins[namespace] = .map(MapBox(members))
    }

    /// Makes a builtin value without defining it globally (for namespaces).
    public func makeBuiltin(_ name: String, parameters: [String], required: Int? = nil, variadic: Bool = false,
                            _ body: @escaping (inout BuiltinCall) throws -> Value) -> Value {
        .builtin(Builtin(name: name, parameters: parameters, requiredCount: required, variadic: variadic, isMethod: false, body: body))
    }

    /// Names of methods that may suspend (a channel's `send`, `receive`): a function that
    /// calls a method by one of these names runs on the async path, so it can wait —
    /// and be cancelled — like any suspending code.
    public private(set) var suspendingMethodNames: Set<String> = []

    /// Declares that methods called `name` may suspend (see `suspendingMethodNames`).
    public func declareSuspendingMethod(_ name: String) { suspendingMethodNames.insert(name) }

    /// Makes a suspending builtin value (for methods of host objects, like channels').
    public func makeSuspendingBuiltin(_ name: String, parameters: [String], required: Int? = nil,
                                      _ body: @escaping (BuiltinCall) async throws -> Value) -> Value {
        .builtin(Builtin(name: name, parameters: parameters, requiredCount: required, variadic: false, isMethod: false,
                         body: { call in throw call.error("cannot wait here", kind: "internal") }, suspendingBody: body))
    }

    /// Makes a channel (the `channel` builtin).
    public func makeChannel(capacity: Int, overflow: String) -> Value? {
        guard let o = ChannelValue.Overflow(rawValue: overflow) else { return nil }
        return .object(ChannelValue(capacity: capacity, overflow: o))
    }

    /// Defines a method that calls back into Flow, with an async twin for the async path
    /// (so suspending callbacks are awaited and cancellable); synchronous callers use `body`.
    public func define(method name: String, on receiver: MethodReceiver, parameters: [String], required: Int? = nil,
                       _ body: @escaping (inout BuiltinCall) throws -> Value,
                       async asyncBody: @escaping (BuiltinCall) async throws -> Value) {
        let b = Builtin(name: name, parameters: parameters, requiredCount: required, variadic: false, isMethod: true,
                        body: body, suspendingBody: asyncBody, prefersBody: true)
        install(method: name, on: receiver, b)
    }

    /// Defines a method on a type of value (`xs.push(x)`); the receiver is `args[0]`.
    public func define(method name: String, on receiver: MethodReceiver, parameters: [String], required: Int? = nil,
                       variadic: Bool = false, _ body: @escaping (inout BuiltinCall) throws -> Value) {
        let b = Builtin(name: name, parameters: parameters, requiredCount: required, variadic: variadic, isMethod: true, body: body)
        install(method: name, on: receiver, b)
    }

    /// Defines a method that changes its receiver and gives it back (`xs.push(x)`): `body`
    /// makes the change; the call's value is the receiver, not copied when the call is a
    /// statement.
    public func define(changing name: String, on receiver: MethodReceiver, parameters: [String], required: Int? = nil,
                       _ change: @escaping (inout BuiltinCall) throws -> Void) {
        let b = Builtin(name: name, parameters: parameters, requiredCount: required, variadic: false, isMethod: true,
                        body: { call in try change(&call); return call[0] }, change: change)
        install(method: name, on: receiver, b)
    }

    func install(method name: String, on receiver: MethodReceiver, _ b: Builtin) {
        let id = methodID(name)
        if id >= methodStride {
            // Widen the table: copy each kind's row into a wider one.
            let newStride = max(methodStride * 2, id + 1)
            let wider = Interpreter.methodTable(stride: newStride)
            for k in 0..<ValueKind.allCases.count {
                for j in 0..<methodStride { wider[k * newStride + j] = methods[k * methodStride + j] }
            }
            methods.deallocate()
            methods = wider
            methodStride = newStride
        }
        for k in receiver.kinds { methods[k.rawValue * methodStride + id] = Unmanaged.passUnretained(b) }
        installedMethods.append(b)
    }

    /// An empty method table of `stride` methods per kind of value.
    private static func methodTable(stride: Int) -> UnsafeMutablePointer<Unmanaged<Builtin>?> {
        let n = ValueKind.allCases.count * stride
        let table = UnsafeMutablePointer<Unmanaged<Builtin>?>.allocate(capacity: n)
        table.initialize(repeating: nil, count: n)
        return table
    }

    func methodID(_ name: String) -> Int {
        if let id = methodIDs[name] { return id }
        let id = methodNames.count
        methodIDs[name] = id
        methodNames.append(name)
        return id
    }

    @inline(__always) func method(_ id: Int, for v: borrowing Value) -> Builtin? {
        methodRef(id, for: v)?.takeUnretainedValue()
    }

    /// The same, unretained: installed methods live as long as the interpreter.
    @inline(__always) func methodRef(_ id: Int, for v: borrowing Value) -> Unmanaged<Builtin>? {
        id < methodStride ? methods[ValueKind(v).rawValue * methodStride + id] : nil
    }

    /// The names of the methods a value has, for errors and completion.
    /// A global builtin or namespace by name (for completion).
    public func builtinValue(_ name: String) -> Value? { builtins[name] }

    public func methodNames(for v: Value) -> [String] {
        let row = ValueKind(v).rawValue * methodStride
        return (0..<min(methodStride, methodNames.count)).compactMap { methods[row + $0] != nil ? methodNames[$0] : nil }.sorted()
    }

    // MARK: - Runs and hooks (the embedding API)

    /// The current definition of a function of the engine module (`std/engine`), read at
    /// every use so that redefining it changes the next node.
    func engineFunction(_ name: String) -> Value? {
        guard let cell = modules["std/engine"]?.globals[name], cell.isDefined else { return nil }
        return cell.value
    }

    /// `run_node`, which every node calls: its cell is looked up once per engine module
    /// (a redefinition changes the cell's value, not the cell).
    var runNode: Value? {
        if let cell = runNodeCell { return cell.isDefined ? cell.value : nil }
        guard let cell = modules["std/engine"]?.globals["run_node"] else { return nil }
        runNodeCell = cell
        return cell.isDefined ? cell.value : nil
    }

    /// Replaces a function of the engine module: every later node uses the new one.
    /// The new function must take as many parameters as the old one.
    public func redefineEngineFunction(_ name: String, _ f: Value, at range: SourceRange?) throws {
        guard let module = modules["std/engine"], let cell = module.globals[name], cell.isDefined else {
            let known = modules["std/engine"]?.exports ?? []
            throw FlowError(kind: ErrorKind.value, message: "engine.define: the engine has no function '\(name)' (it has: \(known.joined(separator: ", ")))", at: range)
        }
        guard case .closure(let new) = f else {
            throw FlowError(kind: ErrorKind.type, message: "engine.define: '\(name)' must be defined as a Flow function, found \(f.typeName)", at: range)
        }
        if case .closure(let old) = cell.value, old.proto.arity != new.proto.arity {
            throw FlowError(kind: ErrorKind.type, message: "engine.define: '\(name)' takes \(old.proto.arity) parameters (\(old.proto.parameters.joined(separator: ", "))), the new definition takes \(new.proto.arity)", at: range)
        }
        module.versions[name, default: []].append(cell.value)
        cell.define(new)
        recordEngineFunction(name, new, origin: "engine.define")
    }

    /// Puts a version of an engine function in the image (its source from its range).
    func recordEngineFunction(_ name: String, _ c: Closure, origin: String) {
        let p = c.proto
        let whole = p.declarationRange ?? p.range
        let source = whole.map { $0.file.slice($0.start, $0.end) } ?? "<\(name)>"
        var info = GlobalInfo(kind: .function, range: p.range ?? SourceRange(file: SourceFile(path: "<engine>", text: ""), start: 0, end: 0))
        info.parameters = p.parameters
        info.required = p.arity
        image.add(name, source: source, time: configuration.clock.wallTime(), origin: origin, kind: "fn", value: .closure(c), info: info)
    }

    /// The current definition of an engine function.
    public func engineDefinition(_ name: String) -> Value? { engineFunction(name) }

    /// The run whose code is executing, if any.
    public var currentRun: Run? { Run.current }

    /// Emits an event of `type` on the current run; fails outside a run.
    @discardableResult
    public func emit(_ type: String, _ fields: [(String, Value)], at range: SourceRange?) throws -> Value {
        let run = try emittingRun(at: range)
        return try emitValue(run, intern(type), fields.map { MapBox.Entry(key: .string(intern($0.0)), value: $0.1) })
    }

    /// Emits an event whose fields are the entries of a map; gives the event's map.
    @discardableResult
    public func emit(_ type: String, fields: MapBox?, key: String? = nil, at range: SourceRange?) throws -> Value {
        try emit(StringBox(type), fields: fields, key: key, at: range)
    }

    /// The same with the type as a string value.
    @discardableResult
    public func emit(_ type: StringBox, fields: MapBox?, key: String? = nil, at range: SourceRange?) throws -> Value {
        try emitValue(try emittingRun(at: range), intern(type), fields?.entries ?? [], key: key)
    }



    /// `emit(type, fields, key)` of scripts: an event on the current run, kept compact
    /// (its map is made when someone looks). The arguments are read where the call keeps
    /// them, without copies; fields whose names are not strings are an error. Gives the
    /// event's time on `monotonic()`'s clock (the engine times a node from its start
    /// event: one clock read less a node).
    @discardableResult
    public func emitEvent(_ call: BuiltinCall) throws -> Int {
        let run = try emittingRun(at: call.range)
        let base = call.base
        let type: StringBox
        if let t = Borrow.string(base, Borrow.stringTag) { type = t._withUnsafeGuaranteedRef { intern($0) } } else { type = intern(try call.string(0)) }
        var fields: [MapBox.Entry] = []
        if call.count > 1 {
            if let map = Borrow.map(base + 1, Borrow.mapTag) {
                guard map._withUnsafeGuaranteedRef({ $0.keysAreStrings }) else { throw call.error("field names must be strings", kind: "value") }
                fields = map._withUnsafeGuaranteedRef { $0.entries }
            } else if case .nilValue = base[1] {
            } else {
                throw call.typeError("a map", at: 1)
            }
        }
        var key: String? = nil
        if call.count > 2 {
            if let k = Borrow.string(base + 2, Borrow.stringTag) {
                // The key names the event in a durable log: without one it is not read.
                if run.log != nil { key = k._withUnsafeGuaranteedRef { $0.value } }
            } else if case .nilValue = base[2] {
            } else {
                throw call.typeError("a string", at: 2)
            }
        }
        return time(of: try emit(run, type, fields, key: key), in: run)
    }

    /// The time of the run's event at `index` on `monotonic()`'s clock; now for an event
    /// that replay found in the log (`emit` gives no index for it).
    private func time(of index: Int?, in run: Run) -> Int {
        guard let index else { return monotonicNow }
        return run.log_[index].at + run.startedAt
    }

    /// `emit(type, {record}, key)` with its arguments evaluated (`EmitRecordNode`): the
    /// fields are the record's entries, with no map made for them. A type known when
    /// compiled comes as `constant` (interned; `type` is then not read).
    func emitEvent(type: Value, constant: StringBox?, fields: [MapBox.Entry], key: Value, at range: SourceRange) throws -> Int {
        let run = try emittingRun(at: range)
        let t = try constant ?? eventType(type, at: range)
        return time(of: try emit(run, t, fields, key: try eventKey(key, run, at: range)), in: run)
    }

    /// The same with the record's values in a window of the value stack (`values`, one per
    /// name; they move into the event).
    func emitEvent(type: Value, constant: StringBox?, names: [StringBox], values: Frame, key: Value, at range: SourceRange) throws -> Int {
        // The engine's events, two a node: the run is borrowed from the loop's turn
        // context, which holds it while the fiber steps.
        func emit(_ run: Run) throws -> Int {
            // The constant type is read after the key: bound across the key's check, it
            // was retained (so was the result of `constant ?? eventType(…)`).
            if constant != nil {
                let k = try eventKey(key, run, at: range)
                return try emitRecord(run, constant.unsafelyUnwrapped, names: names, values: values, key: k)
            }
            let t = try eventType(type, at: range)
            return try emitRecord(run, t, names: names, values: values, key: try eventKey(key, run, at: range))
        }
        if let c = loop.turnContext, let run = c._withUnsafeGuaranteedRef({ $0.run.map(Unmanaged.passUnretained) }) {
            return try run._withUnsafeGuaranteedRef(emit)
        }
        return try emit(try emittingRun(at: range))
    }

    /// An event's type, checked and interned.
    private func eventType(_ type: Value, at range: SourceRange) throws -> StringBox {
        guard case .string(let t) = type else {
            throw error(ErrorKind.type, "emit: expects a string as argument 1, found \(type.typeName)", at: range)
        }
        return intern(t)
    }

    /// An event's key, checked: read only for a durable run.
    private func eventKey(_ key: Value, _ run: Run, at range: SourceRange) throws -> String? {
        switch key {
        case .nilValue: return nil
        case .string(let s): return run.log != nil ? s.value : nil
        default: throw error(ErrorKind.type, "emit: expects a string as argument 3, found \(key.typeName)", at: range)
        }
    }

    /// The run of the code executing on the interpreter's thread: while a fiber steps,
    /// its context's (no task-local lookup).
    var executingRun: Run? {
        if let c = loop.turnContext { return c._withUnsafeGuaranteedRef { $0.run } }
        return Run.current
    }

    /// The path scope of the code executing on the interpreter's thread (as
    /// `executingRun`).
    var executingScope: PathScope? {
        if let c = loop.turnContext { return c._withUnsafeGuaranteedRef { $0.scope } }
        return Run.scope
    }

    /// The run an event from a script or a host goes to: the current one.
    private func emittingRun(at range: @autoclosure () -> SourceRange?) throws -> Run {
        guard let run = executingRun else {
            throw FlowError(kind: ErrorKind.value, message: "emit: no flow is running (events belong to a run)", at: range())
        }
        return run
    }

    /// Subscribes a Flow function to events of `type` (`"*"`: every event).
    public func addHook(_ type: String, _ handler: Value) {
        hooks[type, default: []].append(handler)
    }

    /// A run by id.
    public func run(id: String) -> Run? { runs.first { $0.id == id } }

    /// Names of every global builtin, for completion and did-you-mean.
    public var builtinNames: [String] { builtins.keys.sorted() }

    // MARK: - Output and errors

    /// Writes text where `print` goes (the host's choice).
    /// In a durable run, output is recorded (an `output` event), so a replay does not
    /// print again what the first execution printed; at the top level of a re-executed
    /// script, output waits until the code has reached every run it had started.
    public func write(_ text: String) {
        if session != nil {
            if let run = Run.current, let log = run.log {
                guard (try? recordOutput(run, log, text)) ?? true else { return }
            } else if let s = session, s.rootsToReach > 0 {
                return
            }
        }
        configuration.output(text)
    }

    func error(_ kind: String, _ message: String, at range: SourceRange?) -> FlowError {
        FlowError(kind: kind, message: message, at: range)
    }

    func recursionError(_ range: SourceRange?) -> FlowError {
        FlowError(kind: ErrorKind.recursion,
                  message: "call depth limit reached: more than \(maxCallDepth) nested calls (is there a recursion without a base case?)",
                  at: range)
    }

    // MARK: - Calling

    /// Calls a function value with positional arguments, from Swift (builtins' callbacks,
    /// the embedding API). Suspending functions are waited for on the event loop.
    public func call(_ f: Value, _ args: [Value], at range: SourceRange? = nil) throws -> Value {
        switch f {
        case .closure(let c):
            return try callClosure(c, args, named: nil, at: range)
        case .builtin(let b):
            return try callBuiltin(b, args, named: nil, at: range)
        default:
            throw error(ErrorKind.type, "cannot call a value of type \(f.typeName)", at: range)
        }
    }

    /// Binds positional and named arguments to a frame and runs the function.
    func callClosure(_ c: Closure, _ args: [Value], named: [(String, Value)]?, at range: SourceRange?) throws -> Value {
        let p = c.proto
        if p.isAsync {
            return try loop.run { [self] in try await self.callClosureAsync(c, args, named: named, at: range) }
        }
        let fp = top
        guard depth < maxCallDepth, fp + p.frameSize <= stackEnd else { throw recursionError(range) }
        clearFrame(fp, p.frameSize)
        top = fp + p.frameSize
        depth += 1
        defer {
            dropFrame(fp, p.frameSize)
            top = fp
            depth -= 1
        }
        do {
            try bind(c, args, named: named, into: fp, at: range)
            var r = try p.body.eval(fp, self)
            if signal == .returnValue { signal = .none; r = returnValue; returnValue = .nilValue }
            return r
        } catch let e as FlowError {
            e.unwind(through: describe(p), calledFrom: range)
            throw e
        }
    }

    func callClosureAsync(_ c: Closure, _ args: [Value], named: [(String, Value)]?, at range: SourceRange?) async throws -> Value {
        if c.proto.isFlow { return try await runFlow(c, args, named: named, at: range) }
        return try await Fiber.body(self, c, args, named: named, at: range)
    }

    func describe(_ p: FunctionProto) -> String { Interpreter.describe(name: p.name, isFlow: p.isFlow) }

    /// A function as tracebacks name it: `fn 'f'`, `flow 'f'`, `lambda`, `<main>`.
    static func describe(name: String, isFlow: Bool) -> String {
        switch name {
        case "<lambda>": return "lambda"
        case "<main>": return "<main>"
        default: return isFlow ? "flow '\(name)'" : "fn '\(name)'"
        }
    }

    /// Places arguments in parameter slots, evaluates defaults for missing ones, copies
    /// captured cells and boxes captured parameters.
    func bind(_ c: Closure, _ args: [Value], named: [(String, Value)]?, into fp: Frame, at range: SourceRange?) throws {
        let p = c.proto
        // The callee's name is only for error messages: made when one is thrown.
        var name: String { describe(p) }
        if args.count > p.arity {
            throw error(ErrorKind.type, "\(name) takes \(arityText(p)), found \(args.count)", at: range)
        }
        let arity = p.arity
        if named == nil && args.count == arity {
            // Every parameter given by position (the common call): nothing to track.
            for (i, a) in args.enumerated() { fp[i] = a }
            completeFrame(c, fp)
            return
        }
        var given = Array(repeating: false, count: arity)
        for (i, a) in args.enumerated() { fp[i] = a; given[i] = true }
        if let named {
            for (label, v) in named {
                guard let i = p.parameters.firstIndex(of: label) else {
                    throw error(ErrorKind.type, "\(name) has no parameter '\(label)' (its parameters: \(p.parameters.joined(separator: ", ")))", at: range)
                }
                if given[i] { throw error(ErrorKind.type, "\(name) got argument '\(label)' twice", at: range) }
                fp[i] = v
                given[i] = true
            }
        }
        c.placeCaptures(fp, after: arity)
        for i in 0..<arity where !given[i] {
            guard let d = p.defaults[i] else {
                throw error(ErrorKind.type, "\(name) is missing argument '\(p.parameters[i])' (takes \(arityText(p)))", at: range)
            }
            fp[i] = try d.eval(fp, self)
        }
    }

    /// Finishes the frame of a call whose parameters are in place: the captures after
    /// them.
    @inline(__always)
    func completeFrame(_ c: Closure, _ fp: Frame) {
        c.placeCaptures(fp, after: c.proto.arity)
    }

    func arityText(_ p: FunctionProto) -> String {
        let max = p.arity
        if p.requiredCount == max { return "\(max) argument\(max == 1 ? "" : "s")" }
        return "\(p.requiredCount) to \(max) arguments"
    }

    /// Calls a builtin with its arguments in `base[0..<count]` (a method's receiver first).
    /// `ownedFrom`: the arguments from that one on are the caller's window, dropped after
    /// the call (a builtin may `take` them); `unused`: the call is a statement.
    func callBuiltin(_ b: Builtin, base: Frame, count: Int, ownedFrom: Int? = nil, named: [(String, Value)]?,
                     unused: Bool = false, at range: SourceRange?) throws -> Value {
        if let named {
            var all = Array(UnsafeBufferPointer(start: base, count: count))
            try placeNamed(b, named, into: &all, at: range)
            return try all.withUnsafeMutableBufferPointer { buffer in
                try callBuiltin(b, base: buffer.baseAddress!, count: buffer.count, named: nil, unused: unused, at: range)
            }
        }
        let n = count - (b.isMethod ? 1 : 0)
        if !b.accepts(n) {
            throw error(ErrorKind.type, "\(b.name) takes \(b.arityDescription), found \(n)", at: range)
        }
        if b.suspends, let s = b.suspendingBody {
            let storage = ArgumentStorage(copying: base, count: count, file: range?.file, builtin: b)
            let call = BuiltinCall(b, base: storage.base, count: count, ownedFrom: 0, interpreter: self, range: range, owner: storage)
            return try loop.run { try await s(call) }
        }
        var call = BuiltinCall(b, base: base, count: count, ownedFrom: ownedFrom, interpreter: self, range: range)
        if unused, let change = b.change {
            try change(&call)
            return .nilValue
        }
        return try b.body(&call)
    }

    func callBuiltin(_ b: Builtin, _ args: [Value], named: [(String, Value)]?, at range: SourceRange?) throws -> Value {
        // Builtins only read their arguments: the array is lent as it is (a mutable copy
        // would have copied it, the caller still holding it).
        try args.withUnsafeBufferPointer { buffer in
            try callBuiltin(b, base: UnsafeMutablePointer(mutating: buffer.baseAddress ?? UnsafePointer(top)), count: buffer.count, named: named, at: range)
        }
    }

    /// The wait of a call of a builtin defined by `defineWaiting`, with positional
    /// arguments (a call with named ones goes through `callBuiltinAsync`), checked.
    func preparedWait(_ b: Builtin, _ prepare: (inout BuiltinCall) throws -> Builtin.Wait, _ args: [Value], at range: SourceRange?) throws -> Builtin.Wait {
        try args.withUnsafeBufferPointer { buffer in
            try preparedWait(b, prepare, base: UnsafeMutablePointer(mutating: buffer.baseAddress ?? UnsafePointer(top)),
                             count: buffer.count, at: range)
        }
    }

    /// The same with the arguments in a window: `count` values at `base`, which the call
    /// may take.
    func preparedWait(_ b: Builtin, _ prepare: (inout BuiltinCall) throws -> Builtin.Wait, base: UnsafeMutablePointer<Value>,
                      count: Int, at range: SourceRange?) throws -> Builtin.Wait {
        if !b.accepts(count) {
            throw error(ErrorKind.type, "\(b.name) takes \(b.arityDescription), found \(count)", at: range)
        }
        var call = BuiltinCall(b, base: base, count: count, interpreter: self, range: range)
        return try prepare(&call)
    }

    /// Waits for a prepared wait from Swift async code.
    func wait(for wait: Builtin.Wait) async throws -> Value {
        switch wait {
        case .work(let work): return try await work()
        case .timer(let ns):
            try await loop.sleep(nanoseconds: ns)
            return .nilValue
        }
    }

    func callBuiltinAsync(_ b: Builtin, _ args: [Value], named: [(String, Value)]?, at range: SourceRange?) async throws -> Value {
        guard let s = b.suspendingBody else { return try callBuiltin(b, args, named: named, at: range) }
        var all = args
        if let named { try placeNamed(b, named, into: &all, at: range) }
        let n = all.count - (b.isMethod ? 1 : 0)
        if !b.accepts(n) {
            throw error(ErrorKind.type, "\(b.name) takes \(b.arityDescription), found \(n)", at: range)
        }
        let storage = all.withUnsafeMutableBufferPointer {
            ArgumentStorage(copying: $0.baseAddress ?? top, count: $0.count, file: range?.file, builtin: b)
        }
        return try await s(BuiltinCall(b, base: storage.base, count: storage.count, ownedFrom: 0, interpreter: self, range: range,
                                       owner: storage))
    }

    /// Moves named arguments into their parameter positions.
    func placeNamed(_ b: Builtin, _ named: [(String, Value)], into args: inout [Value], at range: SourceRange?) throws {
        let offset = b.isMethod ? 1 : 0
        var given = Set(0..<args.count)
        for (label, v) in named {
            guard let i = b.parameters.firstIndex(of: label) else {
                throw error(ErrorKind.type, "\(b.name) has no parameter '\(label)' (its parameters: \(b.parameters.joined(separator: ", ")))", at: range)
            }
            let slot = i + offset
            if given.contains(slot) {
                throw error(ErrorKind.type, "\(b.name) got argument '\(label)' twice", at: range)
            }
            given.insert(slot)
            while args.count <= slot { args.append(.nilValue) }
            args[slot] = v
        }
    }

    // MARK: - Loops

    /// After a loop body set a signal: clears `break` and `continue`; true when the loop
    /// ends (a `break`, or a `return` on its way out, which stays set).
    @inline(__always) func endsLoop() -> Bool {
        switch signal {
        case .continueLoop: signal = .none; return false
        case .breakLoop: signal = .none; return true
        default: return true
        }
    }

    // MARK: - The argument window

    /// Pushes a value onto the value stack; pair with `pop(to:)`.
    @inline(__always) func push(_ v: consuming Value, _ range: SourceRange?) throws {
        guard top < stackEnd else { throw recursionError(range) }
        top.initialize(to: v)
        top += 1
    }

    /// Pushes the value in `slot` lent: its bits, unretained (`Borrow`). The slot must not
    /// change until the pusher `forget`s the copy, before it pops.
    @inline(__always) func pushLent(_ slot: Frame, _ range: SourceRange?) throws {
        guard top < stackEnd else { throw recursionError(range) }
        UnsafeMutableRawPointer(top).copyMemory(from: slot, byteCount: MemoryLayout<Value>.size)
        top += 1
    }

    /// Pops everything pushed since `mark`.
    @inline(__always) func pop(to mark: Frame) {
        dropFrame(mark, top - mark)
        top = mark
    }
}

/// Initializes `n` frame slots to nil. A loop, not `initialize(repeating:count:)`, which
/// calls into the runtime: frames are small and this is on every call.
@inline(__always) func clearFrame(_ fp: Frame, _ n: Int) {
    var k = 0
    while k < n { (fp + k).initialize(to: .nilValue); k += 1 }
}

/// Releases `n` frame slots (the inline counterpart of `deinitialize(count:)`); values
/// without a reference are skipped without a call. What stays behind is trivial, so the
/// memory may be initialized again without a leak.
@inline(__always) func dropFrame(_ fp: Frame, _ n: Int) {
    var k = 0
    while k < n {
        switch fp[k] {
        case .nilValue, .bool, .int, .float, .duration: break
        // Moved out and dropped: released by the enum's own destroy, not the generic
        // value witness that `deinitialize` calls.
        default: _ = (fp + k).move(); (fp + k).initialize(to: .nilValue)
        }
        k += 1
    }
}

/// A loaded file: its global cells and what it exports.
final class Module {
    let path: String
    var globals: [String: GlobalCell] = [:]
    /// Names of the top-level definitions, in order: what `import` exposes.
    var exports: [String] = []
    var namespace: MapBox?
    var main: FunctionProto?
    /// Earlier values of redefined globals, oldest first: kept alive because a call of an
    /// old version may still be running.
    var versions: [String: [Value]] = [:]
    var hasRun = false
    init(path: String) { self.path = path }
}

/// A top-level variable or definition: calls and reads reach it without a lookup.
final class GlobalCell {
    let name: String
    @exclusivity(unchecked) var value: Value = .nilValue
    @exclusivity(unchecked) var isDefined = false
    /// For a global defined by `fn`: the closure, reachable without a retain. Such a global
    /// cannot be assigned by a script, and a redefinition keeps the old version alive, so
    /// the reference is valid for as long as a call through it runs.
    @exclusivity(unchecked) var function: Unmanaged<Closure>? = nil
    /// The prototype when the function can be called directly: synchronous, no captures
    /// (true of every top-level `fn` that cannot suspend).
    @exclusivity(unchecked) var direct: Unmanaged<FunctionProto>? = nil
    /// The direct callee's arity (-1 when there is none), frame size and body, copied
    /// here so a call needs one object, not three.
    @exclusivity(unchecked) var directArity = -1
    @exclusivity(unchecked) var directFrameSize = 0
    @exclusivity(unchecked) var directBody: Unmanaged<Node>? = nil
    init(name: String) { self.name = name }

    func define(_ c: Closure) {
        value = .closure(c)
        isDefined = true
        function = Unmanaged.passUnretained(c)
        let p = c.proto
        if !c.hasCaptures && !p.isAsync {
            direct = Unmanaged.passUnretained(p)
            directArity = p.arity
            directFrameSize = p.frameSize
            directBody = p.bodyRef
        } else {
            direct = nil
            directArity = -1
            directBody = nil
        }
    }
}

/// The interned keys of events and node contexts.
final class EventKeys: @unchecked Sendable {
    let seq, type, run, at, name, path, options: StringBox
    /// The types, fields and statuses of the events every run and every state write
    /// makes: interning them at each event hashed every name.
    let runStart, runEnd, state, flow, args, parent, status, result, error, next, keys, old, new: StringBox
    let completed, failed, cancelled, continued: StringBox
    /// The keys of the map a node hands the engine: `{name, path, options, run}`.
    let step: [StringBox]
    /// The field names of the runtime's own events (`Interpreter.emitFields`): a run's
    /// start, its ends (completed, failed, continued) and a state write.
    let lineage, completion, failure, continuation, stateChange: [StringBox]

    /// What `Interpreter.keys` holds until the interpreter has made its own.
    static let unset = EventKeys { StringBox($0) }

    convenience init(_ m: Interpreter) { self.init { m.intern($0) } }

    private init(_ i: (String) -> StringBox) {
        seq = i("seq"); type = i("type"); run = i("run"); at = i("at")
        name = i("name"); path = i("path"); options = i("options")
        runStart = i("run:start"); runEnd = i("run:end"); state = i("state")
        flow = i("flow"); args = i("args"); parent = i("parent")
        status = i("status"); result = i("result"); error = i("error")
        next = i("next"); keys = i("keys"); old = i("old"); new = i("new")
        completed = i("completed"); failed = i("failed"); cancelled = i("cancelled"); continued = i("continued")
        step = [name, path, options, run]
        lineage = [flow, args, parent]
        completion = [status, result]
        failure = [status, error]
        continuation = [status, next]
        stateChange = [path, keys, old, new]
    }

    /// An event field.
    @inline(__always)
    static func field(_ key: StringBox, _ value: Value) -> MapBox.Entry { MapBox.Entry(key: .string(key), value: value) }
}

/// Numbers for the interpreters' intern tables, unique in the process.
final class InternTables: @unchecked Sendable {
    static let shared = InternTables()
    private var mutex = pthread_mutex_t()
    private var last: UInt32 = 0
    private init() { pthread_mutex_init(&mutex, nil) }
    func next() -> UInt32 {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        last = last == UInt32.max ? 1 : last + 1
        return last
    }
}
