/// Expression productions of Grammar/flow.ebnf.
extension Parser {
    /// expression = binaryExpression ;
    mutating func parseExpression() throws(Failure) -> Expr {
        note("expression")
        return try nested { (p) throws(Failure) in try p.parseBinaryExpression(minPrecedence: 1) }
    }

    static func precedence(_ kind: TokenKind) -> (Int, BinaryOp)? {
        switch kind {
        case .kwOr: return (1, .or)
        case .kwAnd: return (2, .and)
        case .eq: return (3, .equal)
        case .notEq: return (3, .notEqual)
        case .less: return (3, .less)
        case .lessEq: return (3, .lessEqual)
        case .greater: return (3, .greater)
        case .greaterEq: return (3, .greaterEqual)
        case .kwIn: return (3, .contains)
        case .plus: return (4, .add)
        case .minus: return (4, .subtract)
        case .star: return (5, .multiply)
        case .slash: return (5, .divide)
        case .slashSlash: return (5, .floorDivide)
        case .percent: return (5, .remainder)
        default: return nil
        }
    }

    /// binaryExpression = prefixExpression , { binaryOperator , prefixExpression } ;
    /// Precedence climbing over the table in the grammar's header.
    mutating func parseBinaryExpression(minPrecedence: Int) throws(Failure) -> Expr {
        note("binaryExpression")
        var left = try parsePrefixExpression()
        var chain = 0
        while true {
            guard let (prec, op) = Parser.precedence(peekKind()), prec >= minPrecedence else { return left }
            chain += 1
            if chain > Parser.maxChain { throw tooLong() }
            parseBinaryOperator()
            skipNewlines()
            let right = try parseBinaryExpression(minPrecedence: prec + 1)
            left = Expr(.binary(op, left, right), left.range.to(right.range))
        }
    }

    mutating func tooLong() -> Failure {
        error("expression too long: more than \(Parser.maxChain) operators, calls or members in one chain; split it into several statements", at: range(peek()))
        return Failure()
    }

    /// binaryOperator = "or" | "and" | "==" | … | "%" ;
    mutating func parseBinaryOperator() {
        note("binaryOperator")
        advance()
    }

    /// prefixExpression = ( "-" | "not" ) , prefixExpression | postfixExpression ;
    mutating func parsePrefixExpression() throws(Failure) -> Expr {
        note("prefixExpression")
        let t = peek()
        let op: UnaryOp
        switch t.kind {
        case .minus: op = .negate
        case .kwNot: op = .not
        case .bang:
            error("'!' is not an operator in Flow; use 'not'", at: range(t))
            throw Failure()
        default: return try parsePostfixExpression()
        }
        advance()
        // `-9223372036854775808` is a literal: its digits alone do not fit in an int.
        if op == .negate, peekKind() == .int, ![.dot, .lParen, .lBracket].contains(tokens[pos + 1].kind),
           let v = Int("-" + text(peek()).replacingUnderscores()) {
            let lit = advance()
            let e = Expr(.intLiteral(v), range(t).to(range(lit)))
            return e
        }
        let operand = try nested { (p) throws(Failure) in try p.parsePrefixExpression() }
        // Fold negative literals so `-5` is a constant (and `-9223372036854775808` fits).
        if op == .negate {
            switch operand.kind {
            case .intLiteral(let v): return Expr(.intLiteral(-v), range(t).to(operand.range))
            case .floatLiteral(let v): return Expr(.floatLiteral(-v), range(t).to(operand.range))
            default: break
            }
        }
        return Expr(.unary(op, operand), range(t).to(operand.range))
    }

    /// postfixExpression = primary , { call | member | index } ;
    mutating func parsePostfixExpression() throws(Failure) -> Expr {
        note("postfixExpression")
        var e = try parsePrimary()
        var chain = 0
        while true {
            let t = peek()
            if [.lParen, .dot, .lBracket].contains(t.kind) {
                chain += 1
                if chain > Parser.maxChain { throw tooLong() }
            }
            switch t.kind {
            case .lParen:
                let args = try withNewlines(false) { (p) throws(Failure) in
                    p.advance()
                    let args = try p.parseArguments()
                    try p.expectClosing(.rParen, opener: t)
                    return args
                }
                var all = args
                if noTrailingBlock == 0 && at(.lBrace) {
                    all.append(try parseTrailingBlock())
                }
                e = Expr(.call(e, all), range(from: e.range.start))
            case .dot:
                advance()
                let n = peek()
                guard n.kind == .identifier || TokenKind.keywords.values.contains(n.kind) else {
                    throw fail(expected: "a member name after '.'")
                }
                advance()
                e = Expr(.member(e, text(n), range(n)), range(from: e.range.start))
            case .lBracket:
                let index = try withNewlines(false) { (p) throws(Failure) in
                    p.advance()
                    let index = try p.parseExpression()
                    try p.expectClosing(.rBracket, opener: t)
                    return index
                }
                e = Expr(.index(e, index), range(from: e.range.start))
            default:
                return e
            }
        }
    }

    /// arguments = [ argument , { "," , argument } , [ "," ] ] ;
    mutating func parseArguments() throws(Failure) -> [Argument] {
        note("arguments")
        var args: [Argument] = []
        var sawLabel = false
        while !at(.rParen) && !at(.eof) {
            let a = try parseArgument()
            if a.label != nil { sawLabel = true } else if sawLabel {
                error("positional argument after a named one: put positional arguments first", at: a.value.range)
            }
            if let label = a.label, args.contains(where: { $0.label == label }) {
                error("argument '\(label)' is given twice", at: a.labelRange ?? a.value.range)
            }
            args.append(a)
            if !accept(.comma) { break }
        }
        return args
    }

    /// argument = [ IDENT , ":" ] , expression ;
    mutating func parseArgument() throws(Failure) -> Argument {
        note("argument")
        let t = peek()
        if t.kind == .identifier && peekNext().kind == .colon {
            advance(); advance()
            return Argument(label: text(t), labelRange: range(t), value: try parseExpression())
        }
        return Argument(label: nil, labelRange: nil, value: try parseExpression())
    }

    /// trailingBlock = block ;  — `f(x) { … }` passes `fn() { … }` as the last argument.
    mutating func parseTrailingBlock() throws(Failure) -> Argument {
        note("trailingBlock")
        let body = try parseBlock()
        let decl = FunctionDecl(kind: .lambda, name: nil, nameRange: nil, parameters: [], body: body, isArrow: false, range: body.range)
        return Argument(label: nil, labelRange: nil, value: Expr(.lambda(decl), body.range))
    }

    /// primary = literal | stringLiteral | IDENT | stateExpression | "(" expression ")" | … ;
    mutating func parsePrimary() throws(Failure) -> Expr {
        note("primary")
        let t = peek()
        switch t.kind {
        case .int, .float, .duration, .kwTrue, .kwFalse, .kwNil: return try parseLiteral()
        case .string: return try parseStringLiteral()
        case .identifier:
            advance()
            return Expr(.name(text(t)), range(t))
        case .kwType where peekNext().kind == .lParen:
            // `type(x)` is the builtin; `type Name {` declares a type.
            advance()
            return Expr(.name("type"), range(t))
        case .dollar: return parseStateExpression()
        case .lParen:
            return try nested { (p) throws(Failure) in
                try p.withNewlines(false) { (p) throws(Failure) in
                    p.advance()
                    let e = try p.parseExpression()
                    try p.expectClosing(.rParen, opener: t)
                    return e
                }
            }
        case .lBracket: return try parseListLiteral()
        case .lBrace: return try parseMapLiteral()
        case .kwFn: return try parseLambda()
        case .kwIf: return try parseIfExpression()
        case .kwMatch: return try parseMatchExpression()
        case .kwTry: return try parseTryExpression()
        case .kwNode: return try parseNodeExpression()
        case .kwParallel: return try parseParallelExpression()
        case .kwRace: return try parseRaceExpression()
        case .kwSpawn: return try parseSpawnExpression()
        case .kwAwait: return try parseAwaitExpression()
        case .kwQuote: return try parseQuoteExpression()
        default:
            throw fail(expected: "an expression")
        }
    }

    /// literal = INT | FLOAT | DURATION | "true" | "false" | "nil" ;
    mutating func parseLiteral() throws(Failure) -> Expr {
        note("literal")
        let t = advance()
        let r = range(t)
        switch t.kind {
        case .kwTrue: return Expr(.boolLiteral(true), r)
        case .kwFalse: return Expr(.boolLiteral(false), r)
        case .kwNil: return Expr(.nilLiteral, r)
        case .int:
            let raw = text(t).replacingUnderscores()
            let value: Int?
            if raw.hasPrefix("0x") { value = Int(raw.dropFirst(2), radix: 16) }
            else if raw.hasPrefix("0b") { value = Int(raw.dropFirst(2), radix: 2) }
            else { value = Int(raw) }
            guard let v = value else {
                error("integer literal '\(text(t))' does not fit in 64 bits (the largest int is 9223372036854775807)", at: r)
                throw Failure()
            }
            return Expr(.intLiteral(v), r)
        case .float:
            guard let v = Double(text(t).replacingUnderscores()), v.isFinite else {
                error("float literal '\(text(t))' is out of range", at: r)
                throw Failure()
            }
            return Expr(.floatLiteral(v), r)
        default: // duration
            let s = text(t)
            var unitStart = s.endIndex
            while unitStart > s.startIndex, s[s.index(before: unitStart)].isLetter { unitStart = s.index(before: unitStart) }
            let number = Double(String(s[..<unitStart]).replacingUnderscores()) ?? 0
            let scale: Double
            switch s[unitStart...] {
            case "ns": scale = 1
            case "us": scale = 1e3
            case "ms": scale = 1e6
            case "s": scale = 1e9
            case "m": scale = 60e9
            case "h": scale = 3600e9
            default: scale = 86400e9
            }
            let nanos = number * scale
            guard nanos < 9.2e18 else {
                error("duration '\(s)' is too long (the longest is about 292 years)", at: r)
                throw Failure()
            }
            return Expr(.durationLiteral(Int(nanos.rounded())), r)
        }
    }

    /// stringLiteral = STRING ;  — splits `${…}` interpolations and parses each.
    mutating func parseStringLiteral() throws(Failure) -> Expr {
        note("stringLiteral")
        let t = advance()
        let parts = try templateParts(t)
        if parts.allSatisfy({ if case .text = $0 { return true }; return false }) {
            let s = parts.map { if case .text(let x) = $0 { return x }; return "" }.joined()
            return Expr(.stringLiteral(s), range(t))
        }
        return Expr(.template(parts), range(t))
    }

    /// The value of a string token that may not interpolate (import paths, type literals).
    mutating func stringValue(_ t: Token) throws(Failure) -> String {
        guard t.kind == .string else { throw fail(expected: "a string") }
        var out = ""
        for part in try templateParts(t) {
            switch part {
            case .text(let s): out += s
            case .expr(let e):
                error("interpolation is not allowed here: this string must be a constant", at: e.range)
                throw Failure()
            }
        }
        return out
    }

    /// Decodes escapes and parses each `${…}` with a sub-parser over the same file, so
    /// errors inside interpolations point at the right column.
    mutating func templateParts(_ t: Token) throws(Failure) -> [TemplatePart] {
        let b = file.bytes
        let triple = t.end - t.start >= 6 && b[t.start + 1] == UInt8(ascii: "\"") && b[t.start + 2] == UInt8(ascii: "\"")
        var i = t.start + (triple ? 3 : 1)
        let end = t.end - (triple ? 3 : 1)
        var parts: [TemplatePart] = []
        var buffer: [UInt8] = []
        func flush() {
            if !buffer.isEmpty { parts.append(.text(String(decoding: buffer, as: UTF8.self))); buffer = [] }
        }
        var failed = false
        while i < end {
            let c = b[i]
            if c == UInt8(ascii: "\\") {
                let e = i + 1 < end ? b[i + 1] : 0
                switch e {
                case UInt8(ascii: "n"): buffer.append(10)
                case UInt8(ascii: "t"): buffer.append(9)
                case UInt8(ascii: "r"): buffer.append(13)
                case UInt8(ascii: "0"): buffer.append(0)
                case UInt8(ascii: "\\"), UInt8(ascii: "\""), UInt8(ascii: "$"): buffer.append(e)
                case UInt8(ascii: "u"):
                    var k = i + 2
                    var ok = false
                    if k < end && b[k] == UInt8(ascii: "{") {
                        k += 1
                        let hexStart = k
                        while k < end && b[k] != UInt8(ascii: "}") { k += 1 }
                        if k < end, let v = UInt32(file.slice(hexStart, k), radix: 16), let scalar = Unicode.Scalar(v) {
                            buffer.append(contentsOf: Array(String(Character(scalar)).utf8))
                            ok = true
                        }
                    }
                    if !ok {
                        error("invalid unicode escape: expected '\\u{' hex digits '}' naming a character", at: SourceRange(file: file, start: i, end: min(k + 1, end)))
                        failed = true
                    }
                    i = min(k + 1, end)
                    continue
                default:
                    let shown = i + 1 < end ? file.slice(i, min(end, i + 2)) : "\\"
                    error("unknown escape sequence '\(shown)' (valid: \\n \\t \\r \\0 \\\\ \\\" \\$ \\u{…})", at: SourceRange(file: file, start: i, end: min(end, i + 2)))
                    failed = true
                }
                i += 2
                continue
            }
            if c == UInt8(ascii: "$") && i + 1 < end && b[i + 1] == UInt8(ascii: "{") {
                flush()
                // Find the matching '}', skipping nested strings (the lexer checked balance).
                var k = i + 2
                var depth = 1
                while k < end {
                    let d = b[k]
                    if d == UInt8(ascii: "{") { depth += 1 }
                    else if d == UInt8(ascii: "}") { depth -= 1; if depth == 0 { break } }
                    else if d == UInt8(ascii: "\"") { k = skipNestedString(from: k, end: end); continue }
                    k += 1
                }
                let inner = SourceRange(file: file, start: i + 2, end: k)
                if inner.text.allSatisfy({ $0 == " " }) {
                    error("empty interpolation '${}': put an expression between the braces", at: SourceRange(file: file, start: i, end: k + 1))
                    failed = true
                } else {
                    var (innerTokens, lexErrors) = Lexer.tokenize(file, from: i + 2, to: k)
                    innerTokens.removeAll { $0.kind == .newline }
                    innerTokens.append(Token(kind: .eof, start: k, end: k, atLineStart: false))
                    var sub = Parser(file: file, tokens: innerTokens)
                    sub.recordProductions = recordProductions
                    sub.depth = depth
                    sub.newlineStack = [false]
                    sub.diagnostics.append(contentsOf: lexErrors)
                    do {
                        let e = try sub.parseExpression()
                        if !sub.at(.eof) {
                            let extra = sub.peek()
                            sub.error("expected '}' to end the interpolation, found \(sub.describe(extra))", at: sub.range(extra))
                            throw Failure()
                        }
                        parts.append(.expr(e))
                    } catch { failed = true }
                    diagnostics.append(contentsOf: sub.diagnostics.items)
                    productionsSeen.formUnion(sub.productionsSeen)
                }
                i = k + 1
                continue
            }
            buffer.append(c)
            i += 1
        }
        flush()
        if failed { throw Failure() }
        return parts
    }

    private func skipNestedString(from start: Int, end: Int) -> Int {
        let b = file.bytes
        var k = start + 1
        while k < end {
            if b[k] == UInt8(ascii: "\\") { k += 2; continue }
            if b[k] == UInt8(ascii: "\"") { return k + 1 }
            if b[k] == UInt8(ascii: "$") && k + 1 < end && b[k + 1] == UInt8(ascii: "{") {
                var depth = 1
                k += 2
                while k < end && depth > 0 {
                    if b[k] == UInt8(ascii: "{") { depth += 1 }
                    else if b[k] == UInt8(ascii: "}") { depth -= 1 }
                    else if b[k] == UInt8(ascii: "\"") { k = skipNestedString(from: k, end: end); continue }
                    k += 1
                }
                continue
            }
            k += 1
        }
        return k
    }

    /// stateExpression = "$" ;
    mutating func parseStateExpression() -> Expr {
        note("stateExpression")
        let t = advance()
        return Expr(.state, range(t))
    }

    /// listLiteral = "[" , [ expression , { "," , expression } , [ "," ] ] , "]" ;
    mutating func parseListLiteral() throws(Failure) -> Expr {
        note("listLiteral")
        let open = peek()
        return try nested { (p) throws(Failure) in
            try p.withNewlines(false) { (p) throws(Failure) in
                p.advance()
                var items: [Expr] = []
                while !p.at(.rBracket) && !p.at(.eof) {
                    items.append(try p.parseExpression())
                    if !p.accept(.comma) { break }
                }
                try p.expectClosing(.rBracket, opener: open)
                return Expr(.list(items), p.range(from: open.start))
            }
        }
    }

    /// mapLiteral = "{" , separators , [ mapEntry , { ( "," | separators ) , mapEntry } ] , "}" ;
    mutating func parseMapLiteral() throws(Failure) -> Expr {
        note("mapLiteral")
        let open = peek()
        return try nested { (p) throws(Failure) in
            try p.withNewlines(false) { (p) throws(Failure) in
                p.advance()
                var entries: [MapEntry] = []
                var seen: [String: SourceRange] = [:]
                while !p.at(.rBrace) && !p.at(.eof) {
                    let entry = try p.parseMapEntry()
                    if case .name(let key) = entry.key {
                        if let first = seen[key] {
                            p.error("duplicate key '\(key)' in map literal", at: entry.keyRange,
                                    notes: [Diagnostic.Note("first given", at: first)])
                        }
                        seen[key] = entry.keyRange
                    }
                    entries.append(entry)
                    if !p.accept(.comma) { break }
                }
                try p.expectClosing(.rBrace, opener: open)
                return Expr(.map(entries), p.range(from: open.start))
            }
        }
    }

    /// mapEntry = ( IDENT | STRING | "[" , expression , "]" ) , ":" , expression ;
    mutating func parseMapEntry() throws(Failure) -> MapEntry {
        note("mapEntry")
        let t = peek()
        let key: MapEntry.Key
        switch t.kind {
        case .identifier:
            advance()
            key = .name(text(t))
        case .string:
            advance()
            let parts = try templateParts(t)
            if parts.count <= 1, case .text(let s) = parts.first ?? .text("") { key = .name(s) }
            else { key = .computed(Expr(.template(parts), range(t))) }
        case .lBracket:
            advance()
            let e = try parseExpression()
            try expectClosing(.rBracket, opener: t)
            key = .computed(e)
        default:
            if TokenKind.keywords.values.contains(t.kind) {
                advance()
                key = .name(text(t))
            } else {
                throw fail(expected: "a key (a name, a string or [expression]) in the map")
            }
        }
        let keyRange = range(from: t.start)
        try expect(.colon, "':' after the key")
        return MapEntry(key: key, keyRange: keyRange, value: try parseExpression())
    }

    /// lambda = "fn" , parameterList , ( "=>" , expression | block ) ;
    mutating func parseLambda() throws(Failure) -> Expr {
        note("lambda")
        let start = advance().start
        let params = try parseParameterList()
        if accept(.arrow) {
            let e = try parseExpression()
            let body = Block([Stmt(.expr(e), e.range)], e.range)
            let decl = FunctionDecl(kind: .lambda, name: nil, nameRange: nil, parameters: params, body: body, isArrow: true, range: range(from: start))
            return Expr(.lambda(decl), decl.range)
        }
        guard at(.lBrace) else { throw fail(expected: "'=>' or '{' after the parameters of 'fn'") }
        let body = try parseBlock()
        let decl = FunctionDecl(kind: .lambda, name: nil, nameRange: nil, parameters: params, body: body, isArrow: false, range: range(from: start))
        return Expr(.lambda(decl), decl.range)
    }

    /// ifExpression = "if" , expression , block , [ "else" , ( ifExpression | block ) ] ;
    mutating func parseIfExpression() throws(Failure) -> Expr {
        note("ifExpression")
        let start = advance().start
        let cond = try parseCondition()
        let then = try parseBlock()
        var elseBranch: ElseBranch? = nil
        // `else` may start the next line after the closing brace.
        var look = pos
        while tokens[look].kind == .newline { look += 1 }
        if tokens[look].kind == .kwElse {
            pos = look + 1
            if at(.kwIf) { elseBranch = .elseIf(try parseIfExpression()) }
            else { elseBranch = .block(try parseBlock()) }
        }
        return Expr(.ifExpr(cond, then, elseBranch), range(from: start))
    }

    /// matchExpression = "match" , expression , "{" , separators , { matchArm , separators } , "}" ;
    mutating func parseMatchExpression() throws(Failure) -> Expr {
        note("matchExpression")
        let start = advance().start
        let subject = try parseCondition()
        let open = peek()
        guard open.kind == .lBrace else { throw fail(expected: "'{' to start the match arms") }
        let arms = try nested { (p) throws(Failure) in
            try p.withNewlines(true) { (p) throws(Failure) in
                p.advance()
                var arms: [MatchArm] = []
                p.parseSeparators()
                while !p.at(.rBrace) && !p.at(.eof) {
                    arms.append(try p.parseMatchArm())
                    _ = p.accept(.comma)
                    p.parseSeparators()
                }
                try p.expectClosing(.rBrace, opener: open)
                return arms
            }
        }
        return Expr(.match(subject, arms), range(from: start))
    }

    /// matchArm = pattern , [ "if" , expression ] , "=>" , ( block | expression ) ;
    mutating func parseMatchArm() throws(Failure) -> MatchArm {
        note("matchArm")
        let start = peek().start
        let pattern = try parsePattern()
        var guardExpr: Expr? = nil
        if accept(.kwIf) { guardExpr = try parseCondition() }
        try expect(.arrow, "'=>' after the pattern")
        let body: Block
        if at(.lBrace) { body = try parseBlock() }
        else {
            let e = try parseExpression()
            body = Block([Stmt(.expr(e), e.range)], e.range)
        }
        return MatchArm(pattern: pattern, guardExpr: guardExpr, body: body, range: range(from: start))
    }

    /// pattern = patternAtom , { "|" , patternAtom } ;
    mutating func parsePattern() throws(Failure) -> Pattern {
        note("pattern")
        let start = peek().start
        var atoms = [try parsePatternAtom()]
        while accept(.pipe) { atoms.append(try parsePatternAtom()) }
        if atoms.count == 1 { return atoms[0] }
        for a in atoms {
            if case .binding(let name, let r) = a {
                error("a binding ('\(name)') cannot be one of several alternatives; use '_' or a literal", at: r)
                throw Failure()
            }
        }
        return .alternatives(atoms, range(from: start))
    }

    /// patternAtom = "_" | IDENT | literal | list pattern | map pattern ;
    mutating func parsePatternAtom() throws(Failure) -> Pattern {
        note("patternAtom")
        let t = peek()
        switch t.kind {
        case .identifier:
            advance()
            return text(t) == "_" ? .wildcard(range(t)) : .binding(text(t), range(t))
        case .int, .float, .duration, .kwTrue, .kwFalse, .kwNil:
            return .literal(try parseLiteral())
        case .string:
            let e = try parseStringLiteral()
            if case .template = e.kind {
                error("a pattern cannot interpolate: use a guard ('if x == \"…\"') instead", at: e.range)
                throw Failure()
            }
            return .literal(e)
        case .minus:
            advance()
            let n = peek()
            guard n.kind == .int || n.kind == .float else { throw fail(expected: "a number after '-' in a pattern") }
            let lit = try parseLiteral()
            switch lit.kind {
            case .intLiteral(let v): return .literal(Expr(.intLiteral(-v), range(t).to(lit.range)))
            case .floatLiteral(let v): return .literal(Expr(.floatLiteral(-v), range(t).to(lit.range)))
            default: throw fail(expected: "a number")
            }
        case .lBracket:
            return try nested { (p) throws(Failure) in
                try p.withNewlines(false) { (p) throws(Failure) in
                    p.advance()
                    var items: [Pattern] = []
                    var rest: (String, SourceRange)? = nil
                    while !p.at(.rBracket) && !p.at(.eof) {
                        if p.accept(.dotDot) {
                            rest = try p.expectIdentifier("a name after '..' for the rest of the list")
                            break
                        }
                        items.append(try p.parsePattern())
                        if !p.accept(.comma) { break }
                    }
                    try p.expectClosing(.rBracket, opener: t)
                    return .list(items, rest: rest, p.range(from: t.start))
                }
            }
        case .lBrace:
            return try nested { (p) throws(Failure) in
                try p.withNewlines(false) { (p) throws(Failure) in
                    p.advance()
                    var fields: [(String, Pattern)] = []
                    while !p.at(.rBrace) && !p.at(.eof) {
                        let (key, r) = try p.expectIdentifier("a key in the map pattern")
                        if p.accept(.colon) { fields.append((key, try p.parsePattern())) }
                        else { fields.append((key, .binding(key, r))) }
                        if !p.accept(.comma) { break }
                    }
                    try p.expectClosing(.rBrace, opener: t)
                    return .map(fields, p.range(from: t.start))
                }
            }
        default:
            throw fail(expected: "a pattern (a literal, a name, '_', [list] or {map})")
        }
    }

    /// tryExpression = "try" , block , { catchClause } , [ "finally" , block ] ;
    mutating func parseTryExpression() throws(Failure) -> Expr {
        note("tryExpression")
        let start = advance().start
        let body = try parseBlock()
        var catches: [CatchClause] = []
        var finally: Block? = nil
        while true {
            var look = pos
            while tokens[look].kind == .newline { look += 1 }
            let k = tokens[look].kind
            if k == .kwCatch { pos = look; catches.append(try parseCatchClause()) }
            else if k == .kwFinally && finally == nil { pos = look + 1; finally = try parseBlock() }
            else { break }
        }
        if catches.isEmpty && finally == nil {
            throw fail(expected: "'catch' or 'finally' after the 'try' block")
        }
        return Expr(.tryExpr(body, catches, finally), range(from: start))
    }

    /// catchClause = "catch" , [ IDENT ] , [ "if" , expression ] , block ;
    mutating func parseCatchClause() throws(Failure) -> CatchClause {
        note("catchClause")
        advance()
        var name: String? = nil
        var nameRange: SourceRange? = nil
        if at(.identifier) { (name, nameRange) = try expectIdentifier("a name for the error") }
        var guardExpr: Expr? = nil
        if accept(.kwIf) { guardExpr = try parseCondition() }
        return CatchClause(name: name, nameRange: nameRange, guardExpr: guardExpr, body: try parseBlock())
    }

    /// nodeExpression = "node" , IDENT , [ "(" , arguments , ")" ] , block ;
    mutating func parseNodeExpression() throws(Failure) -> Expr {
        note("nodeExpression")
        let start = advance().start
        let (name, _) = try expectIdentifier("a node name after 'node'")
        var options: [Argument] = []
        let open = peek()
        if open.kind == .lParen {
            options = try withNewlines(false) { (p) throws(Failure) in
                p.advance()
                let args = try p.parseArguments()
                try p.expectClosing(.rParen, opener: open)
                return args
            }
            for o in options where o.label == nil {
                error("node options are named (retry: 3, timeout: 5s); found a positional one", at: o.value.range)
                throw Failure()
            }
        }
        let body = try parseBlock()
        return Expr(.node(name, options, body), range(from: start))
    }

    /// parallelExpression = "parallel" , ( "{" branches "}" | "for" , IDENT , "in" , expression , [ "limit" , expression ] , block ) ;
    mutating func parseParallelExpression() throws(Failure) -> Expr {
        note("parallelExpression")
        let start = advance().start
        if accept(.kwFor) {
            let (name, _) = try expectIdentifier("a loop variable after 'parallel for'")
            try expect(.kwIn, "'in' after the loop variable")
            let iterable = try parseCondition()
            var limit: Expr? = nil
            let t = peek()
            if t.kind == .identifier && text(t) == "limit" {
                advance()
                limit = try parseCondition()
            }
            let body = try parseBlock()
            return Expr(.parallelFor(name, iterable, limit, body), range(from: start))
        }
        let branches = try parseBranches(of: "parallel")
        return Expr(.parallel(branches), range(from: start))
    }

    mutating func parseBranches(of keyword: String) throws(Failure) -> [Branch] {
        let open = peek()
        guard open.kind == .lBrace else { throw fail(expected: "'{' with named branches after '\(keyword)' (or 'for' after 'parallel')") }
        return try nested { (p) throws(Failure) in
            try p.withNewlines(true) { (p) throws(Failure) in
                p.advance()
                var branches: [Branch] = []
                p.parseSeparators()
                while !p.at(.rBrace) && !p.at(.eof) {
                    let b = try p.parseParallelBranch()
                    if branches.contains(where: { $0.name == b.name }) {
                        p.error("duplicate branch '\(b.name)' in '\(keyword)'", at: b.nameRange)
                    }
                    branches.append(b)
                    _ = p.accept(.comma)
                    p.parseSeparators()
                }
                try p.expectClosing(.rBrace, opener: open)
                return branches
            }
        }
    }

    /// parallelBranch = IDENT , ":" , ( block | expression ) ;
    mutating func parseParallelBranch() throws(Failure) -> Branch {
        note("parallelBranch")
        let (name, r) = try expectIdentifier("a branch name")
        try expect(.colon, "':' after branch name '\(name)'")
        if at(.lBrace) { return Branch(name: name, nameRange: r, body: try parseBlock()) }
        let e = try parseExpression()
        return Branch(name: name, nameRange: r, body: Block([Stmt(.expr(e), e.range)], e.range))
    }

    /// raceExpression = "race" , "{" , separators , { parallelBranch , separators } , "}" ;
    mutating func parseRaceExpression() throws(Failure) -> Expr {
        note("raceExpression")
        let start = advance().start
        let branches = try parseBranches(of: "race")
        return Expr(.race(branches), range(from: start))
    }

    /// spawnExpression = "spawn" , ( block | expression ) ;
    mutating func parseSpawnExpression() throws(Failure) -> Expr {
        note("spawnExpression")
        let start = advance().start
        if at(.lBrace) { return Expr(.spawn(try parseBlock()), range(from: start)) }
        let e = try parseExpression()
        return Expr(.spawn(Block([Stmt(.expr(e), e.range)], e.range)), range(from: start))
    }

    /// awaitExpression = "await" , prefixExpression ;
    mutating func parseAwaitExpression() throws(Failure) -> Expr {
        note("awaitExpression")
        let start = advance().start
        let e = try nested { (p) throws(Failure) in try p.parsePrefixExpression() }
        return Expr(.await(e), range(from: start))
    }

    /// quoteExpression = "quote" , block ;
    mutating func parseQuoteExpression() throws(Failure) -> Expr {
        note("quoteExpression")
        let start = advance().start
        return Expr(.quote(try parseBlock()), range(from: start))
    }
}

extension String {
    func replacingUnderscores() -> String { String(filter { $0 != "_" }) }
}
