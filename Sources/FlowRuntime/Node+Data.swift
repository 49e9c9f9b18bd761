import FlowSyntax

final class ListNode: Node {
    let items: NodeArray
    init(_ items: [Node]) { self.items = NodeArray(items) }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let n = items.count
        // Straight into the list's tail: one allocation.
        return .list(try ListBox.make(count: n) { tail, initialized in
            while initialized < n {
                (tail + initialized).initialize(to: try items.eval(initialized, fp, m))
                initialized += 1
            }
        })
    }
}

final class MapNode: Node {
    let keys: [Node]
    let values: [Node]
    let keyRanges: [SourceRange]
    init(keys: [Node], values: [Node], keyRanges: [SourceRange]) {
        self.keys = keys; self.values = values; self.keyRanges = keyRanges
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let map = MapBox()
        for i in keys.indices {
            let k = try keys[i].eval(fp, m)
            let v = try values[i].eval(fp, m)
            if !map.set(k, v) {
                throw m.error(ErrorKind.type, "a map key must be nil, a bool, a number, a duration or a string, found \(k.typeName)", at: keyRanges[i])
            }
        }
        return .map(map)
    }
}

/// `{a: x, b: y}` with constant, distinct names: entries built without lookups.
final class RecordNode: Node {
    let names: [StringBox]
    let values: NodeArray
    /// The names are interned, distinct and few: the records share them (`MapBox` shaped).
    let shaped: Bool
    init(names: [StringBox], values: [Node]) {
        self.names = names; self.values = NodeArray(values)
        shaped = names.count <= MapBox.linearLimit && names.allSatisfy { $0.isInterned }
            && Set(names.map { ObjectIdentifier($0) }).count == names.count
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        guard shaped else { return .map(MapBox(distinct: try entries(fp, m))) }
        let n = values.count
        if n == 0 { return .map(MapBox()) }
        if n <= MapBox.inlineFields {
            // In order; the places after the last name stay nil.
            let a = try values.eval(0, fp, m)
            let b = n > 1 ? try values.eval(1, fp, m) : .nilValue
            let c = n > 2 ? try values.eval(2, fp, m) : .nilValue
            let d = n > 3 ? try values.eval(3, fp, m) : .nilValue
            return .map(MapBox(shape: names, a, b, c, d))
        }
        let fields = try FieldValues.make(count: n) { p, done in
            while done < n {
                (p + done).initialize(to: try values.eval(done, fp, m))
                done += 1
            }
        }
        return .map(MapBox(shape: names, fields: fields))
    }

    /// The record's fields, evaluated in order.
    @inline(__always) func entries(_ fp: Frame, _ m: Interpreter) throws -> [MapBox.Entry] {
        // reserveCapacity + append is specialized; the unsafe initializer was not.
        var entries: [MapBox.Entry] = []
        let n = values.count
        entries.reserveCapacity(n)
        var i = 0
        while i < n {
            entries.append(MapBox.Entry(key: .string(names[i]), value: try values.eval(i, fp, m)))
            i += 1
        }
        return entries
    }
}

/// `emit(type, {a: …, b: …}, key)`: the record's fields go straight into the event, with
/// no map made for them (the engine emits two such events per node). The compiler makes
/// it only for the runtime's own `emit`.
final class EmitRecordNode: Node {
    let type: Node, record: RecordNode, key: Node
    let range: SourceRange
    /// No field is named like a base field (seq, type, run, at): the values go straight
    /// from the value stack into the event.
    let plain: Bool
    /// The type, when it is a constant string (interned, as the compiler's are): not
    /// evaluated, copied or looked up at each event.
    let constantType: StringBox?
    /// The record's names and value nodes, held here too: read through `record`, each was
    /// retained and released around every field's evaluation.
    let names: [StringBox], values: NodeArray
    init(type: Node, record: RecordNode, key: Node, range: SourceRange) {
        self.type = type; self.record = record; self.key = key; self.range = range
        names = record.names; values = record.values
        plain = !record.names.contains { ["seq", "type", "run", "at"].contains($0.value) }
        if case .string(let b)? = (type as? ConstNode)?.value, b.isInterned { constantType = b } else { constantType = nil }
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let t = constantType == nil ? try type.eval(fp, m) : .nilValue
        guard plain else {
            let fields = try record.entries(fp, m)
            return .duration(try m.emitEvent(type: t, constant: constantType, fields: fields, key: try key.eval(fp, m), at: range))
        }
        let base = m.top
        let time: Int
        do {
            let n = values.count
            var i = 0
            while i < n {
                try m.push(try values.eval(i, fp, m), range)
                i += 1
            }
            time = try m.emitEvent(type: t, constant: constantType, names: names, values: base, key: try key.eval(fp, m), at: range)
        } catch {
            m.pop(to: base)
            throw error
        }
        m.pop(to: base)
        return .duration(time)
    }
    override var callRange: SourceRange? { range }
}

/// `"total ${x}"`: text and values, joined as `print` shows them.
final class TemplateNode: Node {
    let parts: NodeArray
    init(_ parts: [Node]) { self.parts = NodeArray(parts) }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        var s = ""
        for i in 0..<parts.count {
            let v = try parts.eval(i, fp, m)
            if case .string(let b) = v { s += b.value } else if case .int(let i) = v { s += String(i) } else { s += Printer.display(v) }
        }
        return .str(s)
    }
}

enum Access {
    static func member(_ v: Value, _ name: String, _ m: Interpreter, _ range: SourceRange, box: StringBox? = nil) throws -> Value {
        switch v {
        case .map(let map):
            if let x = box.map({ map.get(box: $0) }) ?? map.get(name) { return x }
            var message = "map has no key '\(name)'"
            if m.method(m.methodID(name), for: v) != nil {
                message += "; to call the method, write .\(name)()"
            } else if let near = Suggest.closest(to: name, in: map.keys.compactMap { $0.stringValue }) {
                message += "; did you mean '\(near)'?"
            }
            throw m.error(ErrorKind.key, message, at: range)
        case .error(let e):
            switch name {
            case "kind": return .str(e.kind)
            case "message": return .str(e.message)
            case "data": return e.data
            case "path": return e.path.map { .str($0) } ?? .nilValue
            case "trace":
                return .list(e.trace.map { f in
                    .map(MapBox([("function", .str(f.function)), ("at", f.range.map { .str($0.description) } ?? .nilValue)]))
                })
            default: break
            }
        case .object(let o):
            if let x = o.member(name) { return x }
        default: break
        }
        var message = "\(v.typeName) has no member '\(name)'"
        if m.method(m.methodID(name), for: v) != nil { message += "; to call the method, write .\(name)()" }
        throw m.error(ErrorKind.type, message, at: range)
    }

    static func index(_ v: Value, _ i: Value, _ m: Interpreter, _ range: SourceRange) throws -> Value {
        switch v {
        case .list(let l):
            let k = try listIndex(l.count, i, m, range, what: "list")
            return l[k]
        case .map(let map):
            guard MapBox.isKey(i) else {
                throw m.error(ErrorKind.type, "a map key must be nil, a bool, a number, a duration or a string, found \(i.typeName)", at: range)
            }
            if let x = map.get(i) { return x }
            throw m.error(ErrorKind.key, "map has no key \(Printer.repr(i, limit: 40)); use .get(key, default) for keys that may be missing", at: range)
        case .string(let s):
            let chars = Array(s.value)
            let k = try listIndex(chars.count, i, m, range, what: "string")
            return .str(String(chars[k]))
        default:
            throw m.error(ErrorKind.type, "cannot index a value of type \(v.typeName) (a list, map or string is needed)", at: range)
        }
    }

    /// A position in a sequence of `count` items; negative positions count from the end.
    static func listIndex(_ count: Int, _ i: Value, _ m: Interpreter, _ range: SourceRange, what: String) throws -> Int {
        guard case .int(let raw) = i else {
            throw m.error(ErrorKind.type, "a \(what) index must be an int, found \(i.typeName)", at: range)
        }
        let k = raw < 0 ? count + raw : raw
        guard k >= 0 && k < count else {
            throw m.error(ErrorKind.index, "index \(raw) is out of range for a \(what) of length \(count)", at: range)
        }
        return k
    }
}

final class MemberNode: Node {
    let object: Node, name: String, box: StringBox, range: SourceRange
    let objectSlot: Int
    init(_ object: Node, _ name: String, _ box: StringBox, _ range: SourceRange) {
        self.object = object; self.name = name; self.box = box; self.range = range
        objectSlot = slotOf(object)
    }
    let mapTag = Borrow.mapTag
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        // `record.field` on a plain local: the record is borrowed from the slot (`Borrow`).
        if objectSlot >= 0, let map = Borrow.map(fp + objectSlot, mapTag),
           let x = map._withUnsafeGuaranteedRef({ $0.get(box: box) }) {
            return x
        }
        let o = try operand(objectSlot, object, fp, m)
        if case .map(let map) = o, let x = map.get(box: box) { return x }
        return try Access.member(o, name, m, range, box: box)
    }
}

/// Reads an operand: straight from its slot when it is a plain local (no call), else by
/// evaluating its node.
@inline(__always) func operand(_ slot: Int, _ node: Node, _ fp: Frame, _ m: Interpreter) throws -> Value {
    slot >= 0 ? fp[slot] : try node.eval(fp, m)
}

/// The slot of a node that reads a plain local, or -1.
func slotOf(_ n: Node) -> Int { (n as? LocalGet)?.slot ?? -1 }

/// An index that is a plain local or an int constant, read without copying it.
struct InertIndex {
    let slot: Int
    let constant: Int?
    init(_ n: Node) {
        slot = slotOf(n)
        if case .int(let c)? = (n as? ConstNode)?.value { constant = c } else { constant = nil }
    }
    /// The index when it is an int.
    @inline(__always) func int(_ fp: Frame) -> Int? {
        if slot >= 0 {
            if case .int(let k) = fp[slot] { return k }
            return nil
        }
        return constant
    }
}

final class IndexNode: Node {
    let object: Node, index: Node, range: SourceRange
    let objectSlot: Int, indexSlot: Int
    /// The object is a plain local and the index inert: the object is borrowed (`Borrow`).
    let borrows: Bool
    let inert: InertIndex
    let listTag = Borrow.listTag, mapTag = Borrow.mapTag
    init(_ object: Node, _ index: Node, _ range: SourceRange) {
        self.object = object; self.index = index; self.range = range
        objectSlot = slotOf(object); indexSlot = slotOf(index)
        borrows = objectSlot >= 0 && Borrow.isInert(index)
        inert = InertIndex(index)
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        // An int index in a local or a constant is read in place.
        if borrows, let k = inert.int(fp) {
            if let l = Borrow.list(fp + objectSlot, listTag) {
                let item: Value? = l._withUnsafeGuaranteedRef { l in k >= 0 && k < l.count ? l[k] : nil }
                if let item { return item }
            } else if let map = Borrow.map(fp + objectSlot, mapTag),
                      let v = map._withUnsafeGuaranteedRef({ $0.getPositional(at: k) }) {
                return v
            }
        }
        if borrows {
            let i = try operand(indexSlot, index, fp, m)
            if let l = Borrow.list(fp + objectSlot, listTag), case .int(let k) = i {
                let item: Value? = l._withUnsafeGuaranteedRef { l in k >= 0 && k < l.count ? l[k] : nil }
                if let item { return item }
            } else if let map = Borrow.map(fp + objectSlot, mapTag) {
                if let v = map._withUnsafeGuaranteedRef({ $0.getPositional(i) ?? $0.get(i) }) { return v }
            }
        }
        let o = try operand(objectSlot, object, fp, m)
        let i = try operand(indexSlot, index, fp, m)
        if case .list(let l) = o, case .int(let k) = i, k >= 0, k < l.count { return l[k] }
        if case .map(let map) = o, let v = map.getPositional(i) ?? map.get(i) { return v }
        return try Access.index(o, i, m, range)
    }
    override func evalIsNil(_ fp: Frame, _ m: Interpreter) throws -> Bool {
        if borrows, let l = Borrow.list(fp + objectSlot, listTag), let k = inert.int(fp) {
            let found: Bool? = l._withUnsafeGuaranteedRef { l in
                guard k >= 0 && k < l.count else { return nil }
                return l.isNil(at: k)
            }
            if let found { return found }
        }
        if case .nilValue = try eval(fp, m) { return true }
        return false
    }
}

final class MemberSetNode: Node {
    let object: Node, name: String, box: StringBox, value: Node, range: SourceRange
    init(_ object: Node, _ name: String, _ box: StringBox, _ value: Node, _ range: SourceRange) {
        self.object = object; self.name = name; self.box = box; self.value = value; self.range = range
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        let o = try object.eval(fp, m)
        let v = try value.eval(fp, m)
        guard case .map(let map) = o else {
            throw m.error(ErrorKind.type, "cannot set member '\(name)' on a value of type \(o.typeName) (only maps have settable members)", at: range)
        }
        map.set(.string(box), v)
        return .nilValue
    }
}

final class IndexSetNode: Node {
    let object: Node, index: Node, value: Node, range: SourceRange
    let objectSlot: Int, indexSlot: Int, valueSlot: Int
    /// The object is a plain local, index and value inert: the object is borrowed.
    let borrows: Bool
    let inert: InertIndex
    let listTag = Borrow.listTag, mapTag = Borrow.mapTag
    init(_ object: Node, _ index: Node, _ value: Node, _ range: SourceRange) {
        self.object = object; self.index = index; self.value = value; self.range = range
        objectSlot = slotOf(object); indexSlot = slotOf(index); valueSlot = slotOf(value)
        borrows = objectSlot >= 0 && Borrow.isInert(index) && Borrow.isInert(value)
        inert = InertIndex(index)
    }
    override func exec(_ fp: Frame, _ m: Interpreter) throws {
        // `m[i] = v` with an int `i` in a local or a constant: the index is read in place
        // and the value moved into the list or positional map, with no copies to release.
        if borrows, let k = inert.int(fp) {
            if let map = Borrow.map(fp + objectSlot, mapTag) {
                if try map._withUnsafeGuaranteedRef({ try $0.setPositional(at: k, try operand(valueSlot, value, fp, m)) }) { return }
            } else if let l = Borrow.list(fp + objectSlot, listTag) {
                if try l._withUnsafeGuaranteedRef({ l in
                    guard k >= 0 && k < l.count else { return false }
                    l[k] = try operand(valueSlot, value, fp, m)
                    return true
                }) { return }
            }
        }
        _ = try eval(fp, m)
    }
    override func eval(_ fp: Frame, _ m: Interpreter) throws -> Value {
        if borrows {
            let i = try operand(indexSlot, index, fp, m)
            let v = try operand(valueSlot, value, fp, m)
            if let map = Borrow.map(fp + objectSlot, mapTag), map._withUnsafeGuaranteedRef({ $0.setPositional(i, v) }) {
                return .nilValue
            }
            if let l = Borrow.list(fp + objectSlot, listTag), case .int(let k) = i,
               l._withUnsafeGuaranteedRef({ l in
                   guard k >= 0 && k < l.count else { return false }
                   l[k] = v
                   return true
               }) {
                return .nilValue
            }
        }
        let o = try operand(objectSlot, object, fp, m)
        let i = try operand(indexSlot, index, fp, m)
        let v = try operand(valueSlot, value, fp, m)
        if case .map(let map) = o, map.setPositional(i, v) { return .nilValue }
        switch o {
        case .list(let l):
            let k = try Access.listIndex(l.count, i, m, range, what: "list")
            l[k] = v
        case .map(let map):
            guard map.set(i, v) else {
                throw m.error(ErrorKind.type, "a map key must be nil, a bool, a number, a duration or a string, found \(i.typeName)", at: range)
            }
        default:
            throw m.error(ErrorKind.type, "cannot assign to an index of a value of type \(o.typeName) (lists and maps can be assigned into; strings cannot change)", at: range)
        }
        return .nilValue
    }
}
