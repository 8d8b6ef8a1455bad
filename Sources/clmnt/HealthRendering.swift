import ClmntCore
import ClmntHealth
import Foundation

/// Text and JSON renderings of health results.
enum HealthRendering {
    static func number(_ value: Double?) -> String {
        guard let value else { return "-" }
        return String(format: "%.1f", value)
    }

    static func optional(_ value: Int?) -> String { value.map(String.init) ?? "-" }

    /// `healthy (pid 1234, port 19001, HTTP 200, 1.2 ms)` and, when there is one, `: <detail>`.
    static func summary(_ record: HealthRecord) -> String {
        var facts = [record.pid.map { "pid \($0)" } ?? "no process", record.port.map { "port \($0)" } ?? "no port"]
        facts.append(record.httpStatus.map { "HTTP \($0)" } ?? "no HTTP answer")
        if let time = record.responseTimeMs { facts.append("\(number(time)) ms") }
        return "\(record.status.rawValue) (\(facts.joined(separator: ", ")))" + (record.detail.map { ": \(TerminalText.line($0))" } ?? "")
    }


    /// A table with a header row (`renderTable`).
    static func table(_ header: [String], _ rows: [[String]]) -> String { renderTable([header] + rows) }

    static func ago(_ date: Date, now: Date = Date()) -> String {
        let seconds = now.timeIntervalSince(date)
        return seconds >= 0 ? "\(Timestamp.duration(seconds)) ago" : "in \(Timestamp.duration(-seconds))"
    }
}
