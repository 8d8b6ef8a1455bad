import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Failures of `fleet schedule`; each prints as one line.
public enum BackupScheduleError: Error, Equatable, CustomStringConvertible {
    case invalidTime(String)
    case invalidWeekday(Int)
    case invalidKeep(Int)
    /// A `--keep-daily`/`--keep-weekly`/`--keep-monthly` value that is no policy.
    case invalidRetention(String)
    case notAbsolute(what: String, path: String)
    /// A value that would go into the crontab line holds a character that is unsafe there.
    case unsafeForCrontab(what: String, value: String, character: String)
    case notExecutable(path: String)
    case fleet(FleetError)
    case backupDir(path: String, reason: String)
    case crontab(CronTabError)

    public var description: String {
        switch self {
        case .invalidTime(let value): return "invalid --at '\(value)': give the time of day as HH:MM (00:00 to 23:59)"
        case .invalidWeekday(let value): return "invalid --weekday \(value): give 0 (Sunday) to 6 (Saturday)"
        case .invalidKeep(let value): return "invalid --keep \(value): give 1 or more (the new archive counts as one)"
        case .invalidRetention(let message): return message
        case .notAbsolute(let what, let path): return "\(what) '\(path)' must be an absolute path"
        case .unsafeForCrontab(let what, let value, let character):
            return "\(what) '\(value)' contains \(character), which is unsafe in a crontab line; use a path of letters, digits and ._-/+,:@"
        case .notExecutable(let path): return "cannot schedule \(path): it is not an executable file"
        case .fleet(let error): return error.description
        case .backupDir(let path, let reason): return "cannot use backup dir \(path): \(reason)"
        case .crontab(let error): return error.description
        }
    }

    /// A value the user can correct on the command line (exit 64).
    public var isUsageError: Bool {
        switch self {
        case .invalidTime, .invalidWeekday, .invalidKeep, .invalidRetention, .notAbsolute, .unsafeForCrontab, .fleet(.invalidName): return true
        default: return false
        }
    }
}

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
            if let name = CronTab.unsafeCharacter(in: value) ?? value.first(where: { $0 == " " || $0 == "'" || $0 == "\"" || $0 == "$" || $0 == "`" || $0 == "\\" || $0 == ";" || $0 == "&" || $0 == "|" }).map({ "'\($0)'" }) {
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

/// What `fleet schedule` installed.
public struct BackupScheduleReport: Sendable, Equatable {
    /// The crontab lines now in place.
    public var installed: [String]
    /// A previous entry of this base dir was replaced.
    public var replaced: Bool
    public var notes: [String]
    public var warnings: [String]
}

/// Where (and whether) a base dir's backup is scheduled.
public struct BackupScheduleStatus: Sendable, Codable {
    public var baseDir: String
    /// The entry's lines; empty when not scheduled.
    public var entry: [String]
    /// From the installed line, else the one asked about.
    public var backupDir: String
    /// The newest readable archive in `backupDir` whose date is trusted.
    public var newestArchive: BackupListing?
    /// Why `backupDir` could not be listed.
    public var backupDirProblem: String?

    public var isScheduled: Bool { !entry.isEmpty }

    enum CodingKeys: String, CodingKey {
        case entry
        case baseDir = "base_dir"
        case backupDir = "backup_dir"
        case newestArchive = "newest_archive"
        case backupDirProblem = "backup_dir_problem"
    }
}

/// Installs, removes and reports the scheduled `fleet backup` of a base dir in a crontab.
/// Every other line of the crontab is kept byte for byte.
public enum BackupSchedule {
    /// Adds `job`'s entry to the crontab, or replaces this base dir's entry; creates the backup dir (0700).
    /// Nothing is changed when anything is wrong.
    public static func install(_ job: BackupJob, crontab: CronTab) throws(BackupScheduleError) -> BackupScheduleReport {
        guard crontab.isInstalled else { throw .crontab(.notInstalled(program: crontab.program)) }
        guard access(job.executable, X_OK) == 0, isRegularFile(job.executable) else {
            throw .notExecutable(path: job.executable)
        }
        let fleet: Fleet
        do { fleet = try Fleet.discover(baseDir: job.baseDir) } catch { throw .fleet(error) }
        var warnings: [String] = []
        if fleet.molts.isEmpty { warnings.append("no molts in \(job.baseDir) yet: the backup will fail until there are some") }
        let current: String
        do { current = try crontab.read() } catch { throw .crontab(error) }

        var notes: [String] = []
        if try prepareBackupDir(job.backupDir) { notes.append("created \(job.backupDir) (mode 0700)") }
        // The nightly job would refuse it (and prune nothing): refuse now, before the crontab changes.
        if let problem = BackupDirectory.trustProblem(path: job.backupDir) {
            throw .backupDir(path: job.backupDir, reason: problem)
        }
        prepareLog(job.logPath)

        let replaced = !entryLines(in: current, baseDir: job.baseDir).isEmpty
        let updated = replacingEntry(in: current, baseDir: job.baseDir, with: job.cronLines)
        if updated != current {
            do { try crontab.write(updated) } catch { throw .crontab(error) }
        }
        notes.append(replaced ? "replaced the entry of \(job.baseDir) in the crontab of \(crontab.user)"
                              : "added to the crontab of \(crontab.user)")
        for line in otherBackupJobs(in: updated, baseDir: job.baseDir) {
            warnings.append("another crontab line also backs up \(job.baseDir): \(line)")
        }
        return BackupScheduleReport(installed: job.cronLines, replaced: replaced, notes: notes, warnings: warnings)
    }

    /// Removes this base dir's entry; returns the lines removed (empty: there was none).
    public static func remove(baseDir: String, crontab: CronTab) throws(BackupScheduleError) -> [String] {
        try BackupJob.checkPath("base dir", baseDir)
        let base = BackupJob.normalized(baseDir)
        let current: String
        do { current = try crontab.read() } catch { throw .crontab(error) }
        let lines = entryLines(in: current, baseDir: base)
        if !lines.isEmpty {
            do { try crontab.write(replacingEntry(in: current, baseDir: base, with: [])) } catch { throw .crontab(error) }
        }
        return lines
    }

    /// The installed entry and the newest archive of its backup dir (`backupDir` when nothing is installed).
    public static func status(baseDir: String, backupDir: String = BackupJob.defaultBackupDir,
                              crontab: CronTab) throws(BackupScheduleError) -> BackupScheduleStatus {
        try BackupJob.checkPath("base dir", baseDir)
        let base = BackupJob.normalized(baseDir)
        let current: String
        do { current = try crontab.read() } catch { throw .crontab(error) }
        let entry = entryLines(in: current, baseDir: base)
        let directory = entry.compactMap(backupDirArgument).first ?? absolutePath(backupDir)
        var status = BackupScheduleStatus(baseDir: base, entry: entry, backupDir: directory)
        do {
            status.newestArchive = try BackupCatalog.list(directory: directory).last(where: \.isDated)
            status.backupDirProblem = BackupDirectory.trustProblem(path: directory).map { "refusing backup dir \(directory): \($0)" }
        } catch {
            status.backupDirProblem = error.description
        }
        return status
    }

    /// The backup dir of `baseDir`'s installed entry; nil when none is installed or the crontab cannot be read.
    public static func scheduledBackupDir(baseDir: String, crontab: CronTab) -> String? {
        guard crontab.isInstalled, let text = try? crontab.read() else { return nil }
        return entryLines(in: text, baseDir: BackupJob.normalized(baseDir)).compactMap(backupDirArgument).first
    }

    // MARK: - Editing (pure)

    /// Whether `line` is the marker comment of `baseDir` (`# CLMNT-FLEET-BACKUP <base>`, trailing words allowed).
    static func isMarker(_ line: String, baseDir: String) -> Bool {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        guard trimmed.hasPrefix("#") else { return false }
        let words = trimmed.dropFirst().split(whereSeparator: { $0 == " " || $0 == "\t" })
        return words.count >= 2 && words[0] == Substring(BackupJob.marker) && words[1] == Substring(baseDir)
    }

    /// A line cron runs (not blank, not a comment).
    static func isJob(_ line: String) -> Bool {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        return !trimmed.isEmpty && !trimmed.hasPrefix("#")
    }

    /// Indices of `baseDir`'s entries: each marker, and the job line right after it.
    static func entryIndices(_ lines: [String], baseDir: String) -> [Int] {
        var indices: [Int] = []
        for (index, line) in lines.enumerated() where isMarker(line, baseDir: baseDir) {
            indices.append(index)
            if index + 1 < lines.count, isJob(lines[index + 1]) { indices.append(index + 1) }
        }
        return indices
    }

    static func splitLines(_ text: String) -> [String] {
        var lines = text.components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    /// The lines of `baseDir`'s entry in `text` (marker and job); empty when none.
    public static func entryLines(in text: String, baseDir: String) -> [String] {
        let lines = splitLines(text)
        return entryIndices(lines, baseDir: baseDir).map { lines[$0] }
    }

    /// `text` without `baseDir`'s entries, `entry` in the first one's place (or at the end); every other line as it was.
    public static func replacingEntry(in text: String, baseDir: String, with entry: [String]) -> String {
        let lines = splitLines(text)
        let drop = Set(entryIndices(lines, baseDir: baseDir))
        var result: [String] = []
        var insertAt: Int?
        for (index, line) in lines.enumerated() {
            if drop.contains(index) {
                if insertAt == nil { insertAt = result.count }
            } else {
                result.append(line)
            }
        }
        result.insert(contentsOf: entry, at: insertAt ?? result.count)
        return result.isEmpty ? "" : result.joined(separator: "\n") + "\n"
    }

    /// Unmarked job lines that run `fleet backup` on `baseDir` (hand-written ones): the admin should know of the double run.
    static func otherBackupJobs(in text: String, baseDir: String) -> [String] {
        let lines = splitLines(text)
        let ours = Set(entryIndices(lines, baseDir: baseDir))
        return lines.enumerated().filter { index, line in
            guard !ours.contains(index), isJob(line), line.contains("fleet backup") else { return false }
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            return zip(words, words.dropFirst()).contains { ($0 == "-d" || $0 == "--base-dir") && $1 == Substring(baseDir) }
        }.map(\.element)
    }

    /// The `--backup-dir` of a job line we wrote.
    public static func backupDirArgument(_ line: String) -> String? {
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard let index = words.firstIndex(of: "--backup-dir"), index + 1 < words.count else { return nil }
        return String(words[index + 1])
    }

    // MARK: - Files

    /// Creates the backup dir (and missing parents) 0700; true when it was created.
    static func prepareBackupDir(_ path: String) throws(BackupScheduleError) -> Bool {
        var info = stat()
        if stat(path, &info) == 0 {
            guard (UInt32(info.st_mode) & FileType.mask) == FileType.directory else {
                throw .backupDir(path: path, reason: "not a directory")
            }
            return false
        }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw .backupDir(path: path, reason: describeFileError(error))
        }
        chmod(path, 0o700)
        return true
    }

    /// The log, created 0600 so the job's `>>` does not make it world-readable.
    static func prepareLog(_ path: String) {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if fd >= 0 { close(fd) }
    }

    static func isRegularFile(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (UInt32(info.st_mode) & FileType.mask) == FileType.regular
    }
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
