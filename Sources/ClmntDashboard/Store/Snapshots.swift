import ClmntCore
import ClmntHealth
import Foundation

/// One molt as the dashboard shows it: discovery, last check, alerting state, recent history.
public struct MoltSnapshot: Sendable {
    public let molt: Molt
    public let last: HealthRecord?
    public let watch: WatchState?
    /// The last `FleetStateStore.historyDepth` checks and the uptime windows.
    public let history: HistoryReport
    public let warnings: [String]

    public init(molt: Molt, last: HealthRecord?, watch: WatchState?, history: HistoryReport, warnings: [String]) {
        self.molt = molt
        self.last = last
        self.watch = watch
        self.history = history
        self.warnings = warnings
    }

    public var uptime24h: Double? { history.windows.first { $0.label == "24h" }?.uptimePercent }
    public var allTime: UptimeWindow? { history.windows.first { $0.seconds == nil } }
    public var badge: Badge { Badge(last?.status) }
}

/// The fleet at one moment.
public struct FleetSnapshot: Sendable {
    public let baseDir: String
    /// Sorted by name.
    public let molts: [MoltSnapshot]
    /// When the state files were looked at (every change before it is in the snapshot); it also
    /// names the snapshot: controllers render one body per `takenAt`.
    public let takenAt: Date
    /// Why the base dir could not be read (the list is then empty).
    public let problem: String?

    public init(baseDir: String, molts: [MoltSnapshot], takenAt: Date, problem: String? = nil) {
        self.baseDir = baseDir
        self.molts = molts
        self.takenAt = takenAt
        self.problem = problem
    }
}

/// The scheduled `fleet backup` of this base dir, as read from root's crontab file.
public struct ScheduleSnapshot: Sendable {
    /// The marker and job lines; empty when none is installed.
    public let entry: [String]
    /// Why the crontab could not be read.
    public let problem: String?

    public var isScheduled: Bool { !entry.isEmpty }
    /// `15 3 * * *`: the job line's five time fields.
    public var timeFields: String? {
        guard let job = entry.last, entry.count >= 2 else { return nil }
        let fields = job.split(separator: " ", omittingEmptySubsequences: true).prefix(5)
        return fields.count == 5 ? fields.joined(separator: " ") : nil
    }
}

/// The archives of the backup dir.
public struct BackupsSnapshot: Sendable {
    public let backupDir: String
    /// Oldest first, as `list-backups` orders them; unreadable files last.
    public let listings: [BackupListing]
    /// Why the backup dir could not be listed.
    public let problem: String?
    public let schedule: ScheduleSnapshot
    /// When the backup dir was looked at; names the snapshot, as `FleetSnapshot.takenAt`.
    public let takenAt: Date

    /// The newest archive that could be read and is not marked incomplete: the last good backup.
    /// Never a file root did not write, nor an archive whose date is not trusted (dated in the future).
    public var newest: BackupListing? { listings.last { $0.isDated && $0.complete != false } }

    /// The last good off-host copy recorded in the backup dir (`--to`, `--copy-to`), when root wrote the record.
    public var offHost: OffHostStatus.Record? { OffHostStatus.last(in: backupDir) }
}

/// The page's four colours, each with a word: colour is never the only signal.
public enum Badge: String, Sendable {
    case green, amber, red, grey

    public init(_ status: HealthStatus?) {
        switch status {
        case .healthy: self = .green
        case .degraded: self = .amber
        case .unhealthy, .dead: self = .red
        case .stopped, .unknown, nil: self = .grey
        }
    }
}

/// Where the dashboard's data comes from; tests may put another one behind the router.
public protocol DashboardStore: Sendable {
    /// The fleet, at most `refreshInterval` old; a snapshot with another content has another `takenAt`.
    func fleet() async -> FleetSnapshot
    /// The archives and the schedule, at most a few seconds old.
    func backups() async -> BackupsSnapshot
}
