import ArgumentParser
import ClmntCore
import ClmntObjectStore
import Foundation

extension FleetCommand {
    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove old archives of this base dir by a retention policy, as restic's forget does.",
            discussion: """
            Rules are a union: an archive any rule keeps stays. Days, ISO weeks and months are the host's \
            local ones, and an archive's time is its manifest's timestamp, never its mtime. Incomplete \
            archives (backups that missed files) never take a complete archive's place; they stay while \
            they are newer than the oldest complete archive kept. Only regular files of root's with one \
            link, named fleet-*.tar*, whose manifest names this base dir are ever removed; an archive \
            dated in the future or more than a day from its mtime fills no slot and stays. Exits 1 when \
            an archive could not be removed or the backup dir is not root's or is writable by group or \
            others, 75 when a backup or restore of the base dir is running.
            """
        )

        @OptionGroup var global: GlobalOptions

        @OptionGroup var backups: BackupDirOptions

        @OptionGroup(title: "Retention policy (at least one)")
        var retention: RetentionOptions

        @Flag(help: "Show what would be kept (and by which rule) and what would be removed; remove nothing.")
        var dryRun = false

        @Flag(help: "Also age out the bash tool's archives (their manifests name no base dir: every one in the backup dir counts as this base dir's).")
        var includeLegacy = false

        @Option(help: ArgumentHelp("Wait up to this long for a backup or a restore of the base dir to finish (default: refuse at once, exit 75).", valueName: "seconds"))
        var wait: Double?

        @Flag(inversion: .prefixedNo, help: "Print the result as JSON.")
        var json = false

        @Option(help: ArgumentHelp("Prune this host's archives in S3-compatible storage under this prefix instead (and abort uploads a killed backup left).", valueName: "s3://bucket/prefix"))
        var from: String?

        @Option(help: ArgumentHelp("With --from: the host directory to prune (default: this host's name).", valueName: "name"))
        var host: String?

        @OptionGroup(title: "Encrypted archives")
        var identities: IdentityOptions

        @OptionGroup(title: "Object storage")
        var store: ObjectStoreOptions

        func validate() throws {
            if let from, !isObjectURL(from) { throw ValidationError("'\(from)' is not an s3://BUCKET[/PREFIX] URL") }
            if host != nil && from == nil { throw ValidationError("--host names a host directory in a bucket: give --from s3://…") }
        }

        func run() throws {
            var failed = false
            try reportingErrors {
                try identities.install()
                let policy = retention.policy
                if let from {
                    try policy.validate()
                    if policy.isEmpty { throw BackupError.invalidOption("fleet prune needs a policy: --keep, --keep-daily, --keep-weekly or --keep-monthly") }
                    let remote = try store.open(from)
                    let result = try remote.prune(host: try hostDirectoryName(host), policy: policy, dryRun: dryRun)
                    failed = !result.failed.isEmpty
                    for failure in result.failed { printError("clmnt: cannot remove \(TerminalText.line(failure.file)): \(TerminalText.line(failure.reason))") }
                    if json { try printJSON(result); return }
                    var lines: [String] = []
                    let verb = dryRun ? "would remove" : "removed"
                    for name in result.removed { lines.append("\(verb) \(TerminalText.line(name))") }
                    for kept in result.kept { lines.append("keep \(TerminalText.line(kept.file)): \(TerminalText.line(kept.reason))") }
                    for upload in result.abortedUploads { lines.append("\(dryRun ? "would abort" : "aborted") \(TerminalText.line(upload)), left by a killed backup") }
                    if lines.isEmpty { lines.append("nothing to prune in \(TerminalText.line(from))") }
                    if dryRun { printText(lines.joined(separator: "\n")) } else { global.say(lines.joined(separator: "\n")) }
                    return
                }
                let baseDir = global.resolvedBaseDir
                let location = backups.resolved(baseDir: baseDir)
                let result = try BackupRetention.prune(backupDir: location.directory, baseDir: baseDir, policy: policy,
                                                       dryRun: dryRun, includeLegacy: includeLegacy, wait: wait ?? 0)
                failed = !result.failed.isEmpty
                let report = PruneReport(backupDir: location.directory, baseDir: baseDir, dryRun: dryRun, policy: policy,
                                         result: result)
                for failure in result.failed { printError("clmnt: cannot remove \(TerminalText.line(failure.file)): \(TerminalText.line(failure.reason))") }
                global.detail("backup dir \(location.directory) (\(location.explanation))", json: json)
                if json {
                    try printJSON(report)
                    return
                }
                // A dry run is a report, printed even with -q; a prune that acts is quiet with -q.
                if dryRun { printText(report.text(verbose: global.verbose)) } else { global.say(report.text(verbose: global.verbose)) }
            }
            if failed { throw ExitCode(ExitStatus.failure) }
        }
    }
}

/// What `fleet prune` prints: every archive of the base dir with its fate.
struct PruneReport: Encodable {
    struct Archive: Encodable {
        var file: String
        var date: String
        var complete: Bool?
        var sizeBytes: Int64
        var action: String
        var reasons: [String]
        /// Why the archive's date does not rank it (then it is kept, filling no slot).
        var untrustedDate: String?

        enum CodingKeys: String, CodingKey {
            case file, date, complete, action, reasons
            case sizeBytes = "size_bytes"
            case untrustedDate = "untrusted_date"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(file, forKey: .file)
            try container.encode(date, forKey: .date)
            try container.encode(complete, forKey: .complete)
            try container.encode(sizeBytes, forKey: .sizeBytes)
            try container.encode(action, forKey: .action)
            try container.encode(reasons, forKey: .reasons)
            try container.encode(untrustedDate, forKey: .untrustedDate)
        }
    }

    var backupDir: String
    var baseDir: String
    var dryRun: Bool
    var policy: RetentionPolicy
    var archives: [Archive]
    var removed: [String]
    var failed: [RetentionSkip]
    var skipped: [RetentionSkip]

    enum CodingKeys: String, CodingKey {
        case policy, archives, removed, failed, skipped
        case backupDir = "backup_dir"
        case baseDir = "base_dir"
        case dryRun = "dry_run"
    }

    init(backupDir: String, baseDir: String, dryRun: Bool, policy: RetentionPolicy, result: RetentionResult) {
        self.backupDir = backupDir
        self.baseDir = baseDir
        self.dryRun = dryRun
        self.policy = policy
        archives = result.decisions.map { decision in
            let candidate = decision.candidate
            return Archive(file: backupDir + "/" + candidate.name, date: candidate.timestamp, complete: candidate.complete,
                           sizeBytes: candidate.sizeBytes, action: decision.keep ? "keep" : "remove", reasons: decision.reasons,
                           untrustedDate: candidate.untrustedDate)
        }
        removed = result.removed
        failed = result.failed
        skipped = result.skipped
    }

    func text(verbose: Bool) -> String {
        // Said even without -v: the bash tool's archives are there, and only a flag lets them go.
        let legacy = skipped.filter { $0.reason.contains("--include-legacy") }.count
        let legacyLine = legacy == 0 ? nil
            : "left alone: \(legacy) archive\(legacy == 1 ? "" : "s") of the bash tool (fleet prune --include-legacy ages them out)"
        guard !archives.isEmpty else {
            return (["no archives of \(baseDir) in \(backupDir)"] + (legacyLine.map { [$0] } ?? [])).joined(separator: "\n")
        }
        var rows = [["ACTION", "FILE", "DATE", "SIZE", "STATUS", "KEPT BY"]]
        for archive in archives {
            let status = archive.complete.map { $0 ? "complete" : "INCOMPLETE" } ?? "unknown"
            rows.append([archive.action, (archive.file as NSString).lastPathComponent, archive.date,
                         formatBytes(archive.sizeBytes), status, archive.reasons.isEmpty ? "-" : archive.reasons.joined(separator: ", ")])
        }
        let going = archives.filter { $0.action == "remove" }
        let bytes = going.reduce(Int64(0)) { $0 + $1.sizeBytes }
        let kept = archives.count - going.count
        let plural = { (count: Int) in count == 1 ? "archive" : "archives" }
        var lines = ["policy: keep \(policy.summary)", renderTable(rows)]
        if dryRun {
            lines.append("dry run: \(going.count) \(plural(going.count)) (\(formatBytes(bytes))) would be removed, \(kept) kept; nothing was removed")
        } else {
            let freed = archives.filter { removed.contains($0.file) }.reduce(Int64(0)) { $0 + $1.sizeBytes }
            lines.append("removed \(removed.count) \(plural(removed.count)) (\(formatBytes(freed))), kept \(kept)")
            for path in removed { lines.append("removed old backup \(TerminalText.line(path))") }
        }
        // The plan says why an archive was not ranked by its date, even without -v.
        for archive in archives {
            guard let why = archive.untrustedDate else { continue }
            lines.append("not ranked: \((archive.file as NSString).lastPathComponent): \(why); kept until removed by hand")
        }
        if let legacyLine, !verbose { lines.append(legacyLine) }
        if verbose {
            for skip in skipped { lines.append("  left alone: \(TerminalText.line(skip.file)): \(TerminalText.line(skip.reason))") }
        }
        return lines.joined(separator: "\n")
    }
}
