import Foundation

/// The one JSON style of every `--json` output and of the JSON files clmnt writes for tools
/// (`backup-report.json`; README "Output"): snake_case keys, sorted; two-space indentation
/// and `"key": value` (as `jq .` prints); slashes unescaped, text as UTF-8; a final newline;
/// dates as ISO-8601 UTC strings (`2026-11-30T02:15:04Z`).
///
/// Not in this style, on purpose: `manifest.json` (one compact line, which the bash tool's
/// `list-backups` greps), the health state files (the bash tool's key order) and the
/// dashboard's API (the old dashboard's contract).
public enum JSONStyle {
    /// `value` as a JSON document in the style above.
    public static func encode<Value: Encodable>(_ value: Value) throws -> String {
        // Compact first, then laid out here: Foundation's own pretty printing writes `"key" : value`.
        indent(String(decoding: try compact(value), as: UTF8.self))
    }

    /// `value` on one line, no spaces (`"key":value`), keys sorted: for the manifest (which the
    /// bash tool's `list-backups` greps), the marks clmnt keeps in extended attributes, and the
    /// dashboard's rows. No final newline.
    public static func compact<Value: Encodable>(_ value: Value) throws -> Data {
        try encoder.encode(value)
    }

    private static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Timestamp.format(date))
        }
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return encoder
    }

    /// Lays out compact JSON (no whitespace outside strings, as `JSONEncoder` writes it) with
    /// two-space indentation; empty objects and arrays stay `{}` and `[]`.
    static func indent(_ compact: String) -> String {
        let bytes = Array(compact.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        var depth = 0
        var inString = false
        var escaped = false
        func newline() {
            out.append(UInt8(ascii: "\n"))
            out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: 2 * depth))
        }
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            if inString {
                out.append(byte)
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
                out.append(byte)
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                out.append(byte)
                // `{}` and `[]` stay on one line.
                if index < bytes.count, bytes[index] == UInt8(ascii: "}") || bytes[index] == UInt8(ascii: "]") {
                    out.append(bytes[index])
                    index += 1
                } else {
                    depth += 1
                    newline()
                }
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                newline()
                out.append(byte)
            case UInt8(ascii: ","):
                out.append(byte)
                newline()
            case UInt8(ascii: ":"):
                out.append(contentsOf: [UInt8(ascii: ":"), UInt8(ascii: " ")])
            default:
                out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\n"))
        return String(decoding: out, as: UTF8.self)
    }
}
