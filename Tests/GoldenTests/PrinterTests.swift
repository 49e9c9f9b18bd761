import FlowSyntax
import Foundation
import Testing

/// The source printer round-trips: every golden script and example that parses prints
/// to source that parses again, without errors, to a tree that prints the same.
@Suite struct PrinterTests {
    @Test func printedSourceParsesToTheSameTree() throws {
        var checked = 0
        for path in Paths.flowFiles(under: Paths.scripts) + Paths.flowFiles(under: Paths.examples) {
            let text = try String(contentsOfFile: path, encoding: .utf8)
            let (program, errors) = Parser.parse(SourceFile(path: path, text: text))
            guard errors.isEmpty else { continue }
            let printed = SourcePrinter.print(program)
            let (again, againErrors) = Parser.parse(SourceFile(path: path + " (printed)", text: printed))
            #expect(againErrors.isEmpty, "\(path): the printed source does not parse: \(againErrors.first.map { "\($0)" } ?? "")\n\(printed)")
            guard againErrors.isEmpty else { continue }
            let reprinted = SourcePrinter.print(again)
            #expect(reprinted == printed, "\(path): printing changed the tree\n--- first\n\(printed)\n--- second\n\(reprinted)")
            checked += 1
        }
        #expect(checked > 300)
    }

    @Test func layoutIsCanonical() {
        let source = """
        flow f(items, limit = 3) {
          let total = (1 + 2) * 3 - -x
          for k, v in {a: 1, "b c": [1, 2]} { print("${k}: ${v}\\n") }
          node fetch(retry: 2, timeout: 5s) { sleep(250ms); items.map(fn(x) => x * 2) }
          return match total { 0 | 1 => "small", [a, ..rest] => a, _ => { total } }
        }
        """
        let (program, errors) = Parser.parse(SourceFile(path: "t.flow", text: source))
        #expect(errors.isEmpty)
        #expect(SourcePrinter.print(program) == """
        flow f(items, limit = 3) {
          let total = (1 + 2) * 3 - -x
          for k, v in {a: 1, "b c": [1, 2]} {
            print("${k}: ${v}\\n")
          }
          node fetch(retry: 2, timeout: 5s) {
            sleep(250ms)
            items.map(fn(x) => x * 2)
          }
          return match total {
            0 | 1 => {
              "small"
            }
            [a, ..rest] => {
              a
            }
            _ => {
              total
            }
          }
        }

        """)
    }
}
