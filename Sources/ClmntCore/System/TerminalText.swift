/// Text from outside clmnt (an archive's manifest and report, a molt's state files and
/// logs, a file name) made safe to show on a terminal, as GNU tar's and ls's quoting
/// styles do: a control character could retitle or clear root's terminal, move the
/// cursor, or print a forged line above a prompt. `--json` and `-0` output stay exact;
/// every human-readable line goes through here.
///
/// Control characters (C0, DEL, the C1 range U+0080...U+009F) are written `\xHH`, one
/// per UTF-8 byte, as `PathBytes` writes them in names. The bidirectional overrides and
/// isolates (U+202A...U+202E, U+2066...U+2069), which reorder how a line reads, are
/// written `\u{HHHH}`. Backslashes are left alone, so a name already escaped by
/// `PathBytes` is not escaped twice.
public enum TerminalText {
    /// One value on one line: newlines and tabs are escaped too, so a value can never
    /// start a line of its own.
    public static func line(_ text: String) -> String { escape(text, keepingLayout: false) }

    /// Several lines clmnt laid out itself: newlines and tabs stay, every other control
    /// character is escaped.
    public static func lines(_ text: String) -> String { escape(text, keepingLayout: true) }

    private static func escape(_ text: String, keepingLayout: Bool) -> String {
        if !text.unicodeScalars.contains(where: { needsEscape($0, keepingLayout: keepingLayout) }) { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            guard needsEscape(scalar, keepingLayout: keepingLayout) else { out.append(scalar); continue }
            let escaped = isBidiControl(scalar)
                ? "\\u{" + hex(scalar.value, digits: 4) + "}"
                : String(scalar).utf8.map { "\\x" + hex(UInt32($0), digits: 2) }.joined()
            out.append(contentsOf: escaped.unicodeScalars)
        }
        return String(out)
    }

    private static func needsEscape(_ scalar: Unicode.Scalar, keepingLayout: Bool) -> Bool {
        let value = scalar.value
        if keepingLayout && (value == 0x0A || value == 0x09) { return false }
        return value < 0x20 || (0x7F...0x9F).contains(value) || isBidiControl(scalar)
    }

    private static func isBidiControl(_ scalar: Unicode.Scalar) -> Bool {
        (0x202A...0x202E).contains(scalar.value) || (0x2066...0x2069).contains(scalar.value)
    }

    private static func hex(_ value: UInt32, digits: Int) -> String {
        let text = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}
