import ArgumentParser
import FlowRuntime
import FlowSyntax
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct FileError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// File access for the CLI: the runtime reads no file itself, the CLI grants it.
enum SourceLoader {
    static func readBytes(_ path: String) -> [UInt8]? {
        guard let f = fopen(path, "rb") else { return nil }
        defer { fclose(f) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buffer, 1, buffer.count, f)
            if n > 0 { out.append(contentsOf: buffer[0..<n]) }
            if n < buffer.count { break }
        }
        if ferror(f) != 0 { return nil }
        return out
    }

    /// Loads a script, or prints why not and exits (66 unreadable, 65 invalid UTF-8).
    static func load(_ path: String) throws -> SourceFile {
        var st = stat()
        if stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
            printError("flow: '\(path)' is a directory, not a script\n")
            throw ExitCode(66)
        }
        guard let bytes = readBytes(path) else {
            printError("flow: cannot read '\(path)': \(String(cString: strerror(errno)))\n")
            throw ExitCode(66)
        }
        switch SourceFile.decode(path: path, bytes: bytes) {
        case .success(let f): return f
        case .failure(let d):
            printError(DiagnosticRenderer.render(d))
            throw ExitCode(65)
        }
    }

    /// The CLI's configuration: stdout for print, the system clock, files readable, the
    /// interpreter on the main thread (one thread: glibc's malloc takes no locks).
    static func configuration() -> Configuration {
        var c = Configuration()
        c.runsOnCallingThread = true
        c.readSource = { path in
            guard let bytes = readBytes(path) else { return nil }
            return String(validating: bytes, as: UTF8.self)
        }
        c.writeFile = { path, text, append in
            guard let f = fopen(path, append ? "ab" : "wb") else {
                throw FileError(message: String(cString: strerror(errno)))
            }
            defer { fclose(f) }
            let bytes = Array(text.utf8)
            guard fwrite(bytes, 1, bytes.count, f) == bytes.count, fflush(f) == 0 else {
                throw FileError(message: String(cString: strerror(errno)))
            }
        }
        return c
    }

    static func printOut(_ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { write(1, $0.baseAddress, $0.count) }
    }

    static func printError(_ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }
}
