import ClmntCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What `health setup` is asked to do.
public struct SetupRequest: Sendable {
    public var fleet: Fleet
    public var molt: Molt
    public var schedule: WatchSchedule
    /// A systemd service and timer instead of a crontab entry.
    public var systemd: Bool
    public var unitDir: String
    public var crontabProgram: String

    public init(fleet: Fleet, molt: Molt, schedule: WatchSchedule, systemd: Bool = false,
                unitDir: String = SystemdTimer.defaultUnitDir, crontabProgram: String = "crontab") {
        self.fleet = fleet
        self.molt = molt
        self.schedule = schedule
        self.systemd = systemd
        self.unitDir = unitDir
        self.crontabProgram = crontabProgram
    }
}

/// What `health setup` did.
public struct SetupReport: Sendable {
    /// The crontab lines or unit files now in place.
    public var installed: [String]
    /// Side effects: the other scheduler's entry removed, units enabled.
    public var notes: [String]
    /// Things that will keep the watch from working fully (unreadable binary, commander without hooks).
    public var warnings: [String]
}

/// Where a molt's health-watch is scheduled.
public struct ScheduleStatus: Sendable {
    /// The crontab entry's lines; empty when none; nil when the crontab could not be read (`cronError`).
    public var cronEntry: [String]?
    public var cronError: String?
    public var systemdInstalled: Bool
    public var timerPath: String
    /// `systemctl is-active` of the timer, where systemd runs.
    public var systemdActive: String?

    public var isScheduled: Bool { !(cronEntry ?? []).isEmpty || systemdInstalled }
}

/// Installs, removes and reports a molt's scheduled `health-watch`.
public enum HealthSetup {
    public static func install(_ request: SetupRequest) throws(HealthError) -> SetupReport {
        let molt = request.molt, schedule = request.schedule, settings = schedule.settings
        var warnings: [String] = []

        // Refuse what cannot work before touching anything.
        if !settings.emails.isEmpty {
            let mailer = settings.mailer?.first ?? AlertChannels.defaultMailer[0]
            guard ProgramRunner.locate(mailer) != nil else { throw .noMailer(program: mailer) }
        }
        if let name = settings.commander {
            guard name != molt.name else { throw .commanderIsSelf(name) }
            let commander: Molt
            do { commander = try request.fleet.molt(named: name) } catch { throw .fleet(error) }
            if case .failure(let problem) = CommanderHook.resolve(commander) {
                warnings.append("\(problem): webhook alerts will fail until it is fixed")
            }
        }
        let user = UserAccounts.user(named: molt.name)
        let cron = CronTab(user: molt.name, program: request.crontabProgram)
        if !request.systemd {
            guard user != nil else { throw .noSuchUser(molt.name) }
            guard ProgramRunner.locate(request.crontabProgram) != nil else { throw .noCrontab }
        }

        // The cron job runs as the molt's user: refuse a job that could never run.
        let groups = user.map { UserAccounts.groupIDs(of: $0) } ?? []
        if !request.systemd, let user, !canAccess(molt.home, uid: user.uid, groups: groups, mode: X_OK) {
            throw .jobCannotRun(user: molt.name, reason: "enter its home \(molt.home)\(describe(molt.home))")
        }
        let state = StateDirectory(molt: molt)
        try prepareStateDirectory(state)
        if !request.systemd, let user, let reason = try stateAccessProblem(state, uid: user.uid, groups: groups) {
            throw .jobCannotRun(user: molt.name, reason: reason)
        }

        var report = SetupReport(installed: [], notes: [], warnings: warnings)
        if request.systemd {
            let timer = SystemdTimer(molt: molt.name, unitDir: request.unitDir)
            report.notes += try timer.install(schedule)
            report.installed = [timer.servicePath, timer.timerPath]
            // One scheduler per molt: a crontab entry left behind would check twice.
            if user != nil, ProgramRunner.locate(request.crontabProgram) != nil {
                let current = try cron.healthRead()
                if !CronTab.entryLines(in: current, molt: molt.name).isEmpty {
                    try cron.healthWrite(CronTab.replacingEntry(in: current, molt: molt.name, with: []))
                    report.notes.append("removed the crontab entry of \(molt.name)")
                }
            }
        } else {
            let current = try cron.healthRead()
            let replaced = !CronTab.entryLines(in: current, molt: molt.name).isEmpty
            try cron.healthWrite(CronTab.replacingEntry(in: current, molt: molt.name, with: schedule.cronLines))
            report.installed = schedule.cronLines
            report.notes.append(replaced ? "replaced the entry in the crontab of \(molt.name)" : "added to the crontab of \(molt.name)")
            let timer = SystemdTimer(molt: molt.name, unitDir: request.unitDir)
            report.notes += try timer.remove()
            if let user { report.warnings += accessWarnings(request, uid: user.uid, gid: user.gid) }
        }
        return report
    }

    /// The health-watch entry `molt` has now: its crontab's (clmnt's or the bash
    /// tool's), else the systemd units `--systemd` wrote; nil when there is none.
    public static func currentEntry(molt: Molt, unitDir: String = SystemdTimer.defaultUnitDir,
                                    crontabProgram: String = "crontab") throws(HealthError) -> ScheduledEntry? {
        if UserAccounts.user(named: molt.name) != nil, ProgramRunner.locate(crontabProgram) != nil,
           let entry = ScheduledEntry.parse(crontab: try CronTab(user: molt.name, program: crontabProgram).healthRead(), molt: molt.name) {
            return entry
        }
        let timer = SystemdTimer(molt: molt.name, unitDir: unitDir)
        guard let service = try? String(contentsOfFile: timer.servicePath, encoding: .utf8),
              let timerText = try? String(contentsOfFile: timer.timerPath, encoding: .utf8) else { return nil }
        return ScheduledEntry.parse(service: service, timer: timerText)
    }

    /// What `health setup` will schedule: `options` over the current entry's settings
    /// (see `SetupOptions.merged`), and a line per setting kept, changed or removed.
    public static func plan(_ options: SetupOptions, molt: Molt, baseDir: String, executable: String,
                            current: ScheduledEntry?) throws(HealthError) -> (schedule: WatchSchedule, notes: [String]) {
        if let current, !options.fresh, let (option, value) = current.unusable.first(where: { !options.given($0.option) }) {
            throw .invalidCarriedOver(option: option, value: value, origin: current.originText)
        }
        var (interval, offset, settings, notes) = options.merged(with: current)
        if let mailer = settings.mailer, mailer.isEmpty { settings.mailer = nil }
        let schedule = try WatchSchedule(molt: molt, baseDir: baseDir, executable: executable, interval: interval,
                                         offset: offset, settings: settings)
        if let old = current?.baseDir, old != baseDir, !(options.fresh) {
            notes.append("changed --base-dir \(old) → \(baseDir)")
        }
        return (schedule, notes)
    }

    /// Removes the crontab entry and the systemd units, whichever exist; other crontab lines stay.
    public static func remove(molt: Molt, unitDir: String = SystemdTimer.defaultUnitDir,
                              crontabProgram: String = "crontab") throws(HealthError) -> [String] {
        var notes: [String] = []
        if UserAccounts.user(named: molt.name) != nil, ProgramRunner.locate(crontabProgram) != nil {
            let cron = CronTab(user: molt.name, program: crontabProgram)
            let current = try cron.healthRead()
            if !CronTab.entryLines(in: current, molt: molt.name).isEmpty {
                try cron.healthWrite(CronTab.replacingEntry(in: current, molt: molt.name, with: []))
                notes.append("removed the health-watch entry from the crontab of \(molt.name)")
            }
        }
        notes += try SystemdTimer(molt: molt.name, unitDir: unitDir).remove()
        return notes
    }

    public static func status(molt: Molt, unitDir: String = SystemdTimer.defaultUnitDir,
                              crontabProgram: String = "crontab") -> ScheduleStatus {
        let timer = SystemdTimer(molt: molt.name, unitDir: unitDir)
        var status = ScheduleStatus(cronEntry: nil, cronError: nil, systemdInstalled: timer.isInstalled,
                                    timerPath: timer.timerPath, systemdActive: timer.isInstalled ? timer.activeState() : nil)
        if UserAccounts.user(named: molt.name) == nil {
            status.cronEntry = []
        } else {
            do { status.cronEntry = CronTab.entryLines(in: try CronTab(user: molt.name, program: crontabProgram).healthRead(), molt: molt.name) } catch {
                status.cronError = error.description
            }
        }
        return status
    }

    /// `.molt-state/` and `cron.log` must belong to the molt's user: its cron job
    /// writes temp files there, and the shell's `>> cron.log` fails (and the job
    /// with it) on a root-owned log.
    static func prepareStateDirectory(_ state: StateDirectory) throws(HealthError) {
        guard let directory = try state.open(create: true) else { return }
        // Through descriptors like every state file (see StateDirectory): a planted
        // symlink or hard link is refused, never chowned.
        if geteuid() == 0 { _ = fchown(directory.fd, directory.uid, directory.gid) }
        _ = try directory.openFile(StateDirectory.cronLogName, writing: true, create: true)
        for name in [StateDirectory.cronLogName, StateDirectory.statusName, StateDirectory.historyName, HealthHistory.rotatedName,
                     StateDirectory.watchStateName, StateDirectory.lockName, StateDirectory.totalsName] {
            try directory.handOver(name)
        }
    }

    /// What the molt's user, running the cron job, will not be able to reach.
    static func accessWarnings(_ request: SetupRequest, uid: uid_t, gid: gid_t) -> [String] {
        let schedule = request.schedule
        let groups = UserAccounts.groupIDs(name: request.molt.name, gid: gid)
        var warnings: [String] = []
        if !canAccess(schedule.executable, uid: uid, groups: groups, mode: R_OK | X_OK) {
            warnings.append("user \(request.molt.name) cannot run \(schedule.executable): the cron job will fail; install clmnt where every user can run it (e.g. /usr/local/bin)")
        }
        if !canAccess(schedule.baseDir, uid: uid, groups: groups, mode: R_OK | X_OK) {
            warnings.append("user \(request.molt.name) cannot list \(schedule.baseDir): the cron job cannot find the molt")
        }
        if let name = schedule.settings.commander, let commander = try? request.fleet.molt(named: name),
           !canAccess(commander.openClawConfigPath, uid: uid, groups: groups, mode: R_OK) {
            warnings.append("user \(request.molt.name) cannot read \(commander.openClawConfigPath), which holds the commander's hooks token: webhook alerts from its crontab will fail; use --systemd (runs as root) to keep the token from the molt")
        }
        return warnings
    }

    /// What the molt's user cannot do in `.molt-state` that its cron job needs: create
    /// temp files there and append to `cron.log`. Judged through the state directory's
    /// O_NOFOLLOW descriptor (fstat/fstatat, never a path the molt controls).
    static func stateAccessProblem(_ state: StateDirectory, uid: uid_t, groups: [gid_t]) throws(HealthError) -> String? {
        guard let directory = try state.open(create: false) else { return "find \(state.path)" }
        var info = stat()
        guard fstat(directory.fd, &info) == 0 else { throw .cannotRead(path: state.path, reason: errnoText()) }
        if !permits(info, uid: uid, groups: groups, mode: W_OK | X_OK) {
            return "write in \(state.path)\(ownerText(info))"
        }
        guard fstatat(directory.fd, StateDirectory.cronLogName, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
            return "find \(state.cronLogPath)"
        }
        return permits(info, uid: uid, groups: groups, mode: W_OK) ? nil : "write \(state.cronLogPath)\(ownerText(info))"
    }

    /// " (owner uid 1234, mode 0700)" of `path`, for a refusal.
    static func describe(_ path: String) -> String {
        var info = stat()
        return stat(path, &info) == 0 ? ownerText(info) : ""
    }

    static func ownerText(_ info: stat) -> String {
        " (owner uid \(info.st_uid), mode 0\(String(info.st_mode & 0o7777, radix: 8)))"
    }

    /// Whether permission bits (no ACLs) grant `mode` to a user.
    static func permits(_ info: stat, uid: uid_t, groups: [gid_t], mode wanted: Int32) -> Bool {
        if uid == 0 { return true }
        let bits = UInt32(info.st_mode)
        let shift: UInt32 = info.st_uid == uid ? 6 : groups.contains(info.st_gid) ? 3 : 0
        let granted = Int32((bits >> shift) & 7)
        return granted & wanted == wanted
    }

    /// Whether a user could reach `path` with `mode`, judged from permission bits
    /// (no ACLs): every directory on the way must be searchable.
    static func canAccess(_ path: String, uid: uid_t, groups: [gid_t], mode: Int32) -> Bool {
        if uid == 0 { return true }
        func allows(_ info: stat, _ wanted: Int32) -> Bool { permits(info, uid: uid, groups: groups, mode: wanted) }
        var prefix = ""
        let parts = path.split(separator: "/")
        for (index, part) in parts.enumerated() {
            var info = stat()
            let dir = prefix.isEmpty ? "/" : prefix
            guard stat(dir, &info) == 0, allows(info, X_OK) else { return false }
            prefix += "/" + part
            if index == parts.count - 1 {
                guard stat(prefix, &info) == 0 else { return false }
                return allows(info, mode)
            }
        }
        return true
    }
}
