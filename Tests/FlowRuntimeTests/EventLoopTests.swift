@testable import FlowRuntime
import Testing

/// The event loop's own containers: its run queue, its timer heap and the set of timers
/// still pending.
@Suite struct EventLoopTests {
    final class Counted {
        nonisolated(unsafe) static var live = 0
        let n: Int
        init(_ n: Int) { self.n = n; Counted.live += 1 }
        deinit { Counted.live -= 1 }
    }

    @Test func ringQueueKeepsOrderAcrossWrapAndGrowth() {
        var q = RingQueue<Int>()
        var expected: [Int] = []
        var got: [Int] = []
        var next = 0
        // Push more than it pops, so the ring wraps and then doubles several times.
        for round in 0..<50 {
            for _ in 0..<(round % 7 + 3) { q.push(next); expected.append(next); next += 1 }
            for _ in 0..<(round % 5 + 1) where !q.isEmpty { got.append(q.pop()) }
        }
        while !q.isEmpty { got.append(q.pop()) }
        #expect(got == expected)
        q.release()
    }

    @Test func ringQueueReleasesWhatItPopsAndWhatIsLeft() {
        Counted.live = 0
        var q = RingQueue<Counted>()
        for i in 0..<40 { q.push(Counted(i)) }
        for _ in 0..<25 { _ = q.pop() }
        #expect(Counted.live == 15)
        q.release()
        #expect(Counted.live == 0)
    }

    @Test func timerHeapPopsByDeadlineThenID() {
        var h = TimerHeap()
        var deadlines: [(Int, Int)] = []
        var seed: UInt64 = 12345
        for id in 0..<500 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            let d = Int(seed >> 54)  // few distinct deadlines: ties are ordered by id
            deadlines.append((d, id))
            h.push(EventLoop.Timer(deadline: d, id: id, background: false, fire: {}))
        }
        var popped: [(Int, Int)] = []
        while let t = h.pop() { popped.append((t.deadline, t.id)) }
        let sorted = deadlines.sorted { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
        #expect(popped.map { $0.0 } == sorted.map { $0.0 })
        #expect(popped.map { $0.1 } == sorted.map { $0.1 })
    }

    @Test func idSetTracksPendingIDsAndForgetsOldWords() {
        var s = IDSet()
        for id in 1...10_000 { s.insert(id) }
        #expect(s.contains(1) && s.contains(10_000) && !s.contains(0) && !s.contains(10_001))
        // Remove all but a few, oldest first, as timers fire.
        var removed = 0
        for id in 1...9_990 where s.remove(id) { removed += 1 }
        #expect(removed == 9_990)
        let again = s.remove(5)
        #expect(!again, "a removed id is not there twice")
        #expect(!s.contains(9_990) && s.contains(9_991))
        for id in 10_001...10_100 { s.insert(id) }
        for id in 9_991...10_100 { #expect(s.contains(id)) }
        // A removal out of order (a cancellation) leaves the others.
        let cancelled = s.remove(10_050)
        #expect(cancelled)
        #expect(!s.contains(10_050) && s.contains(10_049) && s.contains(10_051))
    }
}
