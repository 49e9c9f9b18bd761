@testable import FlowRuntime
import Testing

/// `Borrow` reads the layout the compiler gave `Value`. If that layout changes, the
/// borrowed paths turn themselves off (every access still works, only slower): these
/// tests notice it, so it does not happen silently.
@Suite struct BorrowTests {
    @Test func theLayoutIsTheOneBorrowExpects() {
        #expect(MemoryLayout<Value>.size == 9)
        let tags = [Borrow.listTag, Borrow.mapTag, Borrow.closureTag, Borrow.cellTag]
        #expect(!tags.contains(0xFF), "a borrowed path is off: \(tags)")
        #expect(Set(tags).count == 4)
    }

    @Test func aBorrowedSlotGivesItsObjectAndNothingElse() {
        let list = ListBox.make([.int(1)])
        let slot = UnsafeMutablePointer<Value>.allocate(capacity: 1)
        defer { slot.deinitialize(count: 1); slot.deallocate() }
        slot.initialize(to: .list(list))
        #expect(Borrow.list(slot, Borrow.listTag)?.takeUnretainedValue() === list)
        #expect(Borrow.map(slot, Borrow.mapTag) == nil)
        slot.pointee = .int(7)
        #expect(Borrow.list(slot, Borrow.listTag) == nil)
    }
}
