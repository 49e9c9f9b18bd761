import FlowRuntime

extension Stdlib {
    /// Sorts values with Flow's ordering; errors from comparing mixed types surface.
    static func sorted(_ items: [Value], keys: [Value]? = nil, call: BuiltinCall) throws -> [Value] {
        var failure: FlowError? = nil
        let k = keys ?? items
        let order = Array(items.indices).sorted { a, b in
            if failure != nil { return false }
            do { return try Value.order(k[a], k[b]) < 0 } catch {
                failure = call.error("cannot order \(k[a].typeName) and \(k[b].typeName)")
                return false
            }
        }
        if let f = failure { throw f }
        return order.map { items[$0] }
    }

    static func installListMethods(_ i: Interpreter) {
        i.define(changing: "push", on: .list, parameters: ["item"]) { call in
            var item = call.take(1)
            try call.withList(0) { $0.append(Value.take(&item)) }
        }
        i.define(method: "pop", on: .list, parameters: []) { call in
            let l = try call.list(0)
            guard l.count > 0 else { throw call.error("cannot pop from an empty list", kind: "index") }
            return l.removeLast()
        }
        i.define(changing: "insert", on: .list, parameters: ["index", "item"]) { call in
            let l = try call.list(0)
            var k = try call.int(1)
            if k < 0 { k += l.count }
            guard k >= 0 && k <= l.count else {
                throw call.error("index \(try call.int(1)) is out of range for inserting into a list of length \(l.count)", kind: "index")
            }
            l.insert(call.take(2), at: k)
        }
        // Methods that call back have an async twin: in async code a callback that
        // suspends (a node, a sleep) is awaited, so cancellation reaches it.
        i.define(method: "map", on: .list, parameters: ["function"], { call in
            let l = try call.list(0)
            var out: [Value] = []
            out.reserveCapacity(l.count)
            for x in l.items { out.append(try call.call(call[1], [x])) }
            return .list(out)
        }, async: { call in
            var out: [Value] = []
            for x in try call.list(0).items { out.append(try await call.callAsync(call[1], [x])) }
            return .list(out)
        })
        i.define(method: "filter", on: .list, parameters: ["predicate"], { call in
            .list(try call.list(0).items.filter { try call.call(call[1], [$0]).isTruthy })
        }, async: { call in
            var out: [Value] = []
            for x in try call.list(0).items where try await call.callAsync(call[1], [x]).isTruthy { out.append(x) }
            return .list(out)
        })
        i.define(method: "reduce", on: .list, parameters: ["function", "initial"], required: 1, { call in
            var (acc, items) = try reduceStart(call)
            for x in items { acc = try call.call(call[1], [acc, x]) }
            return acc
        }, async: { call in
            var (acc, items) = try reduceStart(call)
            for x in items { acc = try await call.callAsync(call[1], [acc, x]) }
            return acc
        })
        i.define(method: "sort", on: .list, parameters: ["key"], required: 0, { call in
            let l = try call.list(0)
            var keys: [Value]? = nil
            if call.count > 1 && !call[1].isNil { keys = try l.items.map { try call.call(call[1], [$0]) } }
            return .list(try sorted(l.items, keys: keys, call: call))
        }, async: { call in
            let l = try call.list(0)
            var keys: [Value]? = nil
            if call.count > 1 && !call[1].isNil {
                var k: [Value] = []
                for x in l.items { k.append(try await call.callAsync(call[1], [x])) }
                keys = k
            }
            return .list(try sorted(l.items, keys: keys, call: call))
        })
        i.define(method: "slice", on: .list, parameters: ["start", "end"], required: 1) { call in
            let l = try call.list(0)
            let (a, b) = try bounds(call, count: l.count)
            return .list(Array(l.items[a..<b]))
        }
        i.define(method: "contains", on: .list, parameters: ["item"]) { call in
            .bool(try call.list(0).items.contains { $0 == call[1] })
        }
        i.define(method: "index_of", on: .list, parameters: ["item"]) { call in
            try call.list(0).items.firstIndex { $0 == call[1] }.map { .int($0) } ?? .nilValue
        }
        i.define(method: "join", on: .list, parameters: ["separator"], required: 0) { call in
            let sep = call.count > 1 ? try call.string(1) : ""
            return .str(try call.list(0).items.map { Printer.display($0) }.joined(separator: sep))
        }
        i.define(method: "reverse", on: .list, parameters: []) { call in .list(try call.list(0).items.reversed()) }
        i.define(method: "copy", on: .list, parameters: []) { call in .list(try call.list(0).items) }
    }

    /// The accumulator and the items left for `reduce`.
    static func reduceStart(_ call: BuiltinCall) throws -> (Value, ArraySlice<Value>) {
        var items = try call.list(0).items[...]
        if call.count > 2 { return (call[2], items) }
        guard let first = items.first else { throw call.error("cannot reduce an empty list without an initial value", kind: "value") }
        items = items.dropFirst()
        return (first, items)
    }

    /// `slice(start, end?)` bounds, Python style: negative counts from the end, clamped.
    static func bounds(_ call: BuiltinCall, count: Int) throws -> (Int, Int) {
        func clamp(_ v: Int) -> Int { let k = v < 0 ? count + v : v; return min(max(0, k), count) }
        let a = clamp(try call.int(1))
        let b = call.count > 2 && !call[2].isNil ? clamp(try call.int(2)) : count
        return (a, max(a, b))
    }

    static func installStringMethods(_ i: Interpreter) {
        i.define(method: "split", on: .string, parameters: ["separator"], required: 0) { call in
            let s = try call.string(0)
            if call.count < 2 || call[1].isNil {
                return .list(s.split(whereSeparator: { $0.isWhitespace }).map { Value.str(String($0)) })
            }
            let sep = try call.string(1)
            if sep.isEmpty { return .list(s.map { Value.str(String($0)) }) }
            var parts: [Value] = []
            var rest = Substring(s)
            while let r = rest.range(of: sep) {
                parts.append(.str(String(rest[..<r.lowerBound])))
                rest = rest[r.upperBound...]
            }
            parts.append(.str(String(rest)))
            return .list(parts)
        }
        i.define(method: "trim", on: .string, parameters: []) { call in .str(try call.string(0).trimmingWhitespace()) }
        i.define(method: "replace", on: .string, parameters: ["old", "new"]) { call in
            .str(try call.string(0).replacingOccurrences(try call.string(1), try call.string(2)))
        }
        i.define(method: "upper", on: .string, parameters: []) { call in .str(try call.string(0).uppercased()) }
        i.define(method: "lower", on: .string, parameters: []) { call in .str(try call.string(0).lowercased()) }
        i.define(method: "starts_with", on: .string, parameters: ["prefix"]) { call in .bool(try call.string(0).hasPrefix(try call.string(1))) }
        i.define(method: "ends_with", on: .string, parameters: ["suffix"]) { call in .bool(try call.string(0).hasSuffix(try call.string(1))) }
        i.define(method: "contains", on: .string, parameters: ["text"]) { call in
            let t = try call.string(1)
            let s = Substring(try call.string(0))
            return .bool(t.isEmpty || s.range(of: t) != nil)
        }
        i.define(method: "find", on: .string, parameters: ["text"]) { call in
            let s = Substring(try call.string(0))
            guard let r = s.range(of: try call.string(1)) else { return .nilValue }
            return .int(s.distance(from: s.startIndex, to: r.lowerBound))
        }
        i.define(method: "slice", on: .string, parameters: ["start", "end"], required: 1) { call in
            let chars = Array(try call.string(0))
            let (a, b) = try bounds(call, count: chars.count)
            return .str(String(chars[a..<b]))
        }
        i.define(method: "repeat", on: .string, parameters: ["count"]) { call in
            let n = try call.int(1)
            guard n >= 0 else { throw call.error("count must not be negative, found \(n)", kind: "value") }
            return .str(String(repeating: try call.string(0), count: n))
        }
        i.define(method: "format", on: .string, parameters: ["values"], required: 0, variadic: true) { call in
            .str(try Format.apply(try call.string(0), Array(call.args.dropFirst()), call))
        }
        i.define(method: "chars", on: .string, parameters: []) { call in .list(try call.string(0).map { Value.str(String($0)) }) }
    }

    static func installMapMethods(_ i: Interpreter) {
        i.define(method: "keys", on: .map, parameters: []) { call in .list(try call.map(0).keys) }
        i.define(method: "values", on: .map, parameters: []) { call in .list(try call.map(0).values) }
        i.define(method: "items", on: .map, parameters: []) { call in
            let m = try call.map(0)
            return .list(m.entries.map { Value.list([$0.key, $0.value]) })
        }
        i.define(method: "get", on: .map, parameters: ["key", "default"], required: 1) { call in
            let m = try call.map(0)
            return m.get(call[1]) ?? call[2]
        }
        i.define(method: "has", on: .map, parameters: ["key"]) { call in
            return .bool(try call.map(0).get(call[1]) != nil)
        }
        i.define(method: "remove", on: .map, parameters: ["key"]) { call in
            return try call.map(0).remove(call[1]) ?? .nilValue
        }
        i.define(method: "merge", on: .map, parameters: ["other"]) { call in
            let out = try call.map(0).copy()
            let other = try call.map(1)
            for e in other.entries { out.set(e.key, e.value) }
            return .map(out)
        }
        i.define(method: "copy", on: .map, parameters: []) { call in .map(try call.map(0).copy()) }
    }
}
