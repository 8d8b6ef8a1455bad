import ClmntCore
import Foundation

// The three state files of `.molt-state/`, in the typed form clmnt writes and
// the loose form the bash tool wrote (numbers as strings, `"null"` strings).

extension HealthRecord {
    /// `health-status.json` and history lines share these keys; history lines leave out a nil `detail`.
    public func json(includeNullDetail: Bool = true) -> JSONOutput {
        var members: [(String, JSONOutput)] = [
            ("timestamp", .string(Timestamp.format(timestamp))),
            ("status", .string(status.rawValue)),
            ("pid", .optional(pid)),
            ("port", .optional(port)),
            ("http_status", .optional(httpStatus)),
            ("response_time_ms", .optional(responseTimeMs)),
        ]
        if includeNullDetail || detail != nil { members.append(("detail", .optional(detail))) }
        return .object(members)
    }

    /// Nil unless the object has a parsable timestamp and a status.
    init?(lenient object: LenientObject) {
        guard let timestamp = object.date("timestamp"), let status = object.string("status") else { return nil }
        self.init(timestamp: timestamp, status: HealthStatus(lenient: status),
                  pid: object.int("pid").flatMap { $0 > 0 ? $0 : nil },
                  port: object.int("port").flatMap { $0 > 0 ? $0 : nil },
                  // The bash tool wrote "000" when curl got no answer.
                  httpStatus: object.int("http_status").flatMap { $0 > 0 ? $0 : nil },
                  responseTimeMs: object.double("response_time_ms"),
                  detail: object.string("detail"))
    }
}

/// The alerting memory of `health-watch`, kept in `health-watch-state.json` so
/// that a reboot or a skipped run neither loses an open alert nor sends it twice.
public struct WatchState: Sendable, Equatable {
    /// When health-watch last ran, and what it found.
    public var timestamp: Date?
    public var status: HealthStatus?
    public var consecutiveFailures = 0
    public var lastSuccess: Date?
    /// An alert is open: sent and not yet followed by a delivered recovery message.
    public var alertSent = false
    public var threshold = 2
    /// Names the open incident (alert, reminders, recovery); also the webhook's idempotency key stem.
    public var incidentID: String?
    public var incidentStart: Date?
    /// Alerts and reminders delivered for the open incident.
    public var alertsSent = 0
    public var lastAlertAt: Date?
    /// `consecutiveFailures` when the last alert or reminder went out; reminders count from it.
    public var lastAlertFailures: Int?
    /// A message handed to the channels and not yet known to be delivered: written
    /// before the mailer or webhook runs, cleared after. Found by a later run, it
    /// means the run delivering it was killed (see `HealthWatch`).
    public var delivering: PendingDelivery?

    public init() {}

    /// The alerting state as the history tells it, for when `health-watch-state.json`
    /// is unusable (corrupt, unsafe): the failed checks at the end of the history make
    /// the open incident (its id matches the one the lost state had), and once they
    /// reached `threshold` the alert counts as sent, so it is not sent twice.
    public static func rebuilt(from records: [HealthRecord], threshold: Int, molt: String) -> WatchState {
        var state = WatchState()
        state.threshold = threshold
        guard let last = records.last else { return state }
        state.timestamp = last.timestamp
        state.status = last.status
        state.lastSuccess = records.last(where: \.status.isHealthy)?.timestamp
        let failing = records.reversed().prefix(while: { !$0.status.isHealthy })
        state.consecutiveFailures = failing.count
        if let start = failing.last?.timestamp {
            state.incidentStart = start
            state.incidentID = "\(molt)-\(Timestamp.compact(start))"
            if failing.count >= threshold {
                state.alertSent = true
                state.alertsSent = 1
                state.lastAlertAt = last.timestamp
                state.lastAlertFailures = failing.count
            }
        }
        return state
    }

    /// As `health-watch-state.json` holds it.
    public var json: JSONOutput {
        .object([
            ("timestamp", .optional(timestamp)),
            ("status", .optional(status?.rawValue)),
            ("consecutive_failures", .int(consecutiveFailures)),
            ("last_success", .optional(lastSuccess)),
            ("alert_sent", .bool(alertSent)),
            ("threshold", .int(threshold)),
            ("incident_id", .optional(incidentID)),
            ("incident_start", .optional(incidentStart)),
            ("alerts_sent", .int(alertsSent)),
            ("last_alert_at", .optional(lastAlertAt)),
            ("last_alert_failures", .optional(lastAlertFailures)),
            ("delivering", delivering.map(\.json) ?? .null),
        ])
    }

    init(lenient object: LenientObject) {
        timestamp = object.date("timestamp")
        status = object.string("status").map { HealthStatus(lenient: $0) }
        consecutiveFailures = max(0, object.int("consecutive_failures") ?? 0)
        lastSuccess = object.date("last_success")
        alertSent = object.bool("alert_sent") ?? false
        threshold = object.int("threshold").flatMap { $0 >= 1 ? $0 : nil } ?? 2
        incidentID = object.string("incident_id")
        incidentStart = object.date("incident_start")
        alertsSent = max(0, object.int("alerts_sent") ?? (alertSent ? 1 : 0))
        lastAlertAt = object.date("last_alert_at")
        lastAlertFailures = object.int("last_alert_failures")
        delivering = (object.members["delivering"] as? [String: Any]).flatMap { PendingDelivery(lenient: LenientObject(members: $0)) }
    }
}

/// A message being delivered (`delivering` in `health-watch-state.json`).
public struct PendingDelivery: Sendable, Equatable {
    public var kind: AlertKind
    /// The webhook's Idempotency-Key: a re-sent webhook carries the same one.
    public var key: String
    /// The webhook's `message`, kept so the webhook can be re-sent word for word.
    public var summary: String
    public var since: Date?

    public init(kind: AlertKind, key: String, summary: String, since: Date?) {
        self.kind = kind
        self.key = key
        self.summary = summary
        self.since = since
    }

    var json: JSONOutput {
        .object([("kind", .string(kind.rawValue)), ("idempotency_key", .string(key)), ("message", .string(summary)),
                 ("since", .optional(since))])
    }

    init?(lenient object: LenientObject) {
        guard let kind = object.string("kind").flatMap(AlertKind.init(rawValue:)), let key = object.string("idempotency_key") else { return nil }
        self.init(kind: kind, key: key, summary: object.string("message") ?? "", since: object.date("since"))
    }
}

/// Reading and writing the state files of one molt. A file that is missing is
/// empty state; one that is corrupt is reported as a warning and treated as
/// empty, and the next write replaces it.
public struct HealthStateFiles: Sendable {
    public let directory: StateDirectory
    public let history: HealthHistory

    public init(directory: StateDirectory, historyPolicy: HistoryPolicy = HistoryPolicy()) {
        self.directory = directory
        self.history = HealthHistory(directory: directory, policy: historyPolicy)
    }

    /// The state of `molt`, read and written safely as root (see `StateDirectory`).
    public init(molt: Molt, historyPolicy: HistoryPolicy = HistoryPolicy()) {
        self.init(directory: StateDirectory(molt: molt), historyPolicy: historyPolicy)
    }

    public func readStatus(warnings: inout [String]) -> HealthRecord? {
        readObject(StateDirectory.statusName, warnings: &warnings).flatMap { object in
            if let record = HealthRecord(lenient: object) { return record }
            warnings.append("ignoring \(directory.statusPath): no valid timestamp and status; the next check rewrites it")
            return nil
        }
    }

    public func writeStatus(_ record: HealthRecord) throws(HealthError) {
        try directory.writeAtomically(record.json(includeNullDetail: true).pretty, name: StateDirectory.statusName)
    }

    public func readWatchState(warnings: inout [String]) -> WatchState? {
        readWatchStateFile(warnings: &warnings).state
    }

    /// The watch state, and whether a file was there that could not be used
    /// (corrupt, unsafe, too big): then the state must be rebuilt, not started afresh.
    func readWatchStateFile(warnings: inout [String]) -> (state: WatchState?, unusable: Bool) {
        let before = warnings.count
        let state = readObject(StateDirectory.watchStateName, warnings: &warnings).map(WatchState.init(lenient:))
        return (state, state == nil && warnings.count > before)
    }

    /// What can still be read from a `health-watch-state.json` that is not valid JSON:
    /// failures in a row, status, last success, whether an alert was sent.
    func salvageWatchState() -> WatchState? {
        guard let data = try? directory.contents(of: StateDirectory.watchStateName),
              let object = LenientObject(salvaging: data),
              object.has("consecutive_failures") || object.has("status") else { return nil }
        return WatchState(lenient: object)
    }

    public func writeWatchState(_ state: WatchState) throws(HealthError) {
        try directory.writeAtomically(state.json.pretty, name: StateDirectory.watchStateName)
    }

    /// Writes the status file and appends the history line, holding the state lock.
    /// Both are tried; the first failure is thrown after.
    /// Returns why the state lock could not be taken, if it could not.
    @discardableResult
    public func record(_ record: HealthRecord) throws(HealthError) -> [String] {
        try directory.withLock { (lockWarning: String?) throws(HealthError) in
            try recordLocked(record)
            return lockWarning.map { [$0] } ?? []
        }
    }

    func recordLocked(_ record: HealthRecord) throws(HealthError) {
        var failure: HealthError?
        do { try writeStatus(record) } catch { failure = error }
        do { try history.append(record) } catch { failure = failure ?? error }
        if let failure { throw failure }
    }

    private func readObject(_ name: String, warnings: inout [String]) -> LenientObject? {
        let path = directory.display(name)
        let data: Data?
        do { data = try directory.contents(of: name) } catch {
            warnings.append(error.description)
            return nil
        }
        guard let data else { return nil }
        guard let object = LenientObject(data: data) else {
            let what = data.isEmpty ? "empty" : "not a JSON object (corrupt or half-written)"
            warnings.append("ignoring \(path): \(what); it is reset on the next write")
            return nil
        }
        return object
    }
}
