import FlowSyntax

/// How values read as text: `display` is what `print` and interpolation show (strings
/// bare), `repr` what a REPL or an error shows (strings quoted). Both stop at cycles.
public enum Printer {
    public static func display(_ v: Value) -> String {
        if case .string(let s) = v { return s.value }
        return repr(v)
    }

    /// The readable form; with `limit`, long output is cut with '…'.
    public static func repr(_ v: Value, limit: Int? = nil) -> String {
        var out = ""
        var visiting = Set<ObjectIdentifier>()
        write(v, into: &out, visiting: &visiting, limit: limit ?? Int.max)
        if let l = limit, out.count > l { return String(out.prefix(l)) + "…" }
        return out
    }

    static func write(_ v: Value, into out: inout String, visiting: inout Set<ObjectIdentifier>, limit: Int) {
        if out.utf8.count > limit { return }
        switch v {
        case .nilValue: out += "nil"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .float(let f): out += formatFloat(f)
        case .duration(let d): out += formatDuration(d)
        case .string(let s): out += quote(s.value)
        case .list(let l):
            let id = ObjectIdentifier(l)
            if visiting.contains(id) { out += "[…]"; return }
            visiting.insert(id)
            out += "["
            for (i, x) in l.items.enumerated() {
                if i > 0 { out += ", " }
                if out.utf8.count > limit { break }
                write(x, into: &out, visiting: &visiting, limit: limit)
            }
            out += "]"
            visiting.remove(id)
        case .map(let m):
            let id = ObjectIdentifier(m)
            if visiting.contains(id) { out += "{…}"; return }
            visiting.insert(id)
            if let t = m.typeName { out += t + " " }
            out += "{"
            for (i, e) in m.entries.enumerated() {
                let k = e.key, x = e.value
                if i > 0 { out += ", " }
                if out.utf8.count > limit { break }
                if case .string(let s) = k, isIdentifier(s.value) { out += s.value } else {
                    out += "["
                    write(k, into: &out, visiting: &visiting, limit: limit)
                    out += "]"
                }
                out += ": "
                write(x, into: &out, visiting: &visiting, limit: limit)
            }
            out += "}"
            visiting.remove(id)
        case .closure(let c): out += c.proto.name == "<lambda>" ? "<fn>" : "<fn \(c.proto.name)>"
        case .builtin(let b): out += "<builtin \(b.name)>"
        case .error(let e): out += "<error \(e.kind): \(e.message)>"
        case .object(let o): out += o.description
        case .cell(let c): write(c.value, into: &out, visiting: &visiting, limit: limit)
        }
    }

    /// Whether a map key prints bare (`{name: 1}`) rather than quoted.
    public static func isIdentifierLike(_ s: String) -> Bool { isIdentifier(s) }

    static func isIdentifier(_ s: String) -> Bool {
        guard let f = s.utf8.first, (f >= 97 && f <= 122) || (f >= 65 && f <= 90) || f == 95 else { return false }
        return s.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 65 && $0 <= 90) || $0 == 95 || ($0 >= 48 && $0 <= 57) }
    }

    /// A string as a Flow literal (what `repr` shows).
    public static func quote(_ s: String) -> String { SourcePrinter.quote(s) }

    public static func formatFloat(_ f: Double) -> String {
        if f.isNaN { return "nan" }
        if f.isInfinite { return f < 0 ? "-inf" : "inf" }
        return f.description
    }

    /// `250ms`, `1.5s`, `1m30s`, `2h`.
    public static func formatDuration(_ ns: Int) -> String {
        if ns == 0 { return "0s" }
        if ns < 0 { return "-" + formatDuration(ns == Int.min ? Int.max : -ns) }
        if ns < 1_000 { return "\(ns)ns" }
        if ns < 1_000_000 { return trim(Double(ns) / 1e3) + "us" }
        if ns < 1_000_000_000 { return trim(Double(ns) / 1e6) + "ms" }
        var out = ""
        var rest = ns
        let day = 86_400_000_000_000, hour = 3_600_000_000_000, minute = 60_000_000_000
        if rest >= day && rest % hour == 0 { out += "\(rest / day)d"; rest %= day }
        if rest >= hour { out += "\(rest / hour)h"; rest %= hour }
        if rest >= minute { out += "\(rest / minute)m"; rest %= minute }
        if rest > 0 { out += trim(Double(rest) / 1e9) + "s" }
        return out
    }

    static func trim(_ d: Double) -> String {
        let rounded = (d * 1000).rounded() / 1000
        if rounded == rounded.rounded() { return String(Int(rounded)) }
        return String(rounded)
    }
}
