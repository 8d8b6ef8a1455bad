import Foundation

/// The `.molt-info` file: `KEY=VALUE` lines (values may be quoted, `#` starts a comment).
public struct MoltInfo: Sendable, Equatable {
    public var values: [String: String]

    public init(values: [String: String] = [:]) { self.values = values }

    public init(parsing text: String) {
        var values: [String: String] = [:]
        for rawLine in text.split(whereSeparator: \.isNewline) {
            var line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line.removeFirst("export ".count) }
            guard let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, let quote = value.first, quote == "\"" || quote == "'", value.last == quote {
                value = String(value.dropFirst().dropLast())
            }
            values[key] = value
        }
        self.values = values
    }

    public subscript(key: String) -> String? { values[key] }

    public var name: String? { values["MOLT_NAME"] }
    public var port: Int? { values["MOLT_PORT"].flatMap { Int($0) } }
    public var home: String? { values["MOLT_HOME"] }
    public var created: String? { values["CREATED"] }
}
