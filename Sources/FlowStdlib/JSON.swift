import FlowRuntime
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Stdlib {
    /// A value as one line of JSON (what `json.encode` gives), for hosts that log events.
    public static func jsonLine(_ v: Value, interpreter: Interpreter) -> String {
        (try? JSONText.encode(v)) ?? "{}"
    }

    static func installJSON(_ i: Interpreter) {
        i.define(namespace: "json", [
            ("encode", i.makeBuiltin("json.encode", parameters: ["value", "indent"], required: 1) { call in
                let indent = call.count > 1 && !call[1].isNil ? try call.int(1) : 0
                do { return .str(try JSONText.encode(call[0], indent: indent)) } catch let e as JSONText.Failure {
                    throw call.error(e.message, kind: "value")
                }
            }),
            ("decode", i.makeBuiltin("json.decode", parameters: ["text"]) { call in
                let text = try call.string(0)
                do { return try JSONText.decode(text).value } catch let e as JSONText.Failure {
                    throw call.error(e.message, kind: "value")
                }
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
