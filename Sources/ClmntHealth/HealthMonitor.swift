import ClmntCore
import Foundation

/// What `health status` shows: the last check, the alerting state, the schedule.
public struct StatusReport: Sendable {
    public let molt: String
    public let statusPath: String
    public let watchStatePath: String
    /// Nil when never checked (or the file was corrupt: see `warnings`).
    public let last: HealthRecord?
    public let watch: WatchState?
    /// `health-watch-state.json` exists but could not be read as a whole; `watch`
    /// then holds what could be recovered from it (nil if nothing).
    public let watchUnreadable: Bool
    public let schedule: ScheduleStatus
    public let warnings: [String]
}

/// A molt's last check and alerting state, from its state files alone.
public struct MoltHealthState: Sendable {
    /// Nil when never checked (or the file was refused or corrupt: see `warnings`).
    public let last: HealthRecord?
    /// Nil when health-watch never ran for it.
    public let watch: WatchState?
    public let warnings: [String]
}

/// The read side of the health module, one call per command.
public enum HealthMonitor {
    /// `health-status.json` and `health-watch-state.json`, read without following symlinks and
    /// size-bounded; runs no program (unlike `status`, which asks crontab and systemd): what a dashboard polls.
    public static func state(of molt: Molt) -> MoltHealthState {
        let files = HealthStateFiles(directory: StateDirectory(molt: molt))
        var warnings: [String] = []
        let last = files.readStatus(warnings: &warnings)
        let watch = files.readWatchState(warnings: &warnings)
        return MoltHealthState(last: last, watch: watch, warnings: warnings)
    }

    public static func status(of molt: Molt, unitDir: String = SystemdTimer.defaultUnitDir,
                              crontabProgram: String = "crontab") -> StatusReport {
        let files = HealthStateFiles(directory: StateDirectory(molt: molt))
        var warnings: [String] = []
        let last = files.readStatus(warnings: &warnings)
        let stored = files.readWatchStateFile(warnings: &warnings)
        let watch = stored.unusable ? files.salvageWatchState() : stored.state
        let schedule = HealthSetup.status(molt: molt, unitDir: unitDir, crontabProgram: crontabProgram)
        return StatusReport(molt: molt.name, statusPath: files.directory.statusPath,
                            watchStatePath: files.directory.watchStatePath, last: last, watch: watch,
                            watchUnreadable: stored.unusable,
                            schedule: schedule, warnings: warnings)
    }

    public static func history(of molt: Molt, limit: Int = 20, now: Date = Date(),
                               policy: HistoryPolicy = HistoryPolicy()) -> HistoryReport {
        let files = HealthStateFiles(directory: StateDirectory(molt: molt), historyPolicy: policy)
        return HistoryReport(history: files.history.load(), now: now, limit: limit)
    }
}

extension StatusReport {
    /// `molt health status --json`: the last record, the watch state, the schedule, the warnings.
    public var json: JSONOutput {
        return .object([
            ("molt", .string(molt)),
            ("last", last.map { $0.json(molt: nil) } ?? .null),
            ("watch", watch.map(\.json) ?? .null),
            ("watch_unreadable", .bool(watchUnreadable)),
            ("schedule", .object([
                ("cron", schedule.cronEntry.map { .array($0.map { .string($0) }) } ?? .null),
                ("cron_error", .optional(schedule.cronError)),
                ("systemd", .bool(schedule.systemdInstalled)),
                ("timer", .string(schedule.timerPath)),
                ("timer_active", .optional(schedule.systemdActive)),
            ])),
            ("warnings", .array(warnings.map { .string($0) })),
        ])
    }
}

extension HealthRecord {
    /// The record as `health-status.json` holds it, with the molt's name first when given
    /// (`molt health check --json`).
    public func json(molt: String?) -> JSONOutput {
        let json = json()
        guard let molt, case .object(let members) = json else { return json }
        return .object([("molt", .string(molt))] + members)
    }
}
