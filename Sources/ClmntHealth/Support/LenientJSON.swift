import ClmntCore
import Foundation

/// A JSON object read forgivingly: numbers may come as numbers or as strings
/// (`"19001"`), and a missing value may be `null`, absent, `""` or the string
/// `"null"` — all of which the bash tool this replaces wrote.
struct LenientObject {
    let members: [String: Any]

    /// Nil when `data` is not a JSON object.
    init?(data: Data) {
        guard !data.isEmpty,
              let object = try? JSONSerialization.jsonObject(with: data, options: []) as? [String: Any]
        else { return nil }
        members = object
    }

    /// The members that can still be read from text that is not valid JSON (the bash
    /// tool wrote `"alert_sent": ,` when a variable was empty): every `"key": value`
    /// whose value is a string, number, boolean or null. Nil when none is.
    init?(salvaging data: Data) {
        let text = String(decoding: data, as: UTF8.self)
        let pattern = #"\"([A-Za-z_][A-Za-z0-9_]*)\"\s*:\s*(\"(?:[^\"\\\n]|\\.)*\"|-?[0-9][0-9.eE+-]*|true|false|null)\s*(?=[,}\n])"#
        guard let regex = try? NSRegularExpression(pattern: pattern) else { return nil }
        var members: [String: Any] = [:]
        for match in regex.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            guard let key = Range(match.range(at: 1), in: text), let value = Range(match.range(at: 2), in: text),
                  let parsed = try? JSONSerialization.jsonObject(with: Data(text[value].utf8), options: [.fragmentsAllowed])
            else { continue }
            // The first occurrence wins: nested objects come after the top-level scalars in every writer.
            if members[String(text[key])] == nil, !(parsed is NSNull) { members[String(text[key])] = parsed }
        }
        guard !members.isEmpty else { return nil }
        self.members = members
    }

    init(members: [String: Any]) {
        self.members = members
    }

    init?(line: Substring) {
        self.init(data: Data(line.utf8))
    }

    func has(_ key: String) -> Bool { members[key] != nil }

    func string(_ key: String) -> String? {
        switch members[key] {
        case let text as String:
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            return trimmed.isEmpty || trimmed == "null" ? nil : text
        case let number as NSNumber: return number.stringValue
        default: return nil
        }
    }

    func double(_ key: String) -> Double? {
        switch members[key] {
        case let number as NSNumber:
            let value = number.doubleValue
            return value.isFinite ? value : nil
        case let text as String:
            guard let value = Double(text.trimmingCharacters(in: .whitespaces)), value.isFinite else { return nil }
            return value
        default: return nil
        }
    }

    func int(_ key: String) -> Int? {
        guard let value = double(key), value == value.rounded(), abs(value) < 1e15 else { return nil }
        return Int(value)
    }

    /// `true`/`false`, `1`/`0`, and the same as strings.
    func bool(_ key: String) -> Bool? {
        switch members[key] {
        case let number as NSNumber: return number.intValue != 0
        case let text as String:
            switch text.trimmingCharacters(in: .whitespaces).lowercased() {
            case "true", "1", "yes": return true
            case "false", "0", "no": return false
            default: return nil
            }
        default: return nil
        }
    }

    func date(_ key: String) -> Date? {
        string(key).flatMap(Timestamp.parse)
    }
}
