import Foundation

/// Where a base dir's archives are: the one answer `fleet backup`, `list-backups`,
/// `schedule` and `doctor` share, so `list-backups` after `schedule` shows the nightly archives.
public struct BackupLocation: Sendable, Equatable {
    /// Which rule gave the directory.
    public enum Source: String, Sendable, Codable {
        case flag, environment, schedule
        case fallback = "default"
    }

    public var directory: String
    public var source: Source

    public static let environmentVariable = "CLMNT_BACKUP_DIR"
    /// The last resort of `fleet backup` and `list-backups`, relative to the current directory.
    public static let fallbackDirectory = "backups"

    public init(directory: String, source: Source) {
        self.directory = directory
        self.source = source
    }

    /// `--backup-dir`, else `$CLMNT_BACKUP_DIR`, else the backup dir of the base dir's scheduled
    /// backup (its `# CLMNT-FLEET-BACKUP <base-dir>` crontab entry), else `fallback`.
    /// A crontab that cannot be read counts as no schedule: the fallback is still a valid answer.
    public static func resolve(flag: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
                               baseDir: String?, crontab: CronTab?,
                               fallback: String = fallbackDirectory) -> BackupLocation {
        resolve(flag: flag, environment: environment, fallback: fallback) {
            guard let baseDir, let crontab else { return nil }
            return BackupSchedule.scheduledBackupDir(baseDir: baseDir, crontab: crontab)
        }
    }

    /// The same order with the schedule's backup dir found by the caller (the dashboard reads
    /// root's crontab as a file; it runs no `crontab -l`): asked for only when the flag and the
    /// environment give nothing.
    public static func resolve(flag: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
                               fallback: String = fallbackDirectory, scheduled: () -> String?) -> BackupLocation {
        if let flag, !flag.isEmpty { return BackupLocation(directory: absolutePath(flag), source: .flag) }
        if let value = environment[environmentVariable], !value.isEmpty {
            return BackupLocation(directory: absolutePath(value), source: .environment)
        }
        if let scheduled = scheduled() { return BackupLocation(directory: absolutePath(scheduled), source: .schedule) }
        return BackupLocation(directory: absolutePath(fallback), source: .fallback)
    }

    /// How the directory was chosen, for `--verbose` and `doctor`.
    public var explanation: String {
        switch source {
        case .flag: return "from --backup-dir"
        case .environment: return "from $\(Self.environmentVariable)"
        case .schedule: return "the scheduled backup's (crontab)"
        case .fallback: return "the default"
        }
    }
}
