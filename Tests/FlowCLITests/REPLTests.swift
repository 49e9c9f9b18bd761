import Foundation
import Testing

/// `flow repl` driven through a pipe, as a script (or a test) drives it.
@Suite struct REPLTests {
    /// A REPL fed line by line, with pauses, as a person at the prompt would: `send`
    /// writes input after a pause; `finish` closes the input and returns the output.
    final class Session {
        let process = Process()
        let input = Pipe(), out = Pipe(), err = Pipe()

        init(_ arguments: [String] = []) throws {
            process.executableURL = CLITests.binary
            process.arguments = ["repl"] + arguments
            process.currentDirectoryURL = CLITests.root
            process.standardInput = input
            process.standardOutput = out
            process.standardError = err
            try process.run()
        }

        func send(_ text: String, after ms: UInt32 = 0) {
            usleep(ms * 1000)
            input.fileHandleForWriting.write(Data((text + "\n").utf8))
        }

        func finish() throws -> String {
            try input.fileHandleForWriting.close()
            let o = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return o
        }
    }

    static func repl(_ lines: [String], files: [String] = []) throws -> CLITests.Outcome {
        try CLITests.flow(["repl"] + files, input: lines.joined(separator: "\n") + "\n")
    }

    @Test func definitionsPersistAndValuesPrint() throws {
        let r = try REPLTests.repl(["fn sq(x) { x * x }", "sq(7)", "let xs = range(25)", "xs", "{a: 1,", " b: [1, 2,", " 3]}", "print(\"hi\")"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == """
        defined sq
        49
        defined xs
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, … 5 more]
        {a: 1, b: [1, 2, 3]}
        hi

        """, "\(r.stdout)")
    }

    @Test func errorsPointAtTheInputAndChangeNothing() throws {
        let r = try REPLTests.repl(["fn f(x) { x + 1 }", "fn g() { f(2) }", "f(1, 2)", "fn f(x, y) { x + y }", "g()", "undefinedname"])
        #expect(r.stdout == "defined f\ndefined g\n3\n", "\(r.stdout)")
        #expect(r.stderr.contains("<repl:3>:1:1: error: 'f' takes 1 argument, found 2\n 1 | f(1, 2)\n   | ^~~~~~~"), "\(r.stderr)")
        // The redefinition would break g's call: refused, the old f stays (g() is still 3).
        #expect(r.stderr.contains("<repl:4>:1:4: error: redefining 'f' would break an earlier caller: it is called without 'y', which it would require"))
        #expect(r.stderr.contains("note: called here at <repl:2>:1:10"))
        #expect(r.stderr.contains("<repl:6>:1:1: error: undefined name 'undefinedname'"))
    }

    @Test func versionsShowAndRollBack() throws {
        let r = try REPLTests.repl(["fn greet(n) { \"hi ${n}\" }", "fn greet(n, p = \"!\") { \"hello ${n}${p}\" }", "greet(\"ann\")",
                                    ":defs", ":show greet", ":rollback greet", "greet(\"bob\")", ":rollback greet", ":rollback nothing"])
        #expect(r.stdout == """
        defined greet
        greet redefined (version 2)
        "hello ann!"
        fn run_node  v1  (std/engine)
        fn replay  v1  (std/engine)
        fn attempt  v1  (std/engine)
        fn backoff  v1  (std/engine)
        fn greet  v2  (repl)
        fn greet(n, p = "!") { "hello ${n}${p}" }
        # v2 repl
        # v1 repl
        greet is back to version 1
        "hi bob"

        """, "\(r.stdout)")
        #expect(r.stderr.contains(":rollback: 'greet' has only one version: nothing to roll back to"))
        #expect(r.stderr.contains(":rollback: 'nothing' is not defined in this session"))
    }

    @Test func flowsRunInTheBackgroundAndRunsCanBeInspected() throws {
        let r = try REPLTests.repl([
            "flow slow(n) { $.n = n; sleep(300ms); node twice { n * 2 } }",
            "slow(21)",
            "1 + 1",            // answered while slow(21) sleeps
            ":runs",
        ])
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.prefix(3) == ["defined slow", "[started] slow(21) — :runs lists it", "2"], "\(r.stdout)")
        #expect(lines.contains { $0.hasSuffix("-1  slow  running") }, "\(r.stdout)")
        // End of input waits for the background run to finish.
        #expect(lines.last == "[done] slow(21) = 42", "\(r.stdout)")
    }

    @Test func filesLoadAndReload() throws {
        let path = try CLITests.temporary("lib.flow", Array("fn double(x) { x * 2 }\nlet base = 10\n".utf8))
        let r = try REPLTests.repl(["double(base)", ":reload", "double(1)", ":load /nonexistent.flow", ":help"], files: [path])
        #expect(r.stdout.hasPrefix("defined double\ndefined base\n20\ndouble redefined (version 2)\nbase redefined (version 2)\n2\n"), "\(r.stdout)")
        #expect(r.stderr.contains(":load: cannot read '/nonexistent.flow'"))
        #expect(r.stdout.contains(":rollback NAME"))
    }
}

extension REPLTests {
    /// A background run waits for an approval; `:approve` in the same session lets it go on.
    @Test func approvalsFromThePrompt() throws {
        let session = try Session()
        session.send("flow deploy() { let ok = await approve(\"ship?\"); $.ok = ok; ok }\ndeploy()")
        session.send(":approve", after: 400)
        session.send(":runs", after: 400)
        let o = try session.finish()
        let lines = o.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("approved; run ") }, "\(o)")
        #expect(lines.contains("[done] deploy() = true"), "\(o)")
        #expect(lines.last?.hasSuffix("deploy  completed") == true, "\(o)")
    }
}

extension REPLTests {
    /// Pattern 20 through the REPL: a processor swapped and a validation node inserted
    /// while the batch runs, an unsafe version refused, rollback.
    @Test func hotSwapFromThePrompt() throws {
        let session = try Session(["Examples/hot_swap.flow"])
        func send(_ text: String, after ms: UInt32) { session.send(text, after: ms) }
        send("batch(items)", after: 200)
        send("fn process(x) { x * 100 }", after: 100)
        send("""
        flow batch(list) {
          $.done = []
          for item in list {
            let r = node work { sleep(150ms); process(item) }
            node validate { assert(r > 0) }
            $.done = $.done + [r]
          }
          return $.done
        }
        """, after: 50)
        send("""
        flow batch(list) {
          $.done = []
          for item in list {
            let r = node compute { sleep(150ms); process(item) }
            $.done = $.done + [r]
          }
          return $.done
        }
        """, after: 500)
        send(":rollback batch", after: 500)
        send(":history", after: 1500)
        let o = try session.finish()
        #expect(o.contains("[swap] offered to "), "\(o)")
        #expect(o.contains(" is on version 2 of batch"), "\(o)")
        #expect(o.contains(" stays on its version: the log recorded 'batch/work#0', but the code finished without asking for it"), "\(o)")
        #expect(o.contains("batch is back to version 2"), "\(o)")
        // Items before the new processor were times 10, the rest times 100; every item once.
        let done = o.split(separator: "\n").first { $0.hasPrefix("[done] batch(items) = ") }.map(String.init) ?? ""
        let values = done.dropFirst("[done] batch(items) = [".count).dropLast().split(separator: ", ").compactMap { Int($0) }
        #expect(values.count == 8, "\(o)")
        #expect(values.enumerated().allSatisfy { i, v in v == (i + 1) * 10 || v == (i + 1) * 100 }, "\(values)")
        #expect(values.last == 800)
        // Validation ran from the swap on.
        #expect(o.contains("batch/validate#7"), "\(o)")
    }
}

extension REPLTests {
    /// With `:policy pin`, a running run is not offered the new version.
    @Test func pinnedRedefinitionsLeaveRunningRunsAlone() throws {
        let session = try Session()
        session.send("flow slow() { node a { sleep(300ms); 1 } \n node b { 2 } }\nslow()")
        session.send(":policy pin\nflow slow() { node a { sleep(300ms); 1 } \n node c { 3 } }", after: 100)
        let o = try session.finish()
        #expect(o.contains("policy: pin"), "\(o)")
        #expect(!o.contains("[swap]"), "\(o)")
        #expect(o.contains("[done] slow() = 2"), "\(o)")
    }
}

extension REPLTests {
    /// The engine's own functions are definitions of the image: shown, redefined, versioned.
    @Test func engineFunctionsAreInTheImage() throws {
        let r = try REPLTests.repl([":show backoff", "engine.define(\"backoff\", fn(options, attempt) => 1ms)", ":show backoff", ":defs"])
        #expect(r.stdout.hasPrefix("fn backoff(options, attempt) {\n  let base = options.get(\"delay\", 100ms)"), "\(r.stdout)")
        #expect(r.stdout.contains("fn(options, attempt) => 1ms\n# v2 engine.define\n# v1 std/engine\n"), "\(r.stdout)")
        #expect(r.stdout.contains("fn run_node  v1  (std/engine)"), "\(r.stdout)")
    }
}
