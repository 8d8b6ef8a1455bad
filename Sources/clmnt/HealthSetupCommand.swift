import ArgumentParser
import ClmntCore
import ClmntHealth

extension MoltCommand.Health {
    struct Setup: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Schedule a molt's health-watch in its user's crontab (or as a systemd timer).",
            discussion: """
            The crontab entry is marked by a '# MOLT-HEALTH-WATCH <name>' comment; running setup again \
            replaces it and keeps every other line. Running setup again keeps every setting of the current \
            entry (clmnt's, or the bash tool's crontab entry it takes over: interval, offset, alert options) \
            unless an option here changes it, and says what it kept, changed or removed; an empty \
            --alert-email, --commander or --mailer removes that setting, --fresh keeps nothing. A new entry's \
            checks are staggered by port unless --offset is given. Setup refuses a crontab job the molt's user \
            could not run (home it cannot enter, log it cannot write).
            """
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The molt to monitor.", completion: moltNameCompletion)
        var name: String

        @Option(name: [.long, .customShort("i")],
                help: "Minutes between checks: 1 to 59, or whole hours (60, 120, ... 1440) (default: the current entry's, else 5).")
        var interval: Int?

        @Option(name: [.long, .customShort("o")],
                help: "Minute of the first check in each hour, below the interval and 60 (default: the current entry's, else from the port).")
        var offset: Int?

        @Option(help: "Where health-watch mails alerts (several separated by commas; '' removes them).")
        var alertEmail: String?

        @Option(help: "Failed checks in a row before the alert (health-watch's default: 2).")
        var consecutiveFailures: Int?

        @Option(help: "A molt of this fleet that also gets alerts as a webhook ('' removes it).")
        var commander: String?

        @Option(help: "Repeat the alert every N further failed checks.")
        var remindEvery: Int?

        @Option(help: "Seconds health-watch waits for the gateway (its default: 5).")
        var timeout: Double?

        @Option(help: "A sendmail-compatible command for health-watch to mail with (default: msmtp; '' removes it).")
        var mailer: String?

        @Flag(inversion: .prefixedNo, help: "Have health-watch also ask /readyz (default: as the current entry).")
        var ready: Bool?

        @Flag(help: "Keep nothing from the current entry: what is not given takes its default.")
        var fresh = false

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
                        printText(MoltCommand.Health.Status.scheduleText(HealthSetup.status(molt: molt, unitDir: unitDir)))
                    } else {
                        let notes = try HealthSetup.remove(molt: molt, unitDir: unitDir)
                        global.say(notes.isEmpty ? "no health-watch was scheduled for \(name)" : notes.joined(separator: "\n"))
                    }
                    return
                }
                if let commander, !commander.isEmpty { try MoltName.validate(commander) }
                let options = SetupOptions(
                    interval: interval, offset: offset,
                    emails: try alertEmail.map { $0.isEmpty ? [] : try AlertChannels.parseEmails($0) },
                    threshold: consecutiveFailures, commander: commander, remindEvery: remindEvery, timeout: timeout,
                    mailer: mailer.map(AlertChannels.mailerCommand), ready: ready, fresh: fresh)
                let (fleet, molt) = try loadMolt(name, global)
                let current = try HealthSetup.currentEntry(molt: molt, unitDir: unitDir)
                let (schedule, carried) = try HealthSetup.plan(options, molt: molt, baseDir: fleet.baseDir,
                                                               executable: currentExecutablePath(), current: current)
                let report = try HealthSetup.install(SetupRequest(fleet: fleet, molt: molt, schedule: schedule,
                                                                  systemd: systemd, unitDir: unitDir))
                global.say(systemd ? "health-watch of \(name) as systemd units:" : "health-watch of \(name) in the crontab of user \(name):")
                for line in report.installed { global.say("  \(line)") }
                for note in carried + report.notes { global.say(note) }
                global.detail("it runs as user \(name) and appends to \(molt.stateDir)/\(StateDirectory.cronLogName)")
                printWarnings(report.warnings)
            }
        }
    }
}
