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
