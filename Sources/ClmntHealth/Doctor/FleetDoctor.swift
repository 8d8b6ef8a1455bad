import ClmntCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One line of `fleet doctor`.
public struct DoctorCheck: Sendable, Equatable, Encodable {
    public enum Verdict: String, Sendable, Comparable, Encodable {
        case ok = "OK", warn = "WARN", fail = "FAIL"

        private var rank: Int { self == .ok ? 0 : self == .warn ? 1 : 2 }
        public static func < (a: Verdict, b: Verdict) -> Bool { a.rank < b.rank }
    }

    public var verdict: Verdict
    /// `user`, `home`, `health-schedule`, `health-alerts`, `health-recent`, `backup-recent`, `backup-complete`,
    /// `backup-verified`, `backup-dir`, `free-space`, `leftovers`, `fleet`.
    public var check: String
    /// The molt the line is about; nil for host-wide lines.
    public var molt: String?
    public var message: String

    public init(_ verdict: Verdict, _ check: String, molt: String? = nil, _ message: String) {
        self.verdict = verdict; self.check = check; self.molt = molt; self.message = message
    }

    enum CodingKeys: String, CodingKey {
        case check, molt, message
        case verdict = "status"
    }
}

/// Everything `fleet doctor` found; `passed` when nothing failed (warnings allowed).
public struct DoctorReport: Sendable, Encodable {
    public var baseDir: String
    public var backupDir: String
    public var checks: [DoctorCheck]

    public var passed: Bool { !checks.contains { $0.verdict == .fail } }

    enum CodingKeys: String, CodingKey {
        case checks, passed
        case baseDir = "base_dir"
        case backupDir = "backup_dir"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(baseDir, forKey: .baseDir)
        try container.encode(backupDir, forKey: .backupDir)
        try container.encode(checks, forKey: .checks)
        try container.encode(passed, forKey: .passed)
    }
}

/// What the doctor compares against; the defaults are what an admin expects of a daily schedule.
public struct DoctorOptions: Sendable {
    public var baseDir: String
    public var backupDir: BackupLocation
    /// A health check older than this is a warning (the watch runs every few minutes).
    public var healthMaxAge: TimeInterval = 60 * 60
    /// A newest backup older than this is a warning; twice as old fails.
    public var backupMaxAge: TimeInterval = 26 * 60 * 60
    /// `fleet schedule`'s crontab (root's when run as root): says whether the job verifies.
    public var scheduleCrontab: CronTab?
    public var unitDir: String = SystemdTimer.defaultUnitDir
    public var crontabProgram = "crontab"
    public var now = Date()
    /// Identity files to check (`CLMNT_IDENTITY_FILE`): each must stay private, and not only beside the archives.
    public var identityFiles: [String] = AgeKeyFiles.identityPaths(flags: [])
    /// How the base dir was chosen and how to point at another, for a base dir with no molts.
    public var baseDirHint: String?

    public init(baseDir: String, backupDir: BackupLocation) {
        self.baseDir = baseDir
        self.backupDir = backupDir
    }
}

/// Checks a host the way an admin would before trusting it. Only reads: molt homes are
/// looked at through `O_NOFOLLOW` descriptors of the base dir, state files through the
/// health module's no-follow reader, crontabs with `crontab -l`.
public enum FleetDoctor {
    public static func examine(_ options: DoctorOptions) -> DoctorReport {
        var report = DoctorReport(baseDir: options.baseDir, backupDir: options.backupDir.directory, checks: [])
        let fleet: Fleet
        do { fleet = try Fleet.discover(baseDir: options.baseDir) } catch {
            report.checks.append(DoctorCheck(.fail, "fleet", "cannot read the fleet in \(options.baseDir): \(error)"
                                             + (options.baseDirHint.map { " (\($0))" } ?? "")))
            return report
        }
        if fleet.molts.isEmpty {
            report.checks.append(DoctorCheck(.warn, "fleet", "no molts in \(options.baseDir)" + (options.baseDirHint.map { " (\($0))" } ?? "")))
        } else {
            report.checks.append(DoctorCheck(.ok, "fleet", "\(fleet.molts.count) molts in \(options.baseDir)"))
        }
        for molt in fleet.molts {
            report.checks += accountChecks(molt, baseDir: options.baseDir)
            report.checks += healthChecks(molt, options: options)
        }
        report.checks += backupChecks(fleet, options: options)
        report.checks += leftoverChecks(options)
        return report
    }

    // MARK: - Accounts

    /// The molt's user exists and owns the home (the directory itself, not what a symlink points at).
    static func accountChecks(_ molt: Molt, baseDir: String) -> [DoctorCheck] {
        guard let account = getpwnam(molt.name) else {
            return [DoctorCheck(.fail, "user", molt: molt.name, "no user \(molt.name) on this host (a restore creates it)")]
        }
        let uid = account.pointee.pw_uid
        var checks = [DoctorCheck(.ok, "user", molt: molt.name, "user \(molt.name) exists (uid \(uid))")]
        let home = baseDir + "/" + molt.name
        switch homeOwner(baseDir: baseDir, name: molt.name) {
        case .success(let owner) where owner == uid:
            checks.append(DoctorCheck(.ok, "home", molt: molt.name, "\(home) belongs to \(molt.name)"))
        case .success(let owner):
            checks.append(DoctorCheck(.fail, "home", molt: molt.name,
                                      "\(home) belongs to uid \(owner), not \(molt.name) (uid \(uid)): its gateway and health-watch cannot write there"))
        case .failure(let reason):
            checks.append(DoctorCheck(.fail, "home", molt: molt.name, "cannot examine \(home): \(reason)"))
        }
        return checks
    }

    /// The owner of `<baseDir>/<name>`, opened with `O_NOFOLLOW` relative to the base dir.
    static func homeOwner(baseDir: String, name: String) -> Result<uid_t, DoctorProblem> {
        let base = open(baseDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard base >= 0 else { return .failure(DoctorProblem(errno)) }
        defer { close(base) }
        let home = openat(base, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard home >= 0 else {
            return .failure(errno == ELOOP || errno == ENOTDIR ? DoctorProblem("it is not a directory (a symlink?)") : DoctorProblem(errno))
        }
        defer { close(home) }
        var info = stat()
        guard fstat(home, &info) == 0 else { return .failure(DoctorProblem(errno)) }
        return .success(info.st_uid)
    }

    // MARK: - Health monitoring

    static func healthChecks(_ molt: Molt, options: DoctorOptions) -> [DoctorCheck] {
        let status = HealthMonitor.status(of: molt, unitDir: options.unitDir, crontabProgram: options.crontabProgram)
        var checks: [DoctorCheck] = []
        if let error = status.schedule.cronError, !status.schedule.systemdInstalled {
            checks.append(DoctorCheck(.warn, "health-schedule", molt: molt.name, "cannot read the crontab of \(molt.name): \(error)"))
        } else if status.schedule.isScheduled {
            let how = status.schedule.systemdInstalled ? "systemd timer \(status.schedule.timerPath)" : "crontab of \(molt.name)"
            let entry = try? HealthSetup.currentEntry(molt: molt, unitDir: options.unitDir, crontabProgram: options.crontabProgram)
            if let entry {
                if let problem = scheduleProblem(molt, entry: entry, baseDir: options.baseDir) {
                    checks.append(DoctorCheck(.fail, "health-schedule", molt: molt.name,
                                              "\(problem) (\(how)): rerun clmnt molt health setup \(molt.name) -d \(options.baseDir)"))
                } else {
                    let every = entry.interval.map { ", every \(WatchSchedule.intervalText($0))" } ?? ""
                    checks.append(DoctorCheck(.ok, "health-schedule", molt: molt.name, "health-watch scheduled (\(how)\(every))"))
                }
                checks.append(alertCheck(molt, entry: entry))
            } else {
                checks.append(DoctorCheck(.fail, "health-schedule", molt: molt.name,
                                          "the \(how) marks a health-watch entry but holds no job that runs it: rerun clmnt molt health setup \(molt.name)"))
            }
        } else {
            checks.append(DoctorCheck(.warn, "health-schedule", molt: molt.name,
                                      "health monitoring is not scheduled (clmnt molt health setup \(molt.name))"))
        }
        guard let last = status.last else {
            let why = status.warnings.first.map { ": \($0)" } ?? ""
            checks.append(DoctorCheck(.warn, "health-recent", molt: molt.name, "never checked\(why)"))
            return checks
        }
        let age = options.now.timeIntervalSince(last.timestamp)
        let when = "\(Timestamp.duration(max(0, age))) ago"
        if age > options.healthMaxAge {
            checks.append(DoctorCheck(.warn, "health-recent", molt: molt.name,
                                      "last check \(when) (\(last.status.rawValue)): older than \(Timestamp.duration(options.healthMaxAge))"))
        } else if last.status != .healthy {
            // A stopped or failing molt is not OK, however recent the check.
            checks.append(DoctorCheck(.warn, "health-recent", molt: molt.name, "last check \(when): \(last.status.rawValue)"))
        } else {
            checks.append(DoctorCheck(.ok, "health-recent", molt: molt.name, "last check \(when): \(last.status.rawValue)"))
        }
        return checks
    }

    /// Why `entry` would not check this molt: it watches another base dir, its program
    /// is gone or not runnable by the job's user, or (cron) that user cannot enter the home.
    static func scheduleProblem(_ molt: Molt, entry: ScheduledEntry, baseDir: String) -> String? {
        if let watched = entry.watchedBaseDir, (realPath(watched) ?? watched) != (realPath(baseDir) ?? baseDir) {
            return "its health-watch entry watches base dir \(watched), not \(baseDir): nothing checks \(molt.name) here"
        }
        let program = (entry.executable as NSString).standardizingPath
        var info = stat()
        guard stat(program, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            let whose = entry.origin == .bashTool ? "the bash tool's script " : ""
            return "its health-watch entry runs \(whose)\(entry.executable), which does not exist"
        }
        // The crontab job runs as the molt's user; the systemd unit as root.
        guard !entry.viaSystemd else {
            return info.st_mode & 0o111 == 0 ? "its health-watch entry runs \(program), which is not executable" : nil
        }
        guard let user = UserAccounts.user(named: molt.name) else { return "no user \(molt.name) to run its crontab" }
        let groups = HealthSetup.groupList(molt.name, user.gid)
        if !HealthSetup.canAccess(program, uid: user.uid, groups: groups, mode: R_OK | X_OK) {
            return "user \(molt.name) cannot run \(program)"
        }
        if !HealthSetup.canAccess(molt.home, uid: user.uid, groups: groups, mode: X_OK) {
            return "user \(molt.name) cannot enter its home \(molt.home)\(HealthSetup.describe(molt.home))"
        }
        return nil
    }

    /// A watch that alerts no one finds an outage only when someone looks.
    static func alertCheck(_ molt: Molt, entry: ScheduledEntry) -> DoctorCheck {
        var channels: [String] = []
        if !entry.settings.emails.isEmpty { channels.append("mail to \(entry.settings.emails.joined(separator: ","))") }
        if let commander = entry.settings.commander { channels.append("webhook to commander \(commander)") }
        guard !channels.isEmpty else {
            return DoctorCheck(.warn, "health-alerts", molt: molt.name,
                               "no alert channel: an outage alerts no one (clmnt molt health setup \(molt.name) --alert-email ADDR or --commander MOLT)")
        }
        return DoctorCheck(.ok, "health-alerts", molt: molt.name, "alerts by \(channels.joined(separator: " and "))")
    }

    // MARK: - Backups

    static func backupChecks(_ fleet: Fleet, options: DoctorOptions) -> [DoctorCheck] {
        let offHost = OffHostStatus.last(in: options.backupDir.directory)
        return localBackupChecks(fleet, offHost: offHost, options: options)
            + offHostChecks(fleet, record: offHost, options: options)
    }

    /// The backup dir, the newest archive (or, with none, the last off-host copy), its completeness and room for the next.
    static func localBackupChecks(_ fleet: Fleet, offHost: OffHostStatus.Record?, options: DoctorOptions) -> [DoctorCheck] {
        let directory = options.backupDir.directory
        var checks: [DoctorCheck] = []
        // A backup dir inside a molt's home is writable by that molt, and is archived into itself.
        let resolvedBackups = realPath(directory) ?? directory
        let resolvedBase = realPath(fleet.baseDir) ?? fleet.baseDir
        if let molt = fleet.molts.first(where: { isInside(resolvedBackups, resolvedBase + "/" + $0.name) }) {
            checks.append(DoctorCheck(.fail, "backup-dir", "backup dir \(directory) is inside the home of molt \(molt.name), which can read and replace the archives"))
        } else if let problem = BackupDirectory.trustProblem(path: directory) {
            // backup, prune and schedule refuse it: say so before the nightly job does.
            checks.append(DoctorCheck(.fail, "backup-dir", "backup dir \(directory): \(problem); backup --keep, prune and schedule refuse it"))
        } else {
            checks.append(DoctorCheck(.ok, "backup-dir", "backup dir \(directory) (\(options.backupDir.explanation))"))
        }

        let listings: [BackupListing]
        do { listings = try BackupCatalog.list(directory: directory, now: options.now) } catch {
            checks.append(DoctorCheck(.fail, "backup-recent", "cannot list \(directory): \(error)"))
            return checks
        }
        // An archive dated in the future (or far from its mtime) is never the newest: it would hide a stale backup.
        let ours = listings.filter(\.isDated)
        let newest = ours.max { (Timestamp.parse($0.date ?? "") ?? .distantPast) < (Timestamp.parse($1.date ?? "") ?? .distantPast) }
        // A job that streams with --to leaves no local archive: its last copy is the newest backup.
        if newest == nil, let offHost, let date = offHost.completedDate {
            checks.append(ageCheck("backup-recent", "newest backup \(offHost.target) (off-host)", date: date, options: options))
            return checks
        }
        guard let newest, let date = newest.date.flatMap(Timestamp.parse) else {
            let pointer = options.backupDir.pointer.map { "; \(directory) is \($0)" } ?? ""
            checks.append(DoctorCheck(.fail, "backup-recent", "no backup in \(directory) (clmnt fleet backup, or clmnt fleet schedule\(pointer))"))
            return checks
        }
        let name = (newest.file as NSString).lastPathComponent
        let age = options.now.timeIntervalSince(date)
        let when = "\(Timestamp.duration(max(0, age))) ago"
        if age > 2 * options.backupMaxAge {
            checks.append(DoctorCheck(.fail, "backup-recent", "newest backup \(name) is from \(when)"))
        } else if age > options.backupMaxAge {
            checks.append(DoctorCheck(.warn, "backup-recent", "newest backup \(name) is from \(when)"))
        } else {
            checks.append(DoctorCheck(.ok, "backup-recent", "newest backup \(name), \(when)"))
        }
        let missing = fleet.names.filter { !(newest.molts ?? []).contains($0) }
        switch newest.complete {
        case false?:
            checks.append(DoctorCheck(.fail, "backup-complete", "\(name) is incomplete: \(newest.missedFiles ?? 0) files missed (see its backup-report.json)"))
        case _ where !missing.isEmpty:
            checks.append(DoctorCheck(.warn, "backup-complete", "\(name) holds no copy of \(missing.joined(separator: ", "))"))
        case true?:
            checks.append(DoctorCheck(.ok, "backup-complete", "\(name) holds every molt, nothing missed"))
        case nil:
            if let mark = VerifiedMark.read(path: newest.file) {
                checks.append(DoctorCheck(.ok, "backup-complete", "\(name) read back intact and complete by clmnt fleet verify at \(mark.verified)"))
            } else {
                checks.append(DoctorCheck(.warn, "backup-complete", "\(name): completeness unknown (no status mark; clmnt fleet verify \(newest.file))"))
            }
        }
        checks.append(verifiedCheck(fleet: fleet, archive: name, options: options))

        // The next backup needs about as much room as the last one, beside it.
        var space = statvfs()
        if statvfs(directory, &space) == 0 {
            let free = Int64(space.f_bavail) * Int64(space.f_frsize)
            let needed = newest.sizeBytes + newest.sizeBytes / 10
            let line = "\(formatBytes(free)) free in \(directory), the last backup took \(formatBytes(newest.sizeBytes))"
            checks.append(DoctorCheck(free >= needed ? .ok : .fail, "free-space", line))
        } else {
            checks.append(DoctorCheck(.warn, "free-space", "cannot read the free space of \(directory): \(String(cString: strerror(errno)))"))
        }
        return checks
    }

    /// OK, WARN past `backupMaxAge`, FAIL past twice that.
    static func ageCheck(_ name: String, _ what: String, date: Date, options: DoctorOptions) -> DoctorCheck {
        let age = options.now.timeIntervalSince(date)
        let line = "\(what) is from \(Timestamp.duration(max(0, age))) ago"
        if age > 2 * options.backupMaxAge { return DoctorCheck(.fail, name, line) }
        return DoctorCheck(age > options.backupMaxAge ? .warn : .ok, name, line)
    }

    /// Encryption and off-host copies of the scheduled backup: its archives hold every molt's
    /// secrets, and a copy only on this host dies with its disk.
    static func offHostChecks(_ fleet: Fleet, record: OffHostStatus.Record?, options: DoctorOptions) -> [DoctorCheck] {
        var checks: [DoctorCheck] = []
        var entry: [String] = []
        if let crontab = options.scheduleCrontab, crontab.isInstalled, let text = try? crontab.read() {
            entry = BackupSchedule.entryLines(in: text, baseDir: fleet.baseDir)
        }
        let words = Set(entry.flatMap { $0.split(separator: " ").map(String.init) })
        let sendsOffHost = words.contains("--to") || words.contains("--copy-to")
        if !entry.isEmpty {
            if words.contains("--encrypt-to") || words.contains("--recipients-file") {
                checks.append(DoctorCheck(.ok, "backup-encrypted", "the scheduled backup encrypts its archives (age)"))
            } else {
                checks.append(DoctorCheck(.warn, "backup-encrypted", "the scheduled backup is not encrypted: every archive holds the molts' secrets in clear (clmnt fleet schedule --recipients-file FILE)"))
            }
        }
        if let record, let date = record.completedDate {
            checks.append(ageCheck("backup-offhost", "last off-host copy \(record.target)", date: date, options: options))
        } else if sendsOffHost {
            checks.append(DoctorCheck(.warn, "backup-offhost", "the scheduled backup sends archives off the host, but no copy has succeeded yet"))
        }
        // A key beside the only copy of the archives is lost with them (and found with them).
        for path in options.identityFiles {
            var key = stat(), archives = stat()
            guard stat(path, &key) == 0, stat(options.backupDir.directory, &archives) == 0 else { continue }
            if key.st_dev == archives.st_dev && record == nil && !sendsOffHost {
                checks.append(DoctorCheck(.warn, "identity-file", "identity file \(path) is on the same disk as the only copy of the archives (\(options.backupDir.directory)): keep it elsewhere too"))
            } else if let problem = AgeKeyFiles.identityFileProblem(path) {
                checks.append(DoctorCheck(.warn, "identity-file", "identity file \(path): \(problem)"))
            }
        }
        return checks
    }

    /// Verified when the scheduled job runs with `--verify` (every nightly archive is read back).
    static func verifiedCheck(fleet: Fleet, archive: String, options: DoctorOptions) -> DoctorCheck {
        guard let crontab = options.scheduleCrontab, crontab.isInstalled, let text = try? crontab.read() else {
            return DoctorCheck(.warn, "backup-verified", "cannot read the schedule; run clmnt fleet verify on \(archive)")
        }
        let entry = BackupSchedule.entryLines(in: text, baseDir: fleet.baseDir)
        if entry.isEmpty {
            return DoctorCheck(.warn, "backup-verified", "no scheduled backup of \(fleet.baseDir) (clmnt fleet schedule)")
        }
        if entry.contains(where: { $0.split(separator: " ").contains("--verify") }) {
            return DoctorCheck(.ok, "backup-verified", "the scheduled backup verifies every archive (--verify)")
        }
        return DoctorCheck(.warn, "backup-verified", "the scheduled backup does not verify its archives (clmnt fleet schedule --verify)")
    }

    // MARK: - Leftovers

    /// Partial archives of killed backups, staging directories of killed restores.
    static func leftoverChecks(_ options: DoctorOptions) -> [DoctorCheck] {
        var checks: [DoctorCheck] = []
        let partial = PartialFiles.stale(in: options.backupDir.directory)
        for leftover in partial {
            checks.append(DoctorCheck(.warn, "leftovers", "\(leftover.file) (\(formatBytes(leftover.sizeBytes))) was left by a killed backup; the next backup removes it"))
        }
        let staging = ((try? FileManager.default.contentsOfDirectory(atPath: options.baseDir)) ?? [])
            .filter { $0.hasPrefix(FleetRestore.stagingPrefix) }.sorted()
        for name in staging {
            checks.append(DoctorCheck(.warn, "leftovers", "\(options.baseDir)/\(name) was left by a killed restore (clmnt fleet restore --resume, or the next restore, clears it)"))
        }
        if partial.isEmpty && staging.isEmpty {
            checks.append(DoctorCheck(.ok, "leftovers", "no partial archives or restore staging left behind"))
        }
        return checks
    }

    // MARK: - Helpers

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func isInside(_ path: String, _ directory: String) -> Bool {
        path == directory || path.hasPrefix(directory + "/")
    }
}

/// Why a doctor step could not look: errno's text, or a sentence.
struct DoctorProblem: Error, CustomStringConvertible {
    let description: String
    init(_ code: Int32) { description = String(cString: strerror(code)) }
    init(_ text: String) { description = text }
}
