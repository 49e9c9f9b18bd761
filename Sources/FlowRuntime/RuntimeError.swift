import FlowSyntax

/// One frame of a runtime error's traceback: the function it happened in and where.
public struct TraceFrame: Sendable {
    /// `fn 'name'`, `flow 'name'`, `lambda` or `<main>`.
    public let function: String
    public let range: SourceRange?
}

/// A Flow error on its way up the Swift stack: the error value and the frames it has
/// unwound through.
///
/// Created with the place it was raised; each call it leaves adds the callee's frame, so
/// the traceback costs nothing until something fails.
public final class FlowError: Error, @unchecked Sendable, CustomStringConvertible {
    public let value: ErrorBox
    /// Where the error happened in the innermost frame not yet recorded.
    var pending: SourceRange?
    public private(set) var frames: [TraceFrame] = []
    var finished = false

    public init(_ value: ErrorBox, at range: SourceRange?) {
        self.value = value
        self.pending = range
    }

    public convenience init(kind: String, message: String, at range: SourceRange?, data: Value = .nilValue) {
        self.init(ErrorBox(kind: kind, message: message, data: data), at: range)
    }

    public var kind: String { value.kind }
    public var message: String { value.message }
    /// Where it was raised (the innermost frame).
    public var range: SourceRange? { frames.first?.range ?? pending }

    /// Records that the error left `function`, which had been called from `callSite`.
    func unwind(through function: String, calledFrom callSite: SourceRange?) {
        guard !finished else { return }
        frames.append(TraceFrame(function: function, range: pending))
        pending = callSite
    }

    /// Closes the traceback at the outermost frame.
    func finish(_ function: String = "<main>") {
        guard !finished else { return }
        if pending != nil || frames.isEmpty { frames.append(TraceFrame(function: function, range: pending)) }
        pending = nil
        finished = true
        value.trace = frames
    }

    public var description: String {
        let loc = range.map { "\($0.description): " } ?? ""
        return "\(loc)error: \(message)"
    }

    /// The diagnostic form (file, line, caret), with the traceback as notes.
    public var diagnostic: Diagnostic? {
        guard let r = range else { return nil }
        var notes: [Diagnostic.Note] = []
        if frames.count > 1 {
            notes.append(Diagnostic.Note("traceback (most recent call last):"))
            for f in frames.reversed() {
                notes.append(Diagnostic.Note("  in \(f.function)", at: f.range))
            }
        }
        return Diagnostic(.error, message, at: r, notes: notes)
    }

    /// The text the CLI prints for an uncaught error.
    public var rendered: String {
        if let d = diagnostic {
            var out = d.description + "\n" + DiagnosticRenderer.excerpt(d.range)
            if frames.count > 1 {
                out += "traceback (most recent call last):\n"
                for f in frames.reversed() {
                    out += "  \(f.range?.description ?? "<unknown>") in \(f.function)\n"
                }
            }
            return out
        }
        return "error: \(message)\n"
    }
}

/// Error kinds the interpreter raises. Users may throw any kind they like.
public enum ErrorKind {
    public static let type = "type"
    public static let name = "name"
    public static let key = "key"
    public static let index = "index"
    public static let arithmetic = "arithmetic"
    public static let value = "value"
    public static let assertion = "assertion"
    public static let recursion = "recursion"
    public static let user = "error"
}
