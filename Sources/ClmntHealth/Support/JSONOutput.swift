import ClmntCore
import Foundation

/// A JSON value to write, with keys in a fixed order and real `null`s, so state
/// files read the same every time and diff cleanly.
public indirect enum JSONOutput: Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONOutput])
    case object([(String, JSONOutput)])

    public static func optional(_ value: Int?) -> JSONOutput { value.map { .int($0) } ?? .null }
    public static func optional(_ value: Double?) -> JSONOutput { value.map { .double($0) } ?? .null }
    public static func optional(_ value: String?) -> JSONOutput { value.map { .string($0) } ?? .null }
    public static func optional(_ value: Date?) -> JSONOutput { value.map { .string(Timestamp.format($0)) } ?? .null }

    /// One line, no spaces: for JSONL.
    public var compact: String {
        var out = ""
        write(to: &out, indent: nil, level: 0)
        return out
    }

    /// Two-space indentation and a final newline: for state files and `--json`.
    public var pretty: String {
        var out = ""
        write(to: &out, indent: "  ", level: 0)
        return out + "\n"
    }

    private func write(to out: inout String, indent: String?, level: Int) {
        switch self {
        case .null: out += "null"
        case .bool(let value): out += value ? "true" : "false"
        case .int(let value): out += String(value)
        case .double(let value): out += Self.number(value)
        case .string(let value): Self.quote(value, into: &out)
        case .array(let items):
            guard !items.isEmpty else { out += "[]"; return }
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                newline(&out, indent, level + 1)
                item.write(to: &out, indent: indent, level: level + 1)
            }
            newline(&out, indent, level)
            out += "]"
        case .object(let members):
            guard !members.isEmpty else { out += "{}"; return }
            out += "{"
            for (index, (key, value)) in members.enumerated() {
                if index > 0 { out += "," }
                newline(&out, indent, level + 1)
                Self.quote(key, into: &out)
                out += indent == nil ? ":" : ": "
                value.write(to: &out, indent: indent, level: level + 1)
            }
            newline(&out, indent, level)
            out += "}"
        }
    }

    private func newline(_ out: inout String, _ indent: String?, _ level: Int) {
        guard let indent else { return }
        out += "\n" + String(repeating: indent, count: level)
    }

    /// A number as clmnt writes it: at most three decimals, a whole number without a fraction;
    /// non-finite numbers are not JSON, so they become 0. The one rounding rule, for the state
    /// files' text and for `--json`.
    enum Number: Equatable {
        case whole(Int)
        case fraction(Double)
    }

    static func normalized(_ value: Double) -> Number {
        let rounded = value.isFinite ? (value * 1000).rounded() / 1000 : 0
        if rounded == rounded.rounded(), abs(rounded) < 1e15 { return .whole(Int(rounded)) }
        return .fraction(rounded)
    }

    static func number(_ value: Double) -> String {
        switch normalized(value) {
        case .whole(let whole): return String(whole)
        case .fraction(let fraction):
            var text = String(format: "%.3f", fraction)
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
            return text
        }
    }

    static func quote(_ text: String, into out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}

/// Through `JSONStyle` (every `--json`): keys sorted, numbers as `compact` and `pretty` write them.
extension JSONOutput: Encodable {
    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .null:
            var container = encoder.singleValueContainer()
            try container.encodeNil()
        case .bool(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .int(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .double(let value):
            var container = encoder.singleValueContainer()
            switch Self.normalized(value) {
            case .whole(let whole): try container.encode(whole)
            case .fraction(let fraction): try container.encode(fraction)
            }
        case .string(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .array(let items):
            var container = encoder.unkeyedContainer()
            for item in items { try container.encode(item) }
        case .object(let members):
            var container = encoder.container(keyedBy: Key.self)
            for (key, value) in members { try container.encode(value, forKey: Key(stringValue: key)) }
        }
    }
}
