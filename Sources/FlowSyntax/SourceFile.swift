/// A Flow source text and the table that maps byte offsets to lines and columns.
///
/// The lexer works on UTF-8 bytes; everything a user sees (line, column) is computed here,
/// with 1-based lines and columns counted in characters, as STYLE.md asks.
public final class SourceFile: Sendable {
    /// The path shown in diagnostics (`<repl>` or `<string>` for sources without a file).
    public let path: String
    /// The text, always valid UTF-8 (invalid input is rejected by `init(path:bytes:)`).
    public let text: String
    /// The text's UTF-8 bytes, which the lexer scans.
    public let bytes: [UInt8]
    /// Byte offset of the first byte of each line.
    public let lineStarts: [Int]

    /// Creates a source file from text that is already a Swift string.
    public init(path: String, text: String) {
        self.path = path
        self.text = text
        self.bytes = Array(text.utf8)
        var starts = [0]
        for (i, b) in bytes.enumerated() where b == UInt8(ascii: "\n") { starts.append(i + 1) }
        self.lineStarts = starts
    }

    /// Creates a source file from raw bytes, or returns a diagnostic pointing at the first
    /// byte that is not valid UTF-8.
    public static func decode(path: String, bytes: [UInt8]) -> Result<SourceFile, Diagnostic> {
        if let bad = firstInvalidUTF8(bytes) {
            // Show the lines before the bad byte, which are valid, so the caret lands right.
            let prefix = String(decoding: bytes[..<bad], as: UTF8.self)
            let lineEnd = bytes[bad...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
            let shown = SourceFile(path: path, text: prefix + String(decoding: bytes[bad..<lineEnd], as: UTF8.self))
            let location = shown.location(ofByte: prefix.utf8.count)
            return .failure(Diagnostic(
                .error, "invalid UTF-8: byte 0x\(String(bytes[bad], radix: 16, uppercase: true)) at offset \(bad) does not start or continue a character",
                at: SourceRange(file: shown, start: location.offset, end: location.offset + 1)))
        }
        return .success(SourceFile(path: path, text: String(decoding: bytes, as: UTF8.self)))
    }

    /// The offset of the first byte of an invalid UTF-8 sequence, or nil when all is valid.
    static func firstInvalidUTF8(_ bytes: [UInt8]) -> Int? {
        var i = 0
        let n = bytes.count
        while i < n {
            let b = bytes[i]
            if b < 0x80 { i += 1; continue }
            let need: Int
            let minimum: UInt32
            var code: UInt32
            switch b {
            case 0xC2...0xDF: need = 1; code = UInt32(b & 0x1F); minimum = 0x80
            case 0xE0...0xEF: need = 2; code = UInt32(b & 0x0F); minimum = 0x800
            case 0xF0...0xF4: need = 3; code = UInt32(b & 0x07); minimum = 0x10000
            default: return i
            }
            for k in 1...need {
                if i + k >= n { return i }
                let c = bytes[i + k]
                if c & 0xC0 != 0x80 { return i }
                code = code << 6 | UInt32(c & 0x3F)
            }
            if code < minimum || code > 0x10FFFF || (0xD800...0xDFFF).contains(code) { return i }
            i += need + 1
        }
        return nil
    }

    /// The 0-based line index that contains a byte offset.
    public func lineIndex(ofByte offset: Int) -> Int {
        var lo = 0, hi = lineStarts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if lineStarts[mid] <= offset { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    /// The 1-based line and character column of a byte offset.
    public func location(ofByte offset: Int) -> SourceLocation {
        let clamped = max(0, min(offset, bytes.count))
        let line = lineIndex(ofByte: clamped)
        let start = lineStarts[line]
        let column = String(decoding: bytes[start..<clamped], as: UTF8.self).count + 1
        return SourceLocation(offset: clamped, line: line + 1, column: column)
    }

    /// The text of a 1-based line, without its newline.
    public func lineText(_ line: Int) -> String {
        guard line >= 1 && line <= lineStarts.count else { return "" }
        let start = lineStarts[line - 1]
        var end = line < lineStarts.count ? lineStarts[line] - 1 : bytes.count
        if end > start && bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        return String(decoding: bytes[start..<max(start, end)], as: UTF8.self)
    }

    /// The source text between two byte offsets.
    public func slice(_ start: Int, _ end: Int) -> String {
        String(decoding: bytes[max(0, start)..<min(end, bytes.count)], as: UTF8.self)
    }
}

/// A point in a source file: byte offset plus the 1-based line and character column.
public struct SourceLocation: Sendable, Equatable, CustomStringConvertible {
    public let offset: Int
    public let line: Int
    public let column: Int
    public var description: String { "\(line):\(column)" }
}

/// A span of a source file, in bytes; the unit every AST node and diagnostic carries.
public struct SourceRange: Sendable {
    public let file: SourceFile
    public let start: Int
    public let end: Int

    public init(file: SourceFile, start: Int, end: Int) {
        self.file = file
        self.start = start
        self.end = max(start, end)
    }

    public var startLocation: SourceLocation { file.location(ofByte: start) }
    public var endLocation: SourceLocation { file.location(ofByte: end) }

    /// The smallest range covering both.
    public func to(_ other: SourceRange) -> SourceRange {
        SourceRange(file: file, start: min(start, other.start), end: max(end, other.end))
    }

    /// `path:line:col`, the prefix of every diagnostic.
    public var description: String { "\(file.path):\(startLocation)" }
    public var text: String { file.slice(start, end) }
}
