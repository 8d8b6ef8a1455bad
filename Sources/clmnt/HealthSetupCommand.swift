import ArgumentParser
import ClmntCore
import ClmntHealth

extension Molt.Health {
    struct Setup: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Schedule a molt's health-watch in its user's crontab (or as a systemd timer).",
            discussion: """
            The crontab entry is marked by a '# MOLT-HEALTH-WATCH <name>' comment; running setup again \
            replaces it and keeps every other line. Checks are staggered by port unless --offset is given. \
            Replacing the bash tool's entry carries over its --alert-email and --consecutive-failures unless \
            given here. Setup refuses a crontab job the molt's user could not run (home it cannot enter, \
            log it cannot write).
            """
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The molt to monitor.")
        var name: String

        @Option(help: "Minutes between checks: 1 to 59, or whole hours (60, 120, ... 1440).")
        var interval = 5

        @Option(help: "Minute of the first check in each hour, below the interval and 60 (default: from the port).")
        var offset: Int?

        @Option(help: "Where health-watch mails alerts (several separated by commas).")
        var alertEmail: String?

        @Option(help: "Failed checks in a row before the alert (health-watch's default: 2).")
        var consecutiveFailures: Int?

        @Option(help: "A molt of this fleet that also gets alerts as a webhook.")
        var commander: String?

        @Option(help: "Repeat the alert every N further failed checks.")
        var remindEvery: Int?

        @Option(help: "Seconds health-watch waits for the gateway (its default: 5).")
        var timeout: Double?

        @Option(help: "A sendmail-compatible command for health-watch to mail with (default: msmtp).")
        var mailer: String?

        @Flag(inversion: .prefixedNo, help: "Have health-watch also ask /readyz.")
        var ready = false

        @Flag(inversion: .prefixedNo, help: "Remove the scheduled health-watch (crontab entry and systemd units).")
        var remove = false

        @Flag(inversion: .prefixedNo, help: "Show where the health-watch is scheduled.")
        var status = false

        @Flag(inversion: .prefixedNo, help: "Write a systemd service and timer instead of a crontab entry.")
        var systemd = false

        @Option(help: "Where --systemd writes its units.")
        var unitDir = SystemdTimer.defaultUnitDir

        func validate() throws {
            if remove && status { throw ValidationError("give --remove or --status, not both") }
        }

        func run() throws {
            try reportingErrors {
                if status || remove {
                    let (_, molt) = try loadMolt(name, global)
                    if status {
                        printText(Molt.Health.Status.scheduleText(HealthSetup.status(molt: molt, unitDir: unitDir)))
                    } else {
                        let notes = try HealthSetup.remove(molt: molt, unitDir: unitDir)
                        global.say(notes.isEmpty ? "no health-watch was scheduled for \(name)" : notes.joined(separator: "\n"))
                    }
                    return
                }
                try validateName(commander)
                let given = WatchSettings(
                    emails: try alertEmail.map(AlertChannels.parseEmails) ?? [],
                    threshold: consecutiveFailures, commander: commander, remindEvery: remindEvery,
                    timeout: timeout, mailer: mailer.map(AlertChannels.mailerCommand), ready: ready)
                let (fleet, molt) = try loadMolt(name, global)
                let (settings, carried) = try HealthSetup.carryingOver(given, molt: molt)
                let schedule = try WatchSchedule(molt: molt, baseDir: fleet.baseDir, executable: currentExecutablePath(),
                                                 interval: interval, offset: offset, settings: settings)
                let report = try HealthSetup.install(SetupRequest(fleet: fleet, molt: molt, schedule: schedule,
                                                                  systemd: systemd, unitDir: unitDir))
                global.say(systemd ? "health-watch of \(name) as systemd units:" : "health-watch of \(name) in the crontab of user \(name):")
                for line in report.installed { global.say("  \(line)") }
                for note in carried + report.notes { global.say(note) }
                global.detail("it runs as user \(name) and appends to \(molt.stateDir)/\(StateDirectory.cronLogName)")
                printWarnings(report.warnings)
            }
        }

        private func validateName(_ name: String?) throws {
            if let name { try MoltName.validate(name) }
        }
    }
}
