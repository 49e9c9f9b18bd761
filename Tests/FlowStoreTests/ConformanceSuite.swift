import Foundation
import Testing
import FlowStore
@testable import FlowSQLite

/// The checks every `RunStore` must pass, run on each store.
enum Stores {
    static func make(_ kind: String) throws -> any RunStore {
        switch kind {
        case "memory": return MemoryStore()
        default:
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flow-store-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            return try SQLiteStore(path: dir.appendingPathComponent("flow.db").path)
        }
    }
    static let kinds = ["memory", "sqlite"]
}

@Suite struct StoreConformance {
    func run(_ id: String, script: String = "s1", parent: String? = nil, key: String = "main#0",
             status: String = "running", at: Double = 100, ended: Double? = nil) -> RunRecord {
        RunRecord(id: id, script: script, parent: parent, flow: "main", key: key, status: status,
                  startedAt: at, endedAt: ended)
    }

    func event(_ run: String, _ seq: Int, _ type: String = "node:end", key: String = "k") -> EventRecord {
        EventRecord(run: run, seq: seq, type: type, key: key, at: Double(seq), data: "{\"n\":\(seq)}")
    }

    @Test(arguments: Stores.kinds) func scriptsAndRunsRoundTrip(kind: String) throws {
        let store = try Stores.make(kind)
        let script = ScriptRecord(id: "s1", path: "a.flow", source: "print(1)\n", arguments: "[\"x\"]",
                                  directory: "/tmp", owner: "host:1", startedAt: 10)
        var r = run("r1")
        r.arguments = "[1,{\"$duration\":5}]"
        r.waitingOn = "approval: ok?"
        r.forkOf = "r0"; r.forkAt = 3
        try store.write(StoreBatch(scripts: [script], runs: [r]))
        #expect(try store.script(id: "s1") == script)
        #expect(try store.run(id: "r1") == r)
        #expect(try store.run(id: "nope") == nil)
        // Saving again updates in place.
        r.status = "completed"; r.outcome = "42"; r.endedAt = 12; r.waitingOn = nil
        try store.save(r)
        #expect(try store.run(id: "r1") == r)
        #expect(try store.runs(RunQuery()).count == 1)
        var s2 = script
        s2.status = "completed"
        try store.save(s2)
        #expect(try store.scripts(status: ["running"]).isEmpty)
        #expect(try store.scripts(status: nil) == [s2])
    }

    @Test(arguments: Stores.kinds) func findsARunByItsCall(kind: String) throws {
        let store = try Stores.make(kind)
        try store.write(StoreBatch(runs: [run("r1"), run("r2", parent: "r1", key: "main/sub#0"),
                                          run("r3", script: "s2")]))
        #expect(try store.run(script: "s1", parent: nil, key: "main#0")?.id == "r1")
        #expect(try store.run(script: "s1", parent: "r1", key: "main/sub#0")?.id == "r2")
        #expect(try store.run(script: "s1", parent: "r1", key: "main/sub#1") == nil)
        #expect(try store.run(script: "s2", parent: nil, key: "main#0")?.id == "r3")
    }

    @Test(arguments: Stores.kinds) func queriesByStatusTimeAndParent(kind: String) throws {
        let store = try Stores.make(kind)
        try store.write(StoreBatch(runs: [
            run("a", status: "completed", at: 1, ended: 2), run("b", status: "running", at: 5),
            run("c", parent: "b", key: "x", status: "waiting", at: 6), run("d", status: "failed", at: 9, ended: 10),
        ]))
        #expect(try store.runs(RunQuery()).map(\.id) == ["d", "c", "b", "a"])
        #expect(try store.runs(RunQuery(status: ["running", "waiting"])).map(\.id) == ["c", "b"])
        #expect(try store.runs(RunQuery(rootsOnly: true)).map(\.id) == ["d", "b", "a"])
        #expect(try store.runs(RunQuery(parent: "b")).map(\.id) == ["c"])
        #expect(try store.runs(RunQuery(startedAfter: 5, startedBefore: 9)).map(\.id) == ["c", "b"])
        #expect(try store.runs(RunQuery(limit: 2)).map(\.id) == ["d", "c"])
    }

    @Test(arguments: Stores.kinds) func eventsAppendInOrder(kind: String) throws {
        let store = try Stores.make(kind)
        try store.write(StoreBatch(runs: [run("r1"), run("r2")], events: [event("r1", 1), event("r1", 2), event("r2", 1)]))
        try store.write(StoreBatch(events: [event("r1", 3, "state", key: "main/event:state#0")]))
        #expect(try store.events(run: "r1").map(\.seq) == [1, 2, 3])
        #expect(try store.events(run: "r1", after: 2) == [event("r1", 3, "state", key: "main/event:state#0")])
        #expect(try store.events(run: "r2").count == 1)
        #expect(try store.events(run: "none").isEmpty)
    }

    @Test(arguments: Stores.kinds) func aBadBatchChangesNothing(kind: String) throws {
        let store = try Stores.make(kind)
        try store.write(StoreBatch(runs: [run("r1")], events: [event("r1", 1)]))
        // A gap, then a repeated seq: both refused, and the run update in the batch is not applied.
        var changed = run("r1")
        changed.status = "completed"
        #expect(throws: StoreError.self) { try store.write(StoreBatch(runs: [changed], events: [event("r1", 3)])) }
        #expect(throws: StoreError.self) { try store.write(StoreBatch(events: [event("r1", 2), event("r1", 2)])) }
        #expect(try store.events(run: "r1").map(\.seq) == [1])
        #expect(try store.run(id: "r1")?.status == "running")
    }

    @Test(arguments: Stores.kinds) func inboxMessagesAreTakenWithTheEventsThatRecordThem(kind: String) throws {
        let store = try Stores.make(kind)
        try store.save(run("r1"))
        let a = try store.post(InboxMessage(run: "r1", kind: "approval", data: "true", at: 1))
        let b = try store.post(InboxMessage(run: "r1", kind: "signal", name: "go", data: "7", at: 2))
        try store.post(InboxMessage(run: "r2", kind: "cancel", at: 3))
        #expect(a != b)
        #expect(try store.inbox(run: "r1").map(\.kind) == ["approval", "signal"])
        #expect(try store.inbox(run: "r1").last?.name == "go")
        try store.write(StoreBatch(events: [event("r1", 1, "approval", key: "main/@approve#0")], consumed: [a]))
        #expect(try store.inbox(run: "r1").map(\.id) == [b])
        #expect(try store.events(run: "r1").count == 1)
    }

    @Test(arguments: Stores.kinds) func pruningRemovesOldFinishedTreesOnly(kind: String) throws {
        let store = try Stores.make(kind)
        var done = ScriptRecord(id: "s1", path: "a.flow", source: "", startedAt: 1)
        done.status = "completed"
        let live = ScriptRecord(id: "s2", path: "b.flow", source: "", startedAt: 1)
        try store.write(StoreBatch(scripts: [done, live], runs: [
            run("old", status: "completed", at: 1, ended: 2),
            run("oldchild", parent: "old", key: "k", status: "completed", at: 1, ended: 2),
            run("grandchild", parent: "oldchild", key: "k", status: "completed", at: 1, ended: 2),
            run("recent", script: "s2", status: "failed", at: 50, ended: 60),
            run("running", script: "s2", status: "running", at: 1),
        ], events: [event("old", 1), event("oldchild", 1), event("recent", 1)]))
        try store.post(InboxMessage(run: "old", kind: "signal", at: 1))
        #expect(try store.prune(endedBefore: 10) == 3)
        #expect(try Set(store.runs(RunQuery()).map(\.id)) == ["recent", "running"])
        #expect(try store.events(run: "old").isEmpty)
        #expect(try store.events(run: "recent").count == 1)
        #expect(try store.inbox(run: "old").isEmpty)
        #expect(try store.script(id: "s1") == nil)
        #expect(try store.script(id: "s2") != nil)
        #expect(try store.prune(endedBefore: 10) == 0)
    }
}

@Suite struct SQLiteStoreFile {
    @Test func survivesReopeningAndMigratesOnce() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flow-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("flow.db").path
        do {
            let store = try SQLiteStore(path: path)
            try store.write(StoreBatch(runs: [RunRecord(id: "r1", script: "s", flow: "f", key: "f#0", startedAt: 1)],
                                       events: [EventRecord(run: "r1", seq: 1, type: "run:start", key: "k", at: 1, data: "{}")]))
            try store.checkpoint()
        }
        let again = try SQLiteStore(path: path)
        #expect(try again.run(id: "r1")?.flow == "f")
        #expect(try again.events(run: "r1").count == 1)
    }

    /// Files from before the store left GRDB have schema 1 recorded in GRDB's table, not
    /// in `user_version`: they open as they are, runs kept, nothing created twice.
    @Test func opensAFileWrittenThroughGRDB() throws {
        let path = try Self.temporaryPath()
        do {
            let db = try Connection(path: path, busyTimeout: 1)
            try db.execute(SQLiteStore.migrations[0])
            try db.execute("""
                CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
                INSERT INTO grdb_migrations VALUES ('v1: scripts, runs, events, inbox');
                INSERT INTO run (id, script, flow, key, arguments, status, started_at)
                  VALUES ('old', 's', 'f', 'f#0', '[]', 'completed', 1);
                """)
        }
        let store = try SQLiteStore(path: path)
        #expect(try store.run(id: "old")?.status == "completed")
        let version = try Connection(path: path, busyTimeout: 1).rows("PRAGMA user_version").first?.int("user_version")
        #expect(version == SQLiteStore.migrations.count)
    }

    @Test func refusesAFileFromANewerFlow() throws {
        let path = try Self.temporaryPath()
        try Connection(path: path, busyTimeout: 1).execute("PRAGMA user_version = 99")
        #expect {
            try SQLiteStore(path: path)
        } throws: { error in
            "\(error)".contains("schema version 99") && "\(error)".contains(path)
        }
    }

    static func temporaryPath() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flow-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent("flow.db").path
    }

    /// Queries built from options are prepared statements too; more of them than the
    /// cache holds start it again, and the store goes on working.
    @Test func manyDistinctQueriesKeepWorking() throws {
        let store = try SQLiteStore(path: try Self.temporaryPath())
        try store.write(StoreBatch(runs: [RunRecord(id: "r1", script: "s", flow: "f", key: "f#0", startedAt: 1)],
                                   events: [EventRecord(run: "r1", seq: 1, type: "run:start", key: "k", at: 1, data: "{}")]))
        for limit in 1...(Connection.cachedStatements * 2) {
            #expect(try store.runs(RunQuery(limit: limit)).map(\.id) == ["r1"])
        }
        try store.write(StoreBatch(events: [EventRecord(run: "r1", seq: 2, type: "run:end", key: "k2", at: 2, data: "{}")]))
        #expect(try store.events(run: "r1").map(\.seq) == [1, 2])
    }

    @Test func reportsAFileThatIsNotADatabase() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flow-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("flow.db").path
        try "this is not sqlite, just some text that is long enough to be a header".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: StoreError.self) { try SQLiteStore(path: path) }
    }
}
