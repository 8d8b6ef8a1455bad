import ArgumentParser
import ClmntCore
import Foundation

extension FleetCommand {
    struct Schedule: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Schedule a nightly (or weekly) fleet backup with retention in the crontab.",
            discussion: """
            Installs a crontab entry, marked by a '# CLMNT-FLEET-BACKUP <base-dir>' comment, that runs \
            'clmnt fleet backup --backup-dir DIR --keep N --timestamps' (with the --keep-daily, --keep-weekly \
            and --keep-monthly given) and appends its output to DIR/clmnt-backup.log. \
            Running it again replaces this base dir's entry and keeps every other line of the crontab.
            """
        )

        @OptionGroup var global: GlobalOptions

        @Option(help: "Time of day of the backup, HH:MM (24 h, the host's time zone).")
        var at = BackupJob.defaultTime

        @Option(help: "Run weekly on this day instead of daily: 0 (Sunday) to 6 (Saturday).")
        var weekday: Int?

        @Option(help: ArgumentHelp("The absolute directory the archives go to (created 0700 if missing; default: $CLMNT_BACKUP_DIR, else the one already scheduled, else /var/backups/clmnt).", valueName: "dir"), completion: .directory)
        var backupDir: String?

        @Option(help: "The compression of the archives (gz, tgz, zst and bz2 are accepted too).")
        var compress: Compression = .zstd

        @OptionGroup(title: "Retention of the scheduled job (default: keep the 7 newest)")
        var retention: RetentionOptions

        @Flag(inversion: .prefixedNo, help: "Have the job also verify each new archive (the run fails if it is damaged).")
        var verify = false

        @Option(name: .customLong("encrypt-to"), help: ArgumentHelp("Have the job encrypt to this age1… recipient (repeatable; an ssh-ed25519 key goes in --recipients-file).", valueName: "recipient"))
        var encryptTo: [String] = []

        @Option(help: ArgumentHelp("Have the job encrypt to the recipients in this file (absolute path; repeatable).", valueName: "file"))
        var recipientsFile: [String] = []

        @Option(help: ArgumentHelp("Have the job stream each archive into S3-compatible storage instead of the backup dir (which keeps the log).", valueName: "s3://bucket/prefix"))
        var to: String?

        @Option(help: ArgumentHelp("Have the job upload a copy of each archive to S3-compatible storage.", valueName: "s3://bucket/prefix"))
        var copyTo: String?

        @Flag(help: "Remove this base dir's scheduled backup.")
        var remove = false

        @Flag(help: "Show this base dir's scheduled backup and the newest archive.")
        var status = false

        func validate() throws {
            if remove && status { throw ValidationError("give --remove or --status, not both") }
            if (remove || status) && !retention.policy.isEmpty {
                throw ValidationError("--keep, --keep-daily, --keep-weekly and --keep-monthly do not apply to --\(remove ? "remove" : "status")")
            }
        }

        func run() throws {
            try reportingErrors {
                let crontab = CronTab(user: currentUserName())
                let baseDir = global.resolvedBaseDir
                // A relative --backup-dir is refused by BackupJob (cron has no current directory).
                let location = backupDir == nil ? resolveBackupDir(nil, baseDir: baseDir, fallback: BackupJob.defaultBackupDir) : nil
                let backupDir = backupDir ?? location?.directory ?? BackupJob.defaultBackupDir
                global.detail("backup dir \(backupDir) (\(location?.explanation ?? "from --backup-dir")); crontab of \(crontab.user)")
                if status {
                    let report = try BackupSchedule.status(baseDir: baseDir, backupDir: backupDir, crontab: crontab)
                    printText(report.isScheduled ? "scheduled in the crontab of \(crontab.user):" : "not scheduled: no backup of \(baseDir) in the crontab of \(crontab.user)")
                    for line in report.entry { printText("  \(line)") }
                    if let newest = report.newestArchive {
                        printText("newest archive: \(TerminalText.line(newest.file)) (\(TerminalText.line(newest.date ?? "-")), \(formatBytes(newest.sizeBytes)))")
                        // An untrusted backup dir still lists: the job would refuse it tonight.
                        if let problem = report.backupDirProblem { printError("clmnt: warning: \(TerminalText.line(problem))") }
                    } else if let problem = report.backupDirProblem {
                        printText("newest archive: none (\(TerminalText.line(problem)))")
                    } else {
                        printText("newest archive: none in \(report.backupDir)")
                    }
                    return
                }
                if remove {
                    let removed = try BackupSchedule.remove(baseDir: baseDir, crontab: crontab)
                    global.say(removed.isEmpty ? "no backup of \(baseDir) was scheduled" : "removed from the crontab of \(crontab.user):")
                    for line in removed { global.say("  \(line)") }
                    return
                }
                // Only --keep 7 when no rule is given: --keep-daily 7 alone means just that.
                var policy = retention.policy
                if policy.isEmpty { policy.last = BackupJob.defaultKeep }
                var job = try BackupJob(baseDir: baseDir, executable: currentExecutablePath(), backupDir: backupDir,
                                        at: at, weekday: weekday, compression: compress, retention: policy, verify: verify)
                if to != nil && copyTo != nil { throw ValidationError("give --to or --copy-to, not both") }
                if to != nil && verify { throw ValidationError("--verify reads the archive back from disk: not with --to") }
                for url in [to, copyTo].compactMap({ $0 }) where !isObjectURL(url) { throw ValidationError("'\(url)' is not an s3://BUCKET[/PREFIX] URL") }
                var offHost = OffHostSettings()
                // Checked now, as the job will read them: a refused file is refused tonight too.
                _ = try AgeKeyFiles.recipients(values: encryptTo, files: recipientsFile)
                offHost.recipients = encryptTo
                offHost.recipientsFiles = recipientsFile.map { absolutePath($0) }
                offHost.to = to
                offHost.copyTo = copyTo
                if to != nil || copyTo != nil { offHost.environment = OffHostSettings.storeVariables(from: ProcessInfo.processInfo.environment) }
                try job.setOffHost(offHost)
                let report = try BackupSchedule.install(job, crontab: crontab)
                for note in report.notes { global.say(note) }
                for line in report.installed { global.say("  \(line)") }
                printWarnings(report.warnings)
            }
        }
    }
}
