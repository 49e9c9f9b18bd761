import FlowSyntax

/// `$`: the current run's state.
final class StateNode: Node {
    let range: SourceRange
    init(_ range: SourceRange) { self.range = range }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        guard let run = Run.current else { throw StateNode.noRun(range) }
        return .map(run.state)
    }
    static func noRun(_ range: SourceRange) -> FlowError {
        FlowError(kind: ErrorKind.name, message: "'$' is the state of a run: it exists only while a flow runs", at: range)
    }
}

/// `$.a.b[i] = v`: sets a value in the run's state and emits a `state` event with the
/// path, the old value and the new one.
final class StateAssignNode: Node {
    enum Part {
        case name(StringBox)
        case index(Node)
    }
    let parts: [Part]
    let value: Node
    let range: SourceRange
    init(parts: [Part], value: Node, range: SourceRange) {
        self.parts = parts; self.value = value; self.range = range
    }

    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        guard let run = Run.current else { throw StateNode.noRun(range) }
        let v = try value.eval(fp, m)
        var container = Value.map(run.state)
        var path = "$"
        var keys: [Value] = []
        for (i, part) in parts.enumerated() {
            let key: Value
            switch part {
            case .name(let box):
                key = .string(box)
                path += ".\(box.value)"
            case .index(let n):
                key = try n.eval(fp, m)
                path += "[\(Printer.repr(key))]"
            }
            if i == parts.count - 1 {
                let old: Value
                switch container {
                case .map(let map):
                    old = map.get(key) ?? .nilValue
                    guard map.set(key, v) else {
                        throw m.error(ErrorKind.type, "a map key must be nil, a bool, a number, a duration or a string, found \(key.typeName)", at: range)
                    }
                case .list(let l):
                    let k = try Access.listIndex(l.count, key, m, range, what: "list")
                    old = l[k]
                    l[k] = v
                default:
                    throw m.error(ErrorKind.type, "cannot set \(path): the value above it is \(container.typeName), not a map or list", at: range)
                }
                keys.append(key)
                // `keys` lets a reader of the log (flow history) rebuild the state.
                let k = m.keys
                try m.emitFields(run, k.state, k.stateChange) {
                    try m.push(.str(path), range)
                    try m.push(.list(keys), range)
                    try m.push(old, range)
                    try m.push(v, range)
                }
                return .nilValue
            }
            keys.append(key)
            switch container {
            case .map(let map):
                guard let next = map.get(key) else {
                    throw m.error(ErrorKind.key, "state has no \(path); set it before setting inside it", at: range)
                }
                container = next
            default:
                container = try Access.index(container, key, m, range)
            }
        }
        return .nilValue
    }
}
