import CSQLite
import FlowStore

/// A value bound to or read from a statement.
enum SQLValue {
    case null, int(Int64), real(Double), text(String)

    init(_ s: String?) { self = s.map { .text($0) } ?? .null }
    init(_ n: Int?) { self = n.map { .int(Int64($0)) } ?? .null }
    init(_ d: Double?) { self = d.map { .real($0) } ?? .null }
}

/// One row of a query, read by column name.
struct Row {
    let columns: [String: Int]
    let values: [SQLValue]

    subscript(_ name: String) -> SQLValue { columns[name].map { values[$0] } ?? .null }

    func text(_ name: String) -> String { optionalText(name) ?? "" }
    func optionalText(_ name: String) -> String? {
        switch self[name] {
        case .text(let s): s
        case .int(let n): String(n)
        case .real(let d): String(d)
        case .null: nil
        }
    }
    func int(_ name: String) -> Int { optionalInt(name) ?? 0 }
    func optionalInt(_ name: String) -> Int? {
        switch self[name] {
        case .int(let n): Int(n)
        case .real(let d): Int(d)
        case .text(let s): Int(s)
        case .null: nil
        }
    }
    func double(_ name: String) -> Double { optionalDouble(name) ?? 0 }
    func optionalDouble(_ name: String) -> Double? {
        switch self[name] {
        case .real(let d): d
        case .int(let n): Double(n)
        case .text(let s): Double(s)
        case .null: nil
        }
    }
}

/// One SQLite connection over the C API. It is not thread-safe: `SQLiteStore` uses it
/// under its lock only. Statements are prepared once per SQL text and kept.
final class Connection {
    let handle: OpaquePointer
    @exclusivity(unchecked) private var statements: [String: OpaquePointer] = [:]
    /// More distinct statements than the store has (about twenty) means queries built from
    /// options; past this many the cache starts again.
    static let cachedStatements = 64

    init(path: String, busyTimeout: Double) throws {
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            if let db { sqlite3_close_v2(db) }
            throw StoreError(message)
        }
        handle = db
        sqlite3_busy_timeout(db, Int32(max(0, busyTimeout) * 1000))
        sqlite3_extended_result_codes(db, 1)
    }

    deinit {
        for s in statements.values { sqlite3_finalize(s) }
        sqlite3_close_v2(handle)
    }

    var errorMessage: String { String(cString: sqlite3_errmsg(handle)) }
    var lastInsertedRowID: Int { Int(sqlite3_last_insert_rowid(handle)) }

    /// Runs one or more statements that take no arguments, discarding any rows.
    func execute(_ sql: String) throws {
        var message: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &message)
        guard rc == SQLITE_OK else {
            let text = message.map { String(cString: $0) } ?? errorMessage
            sqlite3_free(message)
            throw StoreError(text)
        }
    }

    /// The prepared statement for `sql`, reset and with its bindings cleared.
    func statement(_ sql: String) throws -> OpaquePointer {
        if let s = statements[sql] {
            sqlite3_reset(s)
            sqlite3_clear_bindings(s)
            return s
        }
        var s: OpaquePointer?
        guard sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &s, nil) == SQLITE_OK, let s else {
            throw StoreError(errorMessage)
        }
        // Queries built from options (`runs(_:)`) vary: the cache is bounded, not a leak.
        if statements.count >= Self.cachedStatements {
            for old in statements.values { sqlite3_finalize(old) }
            statements.removeAll()
        }
        statements[sql] = s
        return s
    }

    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    static func bind(_ s: OpaquePointer, _ index: Int32, _ value: SQLValue) {
        switch value {
        case .null: sqlite3_bind_null(s, index)
        case .int(let n): sqlite3_bind_int64(s, index, n)
        case .real(let d): sqlite3_bind_double(s, index, d)
        case .text(let t): sqlite3_bind_text(s, index, t, Int32(t.utf8.count), transient)
        }
    }

    static func bind(_ s: OpaquePointer, _ index: Int32, _ text: String) {
        sqlite3_bind_text(s, index, text, Int32(text.utf8.count), transient)
    }

    /// Steps a statement that returns no rows to its end.
    func finish(_ s: OpaquePointer) throws {
        let rc = sqlite3_step(s)
        sqlite3_reset(s)
        guard rc == SQLITE_DONE else { throw StoreError(errorMessage) }
    }

    /// Runs one statement with arguments to its end.
    func run(_ sql: String, _ arguments: [SQLValue] = []) throws {
        let s = try statement(sql)
        for (i, a) in arguments.enumerated() { Self.bind(s, Int32(i + 1), a) }
        try finish(s)
    }

    /// The rows of one query.
    func rows(_ sql: String, _ arguments: [SQLValue] = []) throws -> [Row] {
        let s = try statement(sql)
        for (i, a) in arguments.enumerated() { Self.bind(s, Int32(i + 1), a) }
        defer { sqlite3_reset(s) }
        let count = sqlite3_column_count(s)
        var columns: [String: Int] = [:]
        for i in 0..<count { columns[String(cString: sqlite3_column_name(s, i))] = Int(i) }
        var rows: [Row] = []
        while true {
            let rc = sqlite3_step(s)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw StoreError(errorMessage) }
            var values: [SQLValue] = []
            values.reserveCapacity(Int(count))
            for i in 0..<count { values.append(Self.column(s, i)) }
            rows.append(Row(columns: columns, values: values))
        }
        return rows
    }

    private static func column(_ s: OpaquePointer, _ i: Int32) -> SQLValue {
        switch sqlite3_column_type(s, i) {
        case SQLITE_NULL: return .null
        case SQLITE_INTEGER: return .int(sqlite3_column_int64(s, i))
        case SQLITE_FLOAT: return .real(sqlite3_column_double(s, i))
        default:
            guard let p = sqlite3_column_text(s, i) else { return .text("") }
            let n = Int(sqlite3_column_bytes(s, i))
            return .text(String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self))
        }
    }
}
