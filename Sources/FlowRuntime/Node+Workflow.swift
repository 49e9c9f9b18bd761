import FlowSyntax

/// `node name(options) { body }`: asks the engine (`run_node` in Stdlib/engine.flow) to run
/// the body, passing `{name, path, options, run}`. The path is stable within a run —
/// `flow/name#k`, k counting earlier nodes of that name — because durable logs will be
/// keyed by it.
final class NodeNode: Node {
    let name: String
    let options: Node
    let body: Node
    let range: SourceRange
    init(name: String, options: Node, body: Node, range: SourceRange) {
        self.name = name; self.options = options; self.body = body; self.range = range
    }

    func prepare(_ fp: Frame, _ m: Interpreter) throws -> (Value, [Value]) {
        guard let run = Run.current else {
            throw m.error(ErrorKind.value, "node '\(name)' runs only inside a flow (nodes are steps of a run)", at: range)
        }
        let k = run.nodeCounts[name, default: 0]
        run.nodeCounts[name] = k + 1
        let node = MapBox([
            ("name", .str(name)), ("path", .str("\(run.flow)/\(name)#\(k)")),
            ("options", try options.eval(fp, m)), ("run", .str(run.id)),
        ])
        guard let runner = m.engineFunction("run_node") else {
            throw m.error(ErrorKind.value, "node '\(name)': the engine (std/engine) is not loaded", at: range)
        }
        return (runner, [.map(node), try body.eval(fp, m)])
    }

    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let (runner, args) = try prepare(fp, m)
        return try m.invoke(runner, args, named: nil, range: range)
    }

    override func evalAsync(_ fp: Frame, _ m: Interpreter) async throws -> Value {
        let (runner, args) = try prepare(fp, m)
        return try await m.invokeAsync(runner, args, named: nil, range: range)
    }
}
