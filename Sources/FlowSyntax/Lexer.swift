/// Turns a source file into tokens.
///
/// Takes the UTF-8 bytes of a `SourceFile`; gives out the tokens and the lexical errors
/// found on the way. Invariants: it never stops early (a bad character becomes an
/// `.invalid` token and lexing goes on), the last token is `.eof`, and newlines become
/// `.newline` tokens (consecutive ones collapsed) except before a line that starts with
/// `.name`, which continues the previous expression (method chains over several lines).
/// String literals are kept whole: the parser splits their `${…}` interpolations.
public struct Lexer {
    public let file: SourceFile
    private let b: [UInt8]
    private var i = 0
    /// One past the last byte to lex (the end of the file, or of an interpolation).
    private let limit: Int
    private var tokens: [Token] = []
    private var lineStart = true
    public private(set) var diagnostics = DiagnosticBag()

    public init(file: SourceFile, from start: Int = 0, to end: Int? = nil) {
        self.file = file
        self.b = file.bytes
        self.i = start
        self.limit = end ?? file.bytes.count
    }

    /// Lexes the whole file, or the byte range `start..<end` of it (an interpolation).
    public static func tokenize(_ file: SourceFile, from start: Int = 0, to end: Int? = nil) -> (tokens: [Token], diagnostics: [Diagnostic]) {
        var lexer = Lexer(file: file, from: start, to: end)
        lexer.run()
        return (lexer.tokens, lexer.diagnostics.items)
    }

    private func peek(_ k: Int = 0) -> UInt8 { i + k < limit ? b[i + k] : 0 }

    private mutating func emit(_ kind: TokenKind, _ start: Int) {
        tokens.append(Token(kind: kind, start: start, end: i, atLineStart: lineStart))
        lineStart = false
    }

    private mutating func error(_ message: String, _ start: Int, _ end: Int) {
        diagnostics.error(message, at: SourceRange(file: file, start: start, end: end))
    }

    private mutating func run() {
        while true {
            skipSpaceAndComments()
            guard i < limit else { break }
            let c = b[i]
            let start = i
            if c == UInt8(ascii: "\n") {
                i += 1
                if !lineStart && !tokens.isEmpty && !continuesOnNextLine() {
                    tokens.append(Token(kind: .newline, start: start, end: start + 1, atLineStart: false))
                }
                lineStart = true
                continue
            }
            if isIdentStart(c) { lexIdentifier(); continue }
            if isDigit(c) { lexNumber(); continue }
            if c == UInt8(ascii: "\"") { lexString(); continue }
            lexPunctuation(c, start)
        }
        if !tokens.isEmpty && tokens.last!.kind != .newline {
            tokens.append(Token(kind: .newline, start: limit, end: limit, atLineStart: false))
        }
        tokens.append(Token(kind: .eof, start: limit, end: limit, atLineStart: true))
    }

    /// True when the next non-blank line starts with `.name`: a continued method chain.
    private func continuesOnNextLine() -> Bool {
        var k = i
        while k < limit {
            let c = b[k]
            if c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == UInt8(ascii: "\r") || c == UInt8(ascii: "\n") { k += 1; continue }
            if c == UInt8(ascii: "#") {
                while k < limit && b[k] != UInt8(ascii: "\n") { k += 1 }
                continue
            }
            return c == UInt8(ascii: ".") && k + 1 < limit && isIdentStart(b[k + 1])
        }
        return false
    }

    private mutating func skipSpaceAndComments() {
        while i < limit {
            let c = b[i]
            if c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == UInt8(ascii: "\r") { i += 1; continue }
            if c == UInt8(ascii: "#") {
                if peek(1) == UInt8(ascii: "[") { skipBlockComment(); continue }
                while i < limit && b[i] != UInt8(ascii: "\n") { i += 1 }
                continue
            }
            return
        }
    }

    /// `#[ … ]#`, which nests, so a block of code with comments can be commented out.
    private mutating func skipBlockComment() {
        var openers = [i]
        i += 2
        while i < limit {
            if b[i] == UInt8(ascii: "#") && peek(1) == UInt8(ascii: "[") { openers.append(i); i += 2; continue }
            if b[i] == UInt8(ascii: "]") && peek(1) == UInt8(ascii: "#") {
                openers.removeLast(); i += 2
                if openers.isEmpty { return }
                continue
            }
            i += 1
        }
        let opener = openers.last!
        error("unterminated block comment: expected ']#' to close '#[', found end of file", opener, opener + 2)
    }

    private func isIdentStart(_ c: UInt8) -> Bool {
        (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c == 95
    }
    private func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }
    private func isIdentPart(_ c: UInt8) -> Bool { isIdentStart(c) || isDigit(c) }

    private mutating func lexIdentifier() {
        let start = i
        while i < limit && isIdentPart(b[i]) { i += 1 }
        let word = file.slice(start, i)
        emit(TokenKind.keywords[word] ?? .identifier, start)
    }

    private static let durationUnits: Set<String> = ["ns", "us", "ms", "s", "m", "h", "d"]

    private mutating func lexNumber() {
        let start = i
        var isFloat = false
        if b[i] == UInt8(ascii: "0") && (peek(1) == UInt8(ascii: "x") || peek(1) == UInt8(ascii: "b")) {
            let hex = peek(1) == UInt8(ascii: "x")
            i += 2
            let digitsStart = i
            while i < limit, hex ? isHexDigit(b[i]) || b[i] == 95 : (b[i] == 48 || b[i] == 49 || b[i] == 95) { i += 1 }
            if i == digitsStart {
                error("expected \(hex ? "hexadecimal" : "binary") digits after '0\(hex ? "x" : "b")'", start, i)
                emit(.invalid, start); return
            }
        } else {
            while i < limit && (isDigit(b[i]) || b[i] == 95) { i += 1 }
            if peek() == UInt8(ascii: ".") && isDigit(peek(1)) {
                isFloat = true
                i += 1
                while i < limit && (isDigit(b[i]) || b[i] == 95) { i += 1 }
            }
            if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
                let save = i
                i += 1
                if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { i += 1 }
                if isDigit(peek()) {
                    isFloat = true
                    while i < limit && isDigit(b[i]) { i += 1 }
                } else { i = save }
            }
        }
        if i < limit && isIdentStart(b[i]) {
            let unitStart = i
            while i < limit && isIdentPart(b[i]) { i += 1 }
            let unit = file.slice(unitStart, i)
            if Lexer.durationUnits.contains(unit) { emit(.duration, start); return }
            error("invalid number literal '\(file.slice(start, i))': a number cannot be followed by '\(unit)' (duration units are ns, us, ms, s, m, h, d)", start, i)
            emit(.invalid, start)
            return
        }
        emit(isFloat ? .float : .int, start)
    }

    private func isHexDigit(_ c: UInt8) -> Bool {
        isDigit(c) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70)
    }

    private mutating func lexString() {
        let start = i
        let triple = peek(1) == UInt8(ascii: "\"") && peek(2) == UInt8(ascii: "\"")
        i += triple ? 3 : 1
        if scanStringBody(triple: triple, opener: start) {
            emit(.string, start)
        } else {
            emit(.invalid, start)
        }
    }

    /// Scans to just past the closing quote. Returns false (after reporting) when the
    /// string or one of its interpolations is not closed.
    private mutating func scanStringBody(triple: Bool, opener: Int) -> Bool {
        while i < limit {
            let c = b[i]
            if c == UInt8(ascii: "\\") { i += 2; continue }
            if c == UInt8(ascii: "\"") {
                if !triple { i += 1; return true }
                if peek(1) == UInt8(ascii: "\"") && peek(2) == UInt8(ascii: "\"") { i += 3; return true }
                i += 1; continue
            }
            if c == UInt8(ascii: "\n") && !triple { break }
            if c == UInt8(ascii: "$") && peek(1) == UInt8(ascii: "{") {
                let interpStart = i
                i += 2
                var depth = 1
                while i < limit && depth > 0 {
                    let d = b[i]
                    if d == UInt8(ascii: "\n") && !triple { break }
                    if d == UInt8(ascii: "{") { depth += 1 }
                    else if d == UInt8(ascii: "}") { depth -= 1; if depth == 0 { break } }
                    else if d == UInt8(ascii: "\"") {
                        let nestedTriple = peek(1) == UInt8(ascii: "\"") && peek(2) == UInt8(ascii: "\"")
                        let nestedStart = i
                        i += nestedTriple ? 3 : 1
                        if !scanStringBody(triple: nestedTriple, opener: nestedStart) { return false }
                        continue
                    }
                    i += 1
                }
                if depth > 0 {
                    error("unterminated interpolation: expected '}' to close '${', found \(i < limit ? "end of line" : "end of file")", interpStart, interpStart + 2)
                    skipToLineEnd()
                    return false
                }
                i += 1
                continue
            }
            i += 1
        }
        let lineEnd = file.lineStarts.first(where: { $0 > opener }).map { $0 - 1 } ?? limit
        error("unterminated string: expected a closing \(triple ? "triple quote" : "quote"), found \(i < limit ? "end of line" : "end of file")", opener, triple ? opener + 3 : max(opener + 1, lineEnd))
        if !triple { i = min(i, limit) } else { i = limit }
        return false
    }

    private mutating func skipToLineEnd() {
        while i < limit && b[i] != UInt8(ascii: "\n") { i += 1 }
    }

    private mutating func lexPunctuation(_ c: UInt8, _ start: Int) {
        func two(_ next: Character, _ yes: TokenKind, _ no: TokenKind) -> TokenKind {
            if peek(1) == UInt8(ascii: next.unicodeScalars.first!) { i += 2; return yes }
            i += 1; return no
        }
        let kind: TokenKind
        switch c {
        case UInt8(ascii: "("): i += 1; kind = .lParen
        case UInt8(ascii: ")"): i += 1; kind = .rParen
        case UInt8(ascii: "["): i += 1; kind = .lBracket
        case UInt8(ascii: "]"): i += 1; kind = .rBracket
        case UInt8(ascii: "{"): i += 1; kind = .lBrace
        case UInt8(ascii: "}"): i += 1; kind = .rBrace
        case UInt8(ascii: ","): i += 1; kind = .comma
        case UInt8(ascii: ":"): i += 1; kind = .colon
        case UInt8(ascii: ";"): i += 1; kind = .semicolon
        case UInt8(ascii: "?"): i += 1; kind = .question
        case UInt8(ascii: "$"): i += 1; kind = .dollar
        case UInt8(ascii: "|"): i += 1; kind = .pipe
        case UInt8(ascii: "%"): i += 1; kind = .percent
        case UInt8(ascii: "."): kind = two(".", .dotDot, .dot)
        case UInt8(ascii: "+"): kind = two("=", .plusAssign, .plus)
        case UInt8(ascii: "-"): kind = two("=", .minusAssign, .minus)
        case UInt8(ascii: "*"): kind = two("=", .starAssign, .star)
        case UInt8(ascii: "!"): kind = two("=", .notEq, .bang)
        case UInt8(ascii: "<"): kind = two("=", .lessEq, .less)
        case UInt8(ascii: ">"): kind = two("=", .greaterEq, .greater)
        case UInt8(ascii: "/"):
            if peek(1) == UInt8(ascii: "/") { i += 2; kind = .slashSlash } else { kind = two("=", .slashAssign, .slash) }
        case UInt8(ascii: "="):
            if peek(1) == UInt8(ascii: ">") { i += 2; kind = .arrow } else { kind = two("=", .eq, .assign) }
        default:
            // One whole character, which may be several bytes.
            var end = i + 1
            while end < limit && b[end] & 0xC0 == 0x80 { end += 1 }
            let text = file.slice(i, end)
            let shown: String
            if let scalar = text.unicodeScalars.first, scalar.value < 32 || scalar.value == 127 {
                shown = "U+" + String(scalar.value, radix: 16, uppercase: true).leftPadded(to: 4)
            } else { shown = "'\(text)'" }
            error("unexpected character \(shown)", i, end)
            i = end
            kind = .invalid
        }
        emit(kind, start)
    }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
