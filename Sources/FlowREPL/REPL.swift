import FlowRuntime
import FlowStore
import FlowSyntax
#if canImport(Glibc)
import Glibc
#endif

/// The read-eval-print loop over an engine: inputs accumulate while brackets are open,
/// values print readably, errors point at the input, `:commands` inspect and change the
/// image and the runs. Calls of flows run in the background, so the prompt stays usable
/// while they go on.
public final class REPL {
    let engine: Engine
    let reader: LineReader
    let write: @Sendable (String) -> Void
    let writeError: @Sendable (String) -> Void
    let readFile: (String) -> String?
    /// Files loaded with `:load`, for `:reload`.
    var loaded: [String] = []
    var quit = false
    /// Inputs so far: each is a source of its own, named `<repl:N>` in messages.
    var inputs = 0
    /// What a redefinition does to running runs (`:policy`).
    var pin = false

    public init(engine: Engine, interactive: Bool, historyFile: String?,
                write: @escaping @Sendable (String) -> Void, writeError: @escaping @Sendable (String) -> Void,
                readFile: @escaping (String) -> String?) {
        self.engine = engine
        self.reader = LineReader(interactive: interactive, historyFile: historyFile)
        self.write = write
        self.writeError = writeError
        self.readFile = readFile
        LineReader.completer = { [unowned self] word, before in completions(word, before: before) }
    }

    static let commands: [(String, String)] = [
        (":help", "this list"),
        (":load FILE", "evaluate a file's definitions and code in the session"),
        (":reload [FILE]", "load a file again (every file loaded, without FILE): changed definitions are redefined, checked first"),
        (":defs", "definitions, with their number of versions"),
        (":show NAME", "the source of NAME's current version, and its history"),
        (":rollback NAME", "restore NAME's previous version"),
        (":runs", "runs of this session: id, flow, status, waiting on"),
        (":inspect [RUN]", "a run's state, current node and what it waits for (the latest run without RUN)"),
        (":history [RUN]", "a run's events (the latest run without RUN)"),
        (":approve [RUN] [reject] [REASON]", "approve (or reject) what a waiting run asks for (RUN: the one waiting, if only one is)"),
        (":policy [migrate|pin]", "what redefining a flow does to its running runs: move them at their next node (default) or let them finish on their version"),
        (":quit", "leave (also Ctrl-D)"),
    ]

    /// Reads and evaluates until `:quit` or end of input.
    public func run() {
        engine.startBackground()
        defer { engine.stopBackground() }
        if reader.interactive { write("Flow \(REPL.version) — :help for commands, Ctrl-D to leave\n") }
        var pending = ""
        while !quit {
            guard let line = reader.read(prompt: pending.isEmpty ? "flow> " : "  ... ") else { break }
            if pending.isEmpty && line.trimmingWhitespace.hasPrefix(":") {
                command(line.trimmingWhitespace)
                continue
            }
            pending += (pending.isEmpty ? "" : "\n") + line
            if REPL.needsMore(pending) { continue }
            let input = pending
            pending = ""
            if input.trimmingWhitespace.isEmpty { continue }
            inputs += 1
            evaluate(input, path: "<repl:\(inputs)>")
        }
        if !pending.trimmingWhitespace.isEmpty { inputs += 1; evaluate(pending, path: "<repl:\(inputs)>") }
    }

    public static let version = "0.1.0"

    /// True while the input has open brackets or an unterminated multi-line string.
    static func needsMore(_ text: String) -> Bool {
        let (tokens, diagnostics) = Lexer.tokenize(SourceFile(path: "<repl>", text: text))
        if diagnostics.contains(where: { $0.message.contains("found end of file") }) { return true }
        var depth = 0
        for t in tokens {
            switch t.kind {
            case .lParen, .lBracket, .lBrace: depth += 1
            case .rParen, .rBracket, .rBrace: depth -= 1
            default: break
            }
        }
        return depth > 0
    }

    func evaluate(_ input: String, path: String = "<repl>", origin: String = "repl") {
        do {
            let typed = path.hasPrefix("<repl")
            if typed, engine.isFlowCall(input) {
                let write = self.write, writeError = self.writeError
                try engine.evaluateInBackground(input, path: path, origin: origin) { result in
                    switch result {
                    case .success(let v): write("[done] \(input.trimmingWhitespace) = \(REPL.show(v))\n")
                    case .failure(let e as FlowError): writeError("[failed] \(input.trimmingWhitespace)\n" + e.rendered)
                    case .failure(let e): writeError("[stopped] \(input.trimmingWhitespace): \(e)\n")
                    }
                }
                write("[started] \(input.trimmingWhitespace) — :runs lists it\n")
                return
            }
            let result = try engine.evaluate(input, path: path, origin: origin, policy: pin ? .pin : .migrate)
            if !engine.warnings.isEmpty { writeError(DiagnosticRenderer.render(engine.warnings)) }
            if !result.defined.isEmpty && result.onlyDefinitions {
                for name in result.defined {
                    let n = engine.image.versions(of: name).last?.number ?? 1
                    write(n > 1 ? "\(name) redefined (version \(n))\n" : "defined \(name)\n")
                }
                if !result.offered.isEmpty {
                    write("[swap] offered to \(result.offered.joined(separator: ", ")): taken at the next node\n")
                }
            } else if !result.value.isNil || typed && !result.onlyDefinitions && !input.contains("print(") {
                write(REPL.show(result.value) + "\n")
            }
        } catch let f as CompileFailure {
            writeError(DiagnosticRenderer.render(f.diagnostics))
        } catch let e as FlowError {
            writeError(e.rendered)
        } catch {
            writeError("error: \(error)\n")
        }
    }

    /// A value as the REPL prints it: like `repr`, long lists and maps abbreviated.
    static func show(_ v: Value, depth: Int = 0) -> String {
        let most = 20
        switch v {
        case .list(let l) where l.count > most || depth > 2:
            let shown = l.items.prefix(depth > 2 ? 0 : most).map { show($0, depth: depth + 1) }
            return "[" + shown.joined(separator: ", ") + (shown.isEmpty ? "" : ", ") + "… \(l.count - shown.count) more]"
        case .list(let l):
            return "[" + l.items.map { show($0, depth: depth + 1) }.joined(separator: ", ") + "]"
        case .map(let m) where m.count > most || depth > 2:
            let shown = m.entries.prefix(depth > 2 ? 0 : most).map { "\(key($0.key)): \(show($0.value, depth: depth + 1))" }
            return "{" + shown.joined(separator: ", ") + (shown.isEmpty ? "" : ", ") + "… \(m.count - shown.count) more}"
        case .map(let m):
            return "{" + m.entries.map { "\(key($0.key)): \(show($0.value, depth: depth + 1))" }.joined(separator: ", ") + "}"
        case .string(let s) where s.value.count > 400:
            return Printer.repr(.str(String(s.value.prefix(400)))) + "… (\(s.value.count) characters)"
        default:
            return Printer.repr(v)
        }
    }

    static func key(_ k: Value) -> String {
        let text = Printer.repr(k)
        if case .string(let s) = k, Printer.isIdentifierLike(s.value) { return s.value }
        return text
    }

    // MARK: - Commands

    public func command(_ line: String) {
        let parts = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        let name = parts[0], args = Array(parts.dropFirst())
        switch name {
        case ":help", ":h", ":?":
            let width = REPL.commands.map { $0.0.count }.max() ?? 0
            for (c, what) in REPL.commands { write(c + String(repeating: " ", count: width - c.count + 2) + what + "\n") }
            write("A call of a flow (f(…)) runs in the background; the prompt stays usable.\n")
        case ":policy":
            switch args.first {
            case nil: write("policy: \(pin ? "pin" : "migrate")\n")
            case "migrate"?: pin = false; write("policy: migrate — running runs move to a redefined flow at their next node\n")
            case "pin"?: pin = true; write("policy: pin — running runs finish on the version they started with\n")
            case let other?: writeError(":policy is migrate or pin, found '\(other)'\n")
            }
        case ":quit", ":q", ":exit":
            quit = true
        case ":load":
            guard let path = args.first else { return writeError(":load needs a file: :load FILE\n") }
            load(path)
        case ":reload":
            let files = args.isEmpty ? loaded : args
            if files.isEmpty { return writeError(":reload: no file loaded yet (:load FILE first)\n") }
            for f in files { load(f) }
        case ":defs":
            let names = engine.image.names
            if names.isEmpty { return write("no definitions yet\n") }
            for n in names {
                let vs = engine.image.versions(of: n)
                guard let last = vs.last else { continue }
                write("\(last.kind) \(n)  v\(last.number)  (\(last.origin))\n")
            }
        case ":show":
            guard let n = args.first else { return writeError(":show needs a name: :show NAME\n") }
            let vs = engine.image.versions(of: n)
            guard let last = vs.last else {
                if let v = engine.replValue(n) { return write(REPL.show(v) + "\n") }
                return writeError(":show: '\(n)' is not defined in this session\n")
            }
            write(last.source + "\n")
            for v in vs.reversed() { write("# v\(v.number) \(v.origin)\n") }
        case ":rollback":
            guard let n = args.first else { return writeError(":rollback needs a name: :rollback NAME\n") }
            do {
                let v = try engine.rollback(n)
                write("\(n) is back to version \(v.number)\n")
            } catch let e as FlowError { writeError(":rollback: \(e.message)\n") } catch { writeError(":rollback: \(error)\n") }
        case ":runs":
            runs()
        case ":inspect":
            guard let id = args.first ?? engine.sessionRuns().last?.id else { return writeError(":inspect: no runs yet\n") }
            inspect(id)
        case ":history":
            guard let id = args.first ?? engine.sessionRuns().last?.id else { return writeError(":history: no runs yet\n") }
            engine.flushRuns()
            do {
                for e in try engine.history(run: id) {
                    guard case .map(let m) = e else { continue }
                    var line = "\(Printer.display(m.get("seq") ?? .nilValue))  \(Printer.display(m.get("type") ?? .nilValue))"
                    for entry in m.entries {
                        guard let k = entry.key.stringValue, !["seq", "type", "key", "at", "time", "keys", "old", "node"].contains(k) else { continue }
                        line += k == "path" ? " \(Printer.display(entry.value))" : " \(k)=\(Printer.repr(entry.value, limit: 60))"
                    }
                    write(line + "\n")
                }
            } catch let e as FlowError { writeError(":history: \(e.message)\n") } catch { writeError(":history: \(error)\n") }
        case ":approve":
            // Without a run id: the one run that waits for an approval, if there is one.
            var args = args
            let runs = engine.sessionRuns()
            if args.isEmpty || !runs.contains(where: { $0.id == args[0] }) {
                let waiting = runs.filter { $0.waitingOn?.hasPrefix("approval") == true }
                guard waiting.count == 1 else {
                    return writeError(":approve needs a run id (\(waiting.isEmpty ? "no run waits for an approval" : "runs waiting: " + waiting.map(\.id).joined(separator: ", "))): :approve RUN [reject] [REASON]\n")
                }
                args.insert(waiting[0].id, at: 0)
            }
            let id = args[0]
            let reject = args.count > 1 && args[1] == "reject"
            let reason = args.dropFirst(reject ? 2 : 1).joined(separator: " ")
            do {
                try engine.approve(run: id, approved: !reject, reason: reason.isEmpty ? nil : reason, by: "repl")
                write("\(reject ? "rejected" : "approved"); run \(id) takes it at its next look\n")
            } catch { writeError(":approve: \(error)\n") }
        default:
            let near = REPL.commands.map { String($0.0.split(separator: " ")[0]) }
            writeError("unknown command \(name)\(Suggest.closest(to: name, in: near).map { "; did you mean \($0)?" } ?? "") (:help lists them)\n")
        }
    }

    func load(_ path: String) {
        guard let text = readFile(path) else { return writeError(":load: cannot read '\(path)'\n") }
        if !loaded.contains(path) { loaded.append(path) }
        evaluate(text, path: path, origin: path)
    }

    func runs() {
        let all = engine.sessionRuns()
        if all.isEmpty { return write("no runs\n") }
        for r in all {
            write("\(r.id)  \(r.flow)  \(r.status)\(r.waitingOn.map { "  waiting for \($0)" } ?? "")\n")
        }
    }

    func inspect(_ id: String) {
        guard let store = engine.interpreter.configuration.store else { return writeError(":inspect: this session records no runs\n") }
        engine.flushRuns()
        do {
            guard let r = try store.run(id: id) else { return writeError(":inspect: no run '\(id)'\n") }
            write("run \(r.id)  flow \(r.flow)  \(r.status)\n")
            if let w = r.waitingOn { write("waiting for: \(w)\n") }
            let events = try engine.history(run: id)
            var open: [String] = []
            for e in events {
                guard case .map(let m) = e, let path = m.get("path")?.stringValue else { continue }
                switch m.get("type")?.stringValue {
                case "node:start": open.append(path)
                case "node:end", "node:failed", "node:cancelled": open.removeAll { $0 == path }
                default: break
                }
            }
            if let current = open.last { write("current node: \(current)\n") }
            write("state: \(REPL.show(.map(try engine.state(run: id))))\n")
            write("events: \(events.count)\n")
        } catch let e as FlowError { writeError(":inspect: \(e.message)\n") } catch { writeError(":inspect: \(error)\n") }
    }

    // MARK: - Completion

    /// Candidates for the word under the cursor: commands, names in scope, or the members
    /// of the value before a dot.
    func completions(_ word: String, before: String) -> [String] {
        if before.trimmingWhitespace.isEmpty && word.hasPrefix(":") {
            return REPL.commands.map { String($0.0.split(separator: " ")[0]) }.filter { $0.hasPrefix(word) }
        }
        if before.hasSuffix(".") {
            let receiver = String(before.dropLast().reversed().prefix { $0.isLetter || $0.isNumber || $0 == "_" }.reversed())
            guard !receiver.isEmpty, let v = engine.replValue(receiver) ?? engine.interpreter.builtinValue(receiver) else { return [] }
            var names: [String] = []
            if case .map(let m) = v { names = m.keys.compactMap { $0.stringValue } }
            names += engine.interpreter.methodNames(for: v)
            return Array(Set(names)).filter { $0.hasPrefix(word) }.sorted()
        }
        return Array(Set(engine.replNames + TokenKind.reservedWords)).filter { $0.hasPrefix(word) }.sorted()
    }
}
