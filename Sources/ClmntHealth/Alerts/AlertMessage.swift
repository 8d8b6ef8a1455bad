import ClmntCore
import Foundation

/// The words of one alert, reminder or recovery, for mail and webhook alike.
public struct AlertMessage: Sendable, Equatable {
    public let kind: AlertKind
    public let molt: String
    public let subject: String
    /// The mail body: one fact per line.
    public let body: String
    /// The webhook's `message`: one paragraph.
    public let summary: String
    /// Unique to the incident and the message, stable when a failed delivery is retried.
    public let idempotencyKey: String

    public init(kind: AlertKind, molt: String, record: HealthRecord, state: WatchState, host: String = AlertMessage.hostName()) {
        self.kind = kind
        self.molt = molt
        let status = record.status.rawValue
        subject = "[Claw Mountain] Molt \(molt) is \(status)"
        let timestamp = Timestamp.format(record.timestamp)
        let lastSuccess = state.lastSuccess.map(Timestamp.format) ?? "never recorded"
        let outageStart = state.incidentStart ?? record.timestamp
        let outage = Timestamp.duration(record.timestamp.timeIntervalSince(outageStart))
        func value(_ number: Int?) -> String { number.map(String.init) ?? "none" }

        var lines: [(String, String)] = [("Molt", molt), ("Status", status), ("Timestamp", timestamp)]
        switch kind {
        case .alert, .reminder:
            lines.append(("Failures", "\(state.consecutiveFailures) consecutive failed checks (alert threshold \(state.threshold))"))
        case .recovery:
            lines.append(("Outage", "\(outage), from \(Timestamp.format(outageStart)) to \(timestamp)"))
        }
        lines += [("PID", value(record.pid)), ("Port", value(record.port)), ("HTTP status", value(record.httpStatus)),
                  ("Last success", kind == .recovery ? timestamp : lastSuccess)]
        if let detail = record.detail { lines.append(("Detail", detail)) }
        lines.append(("Host", host))
        let intro: String
        switch kind {
        case .alert: intro = "Molt \(molt) failed \(state.consecutiveFailures) health checks in a row: it is \(status)."
        case .reminder: intro = "Reminder: molt \(molt) is still \(status) (\(state.consecutiveFailures) failed checks in a row, since \(Timestamp.format(outageStart)))."
        case .recovery: intro = "Molt \(molt) is healthy again after an outage of \(outage)."
        }
        body = intro + "\n\n" + lines.map { "\(($0.0 + ":").padding(toLength: 14, withPad: " ", startingAt: 0)) \($0.1)" }
            .joined(separator: "\n") + "\n\n-- \nclmnt health-watch on \(host)\n"

        switch kind {
        case .alert, .reminder:
            summary = "\(kind == .reminder ? "Reminder: m" : "M")olt \(molt) is \(status) at \(timestamp): "
                + "\(state.consecutiveFailures) consecutive failed health checks (PID \(value(record.pid)), port \(value(record.port)), "
                + "HTTP \(value(record.httpStatus))\(record.detail.map { ", \($0)" } ?? ""); last success \(lastSuccess)."
        case .recovery:
            summary = "Molt \(molt) is healthy again at \(timestamp) after an outage of \(outage) (since \(Timestamp.format(outageStart)))."
        }
        let incident = state.incidentID ?? "\(molt)-\(Timestamp.compact(outageStart))"
        switch kind {
        case .alert: idempotencyKey = "clmnt-health-\(incident)-alert"
        case .reminder: idempotencyKey = "clmnt-health-\(incident)-reminder-\(state.consecutiveFailures)"
        case .recovery: idempotencyKey = "clmnt-health-\(incident)-recovery"
        }
    }

    /// The mail as a sendmail-compatible program reads it on standard input.
    public func mail(to recipients: [String], date: Date) -> String {
        [
            "To: \(recipients.joined(separator: ", "))",
            "Subject: \(subject)",
            "Date: \(Timestamp.rfc5322(date))",
            "Auto-Submitted: auto-generated",
            "X-Clmnt-Molt: \(molt)",
            "X-Clmnt-Alert: \(kind.rawValue)",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
            "",
            body,
        ].joined(separator: "\n")
    }

    public static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
