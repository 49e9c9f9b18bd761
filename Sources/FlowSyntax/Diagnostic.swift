/// A problem found in a source file, with where it is and what would fix it.
///
/// Diagnostics are values: the CLI renders them as text (`DiagnosticRenderer`), the REPL
/// with a caret under its own input line, the server as JSON. Messages start lowercase,
/// have no trailing period and quote names in single quotes.
public struct Diagnostic: Sendable, Error, CustomStringConvertible {
    public enum Severity: String, Sendable { case error, warning, note }

    /// An extra line under a diagnostic: a hint, or a pointer at a related place.
    public struct Note: Sendable {
        public let message: String
        public let range: SourceRange?
        public init(_ message: String, at range: SourceRange? = nil) {
            self.message = message
            self.range = range
        }
    }

    public let severity: Severity
    public let message: String
    public let range: SourceRange
    public var notes: [Note]

    public init(_ severity: Severity, _ message: String, at range: SourceRange, notes: [Note] = []) {
        self.severity = severity
        self.message = message
        self.range = range
        self.notes = notes
    }

    public var location: SourceLocation { range.startLocation }
    /// The one-line form: `path:line:col: error: message`.
    public var description: String { "\(range.description): \(severity.rawValue): \(message)" }
}

/// Renders diagnostics as text: a pure function of the diagnostic and its source.
public enum DiagnosticRenderer {
    /// The full form of STYLE.md: the header line, the numbered source line with a caret or
    /// underline, then each note.
    public static func render(_ d: Diagnostic) -> String {
        var out = d.description + "\n"
        out += excerpt(d.range)
        for note in d.notes {
            if let r = note.range {
                out += "note: \(note.message) at \(r.description)\n"
            } else {
                out += "note: \(note.message)\n"
            }
        }
        return out
    }

    /// Renders several diagnostics in order, separated by nothing (each ends with a newline).
    public static func render(_ ds: [Diagnostic]) -> String { ds.map(render).joined() }

    /// The numbered source line of a range with a caret under its start, extended with
    /// `~` to cover the rest of the range on that line.
    public static func excerpt(_ r: SourceRange) -> String {
        let start = r.startLocation
        let lineText = r.file.lineText(start.line)
        let number = String(start.line)
        let gutter = String(repeating: " ", count: number.count)
        // Very long lines are cut around the caret so the output stays readable.
        let limit = 160
        var shown = lineText
        var column = start.column
        let chars = Array(lineText)
        if chars.count > limit {
            let from = max(0, column - 1 - limit / 2)
            let to = min(chars.count, from + limit)
            shown = (from > 0 ? "…" : "") + String(chars[from..<to]) + (to < chars.count ? "…" : "")
            column = column - from + (from > 0 ? 1 : 0)
        }
        var width = 1
        if r.end > r.start {
            let endLoc = r.endLocation
            if endLoc.line == start.line { width = max(1, endLoc.column - start.column) }
            else { width = max(1, lineText.count - start.column + 1) }
        }
        width = min(width, max(1, shown.count - column + 1))
        let pad = String(shown.prefix(max(0, column - 1)).map { $0 == "\t" ? "\t" : " " })
        let marker = "^" + String(repeating: "~", count: max(0, width - 1))
        return " \(number) | \(shown)\n \(gutter) | \(pad)\(marker)\n"
    }
}

/// Collects diagnostics while a stage runs, so every problem is reported in one go.
public struct DiagnosticBag: Sendable {
    public private(set) var items: [Diagnostic] = []
    public init() {}
    public var hasErrors: Bool { items.contains { $0.severity == .error } }
    public mutating func append(_ d: Diagnostic) { items.append(d) }
    public mutating func append(contentsOf ds: [Diagnostic]) { items.append(contentsOf: ds) }
    public mutating func error(_ message: String, at range: SourceRange, notes: [Diagnostic.Note] = []) {
        items.append(Diagnostic(.error, message, at: range, notes: notes))
    }
}
