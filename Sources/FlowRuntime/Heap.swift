#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Blocks of memory the runtime manages by hand — call frames, fiber stacks, the chunks
/// of a run's events, queues, map indexes — taken from `malloc`.
///
/// `UnsafeMutablePointer.allocate` asks the Swift runtime for memory of "default"
/// alignment, which it serves with `posix_memalign` even when `malloc`'s 16 bytes would
/// do; glibc's aligned path splits and merges chunks where `malloc` takes one from a
/// per-thread cache, about three times the instructions for the small blocks a run
/// allocates several of (docs/interpreter.md, "Memory blocks").
enum Heap {
    /// Room for `capacity` values of `T` (at least one), uninitialized. `T`'s alignment
    /// is at most `malloc`'s.
    @inline(__always)
    static func allocate<T>(_ type: T.Type = T.self, capacity: Int) -> UnsafeMutablePointer<T> {
        raw(byteCount: MemoryLayout<T>.stride * max(1, capacity)).bindMemory(to: T.self, capacity: max(1, capacity))
    }

    /// `byteCount` bytes (at least one), aligned to 16.
    @inline(__always)
    static func raw(byteCount: Int) -> UnsafeMutableRawPointer {
        guard let p = malloc(max(1, byteCount)) else { fatalError("out of memory (\(byteCount) bytes)") }
        return p
    }

    /// Frees what `allocate` or `raw` gave (its contents already deinitialized).
    @inline(__always)
    static func free<T>(_ p: UnsafeMutablePointer<T>) { releaseBlock(UnsafeMutableRawPointer(p)) }

    @inline(__always)
    static func free(_ p: UnsafeMutableRawPointer) { releaseBlock(p) }
}

/// The C library's `free` (inside `Heap` the name is its own).
@inline(__always) private func releaseBlock(_ p: UnsafeMutableRawPointer) { free(p) }
