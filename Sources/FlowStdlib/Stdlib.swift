import FlowRuntime
import FlowSyntax
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The standard library: Swift builtins registered through the same public API a host
/// uses, plus the `Stdlib/*.flow` modules compiled into the binary.
public enum Stdlib {
    /// Configures a host's settings to see the embedded Flow modules, with the prelude.
    public static func configure(_ configuration: inout Configuration) {
        configuration.standardLibrary = EmbeddedStdlib.sources
        configuration.preludes = ["prelude"]
    }

    /// Registers every builtin on the engine's interpreter.
    public static func install(into engine: Engine) {
        let i = engine.interpreter
        installCore(i)
        installRuns(i)
        installListMethods(i)
        installStringMethods(i)
        installMapMethods(i)
        installJSON(i)
        installMath(i)
    }

    /// An engine with the standard library, ready to run scripts.
    public static func makeEngine(_ configuration: Configuration = Configuration()) -> Engine {
        var c = configuration
        if c.standardLibrary.isEmpty { configure(&c) }
        let engine = Engine(configuration: c)
        install(into: engine)
        return engine
    }

    static func installCore(_ i: Interpreter) {
        i.define("print", parameters: ["values"], required: 0, variadic: true) { call in
            call.interpreter.write(call.args.map { Printer.display($0) }.joined(separator: " ") + "\n")
            return .nilValue
        }
        i.define("len", parameters: ["value"]) { call in
            guard let n = call.length(0) else { throw call.typeError("a string, list or map", at: 0) }
            return .int(n)
        }
        i.define("type", parameters: ["value"]) { call in .str(call[0].typeName) }
        i.define("str", parameters: ["value"]) { call in .str(Printer.display(call[0])) }
        i.define("repr", parameters: ["value"]) { call in .str(Printer.repr(call[0])) }
        i.define("int", parameters: ["value"]) { call in
            switch call[0] {
            case .int: return call[0]
            case .bool(let b): return .int(b ? 1 : 0)
            case .float(let f):
                guard f.isFinite, abs(f) < 9.2e18 else { throw call.error("cannot convert \(Printer.formatFloat(f)) to an int", kind: "value") }
                return .int(Int(f))
            case .duration(let d): return .int(d)
            case .string(let s):
                let t = s.value.trimmingWhitespace().replacingOccurrences("_", "")
                if let v = Int(t) { return .int(v) }
                throw call.error("cannot convert \(Printer.quote(s.value)) to an int", kind: "value")
            default: throw call.typeError("a number, bool or string", at: 0)
            }
        }
        i.define("float", parameters: ["value"]) { call in
            switch call[0] {
            case .int(let v): return .float(Double(v))
            case .float: return call[0]
            case .duration(let d): return .float(Double(d) / 1e9)
            case .string(let s):
                if let v = Double(s.value.trimmingWhitespace()) { return .float(v) }
                throw call.error("cannot convert \(Printer.quote(s.value)) to a float", kind: "value")
            default: throw call.typeError("a number or string", at: 0)
            }
        }
        i.define("range", parameters: ["start", "stop", "step"], required: 1) { call in
            var start = 0, stop: Int, step = 1
            if call.count == 1 { stop = try call.int(0) } else {
                start = try call.int(0); stop = try call.int(1)
                if call.count > 2 { step = try call.int(2) }
            }
            guard step != 0 else { throw call.error("step must not be 0", kind: "value") }
            let n = step > 0 ? max(0, (stop - start + step - 1) / step) : max(0, (start - stop - step - 1) / -step)
            guard n <= 100_000_000 else { throw call.error("a range of \(n) items is too large (the limit is 100000000)", kind: "value") }
            var out: [Value] = []
            out.reserveCapacity(n)
            var x = start
            for _ in 0..<n { out.append(.int(x)); x += step }
            return .list(out)
        }
        i.define("assert", parameters: ["condition", "message"], required: 1) { call in
            if call[0].isTruthy { return .nilValue }
            let message = call.count > 1 ? Printer.display(call[1]) : "assertion failed"
            throw FlowError(kind: ErrorKind.assertion, message: message, at: call.range)
        }
        i.define("error", parameters: ["message", "kind", "data"], required: 1) { call in
            let kind = call.count > 1 && !call[1].isNil ? try call.string(1) : ErrorKind.user
            return .error(ErrorBox(kind: kind, message: Printer.display(call[0]), data: call[2]))
        }
        // Effects: recorded in a durable run, so a replay sees the same values.
        i.define("now", parameters: []) { call in
            let clock = call.interpreter.configuration.clock
            return try call.interpreter.effect("now") { .float(clock.wallTime()) }
        }
        i.define("random", parameters: ["low", "high"], required: 0) { call in
            if call.count == 0 { return try call.interpreter.effect("random") { .float(Double.random(in: 0..<1)) } }
            let low = try call.int(0), high = try call.int(1)
            guard low <= high else { throw call.error("needs low <= high, found \(low) > \(high)", kind: "value") }
            return try call.interpreter.effect("random") { .int(Int.random(in: low...high)) }
        }
        i.define("env", parameters: ["name", "default"], required: 1) { call in
            let name = try call.string(0)
            let fallback = call.count > 1 ? call[1] : .nilValue
            guard let environment = call.interpreter.configuration.environment else {
                throw call.error("this host does not let scripts read environment variables", kind: "permission")
            }
            return try call.interpreter.effect("env") { environment[name].map { .str($0) } ?? fallback }
        }
        i.define("monotonic", parameters: []) { call in .duration(call.withInterpreter { $0.monotonicNow }) }
        i.define("args", parameters: []) { call in .list(call.interpreter.configuration.arguments.map { Value.str($0) }) }
        i.defineWaiting("sleep", parameters: ["duration"]) { call in
            let ns: Int
            switch call[0] {
            case .duration(let d): ns = d
            case .int(let s): ns = s * 1_000_000_000
            case .float(let s): ns = Int(s * 1e9)
            default: throw call.typeError("a duration (like 250ms) or a number of seconds", at: 0)
            }
            guard ns >= 0 else { throw call.error("cannot sleep for a negative duration", kind: "value") }
            return call.interpreter.sleepWait(ns)
        }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }

    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = Substring(self)
        while let r = rest.range(of: target) {
            out += rest[..<r.lowerBound]
            out += replacement
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}

extension Substring {
    func range(of target: String) -> Range<Substring.Index>? {
        guard !target.isEmpty, let first = target.first else { return nil }
        var i = startIndex
        while i < endIndex {
            if self[i] == first, self[i...].hasPrefix(target) {
                return i..<index(i, offsetBy: target.count)
            }
            i = index(after: i)
        }
        return nil
    }
}
