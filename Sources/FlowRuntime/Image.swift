import FlowSyntax

/// The image: every top-level definition made in the REPL (or loaded into it), by name,
/// with all its versions — source, time, origin. A call always reaches the current
/// version through its global cell; a redefinition is one cell update, checked first.
public final class Image: @unchecked Sendable {
    public struct Version: @unchecked Sendable {
        public let number: Int
        /// The definition's source text.
        public let source: String
        /// Wall-clock seconds.
        public let time: Double
        /// Where it came from: "repl", a file path, "rollback of v3".
        public let origin: String
        /// fn, flow, type, let or import.
        public let kind: String
        let value: Value
        let info: GlobalInfo
    }

    @exclusivity(unchecked) var table: [String: [Version]] = [:]
    @exclusivity(unchecked) var order: [String] = []

    /// Names in the order they were first defined.
    public var names: [String] { order.filter { !(table[$0] ?? []).isEmpty } }

    /// A definition's versions, oldest first.
    public func versions(of name: String) -> [Version] { table[name] ?? [] }

    /// Versions recorded before their code ran take the values their cells have now.
    func fillValues(from module: Module) {
        for (name, versions) in table {
            guard let last = versions.last, last.value.isNil, let cell = module.globals[name], !cell.value.isNil else { continue }
            table[name]![versions.count - 1] = Version(number: last.number, source: last.source, time: last.time,
                                                      origin: last.origin, kind: last.kind, value: cell.value, info: last.info)
        }
    }

    func add(_ name: String, source: String, time: Double, origin: String, kind: String, value: Value, info: GlobalInfo) {
        if table[name] == nil { order.append(name) }
        let number = (table[name]?.last?.number ?? 0) + 1
        table[name, default: []].append(Version(number: number, source: source, time: time, origin: origin,
                                                kind: kind, value: value, info: info))
    }
}
