/// Using the list, map or function in a frame slot without retaining it.
///
/// Copying a `Value` out of a slot retains its object and releases it afterwards: two
/// atomic operations that were a fifth of the time of `m[i]` and `m[i] = v`. Where the
/// slot keeps its value for the whole access — a plain local (no closure can assign it)
/// whose index and value are plain locals or constants (nothing is evaluated in between)
/// — the object is used through the slot's own reference instead. A function called from
/// a plain local is borrowed for the call: the callee runs in frames above the caller's
/// and cannot assign the caller's plain locals.
///
/// The enum's layout is the compiler's: it is checked once, on real values, and if it is
/// not a word of payload followed by a tag byte, no tag matches and every access takes
/// the ordinary path.
@usableFromInline enum Borrow {
    @usableFromInline static let listTag = tag(of: ListBox.make(), as: Value.list)
    static let mapTag = tag(of: MapBox(), as: Value.map)
    static let stringTag = tag(of: StringBox(""), as: Value.string)
    static let closureTag = tag(of: Closure(proto: FunctionProto(name: "", parameters: [], defaults: [], range: nil),
                                            captures: []), as: Value.closure)
    static let cellTag = tag(of: Cell(.nilValue), as: Value.cell)

    /// The tag byte of `wrap(object)`, or 0xFF (no case has it) if the layout is not the
    /// expected one.
    private static func tag<T: AnyObject>(of object: T, as wrap: (T) -> Value) -> UInt8 {
        guard MemoryLayout<Value>.size == 9 else { return 0xFF }
        let value = wrap(object)
        return withExtendedLifetime(object) {
            withUnsafeBytes(of: value) { bytes in
                let payload = bytes.load(as: UnsafeRawPointer.self)
                return payload == UnsafeRawPointer(Unmanaged.passUnretained(object).toOpaque()) ? bytes[8] : 0xFF
            }
        }
    }

    /// The object of class `T` in `slot`, unretained, if the slot's tag is `tag`.
    @usableFromInline @inline(__always) static func object<T: AnyObject>(_ slot: UnsafeMutablePointer<Value>, _ tag: UInt8,
                                                        as type: T.Type) -> Unmanaged<T>? {
        let raw = UnsafeRawPointer(slot)
        guard raw.load(fromByteOffset: 8, as: UInt8.self) == tag else { return nil }
        return Unmanaged<T>.fromOpaque(raw.load(as: UnsafeRawPointer.self))
    }

    @inline(__always) static func map(_ slot: UnsafeMutablePointer<Value>, _ tag: UInt8) -> Unmanaged<MapBox>? {
        object(slot, tag, as: MapBox.self)
    }

    @inline(__always) static func string(_ slot: UnsafeMutablePointer<Value>, _ tag: UInt8) -> Unmanaged<StringBox>? {
        object(slot, tag, as: StringBox.self)
    }

    @usableFromInline @inline(__always) static func list(_ slot: UnsafeMutablePointer<Value>, _ tag: UInt8) -> Unmanaged<ListBox>? {
        object(slot, tag, as: ListBox.self)
    }

    @inline(__always) static func closure(_ slot: UnsafeMutablePointer<Value>, _ tag: UInt8) -> Unmanaged<Closure>? {
        object(slot, tag, as: Closure.self)
    }

    /// Writes `object` into `slot` as the value of `tag`'s case without retaining it: the
    /// slot holds a reference it does not own, which must be forgotten (overwritten by
    /// `initialize`, never released) while the object is still alive. False, with the
    /// slot untouched, if the layout check failed.
    @inline(__always) static func lend(_ object: AnyObject, tag: UInt8, into slot: UnsafeMutablePointer<Value>) -> Bool {
        lend(address: UnsafeRawPointer(Unmanaged.passUnretained(object).toOpaque()), tag: tag, into: slot)
    }

    /// The same for the object at `address`.
    @inline(__always) static func lend(address: UnsafeRawPointer, tag: UInt8, into slot: UnsafeMutablePointer<Value>) -> Bool {
        guard tag != 0xFF else { return false }
        let raw = UnsafeMutableRawPointer(slot)
        raw.storeBytes(of: address, as: UnsafeRawPointer.self)
        raw.storeBytes(of: tag, toByteOffset: 8, as: UInt8.self)
        return true
    }

    /// True for nodes whose evaluation cannot assign a local: slot reads, constants and
    /// lambdas (made, not run).
    static func isInert(_ n: Node) -> Bool { n is LocalGet || n is ConstNode || n is MakeClosureNode }
}
