import FlowSyntax
import Testing

@Suite struct LexerParserTests {
    @Test func tokenBoundariesOfDurationsAndOperators() {
        let file = SourceFile(path: "t.flow", text: "x = 250ms // 2\n")
        let (tokens, errors) = Lexer.tokenize(file)
        #expect(errors.isEmpty)
        #expect(tokens.map { $0.kind } == [.identifier, .assign, .duration, .slashSlash, .int, .newline, .eof])
        #expect(file.slice(tokens[2].start, tokens[2].end) == "250ms")
    }

    @Test func tenThousandNestedParenthesesGiveAnErrorNotACrash() {
        let text = "let x = " + String(repeating: "(", count: 10_000) + "1" + String(repeating: ")", count: 10_000) + "\n"
        let (_, diagnostics) = Parser.parse(SourceFile(path: "deep.flow", text: text))
        #expect(diagnostics.contains { $0.message.hasPrefix("nesting too deep") })
    }

    @Test func invalidUTF8IsADiagnosticWithAPosition() {
        let bytes: [UInt8] = Array("let a = 1\nlet b = \"".utf8) + [0xFF] + Array("\"\n".utf8)
        guard case .failure(let d) = SourceFile.decode(path: "bad.flow", bytes: bytes) else {
            Issue.record("invalid UTF-8 was accepted"); return
        }
        #expect(d.location.line == 2 && d.location.column == 10)
    }

    @Test func columnsCountCharactersNotBytes() {
        let file = SourceFile(path: "u.flow", text: "let s = \"é\" @\n")
        let (_, errors) = Lexer.tokenize(file)
        #expect(errors.first?.location.column == 13)
    }

    @Test func veryLongLineIsCutAroundTheCaret() {
        let text = "let x = " + String(repeating: "1 + ", count: 5000) + "@\n"
        let (_, diagnostics) = Parser.parse(SourceFile(path: "long.flow", text: text))
        let rendered = DiagnosticRenderer.render(diagnostics)
        #expect(rendered.contains("unexpected character '@'"))
        #expect(rendered.split(separator: "\n").allSatisfy { $0.count < 400 })
    }
}
