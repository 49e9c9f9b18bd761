import ArgumentParser
import FlowREPL
import FlowRuntime
import FlowStdlib
import FlowStore
import FlowSyntax
#if canImport(Glibc)
import Glibc
#endif

struct Repl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repl",
        abstract: "An interactive session: evaluate Flow, inspect and redefine definitions, watch runs.",
        discussion: """
        Definitions persist from one input to the next and are versioned (:defs, :show, \
        :rollback); a redefinition is checked first (syntax, names, and the arity its \
        earlier callers use) and refused, with the reason, when it would break something. \
        Input continues while brackets are open. A call of a flow runs in the background \
        and the prompt stays usable. FILEs are loaded first (:load). With standard input \
        not a terminal, lines are read without prompts, so a session can be piped in.

        Runs are recorded in memory unless --store names a file. History: ~/.flow_history \
        (FLOW_HISTORY overrides).

        Example: flow repl Examples/chain.flow
        """)

    @Option(name: .customLong("store"), help: ArgumentHelp("Where runs are recorded: 'memory' (the default here) or a SQLite file.", valueName: "path"))
    var store = "memory"

    @ArgumentParser.Argument(help: "Files to load before the prompt.")
    var files: [String] = []

    func run() throws {
        var options = StoreOptions()
        options.path = store
        let runStore = try options.open()
        var configuration = SourceLoader.configuration()
        // The interpreter goes on in the background while readline waits for a line.
        configuration.runsOnCallingThread = false
        configuration.store = runStore
        configuration.environment = System.environment
        // Hot swaps are reported as they happen.
        configuration.onEvent = { event in
            guard case .map(let e) = event, let type = e.get("type")?.stringValue, type.hasPrefix("swap:") else { return }
            let run = e.get("run")?.stringValue ?? "?"
            switch type {
            case "swap:done":
                SourceLoader.printOut("[swap] run \(run) is on version \(Printer.display(e.get("version") ?? .nilValue)) of \(e.get("flow")?.stringValue ?? "?")\n")
            case "swap:refused":
                SourceLoader.printOut("[swap] run \(run) stays on its version: \(e.get("reason")?.stringValue ?? "")\n")
            default: break
            }
        }
        let engine = Stdlib.makeEngine(configuration)
        let interactive = isatty(0) != 0
        // A session is a recorded script: its runs have ids, history and time travel.
        let script = ScriptRecord(id: try Durable.newScriptID(in: runStore), path: "<repl>", source: "",
                                  directory: System.currentDirectory, startedAt: System.now)
        try engine.perform { try engine.interpreter.beginScript(script, resuming: false) }
        let history = System.env("FLOW_HISTORY")
            ?? (System.env("HOME").map { $0 + "/.flow_history" })
        let out: @Sendable (String) -> Void = { SourceLoader.printOut($0) }
        let repl = REPL(engine: engine, interactive: interactive, historyFile: interactive ? history : nil,
                        write: out, writeError: { @Sendable in SourceLoader.printError($0) },
                        readFile: { path in SourceLoader.readBytes(path).flatMap { String(validating: $0, as: UTF8.self) } })
        for f in files { repl.command(":load \(f)") }
        repl.run()
        try? engine.perform { try engine.interpreter.endScript(status: "completed") }
    }
}
