import Foundation
import Testing

/// Durable runs through the real binary: kills, restarts, approvals, the operating commands.
@Suite struct DurabilityTests {
    /// A fresh folder with its own store.
    static func workspace() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flow-durable-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// A fresh folder with its own store and a script written in it.
    static func workspace(script name: String, _ source: String) throws -> (dir: URL, store: String, script: String) {
        let dir = try workspace()
        let script = dir.appendingPathComponent(name).path
        try Data(source.utf8).write(to: URL(fileURLWithPath: script))
        return (dir, dir.appendingPathComponent("flow.db").path, script)
    }

    static func start(_ arguments: [String], store: String) throws -> Process {
        let p = Process()
        p.executableURL = CLITests.binary
        p.arguments = arguments
        p.currentDirectoryURL = CLITests.root
        var environment = ProcessInfo.processInfo.environment
        environment["FLOW_STORE"] = store
        p.environment = environment
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    /// Pattern 15: 200 nodes, each appending a line (with its idempotency key) to a file
    /// and to a log of executions; the process is killed with SIGKILL at random moments,
    /// at least 50 times, and started again with `flow resume` each time.
    @Test func survivesFiftyKills() throws {
        let dir = try DurabilityTests.workspace()
        let store = dir.appendingPathComponent("flow.db").path
        let out = dir.appendingPathComponent("out.txt").path
        let executions = dir.appendingPathComponent("executions.txt").path
        var kills = 0
        var process = try DurabilityTests.start(["run", "--events", "none", "Examples/resume.flow", out, executions, "200"], store: store)
        var rng = SystemRandomNumberGenerator()
        var attempts = 0
        while attempts < 400 {
            attempts += 1
            // Kill anywhere from process start-up to well into the nodes (the first time
            // only once the script is in the store: before that there is nothing to resume,
            // and a user would simply run it again).
            usleep(attempts == 1 ? 300_000 : UInt32.random(in: 5_000...90_000, using: &rng))
            if !process.isRunning {
                process.waitUntilExit()
                if process.terminationStatus == 0 && kills >= 50 { break }
            } else {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                kills += 1
            }
            process = try DurabilityTests.start(["resume", "--events", "none"], store: store)
        }
        process.waitUntilExit()
        #expect(kills >= 50)
        let r = try CLITests.flow(["runs"], store: store)
        #expect(r.stdout.contains("completed"), "\(r.stdout)")
        #expect(!r.stdout.contains("running"), "\(r.stdout)")
        // Every node ran and wrote its line, in order. A line is written again only when a
        // kill came between the write and its record (at-least-once): then it carries the
        // same idempotency key, which is how a tool tells a repeat from a new call.
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
        var seen = Set<Substring>()
        let unique = lines.filter { seen.insert($0).inserted }
        #expect(unique.map { $0.split(separator: " ")[0] } == (0..<200).map { Substring(String($0)) })
        #expect(lines.count - unique.count <= kills)
        // A node whose completion was recorded never ran again: each node started at most
        // once more than the kills that could have caught it in flight.
        let starts = try String(contentsOfFile: executions, encoding: .utf8).split(separator: "\n")
        var count: [Substring: Int] = [:]
        for s in starts { count[s, default: 0] += 1 }
        #expect(Set(count.keys).count == 200)
        let repeated = count.values.reduce(0) { $0 + ($1 - 1) }
        #expect(repeated <= kills, "\(repeated) repeated node starts for \(kills) kills")
        // And the final result is right: the run ended with the sum of 0..<200.
        let id = String(r.stdout.split(separator: "\n")[1].split(separator: " ")[0])
        let history = try CLITests.flow(["history", id], store: store)
        #expect(history.stdout.contains("run:end status=\"completed\" result=19900"), "\(history.stdout.suffix(300))")
    }

    /// Pattern 16: the run waits, the process exits, `flow approve` in another process
    /// resumes it; a rejection takes the other path.
    @Test func approvalFromAnotherProcess() throws {
        let store = try DurabilityTests.workspace().appendingPathComponent("flow.db").path
        let first = try CLITests.flow(["run", "--events", "none", "Examples/approval.flow", "2.4.0"], store: store)
        #expect(first.status == 0)
        #expect(first.stdout == "built flow-2.4.0.tar.gz - waiting for approval\n")
        #expect(first.stderr.contains("is waiting for approval: ship 2.4.0? (flow approve "), "\(first.stderr)")
        let runs = try CLITests.flow(["runs"], store: store)
        let row = runs.stdout.split(separator: "\n")[1]
        #expect(row.contains("release") && row.contains("waiting") && row.contains("approval: ship 2.4.0?"), "\(runs.stdout)")
        let id = String(row.split(separator: " ")[0])
        let approved = try CLITests.flow(["approve", id, "--reason", "notes checked", "--events", "none"], store: store)
        #expect(approved.status == 0, "\(approved.stderr)")
        // The replay does not print "built …" again.
        #expect(approved.stdout == "shipped flow-2.4.0.tar.gz\n")
        let history = try CLITests.flow(["history", id], store: store)
        #expect(history.stdout.contains("approval kind=\"approval\" name=\"\" approved=true reason=\"notes checked\""), "\(history.stdout)")
        #expect(history.stdout.contains("$ = {artifact: \"flow-2.4.0.tar.gz\", decision: \"approved\"}"))
        let again = try CLITests.flow(["approve", id], store: store)
        #expect(again.status == 65 && again.stderr.contains("has already completed"))

        let second = try CLITests.flow(["run", "--events", "none", "Examples/approval.flow", "2.5.0"], store: store)
        let id2 = String(try CLITests.flow(["runs", "--status", "waiting"], store: store).stdout.split(separator: "\n")[1].split(separator: " ")[0])
        #expect(second.status == 0)
        let rejected = try CLITests.flow(["approve", id2, "--reject", "--reason", "Friday", "--events", "none"], store: store)
        #expect(rejected.stdout == "release 2.5.0 rejected: kept flow-2.5.0.tar.gz\n", "\(rejected.stderr)")
    }

    @Test func signalsAndCancellation() throws {
        let (_, store, script) = try DurabilityTests.workspace(script: "signal.flow", """
        flow budget() {
          node plan { "plan" }
          let amount = await signal("budget")
          print("budget", amount)
          return amount
        }
        flow saga() {
          node book(compensate: fn(r) { print("undo", r) }) { "booking" }
          await approve("pay?")
        }
        print(budget())
        print(saga())

        """)
        let first = try CLITests.flow(["run", "--events", "none", script], store: store)
        #expect(first.stderr.contains("is waiting for signal: budget"), "\(first.stderr)")
        let id = String(try CLITests.flow(["runs", "--status", "waiting"], store: store).stdout.split(separator: "\n")[1].split(separator: " ")[0])
        let sent = try CLITests.flow(["signal", id, "budget", "{\"eur\": 250}", "--events", "none"], store: store)
        #expect(sent.stdout == "budget {eur: 250}\n{eur: 250}\n", "\(sent.stderr)")
        #expect(sent.stderr.contains("waiting for approval: pay?"))
        let waiting = try CLITests.flow(["runs", "--status", "waiting"], store: store).stdout.split(separator: "\n")
        let sagaID = String(waiting[1].split(separator: " ")[0])
        let cancelled = try CLITests.flow(["cancel", sagaID, "--events", "none"], store: store)
        // The saga's completed node is compensated; the script sees a cancelled run.
        #expect(cancelled.stdout == "undo booking\n", "\(cancelled.stdout) \(cancelled.stderr)")
        #expect(cancelled.stderr.contains("was cancelled"))
        #expect(try CLITests.flow(["runs", "--status", "cancelled"], store: store).stdout.contains(sagaID))
    }

    /// A resumed script imports what it imported the first time, even if the file has
    /// changed since: the replay runs the code that made the log.
    @Test func aResumedScriptImportsWhatItImportedFirst() throws {
        let dir = try DurabilityTests.workspace()
        let store = dir.appendingPathComponent("flow.db").path
        let helper = dir.appendingPathComponent("greeting.flow")
        try Data("fn greet(who) { return \"hello \" + who }\n".utf8).write(to: helper)
        let script = dir.appendingPathComponent("main.flow").path
        try Data("""
        import "greeting.flow"
        flow ask() {
          node prepare { 1 }
          await approve("send?")
          return greeting.greet("reviewer")
        }
        print(ask())

        """.utf8).write(to: URL(fileURLWithPath: script))
        let first = try CLITests.flow(["run", "--events", "none", script], store: store)
        #expect(first.stderr.contains("is waiting for approval"), "\(first.stderr)")
        try Data("fn greet(who) { return \"bye \" + who }\nfn extra() { return 1 }\n".utf8).write(to: helper)
        let id = String(try CLITests.flow(["runs", "--status", "waiting"], store: store).stdout
            .split(separator: "\n")[1].split(separator: " ")[0])
        let approved = try CLITests.flow(["approve", id, "--events", "none"], store: store)
        #expect(approved.stdout == "hello reviewer\n", "\(approved.stdout) \(approved.stderr)")
        // A new execution of the script reads the file as it is now.
        let again = try CLITests.flow(["run", "--events", "none", dir.appendingPathComponent("main.flow").path], store: store)
        #expect(again.stderr.contains("is waiting for approval"))
    }

    /// The store is opened at a script's first run: a script that runs no flow leaves no
    /// file behind, and one that does is recorded with it.
    @Test func theStoreIsMadeAtTheFirstRun() throws {
        let dir = try DurabilityTests.workspace()
        let store = dir.appendingPathComponent("nested/flow.db").path
        let pure = try CLITests.flow(["run", "Examples/hello.flow"], store: store)
        #expect(pure.status == 0 && pure.stdout == "hello from Flow\n")
        #expect(!FileManager.default.fileExists(atPath: store))
        let script = dir.appendingPathComponent("one.flow").path
        try Data("print(\"before\")\nflow one() { node a { 1 } }\nprint(one())\n".utf8).write(to: URL(fileURLWithPath: script))
        let recorded = try CLITests.flow(["run", "--events", "none", script], store: store)
        #expect(recorded.stdout == "before\n1\n", "\(recorded.stderr)")
        #expect(FileManager.default.fileExists(atPath: store))
        let listed = try CLITests.flow(["runs"], store: store).stdout
        #expect(listed.split(separator: "\n").count == 2 && listed.contains(" one "), "\(listed)")
    }

    /// A store that cannot be opened still exits 74, at the first run it would record.
    @Test func aStoreThatCannotBeOpenedExits74() throws {
        let dir = try DurabilityTests.workspace()
        let store = dir.appendingPathComponent("flow.db").path
        try Data("this is not sqlite, just some text that is long enough to be a header".utf8)
            .write(to: URL(fileURLWithPath: store))
        let script = dir.appendingPathComponent("one.flow").path
        try Data("flow one() { node a { 1 } }\nprint(one())\n".utf8).write(to: URL(fileURLWithPath: script))
        let failed = try CLITests.flow(["run", "--events", "none", script], store: store)
        #expect(failed.status == 74 && failed.stderr.contains("file is not a database"), "\(failed.status) \(failed.stderr)")
        #expect(try CLITests.flow(["run", "Examples/hello.flow"], store: store).status == 0)
    }

    /// `flow cancel` from another process reaches a run that never waits: its process
    /// takes the cancellation at the run's next node, runs its compensations and ends it.
    @Test func cancellingARunThatNeverWaits() throws {
        let dir = try DurabilityTests.workspace()
        let store = dir.appendingPathComponent("flow.db").path
        let script = dir.appendingPathComponent("busy.flow").path
        try Data("""
        flow busy() {
          node first(compensate: fn(r) { fs.append("\(dir.path)/undo.txt", "undone\\n") }) { 1 }
          let n = 0
          while true { n = node step { n + 1 } }
        }
        busy()

        """.utf8).write(to: URL(fileURLWithPath: script))
        let p = Process()
        p.executableURL = CLITests.binary
        p.arguments = ["run", "--events", "none", script]
        var environment = ProcessInfo.processInfo.environment
        environment["FLOW_STORE"] = store
        p.environment = environment
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        var id = ""
        for _ in 0..<100 where id.isEmpty {
            usleep(50_000)
            let listed = try CLITests.flow(["runs", "--status", "running"], store: store).stdout.split(separator: "\n")
            if listed.count > 1 { id = String(listed[1].split(separator: " ")[0]) }
        }
        #expect(!id.isEmpty, "the run never showed up as running")
        let cancel = try CLITests.flow(["cancel", id], store: store)
        #expect(cancel.status == 0 && cancel.stderr.contains("takes messages itself"), "\(cancel.stderr)")
        var waited = 0
        while p.isRunning && waited < 100 { usleep(50_000); waited += 1 }
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(p.terminationStatus == 70 && stderr.contains("was cancelled"), "\(p.terminationStatus) \(stderr)")
        #expect(try CLITests.flow(["runs", "--status", "cancelled"], store: store).stdout.contains(id))
        #expect((try? String(contentsOfFile: dir.path + "/undo.txt", encoding: .utf8)) == "undone\n")
    }

    /// A timer keeps its deadline across a restart: a run sleeping 1.5 s, killed after
    /// 0.4 s and resumed at once, wakes about 1.1 s later, not 1.5 s.
    @Test func timersKeepTheirDeadlineAcrossRestarts() throws {
        let dir = try DurabilityTests.workspace()
        let store = dir.appendingPathComponent("flow.db").path
        let script = dir.appendingPathComponent("sleep.flow").path
        try Data("flow nap() { sleep(1500ms); \"awake\" }\nprint(nap())\n".utf8).write(to: URL(fileURLWithPath: script))
        let p = try DurabilityTests.start(["run", "--events", "none", script], store: store)
        usleep(400_000)
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let start = Date()
        let resumed = try CLITests.flow(["resume", "--events", "none"], store: store)
        let took = Date().timeIntervalSince(start)
        #expect(resumed.stdout == "awake\n", "\(resumed.stderr)")
        #expect(took < 1.4 && took > 0.7, "resume took \(took) s")
    }

    /// Pattern 17 from the command line: history at an event, a fork with a changed
    /// parameter that reuses the recorded search, and the comparison.
    @Test func rewindAndDiffFromTheCommandLine() throws {
        let (_, store, script) = try DurabilityTests.workspace(script: "trip.flow", """
        flow plan_trip(budget) {
          $.budget = budget
          let flights = node search_flights { print("searching"); [320, 540, 410] }
          $.options = len(flights)
          let affordable = node filter { flights.filter(fn(p) => p <= $.budget) }
          $.best = affordable.reduce(fn(a, b) => math.max(a, b), 0)
          return $.best
        }
        print("best:", plan_trip(400))

        """)
        let first = try CLITests.flow(["run", "--events", "none", script], store: store)
        #expect(first.stdout == "searching\nbest: 320\n")
        let id = String(try CLITests.flow(["runs"], store: store).stdout.split(separator: "\n")[1].split(separator: " ")[0])
        let at = try CLITests.flow(["history", id, "--at", "5"], store: store)
        #expect(at.stdout.hasSuffix("state at event 5: {budget: 400}\n"), "\(at.stdout)")
        let fork = try CLITests.flow(["rewind", id, "--to", "5", "--set", "budget=600", "--events", "none"], store: store)
        // The search is not done again (nothing printed it); the fork takes the new budget.
        #expect(fork.stdout == "best: 540\n", "\(fork.stdout) \(fork.stderr)")
        let forkID = String(fork.stderr.split(separator: " as run ")[1].split(separator: " ")[0])
        let diff = try CLITests.flow(["diff", id, forkID], store: store)
        #expect(diff.stdout.contains("result    320"), "\(diff.stdout)")
        #expect(diff.stdout.contains("$.budget  400"), "\(diff.stdout)")
        #expect(diff.stdout.contains("$.best    320"), "\(diff.stdout)")
        #expect(diff.stdout.contains("first difference at event 7"), "\(diff.stdout)")
        let bad = try CLITests.flow(["rewind", id, "--to", "99"], store: store)
        #expect(bad.status == 65 && bad.stderr.contains("has events 1 to"), "\(bad.stderr)")
    }

    /// Runs stay in the write-ahead log beside the file until `flow prune` folds it in.
    @Test func pruneDeletesFinishedRunsAndFoldsTheLogIntoTheFile() throws {
        let dir = try DurabilityTests.workspace()
        let store = dir.appendingPathComponent("flow.db").path
        func walSize() throws -> Int {
            (try FileManager.default.attributesOfItem(atPath: store + "-wal")[.size] as? Int) ?? -1
        }
        let script = dir.appendingPathComponent("greet.flow").path
        try Data("flow greet(n) { node say { print(\"hi\", n) } }\ngreet(1)\n".utf8).write(to: URL(fileURLWithPath: script))
        #expect(try CLITests.flow(["run", "--events", "none", script], store: store).stdout == "hi 1\n")
        #expect(try CLITests.flow(["run", "--events", "none", script], store: store).status == 0)
        #expect(try walSize() > 0)
        #expect(try CLITests.flow(["runs"], store: store).stdout.split(separator: "\n").count == 3)
        let young = try CLITests.flow(["prune", "--older-than", "1d"], store: store)
        #expect(young.stdout == "pruned 0 runs\n")
        #expect(try walSize() == 0)
        let old = try CLITests.flow(["prune", "--older-than", "0s"], store: store)
        #expect(old.stdout == "pruned 2 runs\n", "\(old.stdout) \(old.stderr)")
        #expect(try CLITests.flow(["runs"], store: store).stdout.split(separator: "\n").count == 1)
        let bad = try CLITests.flow(["prune", "--older-than", "soon"], store: store)
        #expect(bad.status == 64 && bad.stderr.contains("found 'soon'"), "\(bad.stderr)")
    }
}
