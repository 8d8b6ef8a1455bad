import ArgumentParser
import ClmntCore
import ClmntHealth
import Foundation

extension MoltCommand {
    struct HealthWatch: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "health-watch",
            abstract: "Check a molt, record the result, and alert after repeated failures (run by cron or systemd).",
            discussion: """
            Prints one line per run, starting with an ISO-8601 UTC timestamp (cron appends it to \
            .molt-state/cron.log; with -q only when the molt is not healthy or something was sent, warned \
            or failed). A failing mailer or webhook is logged and the state is still written. Exit status: 0 when healthy, 2 when not, 1 when the \
            state could not be written.
            """
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The molt to watch.", completion: moltNameCompletion)
        var name: String

        @Option(help: "Where to mail alerts (several separated by commas).")
        var alertEmail: String?

        @Option(help: "Failed checks in a row before the alert.")
        var consecutiveFailures = 2

        @Option(help: "A molt of this fleet that also gets the alert as a webhook.")
        var commander: String?

        @Option(help: "While still failing, repeat the alert every N further failed checks (default: never).")
        var remindEvery: Int?

        @Option(help: "Seconds to wait for the gateway's answer.")
        var timeout: Double = 5

        @Option(help: "A sendmail-compatible command to mail with, arguments allowed (default: msmtp).")
        var mailer: String?

        @Flag(help: "Also ask /readyz: live but not ready counts as degraded.")
        var ready = false

        func run() throws {
            // Errors go to cron.log too (2>&1): stamped like every other line there.
            try reportingErrors(stamp: { "\(Timestamp.format(Date())) \($0)" }) {
                let check = CheckOptions(timeout: timeout, ready: ready)
                try check.validate()
                let rules = AlertRules(threshold: consecutiveFailures, remindEvery: remindEvery)
                try rules.validate()
                let emails = try alertEmail.map(AlertChannels.parseEmails) ?? []
                if let commander {
                    try MoltName.validate(commander)
                    if commander == name { throw HealthError.commanderIsSelf(name) }
                }
                let channels = AlertChannels(emails: emails, mailer: mailer.map(AlertChannels.mailerCommand) ?? AlertChannels.defaultMailer,
                                             commander: commander, webhookTimeout: max(timeout, 5))
                let (fleet, molt) = try loadMolt(name, global)
                let report = ClmntHealth.HealthWatch.run(molt: molt, fleet: fleet,
                                                         options: WatchOptions(check: check, rules: rules, channels: channels))
                for line in Self.logLines(report, verbose: global.verbose, quiet: global.quiet) { printText(line) }
                if !report.errors.isEmpty { throw ExitCode(ExitStatus.failure) }
                if !report.record.status.isHealthy { throw ExitCode(ExitStatus.checkFailed) }
            }
        }

        /// `2026-11-28T10:05:00Z health: ...` lines (the bash tool wrote `[2026-11-28 10:05:00] health: ...`;
        /// `health logs` shows both). `quiet`: nothing for a healthy check that sent nothing and had no trouble.
        static func logLines(_ report: WatchReport, verbose: Bool, quiet: Bool = false) -> [String] {
            let prefix = "\(Timestamp.format(report.record.timestamp)) health:"
            var lines: [String] = []
            if quiet && report.record.status.isHealthy && report.message == nil {
                for warning in report.warnings { lines.append("\(prefix) warning: \(warning)") }
                for error in report.errors { lines.append("\(prefix) error: \(error)") }
                return lines
            }
            for warning in report.warnings { lines.append("\(prefix) warning: \(warning)") }
            var line = "\(prefix) \(HealthRendering.summary(report.record))"
            let state = report.state
            if !report.record.status.isHealthy {
                if state.alertSent {
                    line += "; failure \(state.consecutiveFailures), alert open since \(state.incidentStart.map(Timestamp.format) ?? "?")"
                } else {
                    line += "; failure \(state.consecutiveFailures) of \(state.threshold) before alerting"
                }
            }
            lines.append(line)
            if let message = report.message {
                let kind = message.kind.rawValue
                if report.deliveries.isEmpty {
                    lines.append("\(prefix) \(kind) due but no channel configured (--alert-email, --commander): \(message.subject)")
                }
                for delivery in report.deliveries {
                    if let error = delivery.error {
                        lines.append("\(prefix) \(kind) NOT sent by \(delivery.channel): \(error)")
                    } else {
                        lines.append("\(prefix) \(kind) sent: \(delivery.channel)")
                    }
                }
                if !report.deliveries.isEmpty && !report.deliveries.contains(where: \.delivered) {
                    lines.append("\(prefix) every channel failed: the \(kind) is retried on the next run")
                }
            }
            for error in report.errors { lines.append("\(prefix) error: \(error)") }
            if verbose {
                lines.append("\(prefix) state: consecutive_failures=\(state.consecutiveFailures) alert_sent=\(state.alertSent) "
                             + "threshold=\(state.threshold) last_success=\(state.lastSuccess.map(Timestamp.format) ?? "never")")
            }
            return lines
        }
    }
}
