import Foundation

/// The outcome of one health check, from best to worst as an admin reads it.
public enum HealthStatus: String, Sendable, CaseIterable {
    /// The gateway process runs and `GET /health` answered 200 (and, with `--ready`, `/readyz` too).
    case healthy
    /// Live but not ready: `/health` is fine, `/readyz` answered 503 (only with `--ready`).
    case degraded
    /// The process runs but `/health` failed: refused, timed out, not 200, or `"ok": false`.
    case unhealthy
    /// A PID file or lock file names a process that is gone: the gateway crashed.
    case dead
    /// No gateway process at all, and nothing says one should be running.
    case stopped
    /// A process runs but no port is known (no `MOLT_PORT`, no `gateway.port`).
    case unknown

    public var isHealthy: Bool { self == .healthy }

    /// Reads a status word as written by clmnt or the bash tool; anything else is `.unknown`.
    public init(lenient text: String?) {
        self = text.flatMap { HealthStatus(rawValue: $0.lowercased()) } ?? .unknown
    }
}

/// One check of one molt: what `health-status.json` and each history line hold.
public struct HealthRecord: Sendable, Equatable {
    public var timestamp: Date
    public var status: HealthStatus
    public var pid: Int?
    public var port: Int?
    /// The HTTP status of `GET /health`, nil when no answer came.
    public var httpStatus: Int?
    /// Wall time of the `/health` request in milliseconds, nil when no answer came.
    public var responseTimeMs: Double?
    /// Why the status is what it is, in a few words ("connection refused", "PID 123 from gateway.pid is gone").
    public var detail: String?

    public init(timestamp: Date, status: HealthStatus, pid: Int? = nil, port: Int? = nil,
                httpStatus: Int? = nil, responseTimeMs: Double? = nil, detail: String? = nil) {
        self.timestamp = timestamp
        self.status = status
        self.pid = pid
        self.port = port
        self.httpStatus = httpStatus
        self.responseTimeMs = responseTimeMs
        self.detail = detail
    }
}

/// The result of checking one molt, with whatever went wrong around it (never thrown away).
public struct CheckOutcome: Sendable {
    public let molt: String
    public let record: HealthRecord
    /// Problems that did not stop the check: a corrupt state file reset, a state file not written.
    public var warnings: [String]

    public init(molt: String, record: HealthRecord, warnings: [String] = []) {
        self.molt = molt
        self.record = record
        self.warnings = warnings
    }
}
