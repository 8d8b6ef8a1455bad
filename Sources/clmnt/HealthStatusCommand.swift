import ArgumentParser
import ClmntCore
import ClmntHealth
import Foundation

extension MoltCommand.Health {
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a molt's last recorded health, its alerting state and its schedule.",
            discussion: "Exit status: 0 when the last check was healthy, 2 when it was not or none is recorded, 1 on errors."
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The molt to show.", completion: moltNameCompletion)
        var name: String

        @Flag(inversion: .prefixedNo, help: "Print the status as JSON.")
        var json = false

        func run() throws {
            try reportingErrors {
                let (_, molt) = try loadMolt(name, global)
                let report = HealthMonitor.status(of: molt)
                printWarnings(report.warnings)
                global.detail("read \(report.statusPath) and \(report.watchStatePath)", json: json)
                if json {
                    try printJSON(report.json)
                } else if !global.quiet {
                    // -q: like `systemctl is-active -q`, the exit status alone answers.
                    printText(Self.text(report))
                }
                if report.last?.status.isHealthy != true { throw ExitCode(ExitStatus.checkFailed) }
            }
        }

        static func text(_ report: StatusReport) -> String {
            var rows: [(String, String)] = [("molt", report.molt)]
            if let last = report.last {
                rows += [
                    ("status", "\(last.status.rawValue), checked \(Timestamp.format(last.timestamp)) (\(HealthRendering.ago(last.timestamp)))"),
                    ("pid", HealthRendering.optional(last.pid)),
                    ("port", HealthRendering.optional(last.port)),
                    ("http status", HealthRendering.optional(last.httpStatus)),
                    ("response time", last.responseTimeMs.map { "\(HealthRendering.number($0)) ms" } ?? "-"),
                ]
                if let detail = last.detail { rows.append(("detail", detail)) }
            } else {
                rows.append(("status", "never checked (no \(report.statusPath))"))
            }
            if report.watchUnreadable {
                rows.append(("watch", "\(report.watchStatePath) is unreadable" + (report.watch == nil ? "; nothing could be recovered" : "; recovered below what it still holds")))
            }
            if let watch = report.watch {
                rows.append(("failures", "\(watch.consecutiveFailures) in a row (alert after \(watch.threshold))"))
                rows.append(("last success", watch.lastSuccess.map { "\(Timestamp.format($0)) (\(HealthRendering.ago($0)))" } ?? "never recorded"))
                if watch.alertSent {
                    rows.append(("alert", "OPEN since \(watch.incidentStart.map(Timestamp.format) ?? "?"), "
                                 + "\(watch.alertsSent) message\(watch.alertsSent == 1 ? "" : "s") sent, last \(watch.lastAlertAt.map(Timestamp.format) ?? "?")"))
                } else {
                    rows.append(("alert", report.watchUnreadable ? "none known (the file no longer says)" : "none open"))
                }
            } else if !report.watchUnreadable {
                rows.append(("watch", "health-watch has not run yet"))
            }
            rows.append(("schedule", scheduleText(report.schedule)))
            // Values come from state files a molt user can write: `renderTable` escapes each to one line.
            return renderTable(rows.map { [$0.0, $0.1] })
        }

        static func scheduleText(_ schedule: ScheduleStatus) -> String {
            var parts: [String] = []
            if let entry = schedule.cronEntry, let job = entry.last(where: { !$0.hasPrefix("#") }) ?? entry.last {
                parts.append("cron: \(job)")
            }
            if let error = schedule.cronError { parts.append("crontab unknown (\(error))") }
            if schedule.systemdInstalled {
                parts.append("systemd: \(schedule.timerPath)" + (schedule.systemdActive.map { " (\($0))" } ?? " (systemd not running here)"))
            }
            return parts.isEmpty ? "not scheduled (see 'clmnt molt health setup')" : parts.joined(separator: "; ")
        }
    }
}
