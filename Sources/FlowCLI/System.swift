import FlowRuntime
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's surroundings through the C library: reading them through Foundation's
/// `ProcessInfo` and `FileManager` cost a millisecond of every `flow` start.
enum System {
    /// One environment variable.
    static func env(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// Every environment variable (for `env()` in scripts).
    static var environment: [String: String] {
        var result: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let text = String(cString: entry)
            if let eq = text.firstIndex(of: "=") {
                result[String(text[..<eq])] = String(text[text.index(after: eq)...])
            }
            p += 1
        }
        return result
    }

    static var currentDirectory: String {
        guard let p = getcwd(nil, 0) else { return "." }
        defer { free(p) }
        return String(cString: p)
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Wall-clock seconds since 1970.
    static var now: Double { SystemClock().wallTime() }
}
