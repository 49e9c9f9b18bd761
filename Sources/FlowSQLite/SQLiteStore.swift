import FlowStore
import GRDB
import GRDBSQLite
import Synchronization

/// The embedded default store: one SQLite file in WAL mode, through GRDB.
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

    private let db: DatabaseQueue
    public let path: String
    /// The last event number of each run this store appended to: a run's log has one
    /// writer, so after the first append the check needs no query.
    private let lastSeq = Mutex<[String: Int]>([:])

    public init(path: String, synchronous: Synchronous = .normal, busyTimeout: Double = 10) throws {
        self.path = path
        var config = Configuration()
        config.journalMode = .wal
        config.busyMode = .timeout(busyTimeout)
        config.label = "flow-store"
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous.rawValue)")
        }
        do {
            db = try DatabaseQueue(path: path, configuration: config)
            try Self.migrator.migrate(db)
        } catch let e as DatabaseError {
            throw StoreError("cannot open the store at '\(path)': \(e.message ?? e.description)")
        }
    }

    /// Versioned migrations: each runs once per database file, in order.
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1: scripts, runs, events, inbox") { db in
            try db.execute(sql: """
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
                """)
        }
        return m
    }

    private func perform<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try db.writeWithoutTransaction { db in try body(db) }
        } catch let e as DatabaseError {
            throw StoreError("the store at '\(path)' failed: \(e.message ?? e.description)")
        }
    }

    /// One immediate transaction. BEGIN and COMMIT are prepared once and stepped
    /// directly: GRDB's own transaction methods parse their SQL each time, which was most
    /// of the cost of a one-event commit.
    private func transaction(_ body: (Database) throws -> Void) throws {
        try perform { db in
            try Self.step(db, "BEGIN IMMEDIATE")
            do {
                try body(db)
                try Self.step(db, "COMMIT")
            } catch {
                try? Self.step(db, "ROLLBACK")
                throw error
            }
        }
    }

    private static func step(_ db: Database, _ sql: String) throws {
        let s = try db.cachedStatement(sql: sql).sqliteStatement
        sqlite3_reset(s)
        let rc = sqlite3_step(s)
        sqlite3_reset(s)
        guard rc == SQLITE_DONE else {
            throw StoreError(String(cString: sqlite3_errmsg(db.sqliteConnection)))
        }
    }

    public func write(_ batch: StoreBatch) throws {
        guard !batch.isEmpty else { return }
        var appended: [String: Int] = [:]
        try transaction { db in
            for s in batch.scripts {
                try db.cachedStatement(sql: """
                    INSERT INTO script (id, path, source, arguments, directory, status, owner, started_at, ended_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(id) DO UPDATE SET path = excluded.path, source = excluded.source,
                      arguments = excluded.arguments, directory = excluded.directory, status = excluded.status,
                      owner = excluded.owner, started_at = excluded.started_at, ended_at = excluded.ended_at
                    """).execute(arguments: [s.id, s.path, s.source, s.arguments, s.directory, s.status, s.owner,
                                             s.startedAt, s.endedAt])
            }
            for r in batch.runs {
                try db.cachedStatement(sql: """
                    INSERT INTO run (id, script, parent, flow, key, arguments, status, outcome, waiting_on,
                                     started_at, ended_at, fork_of, fork_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(id) DO UPDATE SET script = excluded.script, parent = excluded.parent,
                      flow = excluded.flow, key = excluded.key, arguments = excluded.arguments,
                      status = excluded.status, outcome = excluded.outcome, waiting_on = excluded.waiting_on,
                      started_at = excluded.started_at, ended_at = excluded.ended_at,
                      fork_of = excluded.fork_of, fork_at = excluded.fork_at
                    """).execute(arguments: [r.id, r.script, r.parent, r.flow, r.key, r.arguments, r.status,
                                             r.outcome, r.waitingOn, r.startedAt, r.endedAt, r.forkOf, r.forkAt])
            }
            var next: [String: Int] = [:]
            let known = batch.events.isEmpty ? [:] : lastSeq.withLock { $0 }
            if !batch.events.isEmpty {
                // Events are the hot path (one write per node): bound straight to SQLite.
                let insert = try db.cachedStatement(sql: "INSERT INTO event (run, seq, type, key, at, data) VALUES (?, ?, ?, ?, ?, ?)")
                for e in batch.events {
                    let expected: Int
                    if let n = next[e.run] { expected = n } else if let last = known[e.run] { expected = last + 1 } else {
                        let last = try Int.fetchOne(db.cachedStatement(sql: "SELECT MAX(seq) FROM event WHERE run = ?"),
                                                    arguments: [e.run]) ?? 0
                        expected = last + 1
                    }
                    guard e.seq == expected else {
                        throw StoreError("event \(e.seq) of run \(e.run) is out of order: the log expects \(expected)")
                    }
                    next[e.run] = e.seq + 1
                    try Self.insert(e, with: insert.sqliteStatement, db: db)
                }
            }
            for id in batch.consumed {
                try db.cachedStatement(sql: "DELETE FROM inbox WHERE id = ?").execute(arguments: [id])
            }
            appended = next
        }
        // Only once the transaction committed (a throw above leaves the cache as it was).
        if !appended.isEmpty { lastSeq.withLock { for (run, n) in appended { $0[run] = n - 1 } } }
    }

    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    private static func insert(_ e: EventRecord, with s: OpaquePointer, db: Database) throws {
        sqlite3_reset(s)
        sqlite3_bind_text(s, 1, e.run, -1, transient)
        sqlite3_bind_int64(s, 2, Int64(e.seq))
        sqlite3_bind_text(s, 3, e.type, -1, transient)
        sqlite3_bind_text(s, 4, e.key, -1, transient)
        sqlite3_bind_double(s, 5, e.at)
        sqlite3_bind_text(s, 6, e.data, -1, transient)
        let rc = sqlite3_step(s)
        sqlite3_reset(s)
        guard rc == SQLITE_DONE else {
            throw StoreError("cannot append event \(e.seq) of run \(e.run): \(String(cString: sqlite3_errmsg(db.sqliteConnection)))")
        }
    }

    public func script(id: String) throws -> ScriptRecord? {
        try perform { db in try Row.fetchOne(db, sql: "SELECT * FROM script WHERE id = ?", arguments: [id]).map(Self.script) }
    }

    public func scripts(status: [String]?) throws -> [ScriptRecord] {
        try perform { db in
            try Row.fetchAll(db, sql: "SELECT * FROM script ORDER BY started_at, rowid").map(Self.script)
                .filter { status?.contains($0.status) ?? true }
        }
    }

    public func run(id: String) throws -> RunRecord? {
        try perform { db in try Row.fetchOne(db, sql: "SELECT * FROM run WHERE id = ?", arguments: [id]).map(Self.run) }
    }

    public func run(script: String, parent: String?, key: String) throws -> RunRecord? {
        try perform { db in
            try Row.fetchOne(db, sql: "SELECT * FROM run WHERE script = ? AND parent IS ? AND key = ? ORDER BY rowid LIMIT 1",
                             arguments: [script, parent, key]).map(Self.run)
        }
    }

    public func runs(_ query: RunQuery) throws -> [RunRecord] {
        var clauses: [String] = []
        var arguments: StatementArguments = []
        if let status = query.status {
            clauses.append("status IN (\(status.map { _ in "?" }.joined(separator: ", ")))")
            for s in status { _ = arguments.append(contentsOf: [s]) }
        }
        if let flow = query.flow { clauses.append("flow = ?"); _ = arguments.append(contentsOf: [flow]) }
        if let script = query.script { clauses.append("script = ?"); _ = arguments.append(contentsOf: [script]) }
        if let parent = query.parent { clauses.append("parent = ?"); _ = arguments.append(contentsOf: [parent]) }
        if query.rootsOnly { clauses.append("parent IS NULL") }
        if let t = query.startedAfter { clauses.append("started_at >= ?"); _ = arguments.append(contentsOf: [t]) }
        if let t = query.startedBefore { clauses.append("started_at < ?"); _ = arguments.append(contentsOf: [t]) }
        var sql = "SELECT * FROM run"
        if !clauses.isEmpty { sql += " WHERE " + clauses.joined(separator: " AND ") }
        sql += " ORDER BY rowid DESC"
        if let limit = query.limit { sql += " LIMIT \(max(0, limit))" }
        let finalSQL = sql, finalArguments = arguments
        return try perform { db in try Row.fetchAll(db, sql: finalSQL, arguments: finalArguments).map(Self.run) }
    }

    public func events(run: String, after: Int) throws -> [EventRecord] {
        try perform { db in
            try Row.fetchAll(db, sql: "SELECT * FROM event WHERE run = ? AND seq > ? ORDER BY seq", arguments: [run, after])
                .map { EventRecord(run: $0["run"], seq: $0["seq"], type: $0["type"], key: $0["key"], at: $0["at"], data: $0["data"]) }
        }
    }

    public func inbox(run: String) throws -> [InboxMessage] {
        try perform { db in
            try Row.fetchAll(db, sql: "SELECT * FROM inbox WHERE run = ? ORDER BY id", arguments: [run])
                .map { InboxMessage(id: $0["id"], run: $0["run"], kind: $0["kind"], name: $0["name"], data: $0["data"], at: $0["at"]) }
        }
    }

    @discardableResult
    public func post(_ message: InboxMessage) throws -> Int {
        var id = 0
        try transaction { db in
            try db.execute(sql: "INSERT INTO inbox (run, kind, name, data, at) VALUES (?, ?, ?, ?, ?)",
                           arguments: [message.run, message.kind, message.name, message.data, message.at])
            id = Int(db.lastInsertedRowID)
        }
        return id
    }

    @discardableResult
    public func prune(endedBefore: Double) throws -> Int {
        var count = 0
        try transaction { db in
            try db.execute(sql: """
                CREATE TEMP TABLE IF NOT EXISTS doomed (id TEXT PRIMARY KEY);
                DELETE FROM doomed;
                INSERT INTO doomed
                  WITH RECURSIVE d(id) AS (
                    SELECT id FROM run WHERE parent IS NULL AND status IN ('completed', 'failed', 'cancelled')
                      AND ended_at < ?
                    UNION SELECT run.id FROM run JOIN d ON run.parent = d.id)
                  SELECT id FROM d;
                """, arguments: [endedBefore])
            count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM doomed") ?? 0
            try db.execute(sql: """
                DELETE FROM event WHERE run IN (SELECT id FROM doomed);
                DELETE FROM inbox WHERE run IN (SELECT id FROM doomed);
                DELETE FROM run WHERE id IN (SELECT id FROM doomed);
                DELETE FROM script WHERE status IN ('completed', 'failed', 'cancelled')
                  AND id NOT IN (SELECT script FROM run);
                DELETE FROM doomed;
                """)
        }
        return count
    }

    /// Copies the write-ahead log into the database file and truncates it (done when the
    /// CLI closes the store, so the file alone holds everything).
    public func checkpoint() throws {
        try perform { db in _ = try db.checkpoint(.truncate) }
    }

    static func script(_ row: Row) -> ScriptRecord {
        ScriptRecord(id: row["id"], path: row["path"], source: row["source"], arguments: row["arguments"],
                     directory: row["directory"], status: row["status"], owner: row["owner"],
                     startedAt: row["started_at"], endedAt: row["ended_at"])
    }

    static func run(_ row: Row) -> RunRecord {
        RunRecord(id: row["id"], script: row["script"], parent: row["parent"], flow: row["flow"], key: row["key"],
                  arguments: row["arguments"], status: row["status"], outcome: row["outcome"],
                  waitingOn: row["waiting_on"], startedAt: row["started_at"], endedAt: row["ended_at"],
                  forkOf: row["fork_of"], forkAt: row["fork_at"])
    }
}
