import Foundation
import Testing

/// Runs the real `flow` binary the way the README and a user do.
@Suite struct CLITests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `flow` binary SwiftPM built next to this test bundle.
    static var binary: URL {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for dir in [beside, beside.deletingLastPathComponent(), root.appendingPathComponent(".build/debug")] {
            let candidate = dir.appendingPathComponent("flow")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return root.appendingPathComponent(".build/debug/flow")
    }

    struct Outcome: Equatable { let status: Int32; let stdout: String; let stderr: String }

    /// Where the CLI's runs go in tests: one store per test process, never the repo's.
    static let store = FileManager.default.temporaryDirectory
        .appendingPathComponent("flow-cli-tests-\(getpid())/flow.db").path

    static func flow(_ arguments: [String], input: String? = nil, store: String? = nil,
                     environment extra: [String: String] = [:]) throws -> Outcome {
        let stdin = input.map { text -> Pipe in
            let p = Pipe()
            p.fileHandleForWriting.write(Data(text.utf8))
            try? p.fileHandleForWriting.close()
            return p
        }
        let p = Process()
        p.executableURL = binary
        p.arguments = arguments
        p.currentDirectoryURL = root
        var environment = ProcessInfo.processInfo.environment
        environment["FLOW_STORE"] = store ?? CLITests.store
        environment.merge(extra) { $1 }
        p.environment = environment
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        if let stdin { p.standardInput = stdin }
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Outcome(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    static func temporary(_ name: String, _ contents: [UInt8]) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flow-cli-tests-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent(name)
        try Data(contents).write(to: url)
        return url.path
    }

    @Test func readmeExampleRunsAndPrints() throws {
        let r = try CLITests.flow(["run", "Examples/hello.flow"])
        #expect(r.status == 0)
        #expect(r.stdout == "hello from Flow\n")
    }

    @Test func readmeSagaExampleRuns() throws {
        let r = try CLITests.flow(["run", "Examples/saga.flow"])
        #expect(r.status == 0)
        #expect(r.stdout.hasPrefix("booked\n"))
        #expect(r.stdout.contains("cancel flight LH-400\n"))
    }

    /// On the CLI's default store run ids name the script (the golden runner's are
    /// `run-N`): the example finds its run by flow, as a user's script would.
    @Test func speculativeExampleShowsTheRaceOnTheDefaultStore() throws {
        let r = try CLITests.flow(["run", "--events", "none", "Examples/speculative.flow"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("  branch:cancelled answer_fast/race#0/large\n"))
        #expect(r.stdout.contains("  race:won answer_fast/race#0\n"))
        #expect(r.stdout.hasSuffix("best: large model Paris, France\n"))
    }

    @Test func readmeSnippetIsPartOfATestedExample() throws {
        let readme = try String(contentsOf: CLITests.root.appendingPathComponent("README.md"), encoding: .utf8)
        let example = try String(contentsOf: CLITests.root.appendingPathComponent("Examples/retry_with_backoff.flow"), encoding: .utf8)
        guard let start = readme.range(of: "```flow\n"), let end = readme.range(of: "```\n", range: start.upperBound..<readme.endIndex) else {
            Issue.record("README has no flow code block"); return
        }
        let snippet = String(readme[start.upperBound..<end.lowerBound])
        #expect(!snippet.isEmpty && example.contains(snippet))
    }

    @Test func readmeCommandsAreTheOnesTested() throws {
        let readme = try String(contentsOf: CLITests.root.appendingPathComponent("README.md"), encoding: .utf8)
        #expect(readme.contains("    swift run flow run Examples/hello.flow\n"))
        #expect(readme.contains("    swift test\n"))
        let ci = try String(contentsOf: CLITests.root.appendingPathComponent(".ci/run"), encoding: .utf8)
        #expect(ci.contains("\nswift test\n"))
    }

    @Test func versionAndHelp() throws {
        let v = try CLITests.flow(["--version"])
        #expect(v.status == 0 && v.stdout.hasPrefix("0."))
        let h = try CLITests.flow(["run", "--help"])
        #expect(h.status == 0 && h.stdout.contains("Run a Flow script"))
        let c = try CLITests.flow(["help", "check"])
        #expect(c.status == 0 && c.stdout.contains("Check Flow scripts"))
    }

    @Test func staticErrorsExit65WithEveryError() throws {
        let path = try CLITests.temporary("bad.flow", Array("print(a1)\nprint(b2)\n".utf8))
        let r = try CLITests.flow(["run", path])
        #expect(r.status == 65)
        #expect(r.stderr.contains("\(path):1:7: error: undefined name 'a1'"))
        #expect(r.stderr.contains("\(path):2:7: error: undefined name 'b2'"))
        #expect(r.stderr.contains(" 1 | print(a1)\n   |       ^~"))
        #expect(r.stdout.isEmpty)
    }

    @Test func runtimeErrorExit70WithTraceback() throws {
        let path = try CLITests.temporary("boom.flow", Array("fn f(x) { return x // 0 }\nprint(\"before\")\nf(1)\n".utf8))
        let r = try CLITests.flow(["run", path])
        #expect(r.status == 70)
        #expect(r.stdout == "before\n")
        #expect(r.stderr.contains("\(path):1:18: error: division by zero in '//'"))
        #expect(r.stderr.contains("traceback (most recent call last):"))
        #expect(r.stderr.contains("\(path):3:1 in <main>"))
    }

    @Test func checkReportsEveryFileAndExitCode() throws {
        let good = try CLITests.temporary("good.flow", Array("print(1)\n".utf8))
        let bad = try CLITests.temporary("bad2.flow", Array("let = 1\n".utf8))
        let ok = try CLITests.flow(["check", good])
        #expect(ok.status == 0 && ok.stdout.contains("1 file checked, no errors"))
        let r = try CLITests.flow(["check", good, bad])
        #expect(r.status == 65)
        #expect(r.stderr.contains("\(bad):1:5: error: expected a name after 'let', found '='"))
        #expect(r.stderr.contains("1 error in 2 files"))
    }

    @Test func missingFileAndDirectoryExit66() throws {
        let r = try CLITests.flow(["run", "no/such/file.flow"])
        #expect(r.status == 66 && r.stderr.contains("cannot read 'no/such/file.flow'"))
        let d = try CLITests.flow(["run", "Examples"])
        #expect(d.status == 66 && d.stderr.contains("is a directory"))
    }

    @Test func invalidUTF8IsADiagnostic() throws {
        let path = try CLITests.temporary("latin1.flow", Array("print(\"caf".utf8) + [0xE9] + Array("\")\n".utf8))
        let r = try CLITests.flow(["run", path])
        #expect(r.status == 65)
        #expect(r.stderr.contains("\(path):1:11: error: invalid UTF-8"))
    }

    @Test func scriptArgumentsReachArgs() throws {
        let path = try CLITests.temporary("args.flow", Array("print(args())\n".utf8))
        let r = try CLITests.flow(["run", path, "one", "--two"])
        #expect(r.status == 0 && r.stdout == "[\"one\", \"--two\"]\n", "\(r.stderr)")
    }

    /// `flow run FILE ARGS…` with no option before the file is made without the argument
    /// parser (start-up): it must do what the parsed command does, failures included.
    @Test func aRunWithoutOptionsIsTheParsedCommand() throws {
        let path = try CLITests.temporary("plain.flow", Array("print(args())\nthrow \"boom\"\n".utf8))
        let plain = try CLITests.flow(["run", path, "x", "--y"])
        let parsed = try CLITests.flow(["run", "--events", "plain", path, "x", "--y"])
        #expect(plain.status == 70 && plain.stdout == "[\"x\", \"--y\"]\n" && plain.stderr.contains("boom"))
        #expect(plain == parsed)
        let bad = ["FLOW_RETENTION": "soon"]
        let badPlain = try CLITests.flow(["run", path], environment: bad)
        let badParsed = try CLITests.flow(["run", "--events", "plain", path], environment: bad)
        #expect(badPlain.status == 64 && badPlain.stderr.contains("a retention is a duration like 30d"))
        #expect(badPlain == badParsed)
        let usage = try CLITests.flow(["run", "--store"])
        #expect(usage.status == 64 && usage.stdout.isEmpty)
    }

    /// The benchmark programs stay valid Flow (bench/run times them; no test does).
    @Test func benchmarkProgramsCheck() throws {
        let dir = CLITests.root.appendingPathComponent("bench/programs")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".flow") }.sorted()
        #expect(files.count >= 7)
        let r = try CLITests.flow(["check"] + files.map { "bench/programs/" + $0 })
        #expect(r.status == 0, "\(r.stderr)")
    }

    static let flowScript = "flow f() {\n  node step { 1 }\n  $.done = true\n}\nf()\nprint(\"out\")\n"

    @Test func eventsArePlainLinesOnStandardErrorWhenNotATerminal() throws {
        let path = try CLITests.temporary("events.flow", Array(CLITests.flowScript.utf8))
        let r = try CLITests.flow(["run", path])
        #expect(r.status == 0 && r.stdout == "out\n")
        let lines = r.stderr.split(separator: "\n").map { String($0) }
        #expect(lines.count == 5)
        // Run ids are the script's id (six characters) and a number.
        #expect(lines.first?.range(of: #" [a-z2-9]{6}-1 run:start flow="f" args=\[\] parent=nil$"#, options: .regularExpression) != nil)
        #expect(lines.contains { $0.contains("-1 node:end f/step#0 attempts=1 duration=") })
        #expect(lines.contains { $0.contains("-1 state $.done keys=[\"done\"] old=nil new=true") })
    }

    @Test func eventsAsJSONLines() throws {
        let path = try CLITests.temporary("events2.flow", Array(CLITests.flowScript.utf8))
        let r = try CLITests.flow(["run", "--events", "json", path])
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 5)
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect((object?["run"] as? String)?.hasSuffix("-1") == true)
        }
        #expect(lines.last?.contains("\"type\":\"run:end\"") == true)
    }

    @Test func eventsCanBeSilencedOrRefused() throws {
        let path = try CLITests.temporary("events3.flow", Array(CLITests.flowScript.utf8))
        let quiet = try CLITests.flow(["run", "--events", "none", path])
        #expect(quiet.status == 0 && quiet.stderr.isEmpty && quiet.stdout == "out\n")
        let bad = try CLITests.flow(["run", "--events", "loud", path])
        #expect(bad.status == 64 && bad.stderr.contains("--events must be one of tree, plain, json, none, found 'loud'"))
    }

    @Test func badUsageExit64() throws {
        let r = try CLITests.flow(["frobnicate"])
        #expect(r.status == 64)
    }

    /// With less address space than the interpreter's 1 GiB stack (`ulimit -v`), the
    /// interpreter takes a smaller one instead of hanging, and deep recursion still ends
    /// at the call-depth limit with a Flow error.
    @Test func aSmallAddressSpaceGivesASmallerStackNotAHang() throws {
        let script = try CLITests.temporary("deep.flow", Array("""
            fn h(n) {
              return [n].map(fn(x) { h(x + 1) })[0]
            }
            print("start")
            h(0)
            """.utf8))
        // The traceback (10,000 frames) goes to a file: a pipe read after stdout would fill.
        let errors = script + ".err"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "ulimit -v 400000 && exec timeout 120 \"$0\" run --store none \"$1\" 2>\"$2\"",
                       CLITests.binary.path, script, errors]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let o = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let e = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
        #expect(p.terminationStatus == 70, "\(e)")
        #expect(o == "start\n")
        #expect(e.contains("call depth limit reached"))
    }
}
