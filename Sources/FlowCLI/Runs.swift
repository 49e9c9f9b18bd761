import ArgumentParser
import FlowRuntime
import FlowSQLite
import FlowStore
import FlowSyntax

struct Runs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs",
        abstract: "List the runs in the store, newest first.",
        discussion: "Columns: id, flow, status, when it started, how long it ran (so far), and what a waiting run waits for.\n\nExample: flow runs --status waiting")

    @OptionGroup var store: StoreOptions
    @Option(help: "Only runs with this status: running, waiting, completed, failed or cancelled (repeatable).")
    var status: [String] = []
    @Option(help: "At most this many runs.")
    var limit = 50
    @Flag(help: "Only runs started from a script's top level (no child runs).")
    var roots = false

    func run() throws {
        let valid = ["running", "waiting", "completed", "failed", "cancelled"]
        for s in status where !valid.contains(s) {
            throw ValidationError("--status must be one of \(valid.joined(separator: ", ")), found '\(s)'")
        }
        let store = try store.open(mustExist: true)
        let runs = try store.runs(RunQuery(status: status.isEmpty ? nil : status, rootsOnly: roots, limit: limit))
        if runs.isEmpty { print("no runs"); return }
        let now = System.now
        var rows = [["ID", "FLOW", "STATUS", "STARTED", "DURATION", "WAITING ON"]]
        for r in runs {
            let flow = r.parent == nil ? r.flow : "  " + r.flow
            rows.append([r.id, flow, r.status, Durable.time(r.startedAt), Durable.duration((r.endedAt ?? now) - r.startedAt),
                         r.waitingOn ?? ""])
        }
        printTable(rows)
    }
}

func printTable(_ rows: [[String]]) {
    let widths = rows[0].indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
    for row in rows {
        // Every column padded to its width but the last, so no line ends in spaces.
        let line = row.enumerated().map { c, cell in
            c == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[c] - cell.count)
        }.joined(separator: "  ")
        print(line)
    }
}

struct History: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Show a run's timeline: every event, with the state after each one that changed it.",
        discussion: "With --at N, the timeline up to event N and the state as it was then.\n\nExample: flow history 7xk2ab-1 --at 4")

    @OptionGroup var store: StoreOptions
    @ArgumentParser.Argument(help: ArgumentHelp("The run's id (see flow runs).", valueName: "run"))
    var id: String
    @Option(help: "Stop at this event (its number in the first column) and show the state there.")
    var at: Int?

    func run() throws {
        let store = try store.open(mustExist: true)
        let record = try Durable.requireRun(id, in: store)
        let events = try store.events(run: id)
        if let at, !(1...max(1, events.count)).contains(at) || events.isEmpty {
            SourceLoader.printError("flow: run \(id) has events 1 to \(events.count); --at \(at) is not one of them\n")
            throw ExitCode(64)
        }
        var header = "run \(record.id)  flow \(record.flow)  \(record.status)  started \(Durable.time(record.startedAt))"
        if let p = record.parent { header += "  parent \(p)" }
        if let w = record.waitingOn { header += "  waiting for \(w)" }
        if let f = record.forkOf { header += "  forked from \(f) at event \(record.forkAt ?? 0)" }
        print(header)
        let state = MapBox()
        for e in events {
            if let at, e.seq > at { break }
            let fields = Durable.decode(e.data)
            var line = String(e.seq).leftPad(4) + "  " + ("+" + Durable.duration(e.at - record.startedAt)).leftPad(9) + "  " + e.type
            if case .map(let m) = fields {
                for entry in m.entries {
                    guard let k = entry.key.stringValue, !["node", "keys", "old"].contains(k) else { continue }
                    if k == "path" { line += " " + Printer.display(entry.value); continue }
                    line += " \(k)=\(Printer.repr(entry.value, limit: 60))"
                }
                if e.type == "state", case .list(let keys)? = m.get("keys") {
                    StateReplay.apply(state, keys: keys.items, value: m.get("new") ?? .nilValue)
                    line += "\n" + String(repeating: " ", count: 17) + "$ = " + Printer.repr(.map(state), limit: 200)
                }
            }
            print(line)
        }
        if let at {
            print("state at event \(at): \(Printer.repr(.map(state)))")
        }
    }
}

/// Rebuilds a run's state from its `state` events.
enum StateReplay {
    static func apply(_ state: MapBox, keys: [Value], value: Value) {
        guard let last = keys.last else { return }
        var container = Value.map(state)
        for k in keys.dropLast() {
            switch container {
            case .map(let m): container = m.get(k) ?? .nilValue
            case .list(let l): if case .int(let i) = k, l.items.indices.contains(i) { container = l[i] } else { return }
            default: return
            }
        }
        switch container {
        case .map(let m): _ = m.set(last, value)
        case .list(let l): if case .int(let i) = last, l.items.indices.contains(i) { l[i] = value }
        default: return
        }
    }
}

struct Resume: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Continue unfinished runs: one run's script, or every unfinished script.",
        discussion: """
        Re-executes the script a run belongs to, from the source it started with: every \
        effect its runs recorded (node results, timers, now(), approvals…) comes back from \
        the log without running again, and execution goes live where the log ends. A \
        script whose process is still alive is left alone.

        Example: flow resume            (every unfinished script)
                 flow resume 7xk2ab-1   (the script of that run)
        """)

    @OptionGroup var store: StoreOptions
    @Option(help: "How to show the events of runs: tree, plain, json or none.")
    var events: String?
    @ArgumentParser.Argument(help: ArgumentHelp("A run's id; without it, every unfinished script is resumed.", valueName: "run"))
    var id: String?

    func run() throws {
        let display = try EventDisplay.parse(events)
        let store = try store.open(mustExist: true)
        if let id {
            let record = try Durable.requireRun(id, in: store)
            if record.isFinished {
                print("run \(id) has already \(record.status == "completed" ? "completed" : "ended (\(record.status))")")
                return
            }
            let code = try Durable.resume(scriptOf: record, store: store, display: display)
            if code != 0 { throw ExitCode(code) }
            return
        }
        let unfinished = try store.scripts(status: ["running", "waiting"])
        if unfinished.isEmpty { print("nothing to resume"); return }
        var worst: Int32 = 0
        for script in unfinished {
            SourceLoader.printError("flow: resuming script \(script.id) (\(script.path))\n")
            worst = max(worst, try Durable.resume(script, store: store, display: display))
        }
        if worst != 0 { throw ExitCode(worst) }
    }
}

/// Shared by approve, signal and cancel: posts a message, then resumes the run's script
/// unless a live process executes it (that process polls its inbox).
func deliver(to run: String, store options: StoreOptions, events: String?, kind: String, name: String = "", value: Value) throws {
    let display = try EventDisplay.parse(events)
    let store = try options.open(mustExist: true)
    let record = try Durable.requireRun(run, in: store)
    if record.isFinished {
        SourceLoader.printError("flow: run \(run) has already \(record.status == "completed" ? "completed" : "ended (\(record.status))")\n")
        throw ExitCode(65)
    }
    try store.post(InboxMessage(run: run, kind: kind, name: name, data: try JSONText.encode(value, tagged: true),
                                at: System.now))
    let code = try Durable.resume(scriptOf: record, store: store, display: display)
    if code != 0 { throw ExitCode(code) }
}

struct Approve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approve",
        abstract: "Approve (or reject) what a waiting run asks for, and let it go on.",
        discussion: "`await approve(prompt)` in the run returns true (false with --reject).\n\nExample: flow approve 7xk2ab-1 --reject --reason \"not on a Friday\"")

    @OptionGroup var store: StoreOptions
    @ArgumentParser.Argument(help: ArgumentHelp("The waiting run's id.", valueName: "run"))
    var id: String
    @Flag(help: "Reject instead of approving.")
    var reject = false
    @Option(help: "Why (kept in the run's history).")
    var reason: String?
    @Option(help: "How to show the events of the resumed runs: tree, plain, json or none.")
    var events: String?

    func run() throws {
        var fields: [(String, Value)] = [("approved", .bool(!reject))]
        if let reason { fields.append(("reason", .str(reason))) }
        fields.append(("by", .str(System.env("USER") ?? "cli")))
        try deliver(to: id, store: store, events: events, kind: "approval", value: .map(MapBox(fields)))
    }
}

struct Signal: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signal",
        abstract: "Send a signal to a run: `await signal(NAME)` in it gives VALUE.",
        discussion: "VALUE is read as JSON when it is valid JSON (42, true, {\"a\": 1}), as text otherwise.\n\nExample: flow signal 7xk2ab-1 budget 250")

    @OptionGroup var store: StoreOptions
    @ArgumentParser.Argument(help: ArgumentHelp("The run's id.", valueName: "run")) var id: String
    @ArgumentParser.Argument(help: "The signal's name.") var name: String
    @ArgumentParser.Argument(help: "The value sent.") var value: String
    @Option(help: "How to show the events of the resumed runs: tree, plain, json or none.")
    var events: String?

    func run() throws {
        let v = (try? JSONText.decode(value).value) ?? .str(value)
        try deliver(to: id, store: store, events: events, kind: "signal", name: name, value: v)
    }
}

struct Cancel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel an unfinished run: it stops where it is and its compensations run.",
        discussion: "A waiting run takes the cancellation at once; one that a process is executing takes it at its next node or effect (within about 100 ms); one whose process is gone is resumed here and cancelled where its log ends. Its compensations run.\n\nExample: flow cancel 7xk2ab-1")

    @OptionGroup var store: StoreOptions
    @ArgumentParser.Argument(help: ArgumentHelp("The run's id.", valueName: "run")) var id: String
    @Option(help: "How to show the events of the resumed runs: tree, plain, json or none.")
    var events: String?

    func run() throws {
        try deliver(to: id, store: store, events: events, kind: "cancel", value: .nilValue)
    }
}


struct Rewind: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rewind",
        abstract: "Fork a run at an event and run the fork: what was recorded before the event is reused, the rest runs live.",
        discussion: """
        The fork is a new run (and a new execution of the run's script): its log starts as \
        a copy of the original's first N events, so no node, tool or LLM call recorded \
        before event N is done again — child runs that ended before it included. --set \
        changes the run's state where the copy ends (a dotted path into $; the value is \
        read as JSON when it is valid JSON, as text otherwise). Compare with flow diff.

        Example: flow rewind 7xk2ab-1 --to 5 --set budget=600
        """)

    @OptionGroup var store: StoreOptions
    @ArgumentParser.Argument(help: ArgumentHelp("The run to fork (a root run).", valueName: "run")) var id: String
    @Option(help: "The event to fork at (its number in flow history).") var to: Int
    @Option(name: .customLong("set"), help: ArgumentHelp("A state change for the fork: path=value (repeatable).", valueName: "path=value"))
    var changes: [String] = []
    @Option(help: "How to show the events of the fork: tree, plain, json or none.")
    var events: String?

    func run() throws {
        let display = try EventDisplay.parse(events)
        var parsed: [(keys: [Value], value: Value)] = []
        for c in changes {
            guard let eq = c.firstIndex(of: "="), eq != c.startIndex else {
                throw ValidationError("--set needs path=value (like budget=600), found '\(c)'")
            }
            let path = c[..<eq], text = String(c[c.index(after: eq)...])
            let value = (try? JSONText.decode(text).value) ?? .str(text)
            parsed.append((path.split(separator: ".").map { Value.str(String($0)) }, value))
        }
        let store = try store.open(mustExist: true)
        var configuration = Configuration()
        configuration.store = store
        let engine = Engine(configuration: configuration)
        let (script, fork): (ScriptRecord, RunRecord)
        do {
            (script, fork) = try engine.perform {
                try engine.interpreter.prepareFork(of: id, at: to, changes: parsed, newScriptID: try Durable.newScriptID(in: store))
            }
        } catch let e as FlowError {
            SourceLoader.printError("flow: \(e.message)\n")
            throw ExitCode(65)
        }
        SourceLoader.printError("flow: run \(id) forked at event \(to) as run \(fork.id) (script \(script.id))\n")
        let arguments = JSONText.unquoteList(script.arguments) ?? []
        let code = Durable.execute(SourceFile(path: script.path, text: script.source), script: script, resuming: true,
                                   store: store, display: display, arguments: arguments, exitsAfter: true)
        if code != 0 { throw ExitCode(code) }
    }
}

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Compare two runs: status, result, the state keys that differ, and the first event where they part.",
        discussion: "Example: flow diff 7xk2ab-1 m3p9qa-1")

    @OptionGroup var store: StoreOptions
    @ArgumentParser.Argument(help: ArgumentHelp("The first run.", valueName: "run-a")) var a: String
    @ArgumentParser.Argument(help: ArgumentHelp("The second run.", valueName: "run-b")) var b: String

    func run() throws {
        let store = try store.open(mustExist: true)
        var configuration = Configuration()
        configuration.store = store
        let engine = Engine(configuration: configuration)
        let result: Value
        do {
            result = try engine.perform { try engine.interpreter.compare(a, b) }
        } catch let e as FlowError {
            SourceLoader.printError("flow: \(e.message)\n")
            throw ExitCode(66)
        }
        guard case .map(let m) = result else { return }
        var rows = [["", a, b]]
        func pair(_ v: Value?) -> (String, String) {
            guard case .list(let l)? = v, l.count == 2 else { return ("", "") }
            return (Printer.repr(l[0], limit: 60), Printer.repr(l[1], limit: 60))
        }
        let status = pair(m.get("status"))
        rows.append(["status", status.0, status.1])
        if m.get("result") != nil {
            let r = pair(m.get("result"))
            rows.append(["result", r.0, r.1])
        }
        if case .map(let state)? = m.get("state") {
            for e in state.entries {
                let p = pair(e.value)
                rows.append(["$." + (e.key.stringValue ?? Printer.repr(e.key)), p.0, p.1])
            }
        }
        printTable(rows)
        if case .map(let first)? = m.get("first_difference") {
            print("first difference at event \(Printer.display(first.get("seq") ?? .nilValue)):")
            print("  \(a): \(Printer.display(first.get("a") ?? .nilValue))")
            print("  \(b): \(Printer.display(first.get("b") ?? .nilValue))")
        } else {
            print("the timelines are the same")
        }
    }
}

struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Delete finished runs that ended longer ago than a limit, with their children and logs.",
        discussion: "Unfinished runs are never pruned. `flow run --retention 30d` (or FLOW_RETENTION) does the same each time a script starts.\n\nExample: flow prune --older-than 30d")

    @OptionGroup var store: StoreOptions
    @Option(name: .customLong("older-than"), help: ArgumentHelp("How old a finished run must be (like 30d, 12h, 45m, 90s).", valueName: "duration"))
    var olderThan: String

    func run() throws {
        guard let ns = StoreOptions.parseDuration(olderThan) else {
            throw ValidationError("--older-than is a duration like 30d, 12h, 45m or 90s, found '\(olderThan)'")
        }
        let store = try store.open(mustExist: true)
        let n = try store.prune(endedBefore: System.now - Double(ns) / 1e9)
        // Maintenance: the write-ahead log goes into the file, which then holds everything.
        try (store as? SQLiteStore)?.checkpoint()
        print("pruned \(n) run\(n == 1 ? "" : "s")")
    }
}
