import ArgumentParser
import ClmntCore
import ClmntHealth
import Foundation

extension MoltCommand.Health {
    struct History: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a molt's uptime over 24 h, 7 d, 30 d and all time, its incidents and its last checks."
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The molt to show.", completion: moltNameCompletion)
        var name: String

        @Option(help: "How many of the last checks to list.")
        var limit = 20

        @Flag(inversion: .prefixedNo, help: "Print the history as JSON.")
        var json = false

        func run() throws {
            try reportingErrors {
                guard limit >= 0 else { throw HealthError.invalidCount(option: "--limit", value: limit) }
                let (_, molt) = try loadMolt(name, global)
                let report = HealthMonitor.history(of: molt, limit: limit)
                printWarnings(report.warnings)
                global.detail("read \(StateDirectory(molt: molt).historyPath)", json: json)
                if json { try printJSON(report.json(molt: name)) } else { printText(Self.text(report, molt: name)) }
            }
        }

        static func text(_ report: HistoryReport, molt: String) -> String {
            guard let first = report.firstCheck else { return "no health checks recorded for \(molt) yet" }
            var out = "Uptime of \(molt), checks since \(Timestamp.format(first)):\n"
            out += HealthRendering.table(["WINDOW", "UPTIME", "CHECKS", "HEALTHY", "AVG ms", "P95 ms"], report.windows.map { window in
                [window.label, window.uptimePercent.map { String(format: "%.2f%%", $0) } ?? "-", String(window.checks),
                 String(window.healthy), HealthRendering.number(window.averageMs), HealthRendering.number(window.p95Ms)]
            })
            let shown = report.incidents.suffix(10)
            out += "\n\nIncidents: \(report.incidents.count)"
            if report.incidents.count > shown.count { out += " (the last \(shown.count) shown)" }
            if !shown.isEmpty {
                out += "\n" + HealthRendering.table(["START", "END", "DURATION", "STATUS", "CHECKS"], shown.map { incident in
                    [Timestamp.format(incident.start), incident.end.map(Timestamp.format) ?? "ongoing",
                     Timestamp.duration(incident.duration), incident.status.rawValue, String(incident.checks)]
                })
            }
            if !report.recent.isEmpty {
                out += "\n\nLast \(report.recent.count) checks:\n"
                out += HealthRendering.table(["TIMESTAMP", "STATUS", "PID", "PORT", "HTTP", "TIME(ms)", "DETAIL"], report.recent.map { record in
                    [Timestamp.format(record.timestamp), record.status.rawValue, HealthRendering.optional(record.pid),
                     HealthRendering.optional(record.port), HealthRendering.optional(record.httpStatus),
                     HealthRendering.number(record.responseTimeMs), record.detail ?? ""]
                })
            }
            return out
        }
    }
}
