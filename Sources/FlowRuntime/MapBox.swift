/// A map that keeps insertion order, shared by reference. Records (`{a: 1}`) are maps.
///
/// Entries live in one array in insertion order. Small maps — most records — are searched
/// linearly, which beats hashing for a handful of keys; past `MapBox.linearLimit` entries
/// an open-addressing index of entry positions is kept beside them. Keys are the hashable
/// values (nil, bool, int, float, duration, string); an integral float keys like the int
/// it equals, as `1 == 1.0`. While the keys are exactly 0, 1, 2… in insertion order
/// (`sequential`), only the values are stored and a value's position is its key: no
/// keys, no hashing, no index (Lua's array part, with the order kept).
///
/// A record made by a literal (`{name: n, path: p}`) is `shaped`: its keys are the
/// literal's names, one array the compiler made and every record of that literal shares,
/// and only the values are its own. Making and freeing it then touches one object for
/// the keys instead of one per key; adding a new key or removing one gives it entries
/// of its own.
public final class MapBox: @unchecked Sendable {
    public struct Entry {
        public var key: Value
        public var value: Value
    }

    /// Up to this many entries, lookups scan; records rarely have more fields.
    static let linearLimit = 8

    /// The entries, in insertion order, when not `sequential`.
    @exclusivity(unchecked) private var store: [Entry] = []
    /// The values, when `sequential`: the value of key i is at position i.
    @exclusivity(unchecked) private var positional: [Value] = []
    /// True while every key i is `.int(i)`; the map then lives in `positional`.
    @exclusivity(unchecked) private var sequential = true
    /// The keys of a shaped record, distinct and interned, when its values are in
    /// `inline` or `fields` (the value of `shape[i]` at position i). Shared: never changed.
    @exclusivity(unchecked) private var shape: [StringBox]?
    /// A shaped record's values when it has more than `inlineFields` (else nil): the
    /// value of `shape[i]` is `fields[i]`.
    @exclusivity(unchecked) private var fields: FieldValues?
    /// A shaped record's values when it has at most `inlineFields`: in the map itself, so
    /// a small record is one allocation (unused places are nil).
    /// (Set by every initializer, not given a default: the shaped initializer then moves
    /// its values in instead of copying them over the default and releasing them.)
    @exclusivity(unchecked) private var inline: (Value, Value, Value, Value)
    private static let noInline: (Value, Value, Value, Value) = (.nilValue, .nilValue, .nilValue, .nilValue)
    static let inlineFields = 4
    /// Entries removed from an indexed map stay in `store` as holes (a `.cell` key, which
    /// no real key can be) until they are half of it; then `store` is compacted. Without
    /// an index there are no holes.
    @exclusivity(unchecked) private var holes = 0
    /// Positions into `store`, -1 for a free slot or -2 for a removed one; `capacity` is a
    /// power of two, or 0 without index.
    @exclusivity(unchecked) private var index: UnsafeMutablePointer<Int32>? = nil
    @exclusivity(unchecked) private var capacity = 0
    /// The name of the `type` this record was built by, if any.
    @exclusivity(unchecked) public var typeName: String?

    public init() { inline = MapBox.noInline }

    /// A record whose keys are known to be distinct (a literal with constant names).
    init(distinct: [Entry]) {
        inline = MapBox.noInline
        if distinct.isEmpty { return }
        store = distinct
        sequential = false
        // The index of a big record is made at its first lookup: most events (records
        // the engine makes) are kept and never looked up by key.
    }

    /// A record of a literal's names (distinct and interned; at most `linearLimit`) and
    /// their values, in order.
    init(shape: [StringBox], fields: FieldValues) {
        inline = MapBox.noInline
        if shape.isEmpty { return }
        self.shape = shape
        self.fields = fields
        sequential = false
    }

    /// The same for at most `inlineFields` names: their values in order, nil after them.
    init(shape: [StringBox], _ a: consuming Value, _ b: consuming Value, _ c: consuming Value, _ d: consuming Value) {
        inline = (a, b, c, d)
        if shape.isEmpty { return }
        self.shape = shape
        sequential = false
    }

    /// The value of a shaped record's field `i`.
    @inline(__always) private func field(_ i: Int) -> Value {
        if let fields { return fields[i] }
        switch i {
        case 0: return inline.0
        case 1: return inline.1
        case 2: return inline.2
        default: return inline.3
        }
    }

    @inline(__always) private func setField(_ i: Int, _ value: Value) {
        if let fields { fields[i] = value; return }
        switch i {
        case 0: inline.0 = value
        case 1: inline.1 = value
        case 2: inline.2 = value
        default: inline.3 = value
        }
    }

    public init(_ pairs: [(String, Value)]) {
        inline = MapBox.noInline
        for (k, v) in pairs { set(k, v) }
    }

    deinit { if let index { Heap.free(index) } }

    // A node keeps the step map it made, and the next node made there reuses it once
    // nothing else holds it (`NodeNode.prepare`): no one can tell it from a new map.

    /// Still the record its literal made with at most `inlineFields` names: no key added
    /// or removed, no type name.
    var isInlineRecord: Bool { shape != nil && fields == nil && typeName == nil }

    /// An inline record's values, all replaced (the old ones released).
    func refill(_ a: consuming Value, _ b: consuming Value, _ c: consuming Value, _ d: consuming Value) {
        inline = (a, b, c, d)
    }

    /// An inline record's field `i`, moved out: nil is left in its place.
    func takeField(_ i: Int) -> Value {
        var v = Value.nilValue
        switch i {
        case 0: swap(&v, &inline.0)
        case 1: swap(&v, &inline.1)
        case 2: swap(&v, &inline.2)
        default: swap(&v, &inline.3)
        }
        return v
    }

    /// Empty, and never given a type name: as `MapBox()` made it, to a script.
    var isPlainEmpty: Bool { count == 0 && typeName == nil }

    public var count: Int {
        if sequential { return positional.count }
        if let shape { return shape.count }
        return store.count - holes
    }

    /// The entries without holes.
    private var live: [Entry] { holes == 0 ? store : store.filter { !MapBox.isHole($0.key) } }

    @inline(__always) private static func isHole(_ key: Value) -> Bool {
        if case .cell = key { return true }
        return false
    }

    /// The entries in insertion order (built on demand for a positional map).
    public var entries: [Entry] {
        if sequential { return positional.enumerated().map { Entry(key: .int($0.offset), value: $0.element) } }
        if let shape { return shape.indices.map { Entry(key: .string(shape[$0]), value: field($0)) } }
        return live
    }
    public var keys: [Value] {
        if sequential { return positional.indices.map { Value.int($0) } }
        if let shape { return shape.map { .string($0) } }
        return live.map { $0.key }
    }
    public var values: [Value] {
        if sequential { return positional }
        if let shape { return shape.indices.map { field($0) } }
        return live.map { $0.value }
    }

    /// True when every key is a string (an empty map too), looked at in place.
    public var keysAreStrings: Bool {
        if sequential { return positional.isEmpty }
        if shape != nil { return true }
        var i = 0
        let n = store.count
        while i < n {
            switch store[i].key {
            case .string, .cell: break  // a `.cell` key is a hole
            default: return false
            }
            i += 1
        }
        return true
    }

    /// True for values that can be keys.
    public static func isKey(_ v: Value) -> Bool {
        switch v {
        case .nilValue, .bool, .int, .float, .duration, .string: return true
        default: return false
        }
    }

    @inline(__always) static func normalize(_ v: Value) -> Value {
        if case .float(let f) = v, f.rounded() == f, let i = Int(exactly: f) { return .int(i) }
        return v
    }

    @inline(__always) static func same(_ a: Value, _ b: Value) -> Bool {
        switch (a, b) {
        // Two strings interned by one interpreter are equal only if they are the same box.
        case (.string(let x), .string(let y)): return x === y || (!(x.table != 0 && x.table == y.table) && x.value == y.value)
        case (.int(let x), .int(let y)): return x == y
        case (.nilValue, .nilValue): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.float(let x), .float(let y)): return x == y
        case (.duration(let x), .duration(let y)): return x == y
        default: return false
        }
    }

    @inline(__always) static func hash(_ v: Value) -> Int {
        var h: UInt64
        switch v {
        case .string(let s): return s.hash
        case .int(let i): h = UInt64(bitPattern: Int64(i))
        case .nilValue: h = 0x51
        case .bool(let b): h = b ? 0x77 : 0x78
        case .float(let f): h = f.bitPattern ^ 0xF
        case .duration(let d): h = UInt64(bitPattern: Int64(d)) ^ 0xD
        default: h = 0
        }
        // splitmix64's finalizer: sequential ints spread over the table.
        h = (h ^ (h >> 30)) &* 0xBF58476D1CE4E5B9
        h = (h ^ (h >> 27)) &* 0x94D049BB133111EB
        return Int(bitPattern: UInt(h ^ (h >> 31)))
    }

    static func capacity(for count: Int) -> Int {
        var c = 32
        while count * 4 > c * 3 { c *= 2 }
        return c
    }

    /// The position of a string key in `shape`: the same box, or the same text when the
    /// key was not interned by the same table (a box of one table with other text is
    /// another key, as in `get(box:)`).
    @inline(__always) private static func position(of key: StringBox, in shape: [StringBox]) -> Int? {
        let table = key.table
        var i = 0
        let n = shape.count
        while i < n {
            let s = shape[i]
            if s === key || ((table == 0 || s.table != table) && s.value == key.value) { return i }
            i += 1
        }
        return nil
    }

    /// The position of a normalized key in a shaped record's values.
    @inline(__always) private func shaped(_ shape: [StringBox], _ key: Value) -> Int? {
        guard case .string(let s) = key else { return nil }
        return MapBox.position(of: s, in: shape)
    }

    /// Gives a shaped record entries of its own (before a key is added or removed).
    private func leaveShape() {
        guard shape != nil else { return }
        store = entries
        self.shape = nil
        self.fields = nil
        inline = (.nilValue, .nilValue, .nilValue, .nilValue)
    }

    /// The position in `store` of a normalized key, or nil (not for positional maps).
    @inline(__always) private func find(_ key: Value) -> Int? {
        if index == nil && store.count > MapBox.linearLimit { rebuild(MapBox.capacity(for: store.count)) }
        if let table = index {
            let mask = capacity - 1
            var i = MapBox.hash(key) & mask
            while true {
                let e = Int(table[i])
                if e == -1 { return nil }
                if e >= 0 && MapBox.same(store[e].key, key) { return e }
                i = (i + 1) & mask
            }
        }
        var i = 0
        let n = store.count
        while i < n {
            if MapBox.same(store[i].key, key) { return i }
            i += 1
        }
        return nil
    }

    /// `m[i]` for an int `i` of a positional map: the value, or nil when it does not apply.
    @inline(__always) func getPositional(at i: Int) -> Value? {
        sequential && i >= 0 && i < positional.count ? positional[i] : nil
    }

    /// The positional fast path of `m[i]`: the value, or nil when it does not apply.
    @inline(__always) func getPositional(_ key: Value) -> Value? {
        if case .int(let i) = key { return getPositional(at: i) }
        return nil
    }

    /// `m[i] = v` for an int `i` when the map is positional and `i` at most its count:
    /// true when it applied (`value` is evaluated only then).
    @inline(__always) func setPositional(at i: Int, _ value: @autoclosure () throws -> Value) rethrows -> Bool {
        guard sequential, i >= 0, i <= positional.count else { return false }
        if i == positional.count { positional.append(try value()) } else { positional[i] = try value() }
        return true
    }

    /// The positional fast path of `m[i] = v`: true when it applied.
    @inline(__always) func setPositional(_ key: Value, _ value: Value) -> Bool {
        guard case .int(let i) = key else { return false }
        return setPositional(at: i, value)
    }

    public func get(_ key: Value) -> Value? {
        guard MapBox.isKey(key) else { return nil }
        let k = MapBox.normalize(key)
        if sequential { return getPositional(k) }
        if let shape { return shaped(shape, k).map { field($0) } }
        guard let i = find(k) else { return nil }
        return store[i].value
    }

    public func get(_ name: String) -> Value? { get(.str(name)) }

    /// Looks up a string key by a box the compiler interned: a pointer compare first.
    @inline(__always) func get(box: StringBox) -> Value? {
        if sequential { return nil }
        if let shape {
            // Most lookups are of a field of the literal the record came from: its box.
            var i = 0
            let n = shape.count
            while i < n {
                if shape[i] === box { return field(i) }
                i += 1
            }
            return MapBox.position(of: box, in: shape).map { field($0) }
        }
        if index == nil && store.count <= MapBox.linearLimit {
            var i = 0
            let n = store.count
            // Record fields and member names are interned by the compiler: a different box
            // from the same table is a different key, found without comparing text.
            let table = box.table
            while i < n {
                if case .string(let s) = store[i].key, s === box || ((table == 0 || s.table != table) && s.value == box.value) {
                    return store[i].value
                }
                i += 1
            }
            return nil
        }
        guard let i = find(.string(box)) else { return nil }
        return store[i].value
    }

    /// Sets a key; returns false (and changes nothing) when the key cannot be a key.
    @discardableResult
    public func set(_ key: Value, _ value: Value) -> Bool {
        guard MapBox.isKey(key) else { return false }
        let k = MapBox.normalize(key)
        if sequential {
            if setPositional(k, value) { return true }
            leaveSequential()
        }
        if let shape {
            if let i = shaped(shape, k) { setField(i, value); return true }
            leaveShape()
        }
        if let i = find(k) { store[i].value = value; return true }
        store.append(Entry(key: k, value: value))
        if let table = index {
            if store.count * 4 > capacity * 3 { rebuild(capacity * 2) } else { insert(store.count - 1, into: table) }
        } else if store.count > MapBox.linearLimit {
            rebuild(32)
        }
        return true
    }

    public func set(_ name: String, _ value: Value) { set(.str(name), value) }

    /// Moves a positional map to general storage once a key breaks the 0, 1, 2… pattern.
    private func leaveSequential() {
        sequential = false
        store = positional.enumerated().map { Entry(key: .int($0.offset), value: $0.element) }
        positional = []
        if store.count > MapBox.linearLimit { rebuild(MapBox.capacity(for: store.count)) }
    }

    private func insert(_ position: Int, into table: UnsafeMutablePointer<Int32>) {
        let mask = capacity - 1
        var i = MapBox.hash(store[position].key) & mask
        while table[i] >= 0 { i = (i + 1) & mask }
        table[i] = Int32(position)
    }

    private func rebuild(_ newCapacity: Int) {
        if holes > 0 {
            store.removeAll { MapBox.isHole($0.key) }
            holes = 0
        }
        if let index { Heap.free(index) }
        capacity = newCapacity
        let table = Heap.allocate(Int32.self, capacity: newCapacity)
        table.initialize(repeating: -1, count: newCapacity)
        index = table
        for p in store.indices { insert(p, into: table) }
    }

    /// Removes an entry, keeping the order of the rest; returns the removed value.
    @discardableResult
    public func remove(_ key: Value) -> Value? {
        guard MapBox.isKey(key) else { return nil }
        let k = MapBox.normalize(key)
        if sequential {
            guard case .int(let i) = k, i >= 0, i < positional.count else { return nil }
            if i == positional.count - 1 { return positional.removeLast() }
            leaveSequential()
        }
        if let shape {
            guard shaped(shape, k) != nil else { return nil }
            leaveShape()
        }
        guard let i = find(k) else { return nil }
        guard let table = index else { return store.remove(at: i).value }
        // Indexed: leave a hole (and a removed mark in the index) instead of moving the
        // entries after it; compact when holes are half of `store`. Removing every key of
        // a big map one by one is then linear, not quadratic.
        let v = store[i].value
        store[i] = Entry(key: .cell(MapBox.holeMark), value: .nilValue)
        holes += 1
        let mask = capacity - 1
        var slot = MapBox.hash(k) & mask
        while Int(table[slot]) != i { slot = (slot + 1) & mask }
        table[slot] = -2
        if holes * 2 > store.count { rebuild(MapBox.capacity(for: store.count - holes)) }
        return v
    }

    private static let holeMark = Cell(.nilValue)

    public func copy() -> MapBox {
        let m = MapBox()
        m.sequential = sequential
        m.shape = shape
        m.fields = fields?.copy()
        m.inline = inline
        m.positional = positional
        m.store = live
        if index != nil { m.rebuild(capacity) }
        m.typeName = typeName
        return m
    }
}

/// The values of a shaped record, in the same allocation as their count: made and freed
/// with one `malloc` and a loop that releases them, where an array went through the
/// runtime's generic destroy and a value witness for each (the step map of every node).
final class FieldValues: ManagedBuffer<Int, Value>, @unchecked Sendable {
    /// Values whose `count` the caller initializes in `body`, in order; if it throws, the
    /// ones initialized so far are kept (`initialized` says how many).
    static func make(count: Int, _ body: (UnsafeMutablePointer<Value>, _ initialized: inout Int) throws -> Void) rethrows -> FieldValues {
        let box = unsafeDowncast(create(minimumCapacity: count) { _ in 0 }, to: FieldValues.self)
        try box.withUnsafeMutablePointers { n, e in try body(e, &n.pointee) }
        return box
    }

    deinit {
        withUnsafeMutablePointers { n, e in
            var i = 0
            let count = n.pointee
            while i < count { _ = (e + i).move(); i += 1 }
        }
    }

    var count: Int { header }

    subscript(_ i: Int) -> Value {
        get { withUnsafeMutablePointerToElements { $0[i] } }
        set { withUnsafeMutablePointerToElements { $0[i] = newValue } }
    }

    var array: [Value] { (0..<count).map { self[$0] } }

    /// Values of their own, the same ones.
    func copy() -> FieldValues {
        FieldValues.make(count: count) { p, done in
            while done < count { (p + done).initialize(to: self[done]); done += 1 }
        }
    }
}
