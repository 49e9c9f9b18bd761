import ArgumentParser
import FlowRuntime
import FlowStdlib
import FlowStore
import FlowSQLite
import FlowSyntax
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `--store PATH|memory`, shared by every command that touches runs.
struct StoreOptions: ParsableArguments {
    @Option(name: .customLong("store"), help: ArgumentHelp(
        "Where runs are recorded: a SQLite file; 'memory' (recorded in memory, gone with the process); 'none' (not recorded: nothing can wait for an approval or be resumed). Default: $FLOW_STORE, else .flow/flow.db in the working directory.",
        valueName: "path"))
    var path: String?

    @Option(help: ArgumentHelp("Prune finished runs that ended longer ago than this (like 30d, 12h) when a script starts. Default: $FLOW_RETENTION, else keep everything.", valueName: "duration"))
    var retention: String?

    /// The retention in nanoseconds, if one is set.
    func retentionNanoseconds() throws -> Int? {
        guard let text = retention ?? System.env("FLOW_RETENTION"), !text.isEmpty else { return nil }
        guard let ns = StoreOptions.parseDuration(text) else {
            throw ValidationError("a retention is a duration like 30d, 12h, 45m or 90s, found '\(text)'")
        }
        return ns
    }

    /// `90s`, `45m`, `12h`, `30d`.
    static func parseDuration(_ text: String) -> Int? {
        let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        guard let unit = text.last, let scale = units[unit], let n = Int(text.dropLast()), n >= 0 else { return nil }
        return n * scale * 1_000_000_000
    }

    var resolved: String {
        if let path { return path }
        if let env = System.env("FLOW_STORE"), !env.isEmpty { return env }
        return ".flow/flow.db"
    }

    /// Creates `path` and its missing parents; the reason it could not, or nil.
    static func makeDirectories(_ path: String) -> String? {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += part
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST { return String(cString: strerror(errno)) }
            prefix += "/"
        }
        return nil
    }

    /// The store `flow run` records into, opened at its first use (`LazyStore`).
    func openLazily() -> any RunStore {
        let path = resolved
        if path == "memory" || path == "none" { return MemoryStore() }
        return LazyStore(path: path)
    }

    /// Opens the store, creating its folder; prints why not and exits 74 on failure.
    func open(mustExist: Bool = false) throws -> any RunStore {
        let path = resolved
        if path == "memory" || path == "none" { return MemoryStore() }
        if mustExist && !System.exists(path) {
            SourceLoader.printError("flow: no store at '\(path)' (runs are recorded there by `flow run`; --store or FLOW_STORE chooses another)\n")
            throw ExitCode(66)
        }
        do { return try Self.openSQLite(path) } catch {
            SourceLoader.printError("flow: \(error)\n")
            throw ExitCode(74)
        }
    }

    /// The SQLite store at `path`, its folder created if missing.
    static func openSQLite(_ path: String) throws -> SQLiteStore {
        let dir = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? ""
        if !dir.isEmpty && !System.exists(dir), let why = makeDirectories(dir) {
            throw StoreError("cannot create '\(dir)' for the store: \(why)")
        }
        return try SQLiteStore(path: path)
    }
}

/// The SQLite store opened at its first use: `flow run` of a script that runs no flow
/// creates no file and spends no time on the database. Why it could not be opened is
/// kept, so that `flow run` still exits 74 for it.
final class LazyStore: RunStore, Sendable {
    let path: String
    private struct State: ~Copyable {
        var store: SQLiteStore?
        var failure: String?
    }
    private let state = Mutex(State())

    init(path: String) { self.path = path }

    /// Why the store could not be opened, if it was tried and could not.
    var failure: String? { state.withLock { $0.failure } }

    private func opened() throws -> SQLiteStore {
        try state.withLock { s in
            if let store = s.store { return store }
            do {
                let store = try StoreOptions.openSQLite(path)
                s.store = store
                return store
            } catch {
                s.failure = "\(error)"
                throw error
            }
        }
    }

    func write(_ batch: StoreBatch) throws { try opened().write(batch) }
    func script(id: String) throws -> ScriptRecord? { try opened().script(id: id) }
    func scripts(status: [String]?) throws -> [ScriptRecord] { try opened().scripts(status: status) }
    func run(id: String) throws -> RunRecord? { try opened().run(id: id) }
    func run(script: String, parent: String?, key: String) throws -> RunRecord? {
        try opened().run(script: script, parent: parent, key: key)
    }
    func runs(_ query: RunQuery) throws -> [RunRecord] { try opened().runs(query) }
    func events(run: String, after: Int) throws -> [EventRecord] { try opened().events(run: run, after: after) }
    func inbox(run: String) throws -> [InboxMessage] { try opened().inbox(run: run) }
    func post(_ message: InboxMessage) throws -> Int { try opened().post(message) }
    func prune(endedBefore: Double) throws -> Int { try opened().prune(endedBefore: endedBefore) }
}

enum Durable {
    /// A new script id: 6 characters, unique in the store.
    static func newScriptID(in store: any RunStore) throws -> String {
        while true {
            let id = ScriptSession.newID()
            if try store.script(id: id) == nil { return id }
        }
    }

    /// A run of the store, or an exit (66) saying there is none.
    static func requireRun(_ id: String, in store: any RunStore) throws -> RunRecord {
        guard let record = try store.run(id: id) else {
            SourceLoader.printError("flow: no run '\(id)' in the store (flow runs lists them)\n")
            throw ExitCode(66)
        }
        return record
    }

    /// Whether the process that owns a script (host:pid) is alive on this machine.
    static func ownerIsAlive(_ owner: String?) -> Bool {
        guard let owner, let colon = owner.lastIndex(of: ":"), let pid = Int32(owner[owner.index(after: colon)...]) else { return false }
        guard String(owner[..<colon]) == String(Configuration.defaultOwner.split(separator: ":").dropLast().joined(separator: ":")) else {
            // Another machine: assume it is alive (it holds the script).
            return true
        }
        if pid == getpid() { return false }
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        // A killed process nobody has waited for yet is a zombie: dead.
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           let close = stat.lastIndex(of: ")") {
            let state = stat[stat.index(after: close)...].first { $0 != " " }
            if state == "Z" || state == "X" { return false }
        }
        return true
    }

    /// Runs (or re-executes) a recorded script and reports how it ended; returns the exit code.
    /// `exitsAfter`: the process exits once this returns, so the engine is not torn down:
    /// its heap (every run it kept, with their logs) goes back to the system at exit
    /// instead of being freed object by object — 0.37 s after 100,000 runs, most of it in
    /// malloc merging freed chunks. The store needs no closing: every write was committed
    /// when it returned, as it must be for a process killed at any moment.
    static func execute(_ file: SourceFile, script: ScriptRecord, resuming: Bool, store: (any RunStore)?,
                        display: EventDisplay, arguments: [String], retention: Int? = nil,
                        exitsAfter: Bool = false) -> Int32 {
        var configuration = SourceLoader.configuration()
        configuration.retention = retention
        configuration.arguments = arguments
        configuration.store = store
        configuration.suspendWhenIdle = true
        configuration.environment = System.environment
        let progress = Progress(display: display)
        // `--events none` shows nothing: no call per event.
        if display != .none { configuration.onEvent = { progress.receive($0) } }
        let engine = Stdlib.makeEngine(configuration)
        progress.interpreter = engine.interpreter
        defer { if exitsAfter { _ = Unmanaged.passRetained(engine) } }
        do {
            // Warnings are shown before the script's output, without stopping it.
            try engine.run(file, script: script, resuming: resuming) { warnings in
                if !warnings.isEmpty { SourceLoader.printError(DiagnosticRenderer.render(warnings)) }
            }
            return 0
        } catch let failure as CompileFailure {
            SourceLoader.printError(DiagnosticRenderer.render(failure.diagnostics) + summary(failure.diagnostics))
            return 65
        } catch let error as FlowError {
            SourceLoader.printError(error.rendered)
            return 70
        } catch let s as RunsSuspended {
            for w in s.waiting {
                let how = w.on.hasPrefix("approval") ? "flow approve \(w.run)" : "flow signal \(w.run) NAME VALUE"
                SourceLoader.printError("flow: run \(w.run) is waiting for \(w.on) (\(how))\n")
            }
            return 0
        } catch let d as ReplayDivergence {
            SourceLoader.printError("flow: \(d)\n(the run is left as it was; resume it with code that agrees with its log)\n")
            return 70
        } catch {
            SourceLoader.printError("flow: \(error)\n")
            return 70
        }
    }

    /// Re-executes the script a run belongs to, unless its process is alive.
    static func resume(scriptOf run: RunRecord, store: any RunStore, display: EventDisplay) throws -> Int32 {
        guard let script = try store.script(id: run.script) else {
            SourceLoader.printError("flow: the script of run \(run.id) is not in the store\n")
            return 66
        }
        return try resume(script, store: store, display: display)
    }

    static func resume(_ script: ScriptRecord, store: any RunStore, display: EventDisplay) throws -> Int32 {
        if ownerIsAlive(script.owner) {
            SourceLoader.printError("flow: script \(script.id) (\(script.path)) is being executed by \(script.owner ?? "?"); it takes messages itself\n")
            return 0
        }
        let arguments = JSONText.unquoteList(script.arguments) ?? []
        let file = SourceFile(path: script.path, text: script.source)
        return execute(file, script: script, resuming: true, store: store, display: display, arguments: arguments)
    }

    /// Local time, to the second.
    static func time(_ t: Double) -> String {
        var seconds = time_t(t.rounded(.down))
        var parts = tm()
        localtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let n = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S", &parts)
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func duration(_ seconds: Double) -> String {
        Printer.formatDuration(Int(seconds * 1e9))
    }

    static func decode(_ text: String) -> Value {
        (try? JSONText.decode(text, tagged: true).value) ?? .str(text)
    }
}

extension EventDisplay {
    static func parse(_ text: String?) throws -> EventDisplay {
        guard let text else { return .automatic }
        guard let d = EventDisplay(rawValue: text) else {
            throw ValidationError("--events must be one of \(EventDisplay.allCases.map { $0.rawValue }.joined(separator: ", ")), found '\(text)'")
        }
        return d
    }
}
