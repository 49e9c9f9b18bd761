/// The syntax tree. Nodes are classes so later stages can key side tables by identity
/// (`ObjectIdentifier`) without the tree knowing about them; the tree itself holds only
/// what the source says, with the range each piece came from.

/// An expression.
public final class Expr: @unchecked Sendable {
    public indirect enum Kind {
        case nilLiteral
        case boolLiteral(Bool)
        case intLiteral(Int)
        case floatLiteral(Double)
        /// A duration in nanoseconds (`250ms`).
        case durationLiteral(Int)
        case stringLiteral(String)
        /// A string with `${…}` interpolations.
        case template([TemplatePart])
        case name(String)
        /// `$`, the run's state.
        case state
        case list([Expr])
        case map([MapEntry])
        case unary(UnaryOp, Expr)
        case binary(BinaryOp, Expr, Expr)
        case call(Expr, [Argument])
        case member(Expr, String, SourceRange)
        case index(Expr, Expr)
        case lambda(FunctionDecl)
        case ifExpr(Expr, Block, ElseBranch?)
        case match(Expr, [MatchArm])
        case tryExpr(Block, [CatchClause], Block?)
        case node(String, [Argument], Block)
        case parallel([Branch])
        case parallelFor(String, Expr, Expr?, Block)
        case race([Branch])
        case spawn(Block)
        case await(Expr)
        case quote(Block)
    }

    public let kind: Kind
    public let range: SourceRange

    public init(_ kind: Kind, _ range: SourceRange) {
        self.kind = kind
        self.range = range
    }
}

public enum TemplatePart {
    case text(String)
    case expr(Expr)
}

public struct MapEntry {
    public enum Key {
        /// `{name: …}` — a bare name is the string "name".
        case name(String)
        /// `{[expr]: …}` — a computed key.
        case computed(Expr)
    }
    public let key: Key
    public let keyRange: SourceRange
    public let value: Expr
}

public struct Argument {
    /// The label of a named argument (`f(x, limit: 3)`), or nil.
    public let label: String?
    public let labelRange: SourceRange?
    public let value: Expr

    public init(label: String?, labelRange: SourceRange?, value: Expr) {
        self.label = label
        self.labelRange = labelRange
        self.value = value
    }
}

public enum UnaryOp: String { case negate = "-", not = "not" }

public enum BinaryOp: String {
    case add = "+", subtract = "-", multiply = "*", divide = "/", floorDivide = "//", remainder = "%"
    case equal = "==", notEqual = "!=", less = "<", lessEqual = "<=", greater = ">", greaterEqual = ">="
    case and = "and", or = "or", contains = "in"
}

public enum AssignOp: String { case assign = "=", add = "+=", subtract = "-=", multiply = "*=", divide = "/=" }

public enum ElseBranch {
    case block(Block)
    case elseIf(Expr)
}

public struct MatchArm {
    public let pattern: Pattern
    public let guardExpr: Expr?
    /// The arm's body; an expression arm is a block of one expression statement.
    public let body: Block
    public let range: SourceRange
}

public indirect enum Pattern {
    case wildcard(SourceRange)
    case literal(Expr)
    case binding(String, SourceRange)
    /// `[a, b, ..rest]`
    case list([Pattern], rest: (String, SourceRange)?, SourceRange)
    /// `{kind: "x", value}`
    case map([(String, Pattern)], SourceRange)
    case alternatives([Pattern], SourceRange)

    public var range: SourceRange {
        switch self {
        case .wildcard(let r), .binding(_, let r), .list(_, _, let r), .map(_, let r), .alternatives(_, let r): return r
        case .literal(let e): return e.range
        }
    }
}

public struct CatchClause {
    public let name: String?
    public let nameRange: SourceRange?
    public let guardExpr: Expr?
    public let body: Block
}

/// A named branch of `parallel { name: … }` or `race { name: … }`.
public struct Branch {
    public let name: String
    public let nameRange: SourceRange
    public let body: Block
}

public final class Block: @unchecked Sendable {
    public let statements: [Stmt]
    public let range: SourceRange
    public init(_ statements: [Stmt], _ range: SourceRange) {
        self.statements = statements
        self.range = range
    }
}

public struct Parameter {
    public let name: String
    public let range: SourceRange
    public let defaultValue: Expr?

    public init(name: String, range: SourceRange, defaultValue: Expr?) {
        self.name = name
        self.range = range
        self.defaultValue = defaultValue
    }
}

/// A function, flow or lambda.
public final class FunctionDecl: @unchecked Sendable {
    public enum Kind { case function, flow, lambda }
    public let kind: Kind
    public let name: String?
    public let nameRange: SourceRange?
    public let parameters: [Parameter]
    public let body: Block
    /// True for `fn(x) => expr`.
    public let isArrow: Bool
    public let range: SourceRange

    public init(kind: Kind, name: String?, nameRange: SourceRange?, parameters: [Parameter], body: Block, isArrow: Bool, range: SourceRange) {
        self.kind = kind
        self.name = name
        self.nameRange = nameRange
        self.parameters = parameters
        self.body = body
        self.isArrow = isArrow
        self.range = range
    }
}

public struct TypeDecl {
    public let name: String
    public let nameRange: SourceRange
    public let fields: [FieldDecl]
    public let range: SourceRange
}

public struct FieldDecl {
    public let name: String
    public let nameRange: SourceRange
    public let optional: Bool
    public let type: TypeExpr
    public let defaultValue: Expr?
}

public indirect enum TypeExpr {
    /// `string`, `list<int>`, `Invoice`
    case named(String, [TypeExpr], SourceRange)
    /// `"low"` — a literal string type
    case literal(String, SourceRange)
    /// `"low" | "high"`
    case union([TypeExpr], SourceRange)
}

public enum ImportPath {
    /// `import std/json`
    case standard([String])
    /// `import "lib/util.flow"`
    case file(String)
}

public enum Trigger {
    /// `every "*/5 * * * *"`
    case every(String)
    /// `on webhook("/path")`, `on file("inbox/")`
    case on(String, [Argument])
}

/// A statement.
public final class Stmt: @unchecked Sendable {
    public enum Kind {
        case letDecl(String, SourceRange, Expr?)
        case assign(Expr, AssignOp, Expr)
        case expr(Expr)
        case fnDecl(FunctionDecl)
        case flowDecl(FunctionDecl)
        case typeDecl(TypeDecl)
        case importDecl(ImportPath, alias: String?, SourceRange)
        case whileLoop(Expr, Block)
        /// `for x in xs`, `for k, v in m`, `for await x in ch`
        case forIn(String, SourceRange, (String, SourceRange)?, Expr, Block, isAwait: Bool)
        case returnStmt(Expr?)
        case breakStmt
        case continueStmt
        case throwStmt(Expr)
        case trigger(Trigger, Block)
    }

    public let kind: Kind
    public let range: SourceRange

    public init(_ kind: Kind, _ range: SourceRange) {
        self.kind = kind
        self.range = range
    }
}

/// A parsed file.
public final class Program: @unchecked Sendable {
    public let file: SourceFile
    public let statements: [Stmt]
    public init(file: SourceFile, statements: [Stmt]) {
        self.file = file
        self.statements = statements
    }
}
