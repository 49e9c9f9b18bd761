/// Builds the syntax tree from tokens, one function per production of Grammar/flow.ebnf.
///
/// Takes a `SourceFile`; gives out a `Program` and every syntax error in it. Invariants:
/// it never crashes or loops on bad input — an error inside a statement is reported, the
/// parser skips to the next statement boundary and goes on, so one `flow check` lists
/// every syntax error; nesting deeper than `Parser.maxNesting` is an error, not a stack
/// overflow.
public struct Parser {
    /// How deep brackets, blocks and prefix operators may nest. Real programs stay under
    /// 30; the bound keeps the recursive descent (and the resolver and interpreter that
    /// walk the same tree) far from the native stack's end, even in debug builds.
    public static let maxNesting = 200
    /// How many operators, calls, members or indexes one chain may have (`a + b + …`,
    /// `x.a.b…`). A chain becomes a tree as deep as it is long, which later stages walk
    /// recursively; real code stays far below this.
    public static let maxChain = 5_000
    /// After this many errors in one file the parser stops reporting: the rest is noise.
    public static let maxErrors = 100

    let file: SourceFile
    var tokens: [Token]
    var pos = 0
    var diagnostics = DiagnosticBag()
    /// Whether a newline ends a statement here: true at top level and in `{ }` blocks,
    /// false inside `( )` and `[ ]`.
    var newlineStack: [Bool] = [true]
    var depth = 0
    /// Above zero while parsing a condition (`if c {`), where `f(x) {` must not take the
    /// block as a trailing argument.
    var noTrailingBlock = 0

    /// Set to record which productions were parsed (the grammar coverage test).
    public var recordProductions = false
    public internal(set) var productionsSeen: Set<String> = []

    struct Failure: Error {}

    public init(file: SourceFile) {
        self.file = file
        let (tokens, lexErrors) = Lexer.tokenize(file)
        self.tokens = tokens
        diagnostics.append(contentsOf: lexErrors)
    }

    init(file: SourceFile, tokens: [Token]) {
        self.file = file
        self.tokens = tokens
    }

    /// Parses a whole file.
    public static func parse(_ file: SourceFile) -> (program: Program, diagnostics: [Diagnostic]) {
        var parser = Parser(file: file)
        let program = parser.parseProgram()
        return (program, parser.diagnostics.items)
    }

    // MARK: - Tokens

    mutating func note(_ production: String) {
        if recordProductions { productionsSeen.insert(production) }
    }

    /// The current token, skipping newlines where they do not end statements.
    mutating func peek() -> Token {
        if newlineStack.last == false {
            while tokens[pos].kind == .newline { pos += 1 }
        }
        return tokens[pos]
    }

    mutating func peekKind() -> TokenKind { peek().kind }

    /// The token after the current one (without newline skipping).
    mutating func peekNext() -> Token {
        _ = peek()
        return tokens[min(pos + 1, tokens.count - 1)]
    }

    @discardableResult
    mutating func advance() -> Token {
        let t = peek()
        if t.kind != .eof { pos += 1 }
        return t
    }

    mutating func at(_ kind: TokenKind) -> Bool { peekKind() == kind }

    mutating func accept(_ kind: TokenKind) -> Bool {
        if at(kind) { advance(); return true }
        return false
    }

    mutating func skipNewlines() {
        while tokens[pos].kind == .newline { pos += 1 }
    }

    func text(_ t: Token) -> String { file.slice(t.start, t.end) }

    func range(_ t: Token) -> SourceRange { SourceRange(file: file, start: t.start, end: t.end) }

    func range(from start: Int) -> SourceRange {
        let end = pos > 0 ? tokens[pos - 1].end : start
        return SourceRange(file: file, start: start, end: max(start, end))
    }

    /// How a token reads in "found X".
    func describe(_ t: Token) -> String {
        switch t.kind {
        case .newline: return "end of line"
        case .eof: return "end of file"
        case .string: return "a string"
        case .invalid: return "'\(text(t))'"
        default: return "'\(text(t))'"
        }
    }

    mutating func error(_ message: String, at r: SourceRange, notes: [Diagnostic.Note] = []) {
        if diagnostics.items.count < Parser.maxErrors {
            diagnostics.error(message, at: r, notes: notes)
        } else if diagnostics.items.count == Parser.maxErrors {
            diagnostics.error("too many errors; stopping here", at: r)
        }
    }

    /// Reports "expected X, found Y" at the current token and fails the statement.
    mutating func fail(expected what: String) -> Failure {
        let t = peek()
        if t.kind != .invalid { // the lexer already reported invalid tokens
            error("expected \(what), found \(describe(t))", at: errorRange(t))
        }
        return Failure()
    }

    /// Where to point for a token: the end of the previous token when it is the end of a
    /// line or of the file, so the caret sits where something is missing.
    func errorRange(_ t: Token) -> SourceRange {
        if (t.kind == .eof || t.kind == .newline) && pos > 0 {
            var k = pos - 1
            while k > 0 && tokens[k].kind == .newline { k -= 1 }
            let end = tokens[k].end
            return SourceRange(file: file, start: end, end: end)
        }
        return range(t)
    }

    @discardableResult
    mutating func expect(_ kind: TokenKind, _ what: String? = nil) throws(Failure) -> Token {
        if at(kind) { return advance() }
        throw fail(expected: what ?? kind.spelling)
    }

    /// Expects the bracket that closes `opener`, naming the opener in the error.
    @discardableResult
    mutating func expectClosing(_ kind: TokenKind, opener: Token) throws(Failure) -> Token {
        if at(kind) { return advance() }
        let t = peek()
        if t.kind != .invalid {
            let o = range(opener).startLocation
            error("expected '\(kind.punctuation)' to close '\(text(opener))' at \(o.line):\(o.column), found \(describe(t))",
                  at: errorRange(t), notes: [Diagnostic.Note("'\(text(opener))' opened here", at: range(opener))])
        }
        throw Failure()
    }

    mutating func expectIdentifier(_ what: String) throws(Failure) -> (String, SourceRange) {
        let t = peek()
        guard t.kind == .identifier else { throw fail(expected: what) }
        advance()
        return (text(t), range(t))
    }

    /// Runs `body` with newlines significant (blocks) or not (brackets).
    mutating func withNewlines<T>(_ significant: Bool, _ body: (inout Parser) throws(Failure) -> T) throws(Failure) -> T {
        newlineStack.append(significant)
        let savedTrailing = noTrailingBlock
        if !significant { noTrailingBlock = 0 }
        defer { newlineStack.removeLast(); noTrailingBlock = savedTrailing }
        return try body(&self)
    }

    mutating func nested<T>(_ body: (inout Parser) throws(Failure) -> T) throws(Failure) -> T {
        depth += 1
        defer { depth -= 1 }
        if depth > Parser.maxNesting {
            let t = peek()
            error("nesting too deep: more than \(Parser.maxNesting) levels of brackets, blocks or prefix operators", at: range(t))
            throw Failure()
        }
        return try body(&self)
    }

    /// Skips to the end of the broken statement: the next newline or ';' outside brackets
    /// opened since the error, or the '}' that closes the enclosing block.
    mutating func synchronize() {
        var nesting = 0
        while true {
            let t = tokens[pos]
            switch t.kind {
            case .eof: return
            case .newline, .semicolon:
                if nesting <= 0 { return }
            case .lParen, .lBracket, .lBrace: nesting += 1
            case .rParen, .rBracket: nesting -= 1
            case .rBrace:
                if nesting <= 0 { return }
                nesting -= 1
            default:
                // A statement keyword at the start of a line begins the next statement.
                if t.atLineStart && pos > 0 && Parser.statementStarts.contains(t.kind) { return }
            }
            pos += 1
        }
    }

    static let statementStarts: Set<TokenKind> = [.kwLet, .kwFn, .kwFlow, .kwType, .kwImport, .kwWhile, .kwFor, .kwReturn]

    // MARK: - Program and statements

    /// program = separators , { statement , separators } ;
    public mutating func parseProgram() -> Program {
        note("program")
        var statements: [Stmt] = []
        parseSeparators()
        while !at(.eof) {
            if let s = parseStatementRecovering(inBlock: false) { statements.append(s) }
            parseSeparators()
        }
        return Program(file: file, statements: statements)
    }

    /// separators = { NEWLINE | ";" } ;
    mutating func parseSeparators() {
        note("separators")
        while true {
            let k = tokens[pos].kind
            if k == .newline || k == .semicolon { pos += 1 } else { return }
        }
    }

    /// Parses one statement and checks what follows it; on error, reports and skips.
    mutating func parseStatementRecovering(inBlock: Bool) -> Stmt? {
        let savedStack = newlineStack
        let startPos = pos
        let savedDepth = depth
        let savedTrailing = noTrailingBlock
        do {
            let s = try parseStatement()
            let t = peek()
            switch t.kind {
            case .newline, .semicolon, .eof: break
            case .rBrace where inBlock: break
            case .invalid: throw Failure() // the lexer reported it
            default:
                error("expected end of statement (a newline or ';') after \(describeStatement(s)), found \(describe(t))", at: range(t))
                throw Failure()
            }
            return s
        } catch {
            newlineStack = savedStack
            depth = savedDepth
            noTrailingBlock = savedTrailing
            synchronize()
            if pos <= startPos && !at(.eof) && !(inBlock && tokens[pos].kind == .rBrace)
                && tokens[pos].kind != .newline && tokens[pos].kind != .semicolon {
                pos += 1 // always make progress
            }
            return nil
        }
    }

    func describeStatement(_ s: Stmt) -> String {
        switch s.kind {
        case .letDecl: return "'let'"
        case .expr: return "expression"
        case .assign: return "assignment"
        case .returnStmt: return "'return'"
        default: return "statement"
        }
    }

    /// block = "{" , separators , { statement , separators } , "}" ;
    mutating func parseBlock() throws(Failure) -> Block {
        note("block")
        let open = peek()
        guard open.kind == .lBrace else { throw fail(expected: "'{' to start a block") }
        return try nested { (p) throws(Failure) in
            try p.withNewlines(true) { (p) throws(Failure) in
                p.advance()
                var statements: [Stmt] = []
                p.parseSeparators()
                while !p.at(.rBrace) && !p.at(.eof) {
                    if let s = p.parseStatementRecovering(inBlock: true) { statements.append(s) }
                    p.parseSeparators()
                }
                try p.expectClosing(.rBrace, opener: open)
                return Block(statements, p.range(from: open.start))
            }
        }
    }

    /// statement = letStatement | fnDeclaration | … | expressionStatement ;
    mutating func parseStatement() throws(Failure) -> Stmt {
        note("statement")
        let t = peek()
        switch t.kind {
        case .kwLet: return try parseLetStatement()
        case .kwFn where peekNext().kind == .identifier: return try parseFnDeclaration()
        case .kwFlow: return try parseFlowDeclaration()
        case .kwType where peekNext().kind == .identifier: return try parseTypeDeclaration()
        case .kwImport: return try parseImportStatement()
        case .kwWhile: return try parseWhileStatement()
        case .kwFor: return try parseForStatement()
        case .kwReturn: return try parseReturnStatement()
        case .kwBreak: return try parseBreakStatement()
        case .kwContinue: return try parseContinueStatement()
        case .kwThrow: return try parseThrowStatement()
        case .identifier:
            let word = text(t)
            let next = peekNext().kind
            if (word == "every" && next == .string) || (word == "on" && next == .identifier) {
                return try parseTriggerDeclaration()
            }
            return try parseExpressionStatement()
        default:
            return try parseExpressionStatement()
        }
    }

    /// letStatement = "let" , IDENT , [ "=" , expression ] ;
    mutating func parseLetStatement() throws(Failure) -> Stmt {
        note("letStatement")
        let start = advance().start
        let (name, nameRange) = try expectIdentifier("a name after 'let'")
        var value: Expr? = nil
        if accept(.assign) {
            skipNewlines()
            value = try parseExpression()
        }
        return Stmt(.letDecl(name, nameRange, value), range(from: start))
    }

    /// fnDeclaration = "fn" , IDENT , parameterList , block ;
    mutating func parseFnDeclaration() throws(Failure) -> Stmt {
        note("fnDeclaration")
        let start = advance().start
        let (name, nameRange) = try expectIdentifier("a function name after 'fn'")
        let params = try parseParameterList()
        let body = try parseBlock()
        let decl = FunctionDecl(kind: .function, name: name, nameRange: nameRange, parameters: params,
                                body: body, isArrow: false, range: range(from: start))
        return Stmt(.fnDecl(decl), decl.range)
    }

    /// flowDeclaration = "flow" , IDENT , parameterList , block ;
    mutating func parseFlowDeclaration() throws(Failure) -> Stmt {
        note("flowDeclaration")
        let start = advance().start
        let (name, nameRange) = try expectIdentifier("a flow name after 'flow'")
        let params = try parseParameterList()
        let body = try parseBlock()
        let decl = FunctionDecl(kind: .flow, name: name, nameRange: nameRange, parameters: params,
                                body: body, isArrow: false, range: range(from: start))
        return Stmt(.flowDecl(decl), decl.range)
    }

    /// parameterList = "(" , [ parameter , { "," , parameter } , [ "," ] ] , ")" ;
    mutating func parseParameterList() throws(Failure) -> [Parameter] {
        note("parameterList")
        let open = peek()
        guard open.kind == .lParen else { throw fail(expected: "'(' to start the parameter list") }
        return try withNewlines(false) { (p) throws(Failure) in
            p.advance()
            var params: [Parameter] = []
            while !p.at(.rParen) {
                params.append(try p.parseParameter())
                if !p.accept(.comma) { break }
            }
            try p.expectClosing(.rParen, opener: open)
            return params
        }
    }

    /// parameter = IDENT , [ "=" , expression ] ;
    mutating func parseParameter() throws(Failure) -> Parameter {
        note("parameter")
        let (name, r) = try expectIdentifier("a parameter name")
        var value: Expr? = nil
        if accept(.assign) { value = try parseExpression() }
        return Parameter(name: name, range: r, defaultValue: value)
    }

    /// typeDeclaration = "type" , IDENT , "{" , … , "}" ;
    mutating func parseTypeDeclaration() throws(Failure) -> Stmt {
        note("typeDeclaration")
        let start = advance().start
        let (name, nameRange) = try expectIdentifier("a type name after 'type'")
        let open = peek()
        guard open.kind == .lBrace else { throw fail(expected: "'{' to start the fields of type '\(name)'") }
        let fields = try withNewlines(true) { (p) throws(Failure) in
            p.advance()
            var fields: [FieldDecl] = []
            p.parseSeparators()
            while !p.at(.rBrace) && !p.at(.eof) {
                fields.append(try p.parseFieldDeclaration())
                _ = p.accept(.comma)
                p.parseSeparators()
            }
            try p.expectClosing(.rBrace, opener: open)
            return fields
        }
        let decl = TypeDecl(name: name, nameRange: nameRange, fields: fields, range: range(from: start))
        return Stmt(.typeDecl(decl), decl.range)
    }

    /// fieldDeclaration = IDENT , [ "?" ] , ":" , typeExpression , [ "=" , expression ] ;
    mutating func parseFieldDeclaration() throws(Failure) -> FieldDecl {
        note("fieldDeclaration")
        let (name, r) = try expectIdentifier("a field name")
        let optional = accept(.question)
        try expect(.colon, "':' and a type after field '\(name)'")
        let type = try parseTypeExpression()
        var value: Expr? = nil
        if accept(.assign) { value = try parseExpression() }
        return FieldDecl(name: name, nameRange: r, optional: optional, type: type, defaultValue: value)
    }

    /// typeExpression = typeAtom , { "|" , typeAtom } ;
    mutating func parseTypeExpression() throws(Failure) -> TypeExpr {
        note("typeExpression")
        let start = peek().start
        var atoms = [try parseTypeAtom()]
        while accept(.pipe) { atoms.append(try parseTypeAtom()) }
        return atoms.count == 1 ? atoms[0] : .union(atoms, range(from: start))
    }

    /// typeAtom = STRING | IDENT , [ "<" , typeExpression , { "," , typeExpression } , ">" ] ;
    mutating func parseTypeAtom() throws(Failure) -> TypeExpr {
        note("typeAtom")
        let t = peek()
        if t.kind == .string {
            advance()
            return .literal(try stringValue(t), range(t))
        }
        let (name, r) = try expectIdentifier("a type (string, int, float, number, bool, list, map, any or a type name)")
        var args: [TypeExpr] = []
        if at(.less) {
            let open = advance()
            repeat { args.append(try parseTypeExpression()) } while accept(.comma)
            try expectClosing(.greater, opener: open)
        }
        return .named(name, args, r.to(range(from: r.start)))
    }

    /// importStatement = "import" , modulePath , [ "as" , IDENT ] ;
    mutating func parseImportStatement() throws(Failure) -> Stmt {
        note("importStatement")
        let start = advance().start
        let path = try parseModulePath()
        var alias: String? = nil
        if accept(.kwAs) { alias = try expectIdentifier("a name after 'as'").0 }
        return Stmt(.importDecl(path, alias: alias, range(from: start)), range(from: start))
    }

    /// modulePath = STRING | IDENT , { "/" , IDENT } ;
    mutating func parseModulePath() throws(Failure) -> ImportPath {
        note("modulePath")
        let t = peek()
        if t.kind == .string {
            advance()
            return .file(try stringValue(t))
        }
        var parts = [try expectIdentifier("a module path (std/name) or a file path in quotes").0]
        while accept(.slash) { parts.append(try expectIdentifier("a name after '/' in the module path").0) }
        return .standard(parts)
    }

    /// triggerDeclaration = "every" , STRING , block | "on" , IDENT , "(" , arguments , ")" , block ;
    mutating func parseTriggerDeclaration() throws(Failure) -> Stmt {
        note("triggerDeclaration")
        let first = advance()
        if text(first) == "every" {
            let schedule = advance()
            let body = try parseBlock()
            return Stmt(.trigger(.every(try stringValue(schedule)), body), range(from: first.start))
        }
        let (source, _) = try expectIdentifier("a trigger source (webhook or file) after 'on'")
        let open = try expect(.lParen, "'(' after '\(source)'")
        let args = try withNewlines(false) { (p) throws(Failure) in
            let args = try p.parseArguments()
            try p.expectClosing(.rParen, opener: open)
            return args
        }
        let body = try parseBlock()
        return Stmt(.trigger(.on(source, args), body), range(from: first.start))
    }

    /// whileStatement = "while" , expression , block ;
    mutating func parseWhileStatement() throws(Failure) -> Stmt {
        note("whileStatement")
        let start = advance().start
        let cond = try parseCondition()
        let body = try parseBlock()
        return Stmt(.whileLoop(cond, body), range(from: start))
    }

    /// An expression before a block, where `f(x) {` does not take a trailing block.
    mutating func parseCondition() throws(Failure) -> Expr {
        noTrailingBlock += 1
        defer { noTrailingBlock -= 1 }
        return try parseExpression()
    }

    /// forStatement = "for" , [ "await" ] , IDENT , [ "," , IDENT ] , "in" , expression , block ;
    mutating func parseForStatement() throws(Failure) -> Stmt {
        note("forStatement")
        let start = advance().start
        let isAwait = accept(.kwAwait)
        let (name, nameRange) = try expectIdentifier("a loop variable after 'for'")
        var second: (String, SourceRange)? = nil
        if accept(.comma) { second = try expectIdentifier("a second loop variable after ','") }
        try expect(.kwIn, "'in' after the loop variable")
        let iterable = try parseCondition()
        let body = try parseBlock()
        return Stmt(.forIn(name, nameRange, second, iterable, body, isAwait: isAwait), range(from: start))
    }

    /// returnStatement = "return" , [ expression ] ;
    mutating func parseReturnStatement() throws(Failure) -> Stmt {
        note("returnStatement")
        let start = advance().start
        let k = tokens[pos].kind
        if k == .newline || k == .semicolon || k == .rBrace || k == .eof {
            return Stmt(.returnStmt(nil), range(from: start))
        }
        return Stmt(.returnStmt(try parseExpression()), range(from: start))
    }

    /// breakStatement = "break" ;
    mutating func parseBreakStatement() throws(Failure) -> Stmt {
        note("breakStatement")
        let t = advance()
        return Stmt(.breakStmt, range(t))
    }

    /// continueStatement = "continue" ;
    mutating func parseContinueStatement() throws(Failure) -> Stmt {
        note("continueStatement")
        let t = advance()
        return Stmt(.continueStmt, range(t))
    }

    /// throwStatement = "throw" , expression ;
    mutating func parseThrowStatement() throws(Failure) -> Stmt {
        note("throwStatement")
        let start = advance().start
        return Stmt(.throwStmt(try parseExpression()), range(from: start))
    }

    /// expressionStatement = expression , [ assignOperator , expression ] ;
    mutating func parseExpressionStatement() throws(Failure) -> Stmt {
        note("expressionStatement")
        let start = peek().start
        let target = try parseExpression()
        if let op = parseAssignOperator() {
            switch target.kind {
            case .name, .member, .index: break
            case .state:
                error("cannot assign to '$' itself; assign to a key such as '$.total'", at: target.range)
                throw Failure()
            default:
                error("cannot assign to this expression; the left of '\(op.rawValue)' must be a name, a member (a.b), an index (a[i]) or a state path ($.key)", at: target.range)
                throw Failure()
            }
            skipNewlines()
            let value = try parseExpression()
            return Stmt(.assign(target, op, value), range(from: start))
        }
        return Stmt(.expr(target), range(from: start))
    }

    /// assignOperator = "=" | "+=" | "-=" | "*=" | "/=" ;
    mutating func parseAssignOperator() -> AssignOp? {
        let op: AssignOp
        switch peekKind() {
        case .assign: op = .assign
        case .plusAssign: op = .add
        case .minusAssign: op = .subtract
        case .starAssign: op = .multiply
        case .slashAssign: op = .divide
        default: return nil
        }
        note("assignOperator")
        advance()
        return op
    }
}
