import ArgumentParser
import ClmntCore
import ClmntObjectStore
import Foundation

extension Compression: ExpressibleByArgument {
    /// `gz` and `bz2` too, as the bash tool took them.
    public init?(argument: String) { self.init(spelling: argument) }
}

extension FleetCommand {
    struct Backup: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Back up every molt (or --select some) into one archive.",
            discussion: """
            Streams each molt's whole home into a tar archive, manifest.json first and \
            SHA256SUMS last. Regenerable caches, *.pid, *.lock and *.tmp files are skipped; \
            SQLite databases are captured through SQLite's online backup API. Exits 3 when \
            files vanished, could not be read or changed while read (the archive is written \
            and names them), 75 when another backup or a restore of the base dir is running, \
            4 when a killed restore left the base dir half restored (run fleet restore --resume).
            """
        )

        @OptionGroup var global: GlobalOptions

        @Option(name: .shortAndLong, help: ArgumentHelp("The archive to write (default: fleet-YYYY-MM-DD.tar.gz in the backup dir); YYYY, MM, DD and HHMMSS in its name become the local date and time. '-': standard output (the summary goes to standard error).", valueName: "file"), completion: .file())
        var output: String?

        @OptionGroup(title: "Encryption (age)")
        var encryption: EncryptionOptions

        @Option(help: ArgumentHelp("Stream the archive straight into S3-compatible storage, as PREFIX/HOST/fleet-DATE.tar.zst[.age] (no local copy).", valueName: "s3://bucket/prefix"))
        var to: String?

        @Option(help: ArgumentHelp("After the local backup, upload a copy to S3-compatible storage (PREFIX/HOST/<archive name>); a failed copy exits 3.", valueName: "s3://bucket/prefix"))
        var copyTo: String?

        @Option(help: ArgumentHelp("The host directory under the bucket's prefix (default: this host's name).", valueName: "name"))
        var host: String?

        @OptionGroup(title: "Object storage")
        var store: ObjectStoreOptions

        @Option(help: "The compression of the archive (gz, tgz, zst and bz2 are accepted too).")
        var compress: Compression = .gzip

        @Option(help: ArgumentHelp("Compression level (gzip 1-12, zstd 1-19, xz 0-9, bzip2 1-9).", valueName: "n"))
        var level: Int?

        @Option(help: ArgumentHelp("Compression threads (default: all cores).", valueName: "n"))
        var threads: Int?

        @Flag(inversion: .prefixedNo, help: "Leave out each molt's Maildir/.")
        var excludeMaildir = false

        @Flag(inversion: .prefixedNo, help: "Leave out log files (*.log, *.log.N).")
        var excludeLogs = false

        @Flag(inversion: .prefixedNo, help: "Keep regenerable caches (.cache/, .npm/, .bun/install/cache/, node_modules/).")
        var includeCaches = false

        @Option(help: ArgumentHelp("Leave out paths matching this pattern (repeatable; with a '/', matched from the molt's home).", valueName: "pattern"))
        var exclude: [String] = []

        @Option(help: ArgumentHelp("Back up only these molts (comma-separated).", valueName: "molts"), completion: moltNameCompletion)
        var select: [MoltNameList] = []

        @Flag(inversion: .prefixedNo, help: "Replace an existing archive at --output.")
        var force = false

        @Option(help: ArgumentHelp("Write the default-named archive into this directory (created 0700 if missing; default: $CLMNT_BACKUP_DIR, else the base dir's scheduled backup dir, else ./backups).", valueName: "dir"), completion: .directory)
        var backupDir: String?

        @OptionGroup(title: "Retention after a successful backup (the new archive always stays)")
        var retention: RetentionOptions

        @Flag(inversion: .prefixedNo, help: "Read the new archive back and check every SHA-256 and count; fail (exit 2) if it is damaged.")
        var verify = false

        @Option(help: ArgumentHelp("Wait up to this long for another backup or a restore of the base dir to finish (default: refuse at once, exit 75).", valueName: "seconds"))
        var wait: Double?

        @Flag(help: "Show what would be archived, left out and missed per molt; write nothing.")
        var dryRun = false

        /// The bash tool's spelling: the default.
        @Flag(name: .customLong("no-dry-run"), help: .hidden)
        var noDryRun = false

        /// `fleet backup /srv/molts`, as the bash tool took it: pointed at -d.
        @Argument(help: .hidden)
        var strayArguments: [String] = []

        @Flag(inversion: .prefixedNo, help: "Print the summary as JSON.")
        var json = false

        @Flag(help: "Start every line of output with an ISO-8601 timestamp (the scheduled job's log).")
        var timestamps = false

        /// With --timestamps, every line (the log's) starts with an ISO-8601 timestamp.
        func stamped(_ message: String) -> String {
            guard timestamps else { return message }
            let now = Timestamp.format(Date())
            return message.split(separator: "\n", omittingEmptySubsequences: false).map { "\(now) \($0)" }.joined(separator: "\n")
        }

        /// With the archive on standard output, everything else goes to standard error.
        func say(_ message: String) {
            if output == "-" { printError(stamped(message)) } else { printText(stamped(message)) }
        }
        func warn(_ message: String) { printError(stamped(message)) }

        func validate() throws {
            try refuseStray(strayArguments, command: "fleet backup")
            let targets = [output.map { _ in "-o" }, to.map { _ in "--to" }, copyTo.map { _ in "--copy-to" }].compactMap { $0 }
            if to != nil && targets.count > 1 { throw ValidationError("give one of \(targets.joined(separator: ", ")): --to writes no local archive") }
            if copyTo != nil && output == "-" { throw ValidationError("--copy-to uploads a local archive: not with -o -") }
            for url in [to, copyTo].compactMap({ $0 }) where !isObjectURL(url) {
                throw ValidationError("'\(url)' is not an s3://BUCKET[/PREFIX] URL")
            }
            if host != nil && to == nil && copyTo == nil { throw ValidationError("--host names the host directory of --to or --copy-to") }
        }

        func run() throws {
            let dryRun = self.dryRun && !noDryRun
            try reportingErrors(stamp: stamped) {
                let (options, location, remoteRetention) = try makeOptions(dryRun: dryRun)
                if let location { global.detail(stamped("backup dir \(location.directory) (\(location.explanation))"), json: json) }
                if dryRun {
                    if verify { throw BackupError.invalidOption("--dry-run writes no archive to --verify") }
                    if !options.retention.isEmpty {
                        throw BackupError.invalidOption("--dry-run removes nothing: see what --keep... would remove with 'clmnt fleet prune --dry-run'")
                    }
                    try runDryRun(options)
                    return
                }
                SignalCleanup.shared.install()
                let offHostName = try (to ?? copyTo).map { _ in try hostDirectoryName(host) }
                let remote = try (to ?? copyTo).map { try store.open($0) }
                let timer = MoltTimer()
                var summary = try runBackup(options, remote: remote, offHostName: offHostName, timer: timer)
                if let remote, let offHostName {
                    let recordIn = location?.directory ?? resolveBackupDir(nil, baseDir: options.baseDir).directory
                    try finishOffHost(&summary, remote: remote, host: offHostName, remoteRetention: remoteRetention, recordIn: recordIn)
                }
                try report(summary, timer: timer)
            }
        }

        /// The flags as the library's options, where the archives go, and the retention to apply
        /// in the bucket after a `--to` upload (there, not in a local directory).
        private func makeOptions(dryRun: Bool) throws -> (BackupOptions, BackupLocation?, RetentionPolicy) {
            var options = BackupOptions(baseDir: global.resolvedBaseDir)
            options.output = output
            options.compression = compress
            options.level = level
            if let threads { options.threads = threads }
            options.rules = ExclusionRules(excludeMaildir: excludeMaildir, excludeLogs: excludeLogs,
                                           includeCaches: includeCaches, patterns: exclude)
            options.selection = MoltNameList.names(select)
            options.force = force
            // -o names the file itself; an empty --backup-dir is left for validate() to refuse.
            var location: BackupLocation?
            if output == nil && backupDir != "" { location = resolveBackupDir(backupDir, baseDir: options.baseDir) }
            options.backupDir = location?.directory ?? backupDir
            options.retention = retention.policy
            options.verify = verify
            options.wait = wait ?? 0
            options.recipients = try encryption.recipients()
            if output == "-" && isatty(1) == 1 && !dryRun {
                throw BackupError.invalidOption("refusing to write the archive to a terminal: redirect standard output (-o - | ssh host 'cat > x')")
            }
            let remoteRetention = to != nil ? options.retention : RetentionPolicy()
            if to != nil { options.retention = RetentionPolicy() }
            try options.validate()
            return (options, location, remoteRetention)
        }

        /// The backup itself, with a progress bar on a terminal and warnings as they come.
        private func runBackup(_ options: BackupOptions, remote: OffHostBackups?, offHostName: String?,
                               timer: MoltTimer) throws -> BackupSummary {
            var backup = FleetBackup(options: options)
            if let remote, let offHostName, to != nil {
                backup.makeStream = { name in
                    try remote.uploadStream(key: try remote.freeKey(for: name, host: offHostName))
                }
            }
            let progress = ProgressBar(enabled: !global.quiet && !json && isatty(2) == 1)
            backup.onProgress = {
                progress.update(done: $0.bytesDone, total: $0.bytesTotal, label: $0.currentMolt)
                timer.reached($0.currentMolt)
            }
            let command = self
            backup.onWarning = { message in
                progress.clear()
                command.warn("clmnt: warning: \(TerminalText.line(message))")
            }
            let result = Result { try backup.run() }
            progress.clear()
            timer.reached(nil)
            if case .failure(BackupError.damaged(let path, let problems)) = result {
                for problem in problems where global.verbose { warn("clmnt: DAMAGED: \(TerminalText.line("\(problem)"))") }
                warn("clmnt: \(BackupError.damaged(path: path, problems: problems))")
                throw ExitCode(ExitStatus.checkFailed)
            }
            return try result.get()
        }

        /// `--to`: the upload succeeded, then the bucket's retention; `--copy-to`: the copy. A good
        /// copy is recorded beside the local archives (doctor and the metrics read it).
        private func finishOffHost(_ summary: inout BackupSummary, remote: OffHostBackups, host: String,
                                   remoteRetention: RetentionPolicy, recordIn: String) throws {
            if to != nil {
                summary.offhost = OffHostCopy(target: summary.output, succeeded: true, bytes: summary.archiveBytes,
                                              seconds: summary.seconds)
                if !remoteRetention.isEmpty {
                    let remotePrune = try remote.prune(host: host, policy: remoteRetention, dryRun: false)
                    summary.pruned = remotePrune.removed
                    summary.pruneFailed = remotePrune.failed
                }
            } else {
                summary.offhost = copyOffHost(summary.output, to: remote, host: host)
            }
            if let copy = summary.offhost, copy.succeeded, let problem = OffHostStatus.record(copy, in: recordIn) {
                global.detail(stamped("could not record the off-host copy in \(recordIn): \(problem)"), json: json)
            }
        }

        /// What happened, on stdout (or as JSON); warnings on stderr; exit 3 for an incomplete backup.
        private func report(_ summary: BackupSummary, timer: MoltTimer) throws {
            let quiet = global.quiet, verbose = global.verbose
            for leftover in summary.leftoversRemoved where !quiet && !json {
                say("removed \(TerminalText.line(leftover.file)) (\(formatBytes(leftover.sizeBytes))), left by a killed backup")
            }
            for failure in summary.leftoversFailed {
                warn("clmnt: warning: cannot remove \(TerminalText.line(failure.file)), left by a killed backup: \(TerminalText.line(failure.reason))")
            }
            // Worth a line when the archive is incomplete (list-backups cannot show it) or asked for.
            if let reason = summary.markFailed, !summary.complete || verbose {
                warn("clmnt: warning: cannot mark \(summary.output) complete or not (\(reason)); list-backups will show its status as unknown")
            }
            // A backup that could not remove an old archive still succeeded; say so even with -q.
            for failure in summary.pruneFailed {
                warn("clmnt: warning: cannot remove old backup \(TerminalText.line(failure.file)): \(TerminalText.line(failure.reason))")
            }
            if json {
                if output == "-" { printError(try JSONStyle.encode(summary)) } else { try printJSON(summary) }
            } else if !quiet {
                printSummary(summary, timer: timer)
            }
            if let copy = summary.offhost, !copy.succeeded {
                warn("clmnt: off-host copy FAILED: \(TerminalText.line(copy.error ?? "unknown error")); \(summary.output) is a good local backup")
                throw ExitCode(ExitStatus.incomplete)
            }
            if !summary.complete {
                let molts = Set(summary.missed.map { $0.molt ?? ArchiveLayout.globalDir }).sorted()
                warn("clmnt: incomplete: \(summary.missed.count) file\(summary.missed.count == 1 ? "" : "s") of "
                           + "\(molts.joined(separator: ", ")) vanished, could not be read or changed while read "
                           + "(named above and in backup-report.json); \(summary.output) holds everything else")
                throw ExitCode(ExitStatus.incomplete)
            }
        }

        private func printSummary(_ summary: BackupSummary, timer: MoltTimer) {
            if global.verbose {
                for name in summary.molts {
                    let stats = summary.perMolt[name] ?? Manifest.SectionStats()
                    let time = timer.seconds[name].map { String(format: ", %.2f s", $0) } ?? ""
                    say("  \(name): \(stats.fileCount) files, \(stats.entryCount) entries, \(formatBytes(stats.backupSizeBytes))\(time)")
                }
            }
            say(summary.oneLine)
            if let copy = summary.offhost, copy.succeeded, to == nil {
                say("copied to \(TerminalText.line(copy.target)) (\(formatBytes(copy.bytes ?? 0)))")
            }
            for path in summary.pruned { say("removed old backup \(TerminalText.line(path))") }
            if global.verbose {
                for skip in summary.pruneSkipped { say("  left alone: \(TerminalText.line(skip.file)): \(TerminalText.line(skip.reason))") }
            }
        }
    }
}

/// `-v`: how long each molt took to stream (from the first progress report naming it to the next molt's).
final class MoltTimer: @unchecked Sendable {
    private(set) var seconds: [String: Double] = [:]
    private var current: (molt: String, since: Date)?

    /// The backup reached `molt` (nil: it ended).
    func reached(_ molt: String?) {
        guard molt != current?.molt else { return }
        let now = Date()
        if let current { seconds[current.molt, default: 0] += now.timeIntervalSince(current.since) }
        current = molt.map { ($0, now) }
    }
}

extension FleetCommand.Backup {
    /// `--copy-to`: uploads the finished archive; a failure is reported, not thrown (the local backup stands).
    func copyOffHost(_ path: String, to remote: OffHostBackups, host: String) -> OffHostCopy {
        let started = Date()
        let name = (path as NSString).lastPathComponent
        var target = "s3://\(remote.location.bucket)/\(remote.hostPrefix(host))\(name)"
        do {
            let key = try remote.freeKey(for: name, host: host)
            target = "s3://\(remote.location.bucket)/\(key)"
            let bytes = try remote.upload(file: path, key: key)
            return OffHostCopy(target: target, succeeded: true, bytes: bytes, seconds: Date().timeIntervalSince(started))
        } catch {
            return OffHostCopy(target: target, succeeded: false, seconds: Date().timeIntervalSince(started), error: "\(error)")
        }
    }

    /// `--dry-run`: the plan as a table (or JSON); exit 3 when the backup would miss files.
    func runDryRun(_ options: BackupOptions) throws {
        let plan = try FleetBackup(options: options).dryRun()
        for warning in plan.warnings { warn("clmnt: warning: \(warning)") }
        // A report, as restore --dry-run's: printed even with -q.
        if json { try printJSON(plan) } else { say(plan.tableText(verbose: global.verbose)) }
        guard plan.complete else {
            let missed = plan.molts.flatMap(\.missed)
            let molts = Set(missed.compactMap(\.molt)).sorted().joined(separator: ", ")
            warn("clmnt: incomplete: the backup would miss \(missed.count) file\(missed.count == 1 ? "" : "s") of \(molts) (named above)")
            throw ExitCode(ExitStatus.incomplete)
        }
    }
}

extension BackupPlan {
    /// The dry run for an admin: one row per molt, then each molt's databases,
    /// exclusions (by rule; every path with -v) and the files it would miss.
    func tableText(verbose: Bool) -> String {
        func counted(_ files: Int, _ bytes: Int64) -> String { "\(files) file\(files == 1 ? "" : "s"), \(formatBytes(bytes))" }
        func excludedCell(_ files: Int, _ bytes: Int64) -> String { files == 0 ? "-" : counted(files, bytes) }
        var rows = [["MOLT", "FILES", "SIZE", "SQLITE", "EXCLUDED", "WOULD MISS"]]
        for molt in molts {
            rows.append([molt.name, String(molt.files), formatBytes(molt.bytes), String(molt.databases.count),
                         excludedCell(molt.excludedFiles, molt.excludedBytes), molt.missed.isEmpty ? "-" : String(molt.missed.count)])
        }
        rows.append(["(global)", String(globalFiles), formatBytes(globalBytes), "-", "-", "-"])
        let excludedFiles = molts.reduce(0) { $0 + $1.excludedFiles }
        let excludedBytes = molts.reduce(Int64(0)) { $0 + $1.excludedBytes }
        let missed = molts.reduce(0) { $0 + $1.missed.count }
        rows.append(["total", String(files), formatBytes(bytes), String(molts.reduce(0) { $0 + $1.databases.count }),
                     excludedCell(excludedFiles, excludedBytes), missed == 0 ? "-" : String(missed)])
        var lines = ["dry run, nothing written: the backup would write \(output) (\(compression))", renderTable(rows)]
        for molt in molts {
            for database in molt.databases {
                let how = database.snapshot ? "SQLite snapshot" : "SQLite owned by root, archived byte for byte"
                lines.append("\(molt.name): \(how): \(database.path) (\(formatBytes(database.sizeBytes)))")
            }
            var byRule: [(rule: String, paths: [ExcludedPath])] = []
            for path in molt.excluded {
                if let index = byRule.firstIndex(where: { $0.rule == path.rule }) { byRule[index].paths.append(path) }
                else { byRule.append((path.rule, [path])) }
            }
            for (rule, paths) in byRule {
                let files = paths.reduce(0) { $0 + $1.files }, bytes = paths.reduce(Int64(0)) { $0 + $1.bytes }
                lines.append("\(molt.name): excluded by \(rule): \(paths.count) path\(paths.count == 1 ? "" : "s"), "
                             + counted(files, bytes))
                if verbose {
                    for path in paths {
                        lines.append("  \(path.path)\(path.directory ? "/" : ""): \(counted(path.files, path.bytes))")
                    }
                }
            }
            for file in molt.missed { lines.append("\(molt.name): would miss \(file.line)") }
        }
        return lines.joined(separator: "\n")
    }
}

extension BackupSummary {
    /// `backups/fleet-2026-11-29.tar.gz: 3 molts, 1,512 files, 28.1 MiB in, 9.3 MiB out (33.1%), 1.42 s`
    var oneLine: String {
        let percent = String(format: "%.1f%%", ratio * 100)
        let time = String(format: "%.2f s", seconds)
        var line = "\(output): \(molts.count) molts, \(files) files, \(formatBytes(inputBytes)) in, "
            + "\(formatBytes(archiveBytes)) out (\(percent)), \(compression), \(time)"
        if !warnings.isEmpty { line += ", \(warnings.count) warnings" }
        if verified == true { line += ", verified" }
        return line
    }
}
