import ClmntCore
import Foundation

/// Uptime over one window: the share of checks that found the molt healthy.
public struct UptimeWindow: Sendable, Equatable {
    public let label: String
    /// Nil for "all time".
    public let seconds: TimeInterval?
    public let checks: Int
    public let healthy: Int
    /// Of healthy checks: a failing gateway's time says little.
    public let averageMs: Double?
    /// Nearest-rank 95th percentile of healthy checks' response times (retained history only).
    public let p95Ms: Double?

    /// Nil without checks.
    public var uptimePercent: Double? { checks == 0 ? nil : Double(healthy) * 100 / Double(checks) }
}

/// A run of checks that were not healthy.
public struct Incident: Sendable, Equatable {
    public let start: Date
    /// The first healthy check after it; nil while it lasts.
    public let end: Date?
    /// To `end`, or to now for an open incident.
    public let duration: TimeInterval
    /// The status of the first failed check.
    public let status: HealthStatus
    public let checks: Int
}

/// `health history`: uptime, response times, incidents and the latest checks.
public struct HistoryReport: Sendable {
    public let windows: [UptimeWindow]
    /// Oldest first.
    public let incidents: [Incident]
    /// The last N checks, oldest first.
    public let recent: [HealthRecord]
    public let firstCheck: Date?
    public let lastCheck: Date?
    public let warnings: [String]

    public static let windowSpecs: [(String, TimeInterval?)] = [
        ("24h", 86_400), ("7d", 7 * 86_400), ("30d", 30 * 86_400), ("all", nil),
    ]

    public init(history: LoadedHistory, now: Date = Date(), limit: Int = 20) {
        let records = history.records
        var windows: [UptimeWindow] = []
        for (label, seconds) in Self.windowSpecs {
            let selected = seconds.map { span in records.filter { now.timeIntervalSince($0.timestamp) <= span } } ?? records
            let times = selected.filter(\.status.isHealthy).compactMap(\.responseTimeMs).sorted()
            var checks = selected.count, healthy = selected.filter(\.status.isHealthy).count
            var sum = times.reduce(0, +), count = times.count
            if seconds == nil, let archived = history.archived {
                checks += archived.checks
                healthy += archived.healthy
                sum += archived.responseSumMs
                count += archived.responseCount
            }
            windows.append(UptimeWindow(label: label, seconds: seconds, checks: checks, healthy: healthy,
                                        averageMs: count == 0 ? nil : sum / Double(count),
                                        p95Ms: Self.percentile(times, 95)))
        }
        self.windows = windows

        var incidents: [Incident] = []
        var open: (start: Date, status: HealthStatus, checks: Int)?
        for record in records {
            if record.status.isHealthy {
                if let current = open {
                    incidents.append(Incident(start: current.start, end: record.timestamp,
                                              duration: record.timestamp.timeIntervalSince(current.start),
                                              status: current.status, checks: current.checks))
                    open = nil
                }
            } else if let current = open {
                open = (current.start, current.status, current.checks + 1)
            } else {
                open = (record.timestamp, record.status, 1)
            }
        }
        if let current = open {
            incidents.append(Incident(start: current.start, end: nil, duration: max(0, now.timeIntervalSince(current.start)),
                                      status: current.status, checks: current.checks))
        }
        self.incidents = incidents
        recent = Array(records.suffix(max(0, limit)))
        firstCheck = history.archived?.since ?? records.first?.timestamp
        lastCheck = records.last?.timestamp
        warnings = history.warnings
    }

    /// Nearest rank: the smallest value with at least `percent` % of values at or below it.
    static func percentile(_ sorted: [Double], _ percent: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let rank = Int((percent * Double(sorted.count) / 100).rounded(.up))
        return sorted[min(sorted.count, max(1, rank)) - 1]
    }
}

extension HistoryReport {
    /// What `health history --json` prints (and the dashboard's history endpoint extends).
    public func json(molt: String) -> JSONOutput {
        .object([
            ("molt", .string(molt)),
            ("first_check", .optional(firstCheck)),
            ("last_check", .optional(lastCheck)),
            ("windows", .array(windows.map { window in
                .object([("window", .string(window.label)), ("checks", .int(window.checks)), ("healthy", .int(window.healthy)),
                         ("uptime_percent", .optional(window.uptimePercent)), ("avg_ms", .optional(window.averageMs)),
                         ("p95_ms", .optional(window.p95Ms))])
            })),
            ("incidents", .array(incidents.map { incident in
                .object([("start", .string(Timestamp.format(incident.start))), ("end", .optional(incident.end)),
                         ("duration_s", .int(Int(incident.duration.rounded()))), ("status", .string(incident.status.rawValue)),
                         ("checks", .int(incident.checks))])
            })),
            ("recent", .array(recent.map { $0.json() })),
            ("warnings", .array(warnings.map { .string($0) })),
        ])
    }
}
