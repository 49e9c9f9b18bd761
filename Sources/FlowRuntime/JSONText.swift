/// Values as JSON text, in two dialects:
/// - plain (`json.encode` / `json.decode`): what other programs read; durations become
///   their text, errors `{kind, message}`, and only JSON's own types come back;
/// - tagged (the store's): every value that crosses a run's log comes back as it was:
///   floats keep their point, and maps with non-string keys, durations, errors and
///   non-finite floats are objects with one `$tag` key. A value that cannot be written
///   down (a function, a channel, a task) becomes `{"$opaque": type}`: decoding one yields
///   nil and sets `Decoded.opaque`, so the runtime knows not to trust it on replay.
///
/// Key order is kept both ways (maps keep insertion order), and the decoder reports the
/// line and column of bad input.
public enum JSONText {
    public struct Failure: Error, Sendable { public let message: String }

    public static func encode(_ v: Value, indent: Int = 0, tagged: Bool = false) throws(Failure) -> String {
        var e = Encoder(indent: indent, tagged: tagged)
        try e.value(v, level: 0)
        return e.out
    }

    public struct Decoded { public var value: Value; public var opaque: Bool }

    public static func decode(_ text: String, tagged: Bool = false) throws(Failure) -> Decoded {
        var d = Decoder(b: Array(text.utf8), tagged: tagged)
        let v = try d.value()
        d.skip()
        if d.i < d.b.count { throw d.fail("unexpected \(d.found()) after the value") }
        return Decoded(value: v, opaque: d.opaque)
    }

    public static func quote(_ s: String) -> String {
        var out: [UInt8] = []
        quote(s, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static let hex = Array("0123456789abcdef".utf8)

    /// Appends `s` as a JSON string: runs of plain bytes are copied whole.
    static func quote(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { bytes in
            var start = 0
            for i in 0..<bytes.count {
                let c = bytes[i]
                guard c < 0x20 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") else { continue }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<i]))
                start = i + 1
                out.append(UInt8(ascii: "\\"))
                switch c {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(c)
                case 10: out.append(UInt8(ascii: "n"))
                case 13: out.append(UInt8(ascii: "r"))
                case 9: out.append(UInt8(ascii: "t"))
                default:
                    out.append(contentsOf: Array("u00".utf8))
                    out.append(hex[Int(c >> 4)])
                    out.append(hex[Int(c & 15)])
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<bytes.count]))
        }
        out.append(UInt8(ascii: "\""))
    }

    struct Encoder {
        let indent: Int
        let tagged: Bool
        var bytes: [UInt8] = []
        var seen = Set<ObjectIdentifier>()

        init(indent: Int, tagged: Bool) {
            self.indent = indent
            self.tagged = tagged
            bytes.reserveCapacity(128)
        }

        var out: String { String(decoding: bytes, as: UTF8.self) }

        mutating func put(_ s: StaticString) {
            s.withUTF8Buffer { bytes.append(contentsOf: $0) }
        }

        mutating func put(_ s: String) {
            var s = s
            s.withUTF8 { bytes.append(contentsOf: $0) }
        }

        mutating func newline(_ level: Int) {
            guard indent > 0 else { return }
            bytes.append(10)
            bytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: indent * level))
        }

        /// `[items…]` with the encoder's layout.
        mutating func array<C: Collection>(_ items: C, level: Int, _ each: (inout Encoder, C.Element) throws(Failure) -> Void) throws(Failure) {
            if items.isEmpty { put("[]"); return }
            put("[")
            var first = true
            for x in items {
                if !first { put(",") }
                first = false
                newline(level + 1)
                try each(&self, x)
            }
            newline(level)
            put("]")
        }

        mutating func tag(_ name: StaticString, level: Int, _ body: (inout Encoder) throws(Failure) -> Void) throws(Failure) {
            put("{\"")
            put(name)
            put(indent > 0 ? "\": " : "\":")
            try body(&self)
            put("}")
        }

        mutating func value(_ v: Value, level: Int) throws(Failure) {
            switch v {
            case .nilValue: put("null")
            case .bool(let b): put(b ? "true" : "false")
            case .int(let i): put(String(i))
            case .float(let f):
                if f.isFinite { put(f.description); return }
                guard tagged else { throw Failure(message: "cannot encode \(Printer.formatFloat(f)) as JSON") }
                try tag("$float", level: level) { e throws(Failure) in e.put(f.isNaN ? "\"nan\"" : f > 0 ? "\"inf\"" : "\"-inf\"") }
            case .duration(let d):
                if tagged { try tag("$duration", level: level) { e throws(Failure) in e.put(String(d)) } } else { quote(Printer.formatDuration(d), into: &bytes) }
            case .string(let s): quote(s.value, into: &bytes)
            case .list(let l):
                let id = ObjectIdentifier(l)
                guard seen.insert(id).inserted else { throw Failure(message: "cannot encode a list that contains itself") }
                defer { seen.remove(id) }
                try array(l.items, level: level) { e, x throws(Failure) in try e.value(x, level: level + 1) }
            case .map(let m):
                let id = ObjectIdentifier(m)
                guard seen.insert(id).inserted else { throw Failure(message: "cannot encode a map that contains itself") }
                defer { seen.remove(id) }
                let entries = m.entries
                if tagged && entries.contains(where: { e in
                    guard case .string(let s) = e.key else { return true }
                    return s.value.utf8.first == UInt8(ascii: "$")
                }) {
                    // Keys that JSON objects cannot hold: pairs.
                    try tag("$map", level: level) { e throws(Failure) in
                        try e.array(entries, level: level) { e, entry throws(Failure) in
                            e.put("[")
                            try e.value(entry.key, level: level + 1)
                            e.put(",")
                            try e.value(entry.value, level: level + 1)
                            e.put("]")
                        }
                    }
                    return
                }
                if entries.isEmpty { put("{}"); return }
                put("{")
                var first = true
                for entry in entries {
                    if !first { put(",") }
                    first = false
                    newline(level + 1)
                    if case .string(let s) = entry.key { quote(s.value, into: &bytes) } else { quote(Printer.display(entry.key), into: &bytes) }
                    put(indent > 0 ? ": " : ":")
                    try value(entry.value, level: level + 1)
                }
                newline(level)
                put("}")
            case .error(let e):
                if !tagged {
                    put("{\"kind\":"); quote(e.kind, into: &bytes); put(",\"message\":"); quote(e.message, into: &bytes); put("}")
                    return
                }
                try tag("$error", level: level) { enc throws(Failure) in
                    enc.put("{\"kind\":"); quote(e.kind, into: &enc.bytes)
                    enc.put(",\"message\":"); quote(e.message, into: &enc.bytes)
                    if !e.data.isNil { enc.put(",\"data\":"); try enc.value(e.data, level: level + 1) }
                    if let p = e.path { enc.put(",\"path\":"); quote(p, into: &enc.bytes) }
                    enc.put("}")
                }
            default:
                guard tagged else { throw Failure(message: "cannot encode a value of type \(v.typeName) as JSON") }
                try tag("$opaque", level: level) { e throws(Failure) in quote(v.typeName, into: &e.bytes) }
            }
        }
    }

    struct Decoder {
        let b: [UInt8]
        let tagged: Bool
        var i = 0
        var depth = 0
        var opaque = false

        init(b: [UInt8], tagged: Bool) { self.b = b; self.tagged = tagged }

        func fail(_ message: String) -> Failure {
            // Line and column in the JSON text, which users can find.
            var line = 1, column = 1
            for k in 0..<min(i, b.count) { if b[k] == 10 { line += 1; column = 1 } else if b[k] & 0xC0 != 0x80 { column += 1 } }
            return Failure(message: "invalid JSON at line \(line), column \(column): \(message)")
        }

        mutating func skip() { while i < b.count, b[i] == 32 || b[i] == 9 || b[i] == 10 || b[i] == 13 { i += 1 } }

        func found() -> String {
            i < b.count ? "'\(String(decoding: [b[i]], as: UTF8.self))'" : "end of text"
        }

        mutating func value() throws(Failure) -> Value {
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
                    if tagged && m.count == 0 && k.hasPrefix("$") { return try tagged(k) }
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

        /// The rest of `{"$tag": …}`, after the colon.
        mutating func tagged(_ tag: String) throws(Failure) -> Value {
            let inner = try value()
            skip()
            guard i < b.count, b[i] == UInt8(ascii: "}") else { throw fail("expected '}' closing \(tag), found \(found())") }
            i += 1
            switch (tag, inner) {
            case ("$duration", .int(let ns)): return .duration(ns)
            case ("$float", .string(let s)):
                switch s.value {
                case "nan": return .float(.nan)
                case "inf": return .float(.infinity)
                case "-inf": return .float(-.infinity)
                default: throw fail("unknown $float '\(s.value)'")
                }
            case ("$map", .list(let pairs)):
                let m = MapBox()
                for p in pairs.items {
                    guard case .list(let kv) = p, kv.count == 2 else { throw fail("a $map holds [key, value] pairs") }
                    m.set(kv[0], kv[1])
                }
                return .map(m)
            case ("$error", .map(let fields)):
                let e = ErrorBox(kind: fields.get("kind")?.stringValue ?? "error",
                                 message: fields.get("message")?.stringValue ?? "",
                                 data: fields.get("data") ?? .nilValue)
                e.path = fields.get("path")?.stringValue
                return .error(e)
            case ("$opaque", _):
                opaque = true
                return .nilValue
            default:
                throw fail("unknown tag \(tag) with a \(inner.typeName)")
            }
        }

        mutating func word(_ w: String, _ v: Value) throws(Failure) -> Value {
            let bytes = Array(w.utf8)
            guard i + bytes.count <= b.count, Array(b[i..<i + bytes.count]) == bytes else { throw fail("expected a value, found \(found())") }
            i += bytes.count
            return v
        }

        mutating func number() throws(Failure) -> Value {
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

        mutating func string() throws(Failure) -> String {
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
}

extension JSONText {
    /// A list of strings as a JSON array.
    public static func quoteList(_ items: [String]) -> String {
        "[" + items.map { quote($0) }.joined(separator: ",") + "]"
    }

    /// A JSON object of strings, keys sorted.
    public static func quoteMap(_ items: [String: String]) -> String {
        "{" + items.sorted { $0.key < $1.key }.map { quote($0.key) + ":" + quote($0.value) }.joined(separator: ",") + "}"
    }

    /// The strings of an object `quoteMap` wrote; nil if `text` is not an object of strings.
    public static func unquoteMap(_ text: String) -> [String: String]? {
        guard case .map(let box) = try? decode(text).value else { return nil }
        var items: [String: String] = [:]
        for e in box.entries {
            guard case .string(let k) = e.key, case .string(let v) = e.value else { return nil }
            items[k.value] = v.value
        }
        return items
    }

    /// The strings of a list `quoteList` wrote; nil if `text` is not a list of strings.
    public static func unquoteList(_ text: String) -> [String]? {
        guard case .list(let box) = try? decode(text).value else { return nil }
        var items: [String] = []
        for v in box.items {
            guard case .string(let s) = v else { return nil }
            items.append(s.value)
        }
        return items
    }
}
