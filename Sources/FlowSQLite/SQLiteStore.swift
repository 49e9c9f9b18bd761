import CSQLite
import FlowStore
import Synchronization

/// The embedded default store: one SQLite file in WAL mode, on the system SQLite's C API.
///
/// Durability: a `write` that returned is committed to the write-ahead log. With
/// `synchronous = NORMAL` (the default here) a commit survives the process being killed
/// at any instant; a power loss or an OS crash can lose the last commits before the next
/// checkpoint (never corrupt the file). `synchronous: .full` makes every commit survive
/// power loss too, at the cost of an fsync per commit.
///
/// Several processes may open the same file (`flow approve` while a run's process
/// lives): writers take turns, waiting up to `busyTimeout` for each other.
public final class SQLiteStore: RunStore, Sendable {
    public enum Synchronous: String, Sendable { case normal = "NORMAL", full = "FULL" }

    /// The connection and what the store knows about the logs it appends to. A run's log
    /// has one writer, so after its first append `lastSeq` answers without a query.
    private struct State: ~Copyable {
        let db: Connection
        var lastSeq: [String: Int] = [:]
    }

    private let state: Mutex<State>
    public let path: String

    public init(path: String, synchronous: Synchronous = .normal, busyTimeout: Double = 10) throws {
        self.path = path
        do {
            let db = try Connection(path: path, busyTimeout: busyTimeout)
            try db.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = \(synchronous.rawValue)")
            // The log is copied into the file when it reaches SQLite's autocheckpoint size
            // (1000 pages) or on `checkpoint()`, not each time a process closes the store.
            flow_sqlite3_no_checkpoint_on_close(db.handle)
            try Self.migrate(db)
            state = Mutex(State(db: db))
        } catch let e as StoreError {
            throw StoreError("cannot open the store at '\(path)': \(e.description)")
        }
    }

    /// The schema's versions, in order; the file's `user_version` says how many it has.
    /// Each runs once per database file, in one transaction with the version bump.
    static let migrations: [String] = [
        """
        CREATE TABLE script (
          id TEXT PRIMARY KEY, path TEXT NOT NULL, source TEXT NOT NULL,
          arguments TEXT NOT NULL, directory TEXT NOT NULL, status TEXT NOT NULL,
          owner TEXT, started_at REAL NOT NULL, ended_at REAL);
        CREATE TABLE run (
          id TEXT PRIMARY KEY, script TEXT NOT NULL, parent TEXT, flow TEXT NOT NULL,
          key TEXT NOT NULL, arguments TEXT NOT NULL, status TEXT NOT NULL, outcome TEXT,
          waiting_on TEXT, started_at REAL NOT NULL, ended_at REAL, fork_of TEXT, fork_at INTEGER);
        CREATE INDEX run_by_call ON run(script, parent, key);
        CREATE INDEX run_by_status ON run(status);
        CREATE INDEX run_by_start ON run(started_at);
        CREATE TABLE event (
          run TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, key TEXT NOT NULL,
          at REAL NOT NULL, data TEXT NOT NULL, PRIMARY KEY (run, seq)) WITHOUT ROWID;
        CREATE TABLE inbox (
          id INTEGER PRIMARY KEY AUTOINCREMENT, run TEXT NOT NULL, kind TEXT NOT NULL,
          name TEXT NOT NULL, data TEXT NOT NULL, at REAL NOT NULL);
        CREATE INDEX inbox_by_run ON inbox(run);
        """,
        "ALTER TABLE script ADD COLUMN imports TEXT NOT NULL DEFAULT '{}';",
    ]

    static func migrate(_ db: Connection) throws {
        func version() throws -> Int { try db.rows("PRAGMA user_version").first?.int("user_version") ?? 0 }
        guard try version() < migrations.count else { return try checkNotNewer(version()) }
        try db.execute("BEGIN IMMEDIATE")
        do {
            // Read again under the write lock: another process may have migrated meanwhile.
            var current = try version()
            try checkNotNewer(current)
            // Files written before the store left GRDB hold version 1 with GRDB's record of it.
            if current == 0, try !db.rows("SELECT 1 FROM sqlite_master WHERE name = 'grdb_migrations'").isEmpty {
                current = 1
            }
            for sql in migrations.dropFirst(current) { try db.execute(sql) }
            try db.execute("PRAGMA user_version = \(migrations.count); COMMIT")
        } catch {
            try? db.execute("ROLLBACK")
            throw error
        }
    }

    private static func checkNotNewer(_ version: Int) throws {
        guard version <= migrations.count else {
            throw StoreError("the file has schema version \(version); this flow knows up to \(migrations.count) (a newer flow wrote it)")
        }
    }

    private func perform<T: Sendable>(_ body: (inout State) throws -> T) throws -> T {
        do {
            return try state.withLock { s in try body(&s) }
        } catch let e as StoreError {
            throw StoreError("the store at '\(path)' failed: \(e.description)")
        }
    }

    /// One immediate transaction (the write lock taken at once, so two writers wait for
    /// each other at BEGIN instead of failing at their first write).
    private static func transaction(_ db: Connection, _ body: () throws -> Void) throws {
        try db.finish(db.statement("BEGIN IMMEDIATE"))
        do {
            try body()
            try db.finish(db.statement("COMMIT"))
        } catch {
            try? db.finish(db.statement("ROLLBACK"))
            throw error
        }
    }

    public func write(_ batch: StoreBatch) throws {
        guard !batch.isEmpty else { return }
        try perform { state in
            let db = state.db
            var next: [String: Int] = [:]
            try Self.transaction(db) {
                for s in batch.scripts {
                    try db.run("""
                        INSERT INTO script (id, path, source, arguments, directory, status, owner, started_at, ended_at,
                                            imports)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT(id) DO UPDATE SET path = excluded.path, source = excluded.source,
                          arguments = excluded.arguments, directory = excluded.directory, status = excluded.status,
                          owner = excluded.owner, started_at = excluded.started_at, ended_at = excluded.ended_at,
                          imports = excluded.imports
                        """, [.init(s.id), .init(s.path), .init(s.source), .init(s.arguments), .init(s.directory),
                              .init(s.status), .init(s.owner), .init(s.startedAt), .init(s.endedAt), .init(s.imports)])
                }
                for r in batch.runs {
                    try db.run("""
                        INSERT INTO run (id, script, parent, flow, key, arguments, status, outcome, waiting_on,
                                         started_at, ended_at, fork_of, fork_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT(id) DO UPDATE SET script = excluded.script, parent = excluded.parent,
                          flow = excluded.flow, key = excluded.key, arguments = excluded.arguments,
                          status = excluded.status, outcome = excluded.outcome, waiting_on = excluded.waiting_on,
                          started_at = excluded.started_at, ended_at = excluded.ended_at,
                          fork_of = excluded.fork_of, fork_at = excluded.fork_at
                        """, [.init(r.id), .init(r.script), .init(r.parent), .init(r.flow), .init(r.key),
                              .init(r.arguments), .init(r.status), .init(r.outcome), .init(r.waitingOn),
                              .init(r.startedAt), .init(r.endedAt), .init(r.forkOf), .init(r.forkAt)])
                }
                // Events are the hot path (one write per node): bound without building rows.
                for e in batch.events {
                    let expected: Int
                    if let n = next[e.run] { expected = n } else if let last = state.lastSeq[e.run] { expected = last + 1 } else {
                        let last = try db.rows("SELECT MAX(seq) AS seq FROM event WHERE run = ?", [.text(e.run)]).first?
                            .optionalInt("seq") ?? 0
                        expected = last + 1
                    }
                    guard e.seq == expected else {
                        throw StoreError("event \(e.seq) of run \(e.run) is out of order: the log expects \(expected)")
                    }
                    next[e.run] = e.seq + 1
                    let s = try db.statement("INSERT INTO event (run, seq, type, key, at, data) VALUES (?, ?, ?, ?, ?, ?)")
                    Connection.bind(s, 1, e.run)
                    sqlite3_bind_int64(s, 2, Int64(e.seq))
                    Connection.bind(s, 3, e.type)
                    Connection.bind(s, 4, e.key)
                    sqlite3_bind_double(s, 5, e.at)
                    Connection.bind(s, 6, e.data)
                    do { try db.finish(s) } catch let error as StoreError {
                        throw StoreError("cannot append event \(e.seq) of run \(e.run): \(error.description)")
                    }
                }
                for id in batch.consumed { try db.run("DELETE FROM inbox WHERE id = ?", [.init(id)]) }
            }
            // Only once the transaction committed (a throw above leaves the cache as it was).
            for (run, n) in next { state.lastSeq[run] = n - 1 }
        }
    }

    public func script(id: String) throws -> ScriptRecord? {
        try perform { try $0.db.rows("SELECT * FROM script WHERE id = ?", [.text(id)]).first.map(Self.script) }
    }

    public func scripts(status: [String]?) throws -> [ScriptRecord] {
        try perform {
            try $0.db.rows("SELECT * FROM script ORDER BY started_at, rowid").map(Self.script)
                .filter { status?.contains($0.status) ?? true }
        }
    }

    public func run(id: String) throws -> RunRecord? {
        try perform { try $0.db.rows("SELECT * FROM run WHERE id = ?", [.text(id)]).first.map(Self.run) }
    }

    public func run(script: String, parent: String?, key: String) throws -> RunRecord? {
        try perform {
            try $0.db.rows("SELECT * FROM run WHERE script = ? AND parent IS ? AND key = ? ORDER BY rowid LIMIT 1",
                           [.text(script), .init(parent), .text(key)]).first.map(Self.run)
        }
    }

    public func runs(_ query: RunQuery) throws -> [RunRecord] {
        var clauses: [String] = []
        var arguments: [SQLValue] = []
        if let status = query.status {
            clauses.append("status IN (\(status.map { _ in "?" }.joined(separator: ", ")))")
            arguments += status.map { .text($0) }
        }
        if let flow = query.flow { clauses.append("flow = ?"); arguments.append(.text(flow)) }
        if let script = query.script { clauses.append("script = ?"); arguments.append(.text(script)) }
        if let parent = query.parent { clauses.append("parent = ?"); arguments.append(.text(parent)) }
        if query.rootsOnly { clauses.append("parent IS NULL") }
        if let t = query.startedAfter { clauses.append("started_at >= ?"); arguments.append(.real(t)) }
        if let t = query.startedBefore { clauses.append("started_at < ?"); arguments.append(.real(t)) }
        var sql = "SELECT * FROM run"
        if !clauses.isEmpty { sql += " WHERE " + clauses.joined(separator: " AND ") }
        sql += " ORDER BY rowid DESC"
        if let limit = query.limit { sql += " LIMIT \(max(0, limit))" }
        return try perform { try $0.db.rows(sql, arguments).map(Self.run) }
    }

    public func events(run: String, after: Int) throws -> [EventRecord] {
        try perform {
            try $0.db.rows("SELECT * FROM event WHERE run = ? AND seq > ? ORDER BY seq", [.text(run), .init(after)])
                .map { EventRecord(run: $0.text("run"), seq: $0.int("seq"), type: $0.text("type"), key: $0.text("key"),
                                   at: $0.double("at"), data: $0.text("data")) }
        }
    }

    public func inbox(run: String) throws -> [InboxMessage] {
        try perform {
            try $0.db.rows("SELECT * FROM inbox WHERE run = ? ORDER BY id", [.text(run)])
                .map { InboxMessage(id: $0.int("id"), run: $0.text("run"), kind: $0.text("kind"), name: $0.text("name"),
                                    data: $0.text("data"), at: $0.double("at")) }
        }
    }

    @discardableResult
    public func post(_ message: InboxMessage) throws -> Int {
        try perform { state in
            let db = state.db
            var id = 0
            try Self.transaction(db) {
                try db.run("INSERT INTO inbox (run, kind, name, data, at) VALUES (?, ?, ?, ?, ?)",
                           [.text(message.run), .text(message.kind), .text(message.name), .text(message.data),
                            .real(message.at)])
                id = db.lastInsertedRowID
            }
            return id
        }
    }

    @discardableResult
    public func prune(endedBefore: Double) throws -> Int {
        try perform { state in
            let db = state.db
            var count = 0
            try Self.transaction(db) {
                try db.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (id TEXT PRIMARY KEY); DELETE FROM doomed")
                try db.run("""
                    INSERT INTO doomed
                      WITH RECURSIVE d(id) AS (
                        SELECT id FROM run WHERE parent IS NULL AND status IN ('completed', 'failed', 'cancelled')
                          AND ended_at < ?
                        UNION SELECT run.id FROM run JOIN d ON run.parent = d.id)
                      SELECT id FROM d
                    """, [.real(endedBefore)])
                count = try db.rows("SELECT COUNT(*) AS n FROM doomed").first?.int("n") ?? 0
                try db.execute("""
                    DELETE FROM event WHERE run IN (SELECT id FROM doomed);
                    DELETE FROM inbox WHERE run IN (SELECT id FROM doomed);
                    DELETE FROM run WHERE id IN (SELECT id FROM doomed);
                    DELETE FROM script WHERE status IN ('completed', 'failed', 'cancelled')
                      AND id NOT IN (SELECT script FROM run);
                    DELETE FROM doomed;
                    """)
            }
            // The logs of pruned runs are gone: forget where they ended.
            if count > 0 { state.lastSeq = [:] }
            return count
        }
    }

    /// Copies the write-ahead log into the database file and truncates it, so the file
    /// alone holds everything (`flow prune` does it; otherwise SQLite does it when the log
    /// reaches 1000 pages).
    public func checkpoint() throws {
        try perform { state in
            let rc = sqlite3_wal_checkpoint_v2(state.db.handle, nil, SQLITE_CHECKPOINT_TRUNCATE, nil, nil)
            guard rc == SQLITE_OK else { throw StoreError(state.db.errorMessage) }
        }
    }

    static func script(_ row: Row) -> ScriptRecord {
        ScriptRecord(id: row.text("id"), path: row.text("path"), source: row.text("source"),
                     arguments: row.text("arguments"), directory: row.text("directory"), status: row.text("status"),
                     owner: row.optionalText("owner"), startedAt: row.double("started_at"),
                     endedAt: row.optionalDouble("ended_at"), imports: row.optionalText("imports") ?? "{}")
    }

    static func run(_ row: Row) -> RunRecord {
        RunRecord(id: row.text("id"), script: row.text("script"), parent: row.optionalText("parent"),
                  flow: row.text("flow"), key: row.text("key"), arguments: row.text("arguments"),
                  status: row.text("status"), outcome: row.optionalText("outcome"),
                  waitingOn: row.optionalText("waiting_on"), startedAt: row.double("started_at"),
                  endedAt: row.optionalDouble("ended_at"), forkOf: row.optionalText("fork_of"),
                  forkAt: row.optionalInt("fork_at"))
    }
}
