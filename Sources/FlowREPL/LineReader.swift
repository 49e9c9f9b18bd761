@preconcurrency import CReadline
#if canImport(Glibc)
import Glibc
#endif

/// Where the REPL's lines come from: GNU readline on a terminal (history in a file, tab
/// completion), plain lines without prompts otherwise, so the REPL can be driven
/// through a pipe.
final class LineReader {
    let interactive: Bool
    let historyFile: String?

    /// What completion offers for a prefix (set by the REPL).
    nonisolated(unsafe) static var completer: ((String, String) -> [String])?
    nonisolated(unsafe) static var matches: [String] = []

    init(interactive: Bool, historyFile: String?) {
        self.interactive = interactive
        self.historyFile = historyFile
        guard interactive else { return }
        rl_readline_name = UnsafePointer(strdup("flow"))
        _ = rl_variable_bind("enable-bracketed-paste", "off")
        // Names may contain ':' (commands) but not '.', so `x.na<TAB>` completes members.
        rl_basic_word_break_characters = UnsafePointer(strdup(" \t\n\"\\'`@$><=;|&{([,.+-*/%"))
        rl_attempted_completion_function = { text, start, _ in
            let word = text.map { String(cString: $0) } ?? ""
            let line = rl_line_buffer.map { String(cString: $0) } ?? ""
            let before = String(line.utf8.prefix(Int(start))) ?? ""
            LineReader.matches = LineReader.completer?(word, before) ?? []
            rl_attempted_completion_over = 1
            // A member or a call is usually followed by '(' or '.', not a space.
            rl_completion_append_character = before.hasSuffix(".") ? 0 : 32
            guard !LineReader.matches.isEmpty else { return nil }
            return rl_completion_matches(text) { _, state in
                let i = Int(state)
                return i < LineReader.matches.count ? strdup(LineReader.matches[i]) : nil
            }
        }
        using_history()
        if let historyFile, read_history(historyFile) != 0 { _ = write_history(historyFile) }
    }

    /// The next line, or nil at end of input.
    func read(prompt: String) -> String? {
        guard interactive else { return readLine(strippingNewline: true) }
        guard let raw = readline(prompt) else { return nil }
        defer { free(raw) }
        let line = String(cString: raw)
        if !line.trimmingWhitespace.isEmpty {
            add_history(raw)
            if let historyFile { _ = append_history(1, historyFile); _ = history_truncate_file(historyFile, 1000) }
        }
        return line
    }
}

extension String {
    var trimmingWhitespace: String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
