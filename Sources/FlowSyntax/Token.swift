/// The kinds of token the lexer produces. Keywords are reserved words; `every`, `on` and
/// `limit` are contextual and lex as identifiers.
public enum TokenKind: Equatable, Sendable {
    case identifier
    case int, float, duration, string
    // keywords
    case kwLet, kwFn, kwFlow, kwNode, kwType, kwImport, kwAs
    case kwReturn, kwBreak, kwContinue, kwThrow
    case kwIf, kwElse, kwWhile, kwFor, kwIn, kwMatch, kwTry, kwCatch, kwFinally
    case kwTrue, kwFalse, kwNil, kwAnd, kwOr, kwNot
    case kwParallel, kwRace, kwSpawn, kwAwait, kwQuote
    // punctuation
    case lParen, rParen, lBracket, rBracket, lBrace, rBrace
    case comma, dot, dotDot, colon, semicolon, arrow, question, dollar, pipe
    case assign, plusAssign, minusAssign, starAssign, slashAssign
    case eq, notEq, less, lessEq, greater, greaterEq
    case plus, minus, star, slash, slashSlash, percent, bang
    case newline, eof
    /// A lexical error; the lexer has already reported it.
    case invalid

    static let keywords: [String: TokenKind] = [
        "let": .kwLet, "fn": .kwFn, "flow": .kwFlow, "node": .kwNode, "type": .kwType,
        "import": .kwImport, "as": .kwAs, "return": .kwReturn, "break": .kwBreak,
        "continue": .kwContinue, "throw": .kwThrow, "if": .kwIf, "else": .kwElse,
        "while": .kwWhile, "for": .kwFor, "in": .kwIn, "match": .kwMatch, "try": .kwTry,
        "catch": .kwCatch, "finally": .kwFinally, "true": .kwTrue, "false": .kwFalse,
        "nil": .kwNil, "and": .kwAnd, "or": .kwOr, "not": .kwNot, "parallel": .kwParallel,
        "race": .kwRace, "spawn": .kwSpawn, "await": .kwAwait, "quote": .kwQuote,
    ]

    /// Every reserved word, for completion and for the grammar test.
    public static var reservedWords: [String] { keywords.keys.sorted() }

    /// How the kind reads in "expected X" messages.
    public var spelling: String {
        switch self {
        case .identifier: return "a name"
        case .int, .float: return "a number"
        case .duration: return "a duration"
        case .string: return "a string"
        case .newline: return "end of line"
        case .eof: return "end of file"
        case .invalid: return "an invalid token"
        default:
            if let word = TokenKind.keywords.first(where: { $0.value == self })?.key { return "'\(word)'" }
            return "'\(punctuation)'"
        }
    }

    var punctuation: String {
        switch self {
        case .lParen: return "("
        case .rParen: return ")"
        case .lBracket: return "["
        case .rBracket: return "]"
        case .lBrace: return "{"
        case .rBrace: return "}"
        case .comma: return ","
        case .dot: return "."
        case .dotDot: return ".."
        case .colon: return ":"
        case .semicolon: return ";"
        case .arrow: return "=>"
        case .question: return "?"
        case .dollar: return "$"
        case .pipe: return "|"
        case .assign: return "="
        case .plusAssign: return "+="
        case .minusAssign: return "-="
        case .starAssign: return "*="
        case .slashAssign: return "/="
        case .eq: return "=="
        case .notEq: return "!="
        case .less: return "<"
        case .lessEq: return "<="
        case .greater: return ">"
        case .greaterEq: return ">="
        case .plus: return "+"
        case .minus: return "-"
        case .star: return "*"
        case .slash: return "/"
        case .slashSlash: return "//"
        case .percent: return "%"
        case .bang: return "!"
        default: return "?"
        }
    }
}

/// A token: its kind and its byte range in the source.
public struct Token: Sendable {
    public let kind: TokenKind
    public let start: Int
    public let end: Int
    /// True when a newline (or the start of the file) comes right before this token.
    public let atLineStart: Bool

    public init(kind: TokenKind, start: Int, end: Int, atLineStart: Bool) {
        self.kind = kind
        self.start = start
        self.end = end
        self.atLineStart = atLineStart
    }
}
