import ArgumentParser
import ClmntCore
import ClmntHealth
import Foundation

extension FleetCommand {
    struct Doctor: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check this host the way an admin would before trusting it: users, homes, health monitoring, backups.",
            discussion: """
            Prints one OK, WARN or FAIL line per check: every molt's user exists and owns its home; health \
            monitoring is scheduled, would run for this base dir and alerts someone, and its last check is recent \
            and healthy; the newest backup is recent, complete and verified (by its schedule, or by fleet verify); the backup dir is outside every molt and has room for the next backup; \
            no partial archive or restore staging is left behind. Changes nothing. Exits 1 when a check fails.
            """
        )

        @OptionGroup var global: GlobalOptions

        @OptionGroup var backups: BackupDirOptions

        @Flag(inversion: .prefixedNo, help: "Print the checks as JSON.")
        var json = false

        @Argument(help: .hidden)
        var strayArguments: [String] = []

        func validate() throws {
            try refuseStray(strayArguments, command: "fleet doctor")
        }

        func run() throws {
            var passed = true
            try reportingErrors {
                let baseDir = global.resolvedBaseDir
                let location = backups.resolved(baseDir: baseDir)
                var options = DoctorOptions(baseDir: baseDir, backupDir: location)
                options.scheduleCrontab = CronTab(user: currentUserName())
                options.baseDirHint = baseDirHint(baseDir)
                let report = FleetDoctor.examine(options)
                passed = report.passed
                global.detail("base dir \(baseDir); backup dir \(location.directory) (\(location.explanation)); "
                              + "scheduled jobs read from the crontab of \(currentUserName()) and of each molt's user", json: json)
                if json {
                    try printJSON(report)
                    return
                }
                // -q: only what needs attention.
                let rows = report.checks.filter { !(global.quiet && $0.verdict == .ok) }.map { check in
                    [check.verdict.rawValue, check.check, (check.molt.map { "\($0): " } ?? "") + check.message]
                }
                if !rows.isEmpty { printText(renderTable(rows)) }
                let counts = Dictionary(grouping: report.checks, by: \.verdict).mapValues(\.count)
                global.say("\(counts[.ok] ?? 0) OK, \(counts[.warn] ?? 0) WARN, \(counts[.fail] ?? 0) FAIL")
            }
            if !passed { throw ExitCode(ExitStatus.failure) }
        }
    }
}
