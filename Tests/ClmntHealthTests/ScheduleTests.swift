import ClmntTestSupport
import ClmntCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import ClmntHealth

/// `health setup` against the real `crontab` and a real user; systemd units in a temp dir.
@Suite struct ScheduleTests {
    let executable = "/usr/local/bin/clmnt"

    /// A user, a fleet holding a molt of the user's name, and a unit dir.
    struct Scene {
        let user: TestUser
        let fleet: FleetFixture
        let units: TemporaryDirectory

        init(port: Int? = 19041) throws {
            user = try TestUser()
            fleet = try FleetFixture.bare()
            units = try TemporaryDirectory(prefix: "clmnt-units")
            let home = try fleet.addMolt(user.name, port: port)
            chown(home, user.uid, user.gid)
        }

        var cron: CronTab { CronTab(user: user.name) }
        func molt() throws -> Molt { try fleet.molt(user.name) }

        func request(_ schedule: WatchSchedule, systemd: Bool = false) throws -> SetupRequest {
            SetupRequest(fleet: try fleet.fleet(), molt: try molt(), schedule: schedule, systemd: systemd, unitDir: units.path)
        }

        func tearDown() {
            user.remove()
            fleet.remove()
            units.remove()
        }
    }

    let others = """
    MAILTO=""
    # MOLT-MAIL-WATCH - check mail every 10 min
    */10 * * * * /usr/local/bin/clmnt-mail watch inbox >> /srv/molts/x/.mail-state/cron.log 2>&1
    @reboot /usr/bin/true

    """

    @Test func cronEntryIsIdempotentAndKeepsOtherLines() throws {
        let scene = try Scene()
        defer { scene.tearDown() }
        try scene.cron.write(others)
        let schedule = try WatchSchedule(molt: try scene.molt(), baseDir: scene.fleet.base, executable: executable,
                                         settings: WatchSettings(emails: ["ops@example.com"], threshold: 3))
        let first = try HealthSetup.install(try scene.request(schedule))
        #expect(first.notes.contains { $0.contains("added") })
        let second = try HealthSetup.install(try scene.request(schedule))
        #expect(second.notes.contains { $0.contains("replaced") })

        let text = try scene.cron.read()
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.filter { $0.contains("MOLT-HEALTH-WATCH") }.count == 1)
        #expect(lines.filter { $0.contains("health-watch") && !$0.hasPrefix("#") }.count == 1)
        // Every other line survives, in order.
        let kept = lines.filter { !$0.contains("HEALTH-WATCH") && !$0.contains("health-watch") }
        #expect(kept.joined(separator: "\n") == others)
        let job = try #require(lines.first { $0.contains(" molt health-watch ") })
        let name = scene.user.name
        #expect(job == "2-59/5 * * * * /usr/local/bin/clmnt molt health-watch \(name) --base-dir \(scene.fleet.base) "
                + "--alert-email ops@example.com --consecutive-failures 3 >> \(scene.fleet.base)/\(name)/.molt-state/cron.log 2>&1")
        #expect(text.contains("# MOLT-HEALTH-WATCH \(name): health check every 5 min"))
        // Setup leaves the log and state dir to the molt user, or its cron job could not write them.
        var info = stat()
        #expect(stat(scene.fleet.base + "/\(name)/.molt-state/cron.log", &info) == 0)
        #expect(info.st_uid == scene.user.uid)

        // A new interval replaces the entry in place.
        let every10 = try WatchSchedule(molt: try scene.molt(), baseDir: scene.fleet.base, executable: executable, interval: 10, offset: 7)
        _ = try HealthSetup.install(try scene.request(every10))
        let changed = try scene.cron.read()
        #expect(changed.contains("\n7-59/10 * * * * /usr/local/bin/clmnt molt health-watch \(name) --base-dir"))
        #expect(!changed.contains("2-59/5"))
        #expect(CronTab.entryLines(in: changed, molt: name).count == 2)

        let status = HealthSetup.status(molt: try scene.molt(), unitDir: scene.units.path)
        #expect(status.isScheduled)
        #expect(status.cronEntry?.count == 2)

        let removed = try HealthSetup.remove(molt: try scene.molt(), unitDir: scene.units.path)
        #expect(removed.count == 1)
        #expect(try scene.cron.read() == others)
        #expect(!HealthSetup.status(molt: try scene.molt(), unitDir: scene.units.path).isScheduled)
        #expect(try HealthSetup.remove(molt: try scene.molt(), unitDir: scene.units.path).isEmpty)
    }

    /// The bash tool's entry (a marker naming no molt, a job running `health-watch <name>`) is replaced too.
    /// Before: `crontab -l` was cut at 1 MiB without a word and setup wrote the cut text back,
    /// losing every line past the cut. Now the read fails and the crontab stays as it was.
    @Test func hugeCrontabIsRefusedNotCut() throws {
        let scene = try Scene()
        defer { scene.tearDown() }
        // cron allows 10,000 lines; 9,000 lines of 215 bytes make 1.9 MB, over the runner's 1 MiB limit.
        let huge = (0..<9000).map { String(format: "# pad %07d ", $0) + String(repeating: "x", count: 200) }.joined(separator: "\n") + "\n"
        try ProgramRunner.run("crontab", ["-u", scene.user.name, "-"], input: Data(huge.utf8), outputLimit: 1 << 20)
        let schedule = try WatchSchedule(molt: try scene.molt(), baseDir: scene.fleet.base, executable: executable,
                                         settings: WatchSettings())
        #expect(throws: HealthError.self) { try HealthSetup.install(try scene.request(schedule)) }
        do { _ = try HealthSetup.install(try scene.request(schedule)) } catch {
            #expect("\(error)".contains("more than 1048576 bytes"), "\(error)")
        }
        let after = try ProgramRunner.run("crontab", ["-l", "-u", scene.user.name], outputLimit: 4 << 20).stdout
        #expect(after == huge)
    }

    @Test func replacesTheBashToolsEntry() throws {
        let scene = try Scene()
        defer { scene.tearDown() }
        let name = scene.user.name
        try scene.cron.write("""
        # MOLT-HEALTH-WATCH - Health check every 5min
        */5 * * * * /srv/.scripts/_molt/health-watch \(name) --alert-email a@b.example >> /srv/health.log 2>&1
        # MOLT-HEALTH-WATCH other-molt: health check every 5 min, managed by 'clmnt molt health setup'
        */5 * * * * /usr/local/bin/clmnt molt health-watch other-molt --base-dir /srv >> /srv/other-molt/.molt-state/cron.log 2>&1

        """)
        let schedule = try WatchSchedule(molt: try scene.molt(), baseDir: scene.fleet.base, executable: executable)
        _ = try HealthSetup.install(try scene.request(schedule))
        let text = try scene.cron.read()
        #expect(!text.contains("_molt/health-watch"))
        #expect(!text.contains("Health check every 5min"))
        #expect(text.contains("health-watch other-molt"))
        #expect(text.contains("# MOLT-HEALTH-WATCH other-molt:"))
        #expect(CronTab.entryLines(in: text, molt: name).count == 2)
    }

    @Test func systemdUnitsInsteadOfCron() throws {
        let scene = try Scene()
        defer { scene.tearDown() }
        let name = scene.user.name
        let cronSchedule = try WatchSchedule(molt: try scene.molt(), baseDir: scene.fleet.base, executable: executable)
        _ = try HealthSetup.install(try scene.request(cronSchedule))
        let schedule = try WatchSchedule(molt: try scene.molt(), baseDir: scene.fleet.base, executable: executable, interval: 10,
                                         settings: WatchSettings(commander: nil, mailer: ["/usr/bin/msmtp", "-a", "alerts"]))
        let report = try HealthSetup.install(try scene.request(schedule, systemd: true))
        let service = try String(contentsOfFile: scene.units.path + "/clmnt-health-\(name).service", encoding: .utf8)
        let timer = try String(contentsOfFile: scene.units.path + "/clmnt-health-\(name).timer", encoding: .utf8)
        #expect(service.contains("ExecStart=/usr/local/bin/clmnt molt health-watch \(name) --base-dir \(scene.fleet.base) --mailer \"/usr/bin/msmtp -a alerts\"\n"))
        #expect(service.contains("Type=oneshot"))
        #expect(service.contains("SuccessExitStatus=2"))
        #expect(service.contains("StandardOutput=append:\(scene.fleet.base)/\(name)/.molt-state/cron.log"))
        #expect(timer.contains("OnCalendar=*-*-* *:02/10:00"))
        #expect(timer.contains("Unit=clmnt-health-\(name).service"))
        #expect(timer.contains("WantedBy=timers.target"))
        // One scheduler per molt: the crontab entry went away.
        #expect(report.notes.contains { $0.contains("removed the crontab entry") })
        #expect(CronTab.entryLines(in: try scene.cron.read(), molt: name).isEmpty)
        if !SystemdTimer.isUsable {
            #expect(report.notes.contains { $0.contains("systemctl daemon-reload && systemctl enable --now clmnt-health-\(name).timer") })
        }
        let status = HealthSetup.status(molt: try scene.molt(), unitDir: scene.units.path)
        #expect(status.systemdInstalled)
        #expect(status.cronEntry == [])
        let removed = try HealthSetup.remove(molt: try scene.molt(), unitDir: scene.units.path)
        #expect(removed.filter { $0.hasPrefix("removed ") }.count == 2)
        #expect(!FileManager.default.fileExists(atPath: scene.units.path + "/clmnt-health-\(name).timer"))
    }

    @Test func refusesWhatCannotWork() throws {
        let scene = try Scene()
        defer { scene.tearDown() }
        let molt = try scene.molt()
        // No crontab command.
        let schedule = try WatchSchedule(molt: molt, baseDir: scene.fleet.base, executable: executable)
        var request = try scene.request(schedule)
        request.crontabProgram = "/nonexistent/crontab"
        #expect(throws: HealthError.noCrontab) { try HealthSetup.install(request) }
        // Alert mail without a mailer.
        let mailing = try WatchSchedule(molt: molt, baseDir: scene.fleet.base, executable: executable,
                                        settings: WatchSettings(emails: ["ops@example.com"], mailer: ["/nonexistent/msmtp"]))
        #expect(throws: HealthError.noMailer(program: "/nonexistent/msmtp")) { try HealthSetup.install(try scene.request(mailing)) }
        // Unknown commander, and the molt as its own commander.
        let unknown = try WatchSchedule(molt: molt, baseDir: scene.fleet.base, executable: executable,
                                        settings: WatchSettings(commander: "nobody"))
        #expect(throws: HealthError.fleet(.unknownMolt(name: "nobody", known: [molt.name]))) { try HealthSetup.install(try scene.request(unknown)) }
        let selfish = try WatchSchedule(molt: molt, baseDir: scene.fleet.base, executable: executable,
                                        settings: WatchSettings(commander: molt.name))
        #expect(throws: HealthError.commanderIsSelf(molt.name)) { try HealthSetup.install(try scene.request(selfish)) }
        // None of it touched the crontab.
        #expect(try scene.cron.read() == "")
        // A molt without a Linux user has no crontab to go in.
        try scene.fleet.addMolt("no-such-user-here", port: 19001)
        let orphan = try scene.fleet.molt("no-such-user-here")
        let orphanSchedule = try WatchSchedule(molt: orphan, baseDir: scene.fleet.base, executable: executable)
        #expect(throws: HealthError.noSuchUser("no-such-user-here")) {
            try HealthSetup.install(SetupRequest(fleet: try scene.fleet.fleet(), molt: orphan, schedule: orphanSchedule, unitDir: scene.units.path))
        }
    }
}

/// The schedule's line from the values given: what is refused, the interval, offset and stagger.
/// Pure values (a fleet in a temporary directory at most): no user, no crontab.
@Suite(.tags(.fast)) struct WatchScheduleLineTests {
    let executable = "/usr/local/bin/clmnt"

    @Test func unsafeValuesNeverReachACrontabLine() throws {
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        try fleet.addMolt("alpha", port: 19001)
        let alpha = try fleet.molt("alpha")
        for bad in ["/srv/mol%ts", "/srv/molts\n* * * * * rm -rf /", "/srv/my molts", "/srv/$(reboot)", "/srv/`id`", "/srv/a;b", "/srv/'q'"] {
            #expect(throws: HealthError.self, "base dir \(bad.debugDescription)") {
                try WatchSchedule(molt: alpha, baseDir: bad, executable: executable)
            }
            #expect(throws: HealthError.self, "binary \(bad.debugDescription)") {
                try WatchSchedule(molt: alpha, baseDir: fleet.base, executable: bad)
            }
        }
        #expect(throws: HealthError.unsafeForSchedule(what: "base dir", value: "/srv/mol%ts", character: "'%'")) {
            try WatchSchedule(molt: alpha, baseDir: "/srv/mol%ts", executable: executable)
        }
        #expect(throws: HealthError.notAbsolute(what: "clmnt binary", path: "clmnt")) {
            try WatchSchedule(molt: alpha, baseDir: fleet.base, executable: "clmnt")
        }
        #expect(throws: HealthError.self) {
            try WatchSchedule(molt: alpha, baseDir: fleet.base, executable: executable, settings: WatchSettings(mailer: ["/usr/bin/msmtp", "-a", "x;y"]))
        }
        #expect(throws: HealthError.invalidEmail("a%b@x.example")) {
            try WatchSchedule(molt: alpha, baseDir: fleet.base, executable: executable, settings: WatchSettings(emails: ["a%b@x.example"]))
        }
        // A molt whose home is under an unsafe path.
        let odd = try TemporaryDirectory(prefix: "clmnt-50%")
        defer { odd.remove() }
        try FileManager.default.createDirectory(atPath: odd.path + "/alpha", withIntermediateDirectories: true)
        try "MOLT_PORT=19001\n".write(toFile: odd.path + "/alpha/.molt-info", atomically: true, encoding: .utf8)
        let oddMolt = try Fleet.discover(baseDir: odd.path).molt(named: "alpha")
        #expect(throws: HealthError.unsafeForSchedule(what: "molt home", value: oddMolt.home, character: "'%'")) {
            try WatchSchedule(molt: oddMolt, baseDir: fleet.base, executable: executable)
        }
    }

    @Test func intervalOffsetAndStagger() throws {
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        try fleet.addMolt("alpha", port: 19001)
        let alpha = try fleet.molt("alpha")
        #expect(throws: HealthError.invalidInterval(0)) { try WatchSchedule(molt: alpha, baseDir: fleet.base, executable: executable, interval: 0) }
        // Whole hours are fine (the bash tool's --interval 60); other values past 59 are not.
        for bad in [61, 90, 1500] {
            #expect(throws: HealthError.invalidInterval(bad)) { try WatchSchedule(molt: alpha, baseDir: fleet.base, executable: executable, interval: bad) }
        }
        #expect(throws: HealthError.invalidOffset(offset: 5, interval: 5)) {
            try WatchSchedule(molt: alpha, baseDir: fleet.base, executable: executable, interval: 5, offset: 5)
        }
        #expect(throws: HealthError.invalidOffset(offset: -1, interval: 5)) {
            try WatchSchedule(molt: alpha, baseDir: fleet.base, executable: executable, interval: 5, offset: -1)
        }
        // Ports step by 20: consecutive molts, consecutive minutes.
        let offsets = [19001, 19021, 19041, 19061, 19081, 19101].map { WatchSchedule.defaultOffset(port: $0, name: "x", interval: 5) }
        #expect(offsets == [0, 1, 2, 3, 4, 0])
        #expect(WatchSchedule.defaultOffset(port: nil, name: "alpha", interval: 5) == WatchSchedule.defaultOffset(port: nil, name: "alpha", interval: 5))
        let every5 = try WatchSchedule(molt: alpha, baseDir: fleet.base, executable: executable)
        #expect(every5.minuteField == "*/5")
        #expect(every5.onCalendar == "*-*-* *:00/5:00")
        let every1 = try WatchSchedule(molt: alpha, baseDir: fleet.base, executable: executable, interval: 1)
        #expect(every1.minuteField == "*")
        let shifted = try WatchSchedule(molt: alpha, baseDir: fleet.base, executable: executable, interval: 15, offset: 4)
        #expect(shifted.minuteField == "4-59/15")
        #expect(shifted.onCalendar == "*-*-* *:04/15:00")
    }
}
