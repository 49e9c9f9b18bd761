import FlowRuntime
import FlowStdlib
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How `flow run` shows a run's events, on standard error so a script's own output stays
/// clean: a live tree on a terminal, one line per event otherwise, or JSON lines.
enum EventDisplay: String, CaseIterable {
    case tree, plain, json, none

    static var automatic: EventDisplay { isatty(2) != 0 ? .tree : .plain }
}

/// Receives every event (on the interpreter thread) and renders it.
final class Progress: @unchecked Sendable {
    let display: EventDisplay
    /// Not weak: a weak reference gives the interpreter a side table, and every retain of
    /// it, all through the run, then takes the slow path. The engine outlives the display.
    unowned(unsafe) var interpreter: Interpreter?

    /// The tree: runs and, under each, its nodes with status and timing.
    struct Line { var text: String; var status: String; var started: Int; var duration: String }
    var order: [String] = []
    var lines: [String: Line] = [:]
    var drawn = 0
    var lastDraw = 0

    init(display: EventDisplay) { self.display = display }

    static func write(_ s: String) {
        var bytes = Array(s.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }

    func receive(_ event: Value) {
        guard case .map(let e) = event else { return }
        switch display {
        case .none: return
        case .json:
            if let i = interpreter { Progress.write(Stdlib.jsonLine(event, interpreter: i) + "\n") }
        case .plain:
            Progress.write(Progress.plain(e) + "\n")
        case .tree:
            update(e)
            redraw(force: e.get("type")?.stringValue == "run:end")
        }
    }

    /// `   1.5s run-1 node:end pipeline/fetch#0 attempts=1 duration=1.2s`
    static func plain(_ e: MapBox) -> String {
        let at = e.get("at").map { Printer.display($0) } ?? "-"
        let run = e.get("run")?.stringValue ?? "-"
        let type = e.get("type")?.stringValue ?? "event"
        var out = "\(at.leftPad(8)) \(run) \(type)"
        for entry in e.entries {
            // `node` repeats what the path says.
            guard let k = entry.key.stringValue, !["seq", "type", "run", "at", "node"].contains(k) else { continue }
            if k == "path" { out += " \(Printer.display(entry.value))"; continue }
            out += " \(k)=\(Printer.repr(entry.value, limit: 60))"
        }
        return out
    }

    func update(_ e: MapBox) {
        let run = e.get("run")?.stringValue ?? "-"
        let type = e.get("type")?.stringValue ?? ""
        switch type {
        case "run:start", "run:resumed":
            let key = run
            if lines[key] == nil { order.append(key) }
            lines[key] = Line(text: "\(run) \(e.get("flow")?.stringValue ?? "")", status: "running", started: 0, duration: "")
        case "run:end":
            lines[run]?.status = e.get("status")?.stringValue ?? "ended"
            lines[run]?.duration = e.get("at").map { Printer.display($0) } ?? ""
        case "node:start", "node:end", "node:failed", "node:retried":
            guard let path = e.get("path")?.stringValue else { return }
            let key = run + " " + path
            if lines[key] == nil {
                order.append(key)
                lines[key] = Line(text: "  \(path)", status: "running", started: 0, duration: "")
            }
            switch type {
            case "node:end":
                lines[key]?.status = "done"
                lines[key]?.duration = e.get("duration").map { Printer.display($0) } ?? ""
            case "node:failed": lines[key]?.status = "failed"
            case "node:retried": lines[key]?.status = "retry \(e.get("attempt").map { Printer.display($0) } ?? "")"
            default: lines[key]?.status = "running"
            }
        default: break
        }
    }

    /// Redraws the last lines of the tree in place (at most every 50 ms, and at run ends).
    func redraw(force: Bool) {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let now = Int(ts.tv_sec) * 1000 + Int(ts.tv_nsec) / 1_000_000
        if !force && now - lastDraw < 50 { return }
        lastDraw = now
        let shown = order.suffix(20)
        var out = drawn > 0 ? "\u{1B}[\(drawn)F" : ""
        for key in shown {
            guard let l = lines[key] else { continue }
            let mark: String
            switch l.status {
            case "done", "completed": mark = "\u{1B}[32m✓\u{1B}[0m"
            case "failed", "cancelled": mark = "\u{1B}[31m✗\u{1B}[0m"
            default: mark = "\u{1B}[33m…\u{1B}[0m"
            }
            out += "\u{1B}[2K\(mark) \(l.text)  \(l.status)\(l.duration.isEmpty ? "" : " \(l.duration)")\n"
        }
        drawn = shown.count
        Progress.write(out)
    }
}

extension String {
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
