import Foundation

/// The nightly (or weekly) `fleet backup` of one base dir, as a crontab entry:
///
///     # CLMNT-FLEET-BACKUP /srv/molts
///     15 3 * * * /usr/local/bin/clmnt fleet backup -d /srv/molts --backup-dir /var/backups/clmnt --compress zstd --keep 7 --timestamps 2>&1 >> /var/backups/clmnt/clmnt-backup.log | /usr/bin/tee -a /var/backups/clmnt/clmnt-backup.log
///
/// Every path in it is absolute and made of `[A-Za-z0-9._/+,:@-]`, so the line
/// needs no quoting: no `%` (cron turns it into a newline), no whitespace,
/// quotes, `$`, backquotes, `;`, `\` or glob characters.
public struct BackupJob: Sendable, Equatable {
    public let baseDir: String
    /// The absolute path of the clmnt binary: cron's PATH is bare.
    public let executable: String
    public let backupDir: String
    public let hour: Int
    public let minute: Int
    /// nil: every day; 0 (Sunday) to 6: weekly.
    public let weekday: Int?
    public let compression: Compression
    /// The job's `--keep`, `--keep-daily`, ... (never empty: a nightly job without retention fills the disk).
    public let retention: RetentionPolicy
    public let verify: Bool
    /// Encryption and off-host copies of the job (paths, URLs and public keys only: no secret
    /// goes into a crontab line).
    public private(set) var offHost = OffHostSettings()

    public static let marker = "CLMNT-FLEET-BACKUP"
    public static let defaultBackupDir = "/var/backups/clmnt"
    public static let defaultTime = "03:15"
    public static let defaultKeep = 7
    public static let logName = "clmnt-backup.log"

    public init(baseDir: String, executable: String, backupDir: String = BackupJob.defaultBackupDir,
                at time: String = BackupJob.defaultTime, weekday: Int? = nil, compression: Compression = .zstd,
                keep: Int = BackupJob.defaultKeep, verify: Bool = false) throws(BackupScheduleError) {
        try self.init(baseDir: baseDir, executable: executable, backupDir: backupDir, at: time, weekday: weekday,
                      compression: compression, retention: RetentionPolicy(last: keep), verify: verify)
    }

    public init(baseDir: String, executable: String, backupDir: String = BackupJob.defaultBackupDir,
                at time: String = BackupJob.defaultTime, weekday: Int? = nil, compression: Compression = .zstd,
                retention: RetentionPolicy, verify: Bool = false) throws(BackupScheduleError) {
        (hour, minute) = try Self.parseTime(time)
        if let weekday, !(0...6).contains(weekday) { throw .invalidWeekday(weekday) }
        if let keep = retention.last, keep < 1 { throw .invalidKeep(keep) }
        if retention.isEmpty { throw .invalidRetention("a scheduled backup needs a retention policy (--keep N, --keep-daily N, ...)") }
        do { try retention.validate() } catch { throw .invalidRetention(error.description) }
        try Self.checkPath("clmnt binary", executable)
        try Self.checkPath("base dir", baseDir)
        try Self.checkPath("backup dir", backupDir)
        self.baseDir = Self.normalized(baseDir)
        self.executable = executable
        self.backupDir = Self.normalized(backupDir)
        self.weekday = weekday
        self.compression = compression
        self.retention = retention
        self.verify = verify
    }

    /// `HH:MM` (or `H:MM`) to hour and minute.
    public static func parseTime(_ text: String) throws(BackupScheduleError) -> (hour: Int, minute: Int) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, (1...2).contains(parts[0].count), parts[1].count == 2,
              parts.allSatisfy({ $0.allSatisfy { $0.isASCII && $0.isNumber } }),
              let hour = Int(parts[0]), let minute = Int(parts[1]), (0...23).contains(hour), (0...59).contains(minute) else {
            throw .invalidTime(text)
        }
        return (hour, minute)
    }

    public var logPath: String { backupDir + "/" + Self.logName }

    /// `# CLMNT-FLEET-BACKUP /srv/molts`
    public var markerLine: String { Self.markerLine(baseDir: baseDir) }

    public static func markerLine(baseDir: String) -> String { "# \(marker) \(baseDir)" }

    /// The words after the binary.
    public var arguments: [String] {
        var words = ["fleet", "backup", "-d", baseDir, "--backup-dir", backupDir,
                     "--compress", compression.rawValue] + retention.arguments + ["--timestamps"]
        if verify { words.append("--verify") }
        return words + offHost.arguments
    }

    /// Sets the job's encryption and off-host copy, refusing what a crontab line cannot carry safely.
    public mutating func setOffHost(_ settings: OffHostSettings) throws(BackupScheduleError) {
        for path in settings.recipientsFiles { try Self.checkPath("recipients file", path) }
        for value in settings.recipients + [settings.to, settings.copyTo].compactMap({ $0 }) + settings.environment.map(\.value) {
            // The allow-list leaves out spaces, quotes, `$`, backquotes, `\`, `;`, `&`, `|` and `%`.
            if let name = CronTab.unsafeCharacter(in: value) {
                throw .unsafeForCrontab(what: "value", value: value, character: name)
            }
        }
        offHost = settings
    }

    /// The command cron hands to `/bin/sh -c`: the summary goes to the log; warnings
    /// and errors go to the log *and* to cron's mail (through `tee`), so a failing
    /// backup reaches the admin while a good night stays silent.
    public var command: String {
        let environment = offHost.environment.map { "\($0.name)=\($0.value) " }.joined()
        return environment + ([executable] + arguments).joined(separator: " ") + " 2>&1 >> \(logPath) | /usr/bin/tee -a \(logPath)"
    }

    /// `15 3 * * *` (daily) or `15 3 * * 0` (weekly).
    public var timeFields: String { "\(minute) \(hour) * * \(weekday.map(String.init) ?? "*")" }

    public var jobLine: String { "\(timeFields) \(command)" }

    /// The entry: the marker comment, then the job.
    public var cronLines: [String] { [markerLine, jobLine] }

    /// Absolute, and every character safe unquoted in a crontab line.
    public static func checkPath(_ what: String, _ path: String) throws(BackupScheduleError) {
        let shown = path.replacingOccurrences(of: "\n", with: "\\n")
        if let name = CronTab.unsafeCharacter(in: path) {
            throw .unsafeForCrontab(what: what, value: shown, character: name)
        }
        guard path.hasPrefix("/") else { throw .notAbsolute(what: what, path: shown) }
    }

    /// `/a/./b/../c/` as `/a/c`: the marker names the base dir one way only.
    static func normalized(_ path: String) -> String { absolutePath(path) }
}

/// What a scheduled backup encrypts to and sends off the host.
public struct OffHostSettings: Sendable, Equatable {
    public var recipientsFiles: [String] = []
    /// `age1…` recipients (an ssh-ed25519 key goes in a recipients file: it holds a space).
    public var recipients: [String] = []
    public var to: String?
    public var copyTo: String?
    /// The object store's endpoint, region and profile as the job must see them (cron's
    /// environment is empty); credentials stay in root's ~/.aws/credentials.
    public var environment: [Variable] = []

    public struct Variable: Sendable, Equatable {
        public var name: String
        public var value: String
        public init(name: String, value: String) { self.name = name; self.value = value }
    }

    public init() {}

    /// The object-store variables of `environment` worth carrying into a crontab line.
    public static func storeVariables(from environment: [String: String]) -> [Variable] {
        ["AWS_ENDPOINT_URL", "AWS_REGION", "AWS_PROFILE"].compactMap { name in
            environment[name].flatMap { $0.isEmpty ? nil : Variable(name: name, value: $0) }
        }
    }

    public var isEncrypted: Bool { !recipientsFiles.isEmpty || !recipients.isEmpty }

    var arguments: [String] {
        recipientsFiles.flatMap { ["--recipients-file", $0] } + recipients.flatMap { ["--encrypt-to", $0] }
            + (to.map { ["--to", $0] } ?? []) + (copyTo.map { ["--copy-to", $0] } ?? [])
    }
}
