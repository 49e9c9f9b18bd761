import FlowRuntime
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `json.encode` / `json.decode`, written here so that key order, the int/float
/// distinction and error positions are exactly Flow's.
enum JSON {
    static func encode(_ v: Value, indent: Int, level: Int = 0, call: BuiltinCall, seen: inout Set<ObjectIdentifier>) throws -> String {
        let nl = indent > 0 ? "\n" + String(repeating: " ", count: indent * (level + 1)) : ""
        let close = indent > 0 ? "\n" + String(repeating: " ", count: indent * level) : ""
        let colon = indent > 0 ? ": " : ":"
        switch v {
        case .nilValue: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .float(let f):
            guard f.isFinite else { throw call.error("cannot encode \(Printer.formatFloat(f)) as JSON", kind: "value") }
            return f.description
        case .duration(let d): return Printer.quote(Printer.formatDuration(d))
        case .string(let s): return quote(s.value)
        case .list(let l):
            let id = ObjectIdentifier(l)
            guard seen.insert(id).inserted else { throw call.error("cannot encode a list that contains itself", kind: "value") }
            defer { seen.remove(id) }
            if l.items.isEmpty { return "[]" }
            return "[" + nl + (try l.items.map { try encode($0, indent: indent, level: level + 1, call: call, seen: &seen) }).joined(separator: "," + (indent > 0 ? nl : "")) + close + "]"
        case .map(let m):
            let id = ObjectIdentifier(m)
            guard seen.insert(id).inserted else { throw call.error("cannot encode a map that contains itself", kind: "value") }
            defer { seen.remove(id) }
            if m.count == 0 { return "{}" }
            var parts: [String] = []
            for e in m.entries {
                let k = e.key, x = e.value
                let key: String
                if case .string(let s) = k { key = s.value } else { key = Printer.display(k) }
                parts.append(quote(key) + colon + (try encode(x, indent: indent, level: level + 1, call: call, seen: &seen)))
            }
            return "{" + nl + parts.joined(separator: "," + (indent > 0 ? nl : "")) + close + "}"
        case .error(let e):
            return "{\"kind\":\(quote(e.kind)),\"message\":\(quote(e.message))}"
        default:
            throw call.error("cannot encode a value of type \(v.typeName) as JSON", kind: "value")
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if c.value < 0x20 {
                    let hex = String(c.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else { out.unicodeScalars.append(c) }
            }
        }
        return out + "\""
    }

    struct Decoder {
        let b: [UInt8]
        var i = 0
        let call: BuiltinCall
        var depth = 0

        func fail(_ message: String) -> FlowError {
            // Report line and column in the JSON text, which users can find.
            var line = 1, column = 1
            for k in 0..<min(i, b.count) { if b[k] == 10 { line += 1; column = 1 } else if b[k] & 0xC0 != 0x80 { column += 1 } }
            return call.error("invalid JSON at line \(line), column \(column): \(message)", kind: "value")
        }

        mutating func skip() { while i < b.count, b[i] == 32 || b[i] == 9 || b[i] == 10 || b[i] == 13 { i += 1 } }

        func found() -> String {
            i < b.count ? "'\(String(decoding: [b[i]], as: UTF8.self))'" : "end of text"
        }

        mutating func value() throws -> Value {
            skip()
            guard i < b.count else { throw fail("expected a value, found end of text") }
            depth += 1
            defer { depth -= 1 }
            guard depth < 500 else { throw fail("nesting deeper than 500 levels") }
            switch b[i] {
            case UInt8(ascii: "{"):
                i += 1
                let m = MapBox()
                skip()
                if i < b.count && b[i] == UInt8(ascii: "}") { i += 1; return .map(m) }
                while true {
                    skip()
                    guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a string key, found \(found())") }
                    let k = try string()
                    skip()
                    guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':' after a key, found \(found())") }
                    i += 1
                    m.set(.str(k), try value())
                    skip()
                    if i < b.count && b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if i < b.count && b[i] == UInt8(ascii: "}") { i += 1; return .map(m) }
                    throw fail("expected ',' or '}' in an object, found \(found())")
                }
            case UInt8(ascii: "["):
                i += 1
                var items: [Value] = []
                skip()
                if i < b.count && b[i] == UInt8(ascii: "]") { i += 1; return .list(items) }
                while true {
                    items.append(try value())
                    skip()
                    if i < b.count && b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if i < b.count && b[i] == UInt8(ascii: "]") { i += 1; return .list(items) }
                    throw fail("expected ',' or ']' in an array, found \(found())")
                }
            case UInt8(ascii: "\""):
                return .str(try string())
            case UInt8(ascii: "t"): return try word("true", .bool(true))
            case UInt8(ascii: "f"): return try word("false", .bool(false))
            case UInt8(ascii: "n"): return try word("null", .nilValue)
            default:
                return try number()
            }
        }

        mutating func word(_ w: String, _ v: Value) throws -> Value {
            let bytes = Array(w.utf8)
            guard i + bytes.count <= b.count, Array(b[i..<i + bytes.count]) == bytes else { throw fail("expected a value, found \(found())") }
            i += bytes.count
            return v
        }

        mutating func number() throws -> Value {
            let start = i
            if i < b.count && b[i] == UInt8(ascii: "-") { i += 1 }
            var isFloat = false
            while i < b.count {
                let c = b[i]
                if c >= 48 && c <= 57 { i += 1 }
                else if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") || ((c == UInt8(ascii: "+") || c == UInt8(ascii: "-")) && isFloat) { isFloat = true; i += 1 }
                else { break }
            }
            let text = String(decoding: b[start..<i], as: UTF8.self)
            if text.isEmpty || text == "-" { i = start; throw fail("expected a value, found \(found())") }
            if !isFloat, let v = Int(text) { return .int(v) }
            guard let d = Double(text) else { throw fail("invalid number '\(text)'") }
            return .float(d)
        }

        mutating func string() throws -> String {
            i += 1
            var out: [UInt8] = []
            while i < b.count {
                let c = b[i]
                if c == UInt8(ascii: "\"") { i += 1; return String(decoding: out, as: UTF8.self) }
                if c == UInt8(ascii: "\\") {
                    i += 1
                    guard i < b.count else { break }
                    switch b[i] {
                    case UInt8(ascii: "n"): out.append(10)
                    case UInt8(ascii: "t"): out.append(9)
                    case UInt8(ascii: "r"): out.append(13)
                    case UInt8(ascii: "b"): out.append(8)
                    case UInt8(ascii: "f"): out.append(12)
                    case UInt8(ascii: "/"), UInt8(ascii: "\\"), UInt8(ascii: "\""): out.append(b[i])
                    case UInt8(ascii: "u"):
                        guard i + 4 < b.count, var code = UInt32(String(decoding: b[i + 1...i + 4], as: UTF8.self), radix: 16) else {
                            throw fail("invalid \\u escape")
                        }
                        i += 4
                        if code >= 0xD800 && code < 0xDC00, i + 6 < b.count, b[i + 1] == UInt8(ascii: "\\"), b[i + 2] == UInt8(ascii: "u"),
                           let low = UInt32(String(decoding: b[i + 3...i + 6], as: UTF8.self), radix: 16), low >= 0xDC00 && low < 0xE000 {
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                            i += 6
                        }
                        out.append(contentsOf: Array(String(Character(Unicode.Scalar(code) ?? "\u{FFFD}")).utf8))
                    default: throw fail("invalid escape '\\\(String(decoding: [b[i]], as: UTF8.self))'")
                    }
                    i += 1
                    continue
                }
                if c < 0x20 { throw fail("control character in a string") }
                out.append(c)
                i += 1
            }
            throw fail("unterminated string")
        }
    }

    static func decode(_ text: String, call: BuiltinCall) throws -> Value {
        var d = Decoder(b: Array(text.utf8), call: call)
        let v = try d.value()
        d.skip()
        if d.i < d.b.count { throw d.fail("unexpected \(d.found()) after the value") }
        return v
    }
}

extension Stdlib {
    /// A value as one line of JSON (what `json.encode` gives), for hosts that log events.
    public static func jsonLine(_ v: Value, interpreter: Interpreter) -> String {
        var seen = Set<ObjectIdentifier>()
        let call = BuiltinCall(name: "json.encode", interpreter: interpreter)
        return (try? JSON.encode(v, indent: 0, call: call, seen: &seen)) ?? "{}"
    }

    static func installJSON(_ i: Interpreter) {
        i.define(namespace: "json", [
            ("encode", i.makeBuiltin("json.encode", parameters: ["value", "indent"], required: 1) { call in
                var seen = Set<ObjectIdentifier>()
                let indent = call.count > 1 && !call[1].isNil ? try call.int(1) : 0
                return .str(try JSON.encode(call[0], indent: indent, call: call, seen: &seen))
            }),
            ("decode", i.makeBuiltin("json.decode", parameters: ["text"]) { call in
                try JSON.decode(try call.string(0), call: call)
            }),
        ])
    }

    static func installMath(_ i: Interpreter) {
        func unary(_ name: String, _ f: @escaping (Double) -> Double, keepInt: Bool = false) -> (String, Value) {
            (name, i.makeBuiltin("math.\(name)", parameters: ["x"]) { call in
                if keepInt, case .int = call[0] { return call[0] }
                let r = f(try call.number(0))
                if keepInt, r.isFinite, abs(r) < 9.2e18 { return .int(Int(r)) }
                return .float(r)
            })
        }
        func extreme(_ name: String, _ better: @escaping (Int) -> Bool) -> (String, Value) {
            (name, i.makeBuiltin("math.\(name)", parameters: ["values"], required: 1, variadic: true) { call in
                var items = call.args
                if items.count == 1, case .list(let l) = items[0] { items = l.items }
                guard var best = items.first else { throw call.error("needs at least one value", kind: "value") }
                for x in items.dropFirst() {
                    do { if better(try Value.order(x, best)) { best = x } } catch {
                        throw call.error("cannot compare \(x.typeName) and \(best.typeName)")
                    }
                }
                return best
            })
        }
        i.define(namespace: "math", [
            extreme("min") { $0 < 0 },
            extreme("max") { $0 > 0 },
            ("abs", i.makeBuiltin("math.abs", parameters: ["x"]) { call in
                switch call[0] {
                case .int(let v):
                    guard v != Int.min else { throw call.error("integer overflow", kind: "arithmetic") }
                    return .int(abs(v))
                case .float(let f): return .float(abs(f))
                case .duration(let d): return .duration(abs(d))
                default: throw call.typeError("a number", at: 0)
                }
            }),
            unary("floor", { $0.rounded(.down) }, keepInt: true),
            unary("ceil", { $0.rounded(.up) }, keepInt: true),
            ("round", i.makeBuiltin("math.round", parameters: ["x", "digits"], required: 1) { call in
                if call.count > 1 {
                    let digits = try call.int(1)
                    let scale = pow(10.0, Double(digits))
                    return .float((try call.number(0) * scale).rounded(.toNearestOrAwayFromZero) / scale)
                }
                if case .int = call[0] { return call[0] }
                let r = try call.number(0).rounded(.toNearestOrAwayFromZero)
                guard r.isFinite, abs(r) < 9.2e18 else { throw call.error("cannot round \(Printer.formatFloat(r)) to an int", kind: "value") }
                return .int(Int(r))
            }),
            ("sqrt", i.makeBuiltin("math.sqrt", parameters: ["x"]) { call in
                let x = try call.number(0)
                guard x >= 0 else { throw call.error("cannot take the square root of a negative number (\(Printer.display(call[0])))", kind: "value") }
                return .float(x.squareRoot())
            }),
            ("pow", i.makeBuiltin("math.pow", parameters: ["base", "exponent"]) { call in
                if case .int(let b) = call[0], case .int(let e) = call[1], e >= 0 {
                    var result = 1, base = b, exp = e
                    while exp > 0 {
                        if exp & 1 == 1 {
                            let (r, o) = result.multipliedReportingOverflow(by: base)
                            if o { throw call.error("integer overflow: the result does not fit in 64 bits", kind: "arithmetic") }
                            result = r
                        }
                        exp >>= 1
                        if exp > 0 {
                            let (s, o) = base.multipliedReportingOverflow(by: base)
                            if o { throw call.error("integer overflow: the result does not fit in 64 bits", kind: "arithmetic") }
                            base = s
                        }
                    }
                    return .int(result)
                }
                return .float(pow(try call.number(0), try call.number(1)))
            }),
            ("pi", .float(Double.pi)),
            ("inf", .float(Double.infinity)),
        ])
    }
}
