import ClmntTestSupport
import ClmntCore
import Testing

/// `TerminalText`: what reaches a terminal from outside clmnt cannot steer it.
@Suite("terminal text escaping", .tags(.fast))
struct TerminalTextTests {
    @Test("plain text, UTF-8 and backslashes are unchanged")
    func plainTextUnchanged() {
        for text in ["old-host", "café ☕ 日本", #"caf\xE9.txt"#, "a  b", ""] {
            #expect(TerminalText.line(text) == text)
            #expect(TerminalText.lines(text) == text)
        }
    }

    @Test("C0, DEL and C1 controls are written \\xHH; one line escapes newlines and tabs too")
    func controlsEscaped() {
        let title = "\u{1B}]0;pwned\u{07}"
        #expect(TerminalText.line(title) == #"\x1B]0;pwned\x07"#)
        #expect(TerminalText.line("a\nclmnt: everything fine") == #"a\x0Aclmnt: everything fine"#)
        #expect(TerminalText.line("a\tb\rc\u{7F}") == #"a\x09b\x0Dc\x7F"#)
        // U+009B is a one-character CSI on some terminals: both of its UTF-8 bytes, as PathBytes writes them.
        #expect(TerminalText.line("x\u{9B}2J") == #"x\xC2\x9B2J"#)
        #expect(TerminalText.lines("one\ntwo\tcols\u{1B}[2J") == "one\ntwo\tcols" + #"\x1B[2J"#)
    }

    @Test("bidirectional overrides and isolates cannot reorder a line")
    func bidiEscaped() {
        #expect(TerminalText.line("ok\u{202E}gnp.exe") == #"ok\u{202E}gnp.exe"#)
        #expect(TerminalText.lines("\u{2066}x\u{2069}") == #"\u{2066}x\u{2069}"#)
    }

    @Test("nothing that steers a terminal survives, for every control character")
    func noControlSurvives() {
        for value in Array(0x00...0x1F) + Array(0x7F...0x9F) + [0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069] {
            let scalar = Unicode.Scalar(UInt32(value))!
            let escaped = TerminalText.line("<\(Character(scalar))>")
            #expect(!escaped.unicodeScalars.contains(scalar), "U+\(String(value, radix: 16)) survived")
            #expect(escaped.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7F })
        }
    }
}
