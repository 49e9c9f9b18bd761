@testable import FlowRuntime
import Testing

/// A list keeps the items it was made with in its own allocation until it grows or is
/// handed out as an array (`ListBox`). Both states must behave as one list.
@Suite struct ListBoxTests {
    /// Whether the items are still in the list's tail (not moved to an array).
    func inTail(_ l: ListBox) -> Bool { l.header.spilled == nil }

    /// A list made as a list literal makes it: its items in the tail.
    func literal(_ items: [Value]) -> ListBox {
        ListBox.make(count: items.count) { tail, initialized in
            while initialized < items.count {
                (tail + initialized).initialize(to: items[initialized])
                initialized += 1
            }
        }
    }

    @Test func readsAndWritesStayInTheTail() {
        let l = literal([.int(1), .nilValue])
        l[0] = .int(10)
        #expect(l.count == 2 && l[0] == .int(10) && l.isNil(at: 1) && !l.isNil(at: 0))
        #expect(inTail(l))
    }

    @Test func growingPastTheTailMovesTheItemsOnce() {
        let l = literal([.str("a"), .str("b")])
        #expect(inTail(l))
        l.append(.str("c"))
        #expect(!inTail(l))
        #expect(l.items == [.str("a"), .str("b"), .str("c")])
        l[2] = .str("z")
        l.items.append(.str("d"))
        #expect(l.count == 4 && l[2] == .str("z") && l.removeLast() == .str("d"))
    }

    @Test func anArrayHandedOutIsACopy() {
        let l = literal([.int(1), .int(2)])
        let before = l.items
        l[0] = .int(5)
        l.insert(.int(0), at: 0)
        #expect(before == [.int(1), .int(2)])
        #expect(l.items == [.int(0), .int(5), .int(2)])
    }

    @Test func aListMadeFromAnArrayKeepsIt() {
        let l = ListBox.make([.int(1), .int(2), .int(3)])
        #expect(!inTail(l))
        l[1] = .int(20)
        l.append(.int(4))
        #expect(l.count == 4 && l[1] == .int(20) && l.items == [.int(1), .int(20), .int(3), .int(4)])
    }

    @Test func aListMadeItemByItemKeepsWhatItHadWhenAnItemFails() {
        struct Failed: Error {}
        #expect(throws: Failed.self) {
            _ = try ListBox.make(count: 3) { tail, initialized in
                (tail + initialized).initialize(to: .str("kept until the list goes"))
                initialized += 1
                throw Failed()
            }
        }
        let empty = ListBox.make()
        empty.append(.int(1))
        #expect(empty.items == [.int(1)])
    }
}
