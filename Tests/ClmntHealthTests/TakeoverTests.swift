import ClmntTestSupport
import ClmntCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import ClmntHealth

/// Taking over a host the bash tool set up, through the real binary, a real user and
/// its real crontab (never root's).
@Suite struct TakeoverTests {
    /// A real user and a fleet holding a molt of its name, home owned by the user.
    struct Scene {
        let user: TestUser
        let fleet: FleetFixture
        var name: String { user.name }
        var home: String { fleet.base + "/" + user.name }

        init() throws {
            user = try TestUser()
            fleet = try FleetFixture.bare()
            let home = try fleet.addMolt(user.name, port: 19041)
            chown(home, user.uid, user.gid)
        }

        func crontab() -> String { (try? CronTab(user: user.name).read()) ?? "" }
        func clmnt(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
            try runClmnt(arguments + ["--base-dir", fleet.base])
        }
        func tearDown() {
            user.remove()
            fleet.remove()
        }
    }

    /// The line the bash tool's `.scripts/_molt/_health/setup` writes.
    func bashEntry(_ name: String, options: String) -> String {
        """
        MAILTO=""
        # MOLT-HEALTH-WATCH - Health check every 5min (offset: 2, failures: 3)
        2,7,12,17,22,27,32,37,42,47,52,57 * * * * /srv/molts/.scripts/_molt/_health/../health-watch \(name) \(options) --verbose >> /srv/molts/\(name)/.molt-state/cron.log 2>&1

        """
    }

    /// Before: the alert e-mail and threshold of the bash tool's entry were dropped without a word.
    @Test func setupCarriesOverTheBashToolsAlertSettings() throws {
        let scene = try Scene()
        defer { scene.tearDown() }
        try CronTab(user: scene.name).write(bashEntry(scene.name, options: "--alert-email ops@example.com --consecutive-failures 3"))
        let run = try scene.clmnt(["molt", "health", "setup", scene.name])
        #expect(run.status == 0, "\(run.stderr)")
        let text = scene.crontab()
        #expect(text.contains("--alert-email ops@example.com --consecutive-failures 3"), "\(text)")
        #expect(!text.contains("_molt/_health"))
        #expect(text.contains("MAILTO=\"\""))
        #expect(run.stdout.contains("carried over from the bash tool's crontab entry: --alert-email ops@example.com"), "\(run.stdout)")
        #expect(run.stdout.contains("carried over from the bash tool's crontab entry: --consecutive-failures 3"))

        // Flags given to setup win; what is not given is still carried over.
        try CronTab(user: scene.name).write(bashEntry(scene.name, options: "--alert-email=ops@example.com --consecutive-failures 3"))
        let explicit = try scene.clmnt(["molt", "health", "setup", scene.name, "--consecutive-failures", "5"])
        #expect(explicit.status == 0, "\(explicit.stderr)")
        let second = scene.crontab()
        #expect(second.contains("--alert-email ops@example.com --consecutive-failures 5"), "\(second)")
        #expect(explicit.stdout.contains("changed --consecutive-failures 3 → 5"), "\(explicit.stdout)")
        #expect(!explicit.stdout.contains("carried over from the bash tool's crontab entry: --consecutive-failures"))

        // Our own entry now: re-running setup keeps its settings and says so.
        let again = try scene.clmnt(["molt", "health", "setup", scene.name])
        #expect(again.status == 0)
        #expect(again.stdout.contains("kept from the current entry: --alert-email ops@example.com"), "\(again.stdout)")
        #expect(scene.crontab().contains("--alert-email ops@example.com --consecutive-failures 5"), "\(scene.crontab())")
    }

    /// Before: a second setup (after fixing a refusal) dropped --alert-email and --consecutive-failures,
    /// and takeover turned `--interval 15 --offset 7` (and 60, and 10) into every 5 minutes.
    @Test func settingsSurviveTakeoverAndASecondSetup() throws {
        let scene = try Scene()
        defer { scene.tearDown() }
        let job = "7,22,37,52 * * * * /srv/molts/.scripts/_molt/_health/../health-watch \(scene.name) "
            + "--alert-email ops@example.com,oncall@example.com --consecutive-failures 4 --verbose >> /srv/molts/\(scene.name)/.molt-state/cron.log 2>&1"
        try CronTab(user: scene.name).write("# MOLT-HEALTH-WATCH - Health check every 15min (offset: 7, failures: 4)\n\(job)\n")
        let takeover = try scene.clmnt(["molt", "health", "setup", scene.name, "--timeout", "3", "--ready"])
        #expect(takeover.status == 0, "\(takeover.stderr)")
        #expect(takeover.stdout.contains("carried over from the bash tool's crontab entry: every 15 min at minutes 7,22,37,52"), "\(takeover.stdout)")
        let expectedJob = "7-59/15 * * * * "
        let options = "--alert-email ops@example.com,oncall@example.com --consecutive-failures 4 --timeout 3 --ready"
        #expect(scene.crontab().contains(expectedJob), "\(scene.crontab())")
        #expect(scene.crontab().contains(options), "\(scene.crontab())")

        // Again without a flag: every setting is still there, each said to be kept.
        let again = try scene.clmnt(["molt", "health", "setup", scene.name])
        #expect(again.status == 0, "\(again.stderr)")
        let text = scene.crontab()
        #expect(text.contains(expectedJob) && text.contains(options), "\(text)")
        for kept in ["every 15 min at minutes 7,22,37,52", "--alert-email ops@example.com,oncall@example.com",
                     "--consecutive-failures 4", "--timeout 3", "--ready"] {
            #expect(again.stdout.contains("kept from the current entry: \(kept)"), "\(kept): \(again.stdout)")
        }

        // A flag changes one setting, an empty value removes one, the rest stays; each said.
        let changed = try scene.clmnt(["molt", "health", "setup", scene.name, "--consecutive-failures", "2", "--alert-email", "", "--no-ready"])
        #expect(changed.status == 0, "\(changed.stderr)")
        #expect(changed.stdout.contains("changed --consecutive-failures 4 → 2"), "\(changed.stdout)")
        #expect(changed.stdout.contains("removed --alert-email ops@example.com,oncall@example.com"), "\(changed.stdout)")
        #expect(changed.stdout.contains("removed --ready"), "\(changed.stdout)")
        let after = scene.crontab()
        #expect(after.contains(expectedJob) && after.contains("--consecutive-failures 2 --timeout 3 >>"), "\(after)")
        #expect(!after.contains("--alert-email") && !after.contains("--ready"))

        // --fresh keeps nothing, and says what it dropped.
        let fresh = try scene.clmnt(["molt", "health", "setup", scene.name, "--fresh"])
        #expect(fresh.status == 0, "\(fresh.stderr)")
        #expect(fresh.stdout.contains("--fresh: not kept from the current entry: --consecutive-failures 2 --timeout 3"), "\(fresh.stdout)")
        #expect(!scene.crontab().contains("--timeout"))
    }

    /// The bash tool's hourly and 10-minute entries keep their timing.
    @Test func takeoverKeepsHourlyAndTenMinuteTiming() throws {
        let scene = try Scene()
        defer { scene.tearDown() }
        let script = "/srv/molts/.scripts/_molt/_health/../health-watch \(scene.name) --consecutive-failures 2 --verbose >> /dev/null 2>&1"
        try CronTab(user: scene.name).write("# MOLT-HEALTH-WATCH - Health check every 60min (offset: 7, failures: 2)\n7 * * * * \(script)\n")
        let hourly = try scene.clmnt(["molt", "health", "setup", scene.name])
        #expect(hourly.status == 0, "\(hourly.stderr)")
        #expect(scene.crontab().contains("\n7 * * * * "), "\(scene.crontab())")
        #expect(hourly.stdout.contains("every 1 h at minute 7"), "\(hourly.stdout)")

        try CronTab(user: scene.name).write("# MOLT-HEALTH-WATCH - Health check every 10min (offset: 3, failures: 2)\n3,13,23,33,43,53 * * * * \(script)\n")
        let ten = try scene.clmnt(["molt", "health", "setup", scene.name])
        #expect(ten.status == 0, "\(ten.stderr)")
        #expect(scene.crontab().contains("\n3-59/10 * * * * "), "\(scene.crontab())")

        // A minute list that is no regular interval: said, not silently changed.
        try CronTab(user: scene.name).write("# MOLT-HEALTH-WATCH - x\n0,7,30 * * * * \(script)\n")
        let odd = try scene.clmnt(["molt", "health", "setup", scene.name])
        #expect(odd.status == 0, "\(odd.stderr)")
        #expect(odd.stdout.contains("runs at cron minutes '0,7,30' hours '*', not one regular interval"), "\(odd.stdout)")

        // The bash tool's -i/-o spellings.
        let short = try scene.clmnt(["molt", "health", "setup", scene.name, "-i", "20", "-o", "4"])
        #expect(short.status == 0, "\(short.stderr)")
        #expect(scene.crontab().contains("\n4-59/20 * * * * "), "\(scene.crontab())")
        #expect(short.stdout.contains("changed the timing"), "\(short.stdout)")
    }

    /// The cron and OnCalendar forms clmnt and the bash tool write, read back.
    @Test func scheduleFieldsReadBack() throws {
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        _ = try fleet.addMolt("readback", port: 19041)
        let molt = try fleet.molt("readback")
        #expect(ScheduledEntry.interval(minutes: "7,22,37,52", hours: "*")! == (15, 7))
        #expect(ScheduledEntry.interval(minutes: "7", hours: "*")! == (60, 7))
        #expect(ScheduledEntry.interval(minutes: "7", hours: "*/3")! == (180, 7))
        #expect(ScheduledEntry.interval(minutes: "*/5", hours: "*")! == (5, 0))
        #expect(ScheduledEntry.interval(minutes: "3-59/5", hours: "*")! == (5, 3))
        #expect(ScheduledEntry.interval(minutes: "*", hours: "*")! == (1, 0))
        #expect(ScheduledEntry.interval(minutes: "0,7,14,21,28,35,42,49,56", hours: "*")! == (7, 0))
        #expect(ScheduledEntry.interval(minutes: "0,7,30", hours: "*") == nil)
        #expect(ScheduledEntry.interval(minutes: "7,22", hours: "*") == nil)
        #expect(ScheduledEntry.interval(minutes: "5", hours: "1") == nil)
        for (interval, offset) in [(5, 3), (1, 0), (15, 7), (60, 7), (180, 12)] {
            let schedule = try WatchSchedule(molt: molt, baseDir: fleet.base, executable: "/usr/bin/clmnt",
                                              interval: interval, offset: offset, settings: WatchSettings(mailer: ["msmtp", "-a", "x"]))
            let cron = ScheduledEntry.parse(crontab: schedule.cronLines.joined(separator: "\n"), molt: "readback")
            #expect(cron?.interval == interval && cron?.offset == offset, "\(schedule.cronLines)")
            #expect(cron?.settings == schedule.settings && cron?.baseDir == fleet.base)
            let units = ScheduledEntry.parse(service: SystemdTimer.service(for: schedule), timer: SystemdTimer.timer(for: schedule))
            #expect(units?.interval == interval && units?.offset == offset, "\(schedule.onCalendar)")
            #expect(units?.settings == schedule.settings)
        }
    }

    /// Before: setup installed a job its user could never run (home of another uid, state it cannot write).
    @Test func setupRefusesAJobItsUserCannotRun() throws {
        let scene = try Scene()
        defer { scene.tearDown() }
        try CronTab(user: scene.name).write("@reboot /usr/bin/true\n")
        // The home belongs to root, 0700: the molt's user cannot enter it.
        chown(scene.home, 0, 0)
        chmod(scene.home, 0o700)
        let run = try scene.clmnt(["molt", "health", "setup", scene.name])
        #expect(run.status == 1)
        #expect(run.stderr.split(separator: "\n").count == 1, "\(run.stderr)")
        #expect(run.stderr.contains("user \(scene.name) cannot enter its home \(scene.home) (owner uid 0, mode 0700)"), "\(run.stderr)")
        #expect(scene.crontab() == "@reboot /usr/bin/true\n")

        // Its home again, but a .molt-state it cannot write in.
        chown(scene.home, scene.user.uid, scene.user.gid)
        chmod(scene.home, 0o755)
        mkdir(scene.home + "/.molt-state", 0o555)
        chown(scene.home + "/.molt-state", scene.user.uid, scene.user.gid)
        let state = try scene.clmnt(["molt", "health", "setup", scene.name])
        #expect(state.status == 1)
        #expect(state.stderr.contains("cannot write in \(scene.home)/.molt-state"), "\(state.stderr)")
        #expect(scene.crontab() == "@reboot /usr/bin/true\n")

        // Fixed: it installs.
        chmod(scene.home + "/.molt-state", 0o755)
        let fixed = try scene.clmnt(["molt", "health", "setup", scene.name])
        #expect(fixed.status == 0, "\(fixed.stderr)")
        #expect(scene.crontab().contains("molt health-watch \(scene.name)"))
    }

    /// Before: "health-watch has not run yet" over the bash tool's invalid state file.
    @Test func statusRecoversTheBashToolsInvalidWatchState() throws {
        let scene = try Scene()
        defer { scene.tearDown() }
        let state = scene.home + "/.molt-state"
        mkdir(state, 0o755)
        chown(state, scene.user.uid, scene.user.gid)
        try """
        {
          "timestamp": "2026-11-29T10:00:00+00:00",
          "status": "dead",
          "consecutive_failures": 4,
          "last_success": "2026-11-29T09:00:00+00:00",
          "alert_sent": ,
          "threshold": 3
        }

        """.write(toFile: state + "/health-watch-state.json", atomically: false, encoding: .utf8)
        let run = try scene.clmnt(["molt", "health", "status", scene.name])
        #expect(run.status == 2)
        #expect(!run.stdout.contains("has not run yet"), "\(run.stdout)")
        #expect(run.stdout.contains("\(state)/health-watch-state.json is unreadable; recovered below"), "\(run.stdout)")
        #expect(run.stdout.contains("4 in a row (alert after 3)"), "\(run.stdout)")
        #expect(run.stdout.contains("last success  2026-11-29T09:00:00"), "\(run.stdout)")
        let json = try scene.clmnt(["molt", "health", "status", scene.name, "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["watch_unreadable"] as? Bool == true)
        let watch = try #require(object["watch"] as? [String: Any])
        #expect(watch["consecutive_failures"] as? Int == 4)
        #expect(watch["status"] as? String == "dead")

        // Nothing readable at all: said, not "has not run yet".
        try "{ garbage".write(toFile: state + "/health-watch-state.json", atomically: false, encoding: .utf8)
        let none = try scene.clmnt(["molt", "health", "status", scene.name])
        #expect(none.stdout.contains("is unreadable; nothing could be recovered"), "\(none.stdout)")
    }

    /// Before: --lines, --follow, --interval 60 and the --no-… forms were usage errors.
    @Test func theBashToolsSpellingsAreAccepted() throws {
        let scene = try Scene()
        defer { scene.tearDown() }
        // Hourly, and every 3 hours.
        let hourly = try scene.clmnt(["molt", "health", "setup", scene.name, "--interval", "60", "--offset", "7", "--no-systemd", "--no-ready"])
        #expect(hourly.status == 0, "\(hourly.stderr)")
        #expect(scene.crontab().contains("\n7 * * * * "), "\(scene.crontab())")
        #expect(scene.crontab().contains("health check every 1 h"))
        let three = try scene.clmnt(["molt", "health", "setup", scene.name, "--interval", "180"])
        #expect(three.status == 0, "\(three.stderr)")
        let offset = WatchSchedule.defaultOffset(port: 19041, name: scene.name, interval: 60)
        #expect(scene.crontab().contains("\n\(offset) */3 * * * "), "\(scene.crontab())")
        let ninety = try scene.clmnt(["molt", "health", "setup", scene.name, "--interval", "90"])
        #expect(ninety.status == 64)
        #expect(ninety.stderr.contains("invalid interval 90"), "\(ninety.stderr)")

        // logs --lines N / --no-follow.
        let log = scene.home + "/.molt-state/cron.log"
        try "one\ntwo\nthree\n".write(toFile: log, atomically: false, encoding: .utf8)
        let logs = try scene.clmnt(["molt", "health", "logs", scene.name, "--lines", "2", "--no-follow"])
        #expect(logs.status == 0, "\(logs.stderr)")
        #expect(logs.stdout == "two\nthree\n")

        // --no-json, --no-status, --no-remove.
        let status = try scene.clmnt(["molt", "health", "status", scene.name, "--no-json"])
        #expect(status.stdout.hasPrefix("molt "), "\(status.stdout)\(status.stderr)")
        let setup = try scene.clmnt(["molt", "health", "setup", scene.name, "--no-remove", "--status"])
        #expect(setup.status == 0, "\(setup.stderr)")
        #expect(setup.stdout.contains("cron: "))
        let history = try scene.clmnt(["molt", "health", "history", scene.name, "--no-json"])
        #expect(history.status != 64, "\(history.stderr)")
    }
}
