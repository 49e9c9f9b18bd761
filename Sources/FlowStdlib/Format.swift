import FlowRuntime

/// `"{} costs {:.2f}".format(item, price)`: `{}` shows a value as `print` does; a spec
/// after ':' is [fill][<>^][0][width][.precision][d f x s].
enum Format {
    static func apply(_ template: String, _ values: [Value], _ call: BuiltinCall) throws -> String {
        var out = ""
        var next = 0
        var chars = Array(template)[...]
        while let c = chars.first {
            chars = chars.dropFirst()
            if c == "{" && chars.first == "{" { out.append("{"); chars = chars.dropFirst(); continue }
            if c == "}" && chars.first == "}" { out.append("}"); chars = chars.dropFirst(); continue }
            guard c == "{" else { out.append(c); continue }
            guard let close = chars.firstIndex(of: "}") else { throw call.error("unclosed '{' in the format string", kind: "value") }
            let field = String(chars[..<close])
            chars = chars[chars.index(after: close)...]
            guard next < values.count else {
                throw call.error("the format string has more '{}' than the \(values.count) value\(values.count == 1 ? "" : "s") given", kind: "value")
            }
            let spec = field.hasPrefix(":") ? String(field.dropFirst()) : field
            out += try render(values[next], spec: spec, call)
            next += 1
        }
        return out
    }

    static func render(_ v: Value, spec: String, _ call: BuiltinCall) throws -> String {
        var s = Array(spec)[...]
        var fill: Character = " "
        var align: Character? = nil
        if s.count >= 2, "<>^".contains(s[s.index(after: s.startIndex)]) { fill = s.first!; align = s[s.index(after: s.startIndex)]; s = s.dropFirst(2) }
        else if let f = s.first, "<>^".contains(f) { align = f; s = s.dropFirst() }
        if s.first == "0" && align == nil { fill = "0"; align = "="; s = s.dropFirst() }
        var width = 0
        while let d = s.first, let n = d.wholeNumberValue { width = width * 10 + n; s = s.dropFirst() }
        var precision: Int? = nil
        if s.first == "." {
            s = s.dropFirst()
            var p = 0
            while let d = s.first, let n = d.wholeNumberValue { p = p * 10 + n; s = s.dropFirst() }
            precision = p
        }
        let kind = s.first
        if s.count > 1 { throw call.error("invalid format spec '\(spec)'", kind: "value") }
        var text: String
        switch kind {
        case "f":
            guard let x = v.numberValue else { throw call.error("'{:f}' needs a number, found \(v.typeName)") }
            text = fixed(x, precision ?? 6)
        case "d":
            guard case .int(let x) = v else { throw call.error("'{:d}' needs an int, found \(v.typeName)") }
            text = String(x)
        case "x":
            guard case .int(let x) = v else { throw call.error("'{:x}' needs an int, found \(v.typeName)") }
            text = String(x, radix: 16)
        case "s", nil:
            if let p = precision, kind == nil, let x = v.numberValue, v.intValue == nil { text = fixed(x, p) }
            else {
                text = Printer.display(v)
                if let p = precision, kind == "s" { text = String(text.prefix(p)) }
            }
        default:
            throw call.error("unknown format type '\(kind!)' (use d, f, x or s)", kind: "value")
        }
        let pad = max(0, width - text.count)
        if pad == 0 { return text }
        let padding = String(repeating: fill, count: pad)
        switch align ?? (v.numberValue != nil ? ">" : "<") {
        case "<": return text + padding
        case "^": return String(repeating: fill, count: pad / 2) + text + String(repeating: fill, count: pad - pad / 2)
        case "=":
            if text.hasPrefix("-") { return "-" + padding + text.dropFirst() }
            return padding + text
        default: return padding + text
        }
    }

    /// Fixed-point text with `digits` decimals, rounding half away from zero.
    static func fixed(_ x: Double, _ digits: Int) -> String {
        if !x.isFinite { return Printer.formatFloat(x) }
        let negative = x < 0
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (abs(x) * scale).rounded(.toNearestOrAwayFromZero)
        guard scaled < 9e18 else { return Printer.formatFloat(x) }
        let n = Int(scaled)
        var whole = String(n / Int(scale))
        var frac = String(n % Int(scale))
        if digits > 0 { frac = String(repeating: "0", count: digits - frac.count) + frac }
        if negative && n != 0 { whole = "-" + whole }
        return digits > 0 ? whole + "." + frac : whole
    }
}
