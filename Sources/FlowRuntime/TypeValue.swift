import FlowSyntax

/// What a field of a `type` accepts.
indirect enum TypeSpec {
    case any
    case string, int, float, number, bool, duration, function, nilType
    /// `list` or `list<T>`
    case list(TypeSpec?)
    /// `map` or `map<T>` (the type of the values)
    case map(TypeSpec?)
    /// `"low"`: exactly this string.
    case literal(String)
    case union([TypeSpec])
    /// Another declared type, reached through its global cell (it may be declared later).
    case named(String, GlobalCell)

    /// How the spec reads in errors: `number`, `list<string>`, `"low" | "high"`.
    var description: String {
        switch self {
        case .any: return "any"
        case .string: return "string"
        case .int: return "int"
        case .float: return "float"
        case .number: return "number"
        case .bool: return "bool"
        case .duration: return "duration"
        case .function: return "function"
        case .nilType: return "nil"
        case .list(let t): return t.map { "list<\($0.description)>" } ?? "list"
        case .map(let t): return t.map { "map<\($0.description)>" } ?? "map"
        case .literal(let s): return Printer.quote(s)
        case .union(let ts): return ts.map { $0.description }.joined(separator: " | ")
        case .named(let n, _): return n
        }
    }

    /// The names a type expression may use besides declared types.
    static let builtinNames = ["any", "string", "int", "float", "number", "bool", "duration", "function", "nil", "list", "map"]
}

/// A field of a `type`.
struct FieldSpec {
    let name: String
    let box: StringBox
    let type: TypeSpec
    let optional: Bool
    /// Makes the default value; run for each record so defaults are never shared.
    let makeDefault: Closure?
}

/// The value a `type` declaration binds: call it to build a validated record, ask it for
/// its JSON schema.
final class TypeValue: FlowObject, @unchecked Sendable {
    let name: String
    var fields: [FieldSpec] = []

    init(name: String) { self.name = name }

    override var typeName: String { "type" }
    override var description: String { "<type \(name)>" }

    override func member(_ member: String) -> Value? {
        switch member {
        case "name": return .str(name)
        case "fields": return .list(fields.map { Value.str($0.name) })
        default: return nil
        }
    }

    override func call(_ args: [Value], named: [(String, Value)]?, interpreter: Interpreter, range: SourceRange?) throws -> Value? {
        try construct(args, named: named, m: interpreter, range: range)
    }

    /// Methods of a type, made on demand (a type is called far more often than asked).
    override func method(_ member: String, interpreter m: Interpreter) -> Value? {
        switch member {
        case "schema":
            return m.makeBuiltin("\(name).schema", parameters: []) { [self] _ in .map(schema()) }
        case "check":
            return m.makeBuiltin("\(name).check", parameters: ["value"]) { [self] call in
                do { _ = try build(from: call[0], m: call.interpreter, path: "", range: call.range); return .bool(true) } catch is FlowError { return .bool(false) }
            }
        default: return nil
        }
    }

    // MARK: - Construction

    /// `Name(field: value, …)` or `Name({field: value, …})`.
    func construct(_ args: [Value], named: [(String, Value)]?, m: Interpreter, range: SourceRange?) throws -> Value {
        if let named, !named.isEmpty {
            guard args.isEmpty else {
                throw schemaError("\(name) takes either named fields or one map, not both", at: range)
            }
            let given = MapBox()
            for (k, v) in named { given.set(k, v) }
            return try build(from: .map(given), m: m, path: "", range: range)
        }
        switch args.count {
        case 0: return try build(from: .map(MapBox()), m: m, path: "", range: range)
        case 1: return try build(from: args[0], m: m, path: "", range: range)
        default: throw schemaError("\(name) takes named fields or one map, found \(args.count) positional arguments", at: range)
        }
    }

    func schemaError(_ message: String, at range: SourceRange?) -> FlowError {
        FlowError(kind: "schema", message: message, at: range)
    }

    /// Validates a map against the fields and returns a new record with defaults filled
    /// in; the first bad field is named (with its path inside nested records).
    func build(from value: Value, m: Interpreter, path: String, range: SourceRange?) throws -> Value {
        let here = path.isEmpty ? name : "\(name) at '\(path)'"
        guard case .map(let given) = value else {
            throw schemaError("\(here) expects a map of fields, found \(value.typeName)", at: range)
        }
        for e in given.entries {
            guard case .string(let k) = e.key, fields.contains(where: { $0.name == k.value }) else {
                let shown = e.key.stringValue ?? Printer.repr(e.key)
                var message = "\(here) has no field '\(shown)'"
                if let near = Suggest.closest(to: shown, in: fields.map { $0.name }) { message += "; did you mean '\(near)'?" }
                throw schemaError(message, at: range)
            }
        }
        var entries: [MapBox.Entry] = []
        entries.reserveCapacity(fields.count)
        for f in fields {
            let fieldPath = path.isEmpty ? f.name : "\(path).\(f.name)"
            var v = given.get(box: f.box)
            if v == nil, let make = f.makeDefault { v = try m.call(.closure(make), [], at: range) }
            guard let present = v else {
                if f.optional { continue }
                throw schemaError("\(name) is missing field '\(fieldPath)' (\(f.type.description))", at: range)
            }
            if f.optional, case .nilValue = present { continue }
            let checked = try conform(present, to: f.type, m: m, path: fieldPath, range: range)
            entries.append(MapBox.Entry(key: .string(f.box), value: checked))
        }
        let record = MapBox(distinct: entries)
        record.typeName = name
        return .map(record)
    }

    /// Checks a value against a spec; nested declared types are built (so their defaults
    /// apply), everything else is returned as it is.
    func conform(_ v: Value, to spec: TypeSpec, m: Interpreter, path: String, range: SourceRange?) throws -> Value {
        func fail() -> FlowError {
            schemaError("\(name): field '\(path)' expects \(spec.description), found \(describe(v))", at: range)
        }
        switch spec {
        case .any: return v
        case .string: if case .string = v { return v }
        case .int: if case .int = v { return v }
        case .float: if case .float = v { return v }
        case .number: if v.numberValue != nil { return v }
        case .bool: if case .bool = v { return v }
        case .duration: if case .duration = v { return v }
        case .function: if case .closure = v { return v }; if case .builtin = v { return v }
        case .nilType: if case .nilValue = v { return v }
        case .literal(let s): if case .string(let b) = v, b.value == s { return v }
        case .list(let element):
            guard case .list(let l) = v else { throw fail() }
            guard let element else { return v }
            var out: [Value] = []
            out.reserveCapacity(l.count)
            for (i, x) in l.items.enumerated() {
                out.append(try conform(x, to: element, m: m, path: "\(path)[\(i)]", range: range))
            }
            return .list(out)
        case .map(let valueType):
            guard case .map(let mp) = v else { throw fail() }
            guard let valueType else { return v }
            let out = MapBox()
            for e in mp.entries {
                let key = e.key.stringValue ?? Printer.repr(e.key)
                out.set(e.key, try conform(e.value, to: valueType, m: m, path: "\(path).\(key)", range: range))
            }
            return .map(out)
        case .union(let options):
            for o in options {
                if let r = try? conform(v, to: o, m: m, path: path, range: range) { return r }
            }
        case .named(_, let cell):
            guard case .object(let o) = cell.value, let t = o as? TypeValue else { throw fail() }
            if case .map(let mp) = v, mp.typeName == t.name { return v }
            if case .map = v { return try t.build(from: v, m: m, path: path, range: range) }
        }
        throw fail()
    }

    func describe(_ v: Value) -> String {
        if case .string(let s) = v { return "string \(Printer.quote(s.value).prefix(40))" }
        if case .map(let mp) = v, let t = mp.typeName { return t }
        return v.typeName
    }

    // MARK: - JSON Schema

    /// A JSON Schema (draft 2020-12 subset) describing the record: what an LLM is asked to
    /// produce for structured output.
    func schema() -> MapBox {
        var properties: [(String, Value)] = []
        var required: [Value] = []
        for f in fields {
            properties.append((f.name, .map(TypeValue.schema(of: f.type))))
            if !f.optional && f.makeDefault == nil { required.append(.str(f.name)) }
        }
        return MapBox([
            ("title", .str(name)),
            ("type", .str("object")),
            ("properties", .map(MapBox(properties))),
            ("required", .list(required)),
            ("additionalProperties", .bool(false)),
        ])
    }

    static func schema(of spec: TypeSpec) -> MapBox {
        switch spec {
        case .any: return MapBox()
        case .string: return MapBox([("type", .str("string"))])
        case .int: return MapBox([("type", .str("integer"))])
        case .float, .number: return MapBox([("type", .str("number"))])
        case .bool: return MapBox([("type", .str("boolean"))])
        case .duration: return MapBox([("type", .str("string")), ("description", .str("a duration such as 250ms, 5s or 2h"))])
        case .function: return MapBox([("description", .str("a function (not representable in JSON)"))])
        case .nilType: return MapBox([("type", .str("null"))])
        case .literal(let s): return MapBox([("const", .str(s))])
        case .list(let t):
            var pairs: [(String, Value)] = [("type", .str("array"))]
            if let t { pairs.append(("items", .map(schema(of: t)))) }
            return MapBox(pairs)
        case .map(let t):
            var pairs: [(String, Value)] = [("type", .str("object"))]
            if let t { pairs.append(("additionalProperties", .map(schema(of: t)))) }
            return MapBox(pairs)
        case .union(let options):
            if options.allSatisfy({ if case .literal = $0 { return true }; return false }) {
                return MapBox([("enum", .list(options.map { if case .literal(let s) = $0 { return Value.str(s) }; return .nilValue }))])
            }
            return MapBox([("anyOf", .list(options.map { .map(schema(of: $0)) }))])
        case .named(_, let cell):
            if case .object(let o) = cell.value, let t = o as? TypeValue { return t.schema() }
            return MapBox()
        }
    }
}
