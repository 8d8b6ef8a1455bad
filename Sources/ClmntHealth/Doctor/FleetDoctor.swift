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
        guard let account = UserAccounts.user(named: molt.name) else {
            return [DoctorCheck(.fail, "user", molt: molt.name, "no user \(molt.name) on this host (a restore creates it)")]
        }
        let uid = account.uid
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
        do throws(SystemError) {
            let base = try FileDescriptor.open(baseDir, O_RDONLY | O_DIRECTORY)
            let home = try base.openDirectory(name)
            return .success(try home.status().st_uid)
        } catch {
            return .failure(error.code == ELOOP || error.code == ENOTDIR ? DoctorProblem("it is not a directory (a symlink?)")
                                                                       : DoctorProblem(error.code))
        }
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
        let groups = UserAccounts.groupIDs(of: user)
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

    // MARK: - Leftovers

    /// Partial archives of killed backups, staging directories of killed restores.
    static func leftoverChecks(_ options: DoctorOptions) -> [DoctorCheck] {
        var checks: [DoctorCheck] = []
        let partial = PartialFiles.stale(in: options.backupDir.directory)
        for leftover in partial {
            checks.append(DoctorCheck(.warn, "leftovers", "\(leftover.file) (\(formatBytes(leftover.sizeBytes))) was left by a killed backup; the next backup removes it"))
        }
        let staging = ((try? directoryNames(atPath: options.baseDir)) ?? []).filter { $0.hasPrefix(FleetRestore.stagingPrefix) }
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
