import Foundation

/// Where a base dir's archives are: the one answer `fleet backup`, `list-backups`,
/// `schedule` and `doctor` share, so `list-backups` after `schedule` shows the nightly archives.
public struct BackupLocation: Sendable, Equatable {
    /// Which rule gave the directory.
    public enum Source: String, Sendable, Codable {
        case flag, environment, schedule
        case fallback = "default"
        /// The bash tool's `.backups` (beside its `.scripts/`, i.e. in the base dir, or in the current directory).
        case bashTool = "bash-tool"
    }

    public var directory: String
    public var source: Source

    public static let environmentVariable = "CLMNT_BACKUP_DIR"
    /// The last resort of `fleet backup` and `list-backups`, relative to the current directory.
    public static let fallbackDirectory = "backups"
    /// Where the bash tool (claw-mountain) kept its archives: `./.backups` of its directory.
    public static let bashToolDirectory = ".backups"

    public init(directory: String, source: Source) {
        self.directory = directory
        self.source = source
    }

    /// `--backup-dir`, else `$CLMNT_BACKUP_DIR`, else the backup dir of the base dir's scheduled
    /// backup (its `# CLMNT-FLEET-BACKUP <base-dir>` crontab entry), else `fallback`.
    /// A crontab that cannot be read counts as no schedule: the fallback is still a valid answer.
    public static func resolve(flag: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
                               baseDir: String?, crontab: CronTab?,
                               fallback: String = fallbackDirectory, findBashTool: Bool = false) -> BackupLocation {
        resolve(flag: flag, environment: environment, baseDir: baseDir, fallback: fallback, findBashTool: findBashTool) {
            guard let baseDir, let crontab else { return nil }
            return BackupSchedule.scheduledBackupDir(baseDir: baseDir, crontab: crontab)
        }
    }

    /// The same order with the schedule's backup dir found by the caller (the dashboard reads
    /// root's crontab as a file; it runs no `crontab -l`): asked for only when the flag and the
    /// environment give nothing.
    public static func resolve(flag: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
                               baseDir: String? = nil, fallback: String = fallbackDirectory, findBashTool: Bool = false,
                               scheduled: () -> String?) -> BackupLocation {
        if let flag, !flag.isEmpty { return BackupLocation(directory: absolutePath(flag), source: .flag) }
        if let value = environment[environmentVariable], !value.isEmpty {
            return BackupLocation(directory: absolutePath(value), source: .environment)
        }
        if let scheduled = scheduled() { return BackupLocation(directory: absolutePath(scheduled), source: .schedule) }
        let fallbackPath = absolutePath(fallback)
        // Readers only (list-backups, doctor): a host the bash tool ran keeps its archives in
        // `.backups`; found when nothing else names a directory and the fallback does not exist.
        if findBashTool, !isDirectory(fallbackPath) {
            let candidates = (baseDir.map { [$0 + "/" + bashToolDirectory] } ?? []) + [absolutePath(bashToolDirectory)]
            if let found = candidates.first(where: isDirectory) {
                return BackupLocation(directory: found, source: .bashTool)
            }
        }
        return BackupLocation(directory: fallbackPath, source: .fallback)
    }

    private static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// How the directory was chosen, for `--verbose` and `doctor`.
    public var explanation: String {
        switch source {
        case .flag: return "from --backup-dir"
        case .environment: return "from $\(Self.environmentVariable)"
        case .schedule: return "the scheduled backup's (crontab)"
        case .fallback: return "the default"
        case .bashTool: return "the bash tool's .backups, found as no backup dir is given and ./backups does not exist"
        }
    }

    /// How to point clmnt at the archives when none were found here; nil when a flag chose the directory.
    public var pointer: String? {
        switch source {
        case .flag: return nil
        case .environment: return "from $\(Self.environmentVariable); give --backup-dir DIR for another"
        case .schedule: return "the scheduled backup's directory; give --backup-dir DIR for another"
        case .fallback, .bashTool:
            return "\(explanation), relative to the current directory: give --backup-dir DIR or set $\(Self.environmentVariable), "
                + "or schedule backups (clmnt fleet schedule), whose directory is then found"
        }
    }
}
