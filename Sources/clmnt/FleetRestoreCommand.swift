import ArgumentParser
import ClmntCore
import Foundation

extension FleetCommand {
    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore molts from a fleet archive, on this host or a new one.",
            usage: """
            clmnt fleet restore --from <file> [--base-dir <dir>] [--select <molts> ...] [--dry-run] [--force] [--skip-users] [--reassign-ports] [--allow-outside-symlinks] [--adopt-existing-users] [--fix-modes] [--wait <seconds>] [--yes] [--json] [--quiet|--verbose]
            clmnt fleet restore --resume [--base-dir <dir>] [--wait <seconds>]
            """,
            discussion: """
            Shows the plan (from the archive's manifest alone), asks for confirmation, then \
            restores in one pass: each molt is extracted into a root-only staging directory \
            beside its target and swapped in with a rename once every entry and checksum \
            has been checked. A hostile or damaged archive is refused as a whole and \
            leaves every existing molt as it was. Missing users are created with useradd; \
            ownership is restored by user name. A restore killed while swapping molts in is \
            completed by the next restore into the base dir, or by --resume alone.
            """
        )

        @OptionGroup var global: GlobalOptions

        @Option(name: .long, help: ArgumentHelp("The archive to restore from: a file, '-' for standard input (with --yes), or s3://BUCKET/KEY.", valueName: "file"), completion: .file())
        var from: String?

        @OptionGroup(title: "Encrypted archives")
        var identities: IdentityOptions

        @OptionGroup(title: "Object storage")
        var store: ObjectStoreOptions

        @Flag(help: "Only complete a restore that was killed while swapping molts in (no --from).")
        var resume = false

        @Option(help: ArgumentHelp("Restore only these molts (comma-separated).", valueName: "molts"))
        var select: [MoltNameList] = []

        @Flag(help: "Show the plan and exit without changing anything.")
        var dryRun = false

        @Flag(help: "Replace molts that already exist.")
        var force = false

        @Flag(help: "Create no users; files of a missing user stay owned by the invoking user.")
        var skipUsers = false

        @Flag(help: "Give a molt whose port another molt here uses the next free port.")
        var reassignPorts = false

        @Flag(help: "Restore symlinks that point outside their molt (as links, never followed) instead of refusing the archive.")
        var allowOutsideSymlinks = false

        @Option(help: ArgumentHelp("Wait up to this long for a backup or another restore of the base dir to finish (default: refuse at once, exit 75).", valueName: "seconds"))
        var wait: Double?
        @Flag(help: "Reuse an existing regular account of a molt's name even when nothing on this host shows it is the molt's (the plan shows it).")
        var adoptExistingUsers = false

        @Flag(help: "After restoring, take group and other bits off each home (0750) and its .openclaw (0700), as the bash tool's archives lost them.")
        var fixModes = false

        @Flag(name: .shortAndLong, help: "Do not ask for confirmation (needed without a terminal).")
        var yes = false

        /// The bash tool's spellings of the defaults: accepted, and each wins over its positive form.
        @Flag(name: .customLong("no-dry-run"), help: .hidden) var noDryRun = false
        @Flag(name: .customLong("no-force"), help: .hidden) var noForce = false
        @Flag(name: .customLong("no-skip-users"), help: .hidden) var noSkipUsers = false

        @Flag(help: "Print the plan (with --dry-run) or the summary as JSON.")
        var json = false

        func validate() throws {
            if resume && from != nil { throw ValidationError("give --from or --resume, not both") }
            if !resume && from == nil { throw ValidationError("Missing expected argument '--from <file>'") }
            if from == "-" && !yes && !dryRun { throw ValidationError("--from - reads the archive from standard input, which cannot also answer the confirmation: add --yes") }
            guard (0...86_400).contains(wait ?? 0) else { throw ValidationError("--wait must be between 0 and 86400 seconds") }
        }

        func run() throws {
            let dryRun = self.dryRun && !noDryRun, force = self.force && !noForce, skipUsers = self.skipUsers && !noSkipUsers
            try reportingErrors {
                let baseDir = global.resolvedBaseDir
                if resume {
                    // With --dry-run: only say what would be completed.
                    let notes = dryRun ? FleetRestore.pendingRecovery(baseDir: baseDir)
                        : try FleetRestore.resume(baseDir: baseDir, wait: wait ?? 0)
                    global.say(notes.isEmpty ? "nothing to resume in \(baseDir)" : notes.joined(separator: "\n"))
                    return
                }
                guard let from else { return }
                try identities.install()
                let archive = try registerArchiveSource(from, store: store)
                if dryRun {
                    for note in FleetRestore.pendingRecovery(baseDir: baseDir) { printError("clmnt: note: \(note)") }
                } else {
                    // A restore killed during its swaps is completed first, so the plan sees the fleet as it is.
                    for note in try FleetRestore.resume(baseDir: baseDir, wait: wait ?? 0) { printError("clmnt: \(note)") }
                }
                var options = RestoreOptions(archive: archive, baseDir: baseDir)
                options.selection = MoltNameList.names(select)
                options.force = force
                options.skipUsers = skipUsers
                options.reassignPorts = reassignPorts
                options.allowOutsideSymlinks = allowOutsideSymlinks
                options.wait = wait ?? 0
                options.adoptExistingUsers = adoptExistingUsers

                var restore = FleetRestore(options: options)
                let plan = try restore.plan()
                // What is shown; `plan` itself goes back to the restore, which re-plans and compares.
                var shown = plan
                if plan.format == .bash { shown.notes.append(BashArchiveModes.note(fixing: fixModes)) }
                if dryRun {
                    try shown.scanBashArchive()
                    if json { try printJSON(shown) } else { printText(shown.rendered(dryRun: true)) }
                    return
                }
                try confirm(plan, shown: shown)

                let cancellation = RestoreCancellation()
                SignalCleanup.shared.cancelling { cancellation.cancel() }
                defer { SignalCleanup.shared.endCancelling() }
                restore.cancellation = cancellation
                let progress = ProgressBar(enabled: !json && !global.quiet && isatty(2) == 1)
                restore.onProgress = { progress.update(done: $0.bytesRead, total: $0.archiveBytes, label: $0.currentMolt ?? "") }
                let summary: RestoreSummary
                do {
                    summary = try restore.run(confirmed: plan)
                } catch RestoreError.interrupted {
                    progress.clear()
                    printError("clmnt: \(RestoreError.interrupted)")
                    throw ExitCode(128 + SignalCleanup.shared.receivedSignal)
                }
                progress.clear()
                for warning in summary.warnings { printError("clmnt: warning: \(TerminalText.line(warning))") }
                if fixModes {
                    for change in try BashArchiveModes.tighten(baseDir: summary.baseDir, molts: summary.molts.map(\.name)) {
                        global.say("tightened \(change)")
                    }
                }
                if json { try printJSON(summary) } else { global.say(summary.rendered(verbose: global.verbose)) }
            }
        }
    }
}

extension FleetCommand.Restore {
    /// Shows the plan and asks (unless `--yes`); refuses a plan with blockers.
    func confirm(_ plan: RestorePlan, shown: RestorePlan) throws {
        guard plan.canRun else {
            // The plan shows every reason; with --json the error line carries them.
            if json { throw RestoreError.refused(plan.refusals) }
            printError(shown.rendered(dryRun: false))
            throw RestoreConfirmation.refused
        }
        if yes {
            if !json { global.say(shown.rendered(dryRun: false)) }
            return
        }
        guard isatty(0) == 1 else { throw RestoreConfirmation.noTerminal }
        printError(shown.rendered(dryRun: false))
        FileHandle.standardError.write(Data("Restore \(plan.molts.count) molt\(plan.molts.count == 1 ? "" : "s") into \(TerminalText.line(plan.baseDir))? [y/N] ".utf8))
        let answer = readLine()?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
        guard answer == "y" || answer == "yes" else { throw RestoreConfirmation.declined }
    }
}

/// Why a restore did not start after the plan was shown.
enum RestoreConfirmation: Error, CustomStringConvertible {
    case noTerminal, declined, refused

    var description: String {
        switch self {
        case .noTerminal: return "not restoring without confirmation: standard input is not a terminal (add --yes)"
        case .declined: return "restore cancelled; nothing was changed"
        case .refused: return "restore refused (reasons above); nothing was changed"
        }
    }
}

extension RestorePlan {
    /// The plan as an admin reads it.
    func rendered(dryRun: Bool) -> String {
        var lines: [String] = []
        let archiveName = (archive as NSString).lastPathComponent
        // The hostname, timestamp and source base dir are the archive's words: escaped.
        lines.append("\(dryRun ? "Dry run: " : "")restore from \(TerminalText.line(archiveName)) (\(format == .clmnt ? "clmnt" : "bash tool") archive, "
            + "\(TerminalText.line(compression))), made on \(TerminalText.line(hostname)) at \(TerminalText.line(timestamp))")
        lines.append("into \(TerminalText.line(baseDir))\(baseDirExists ? "" : " (will be created)")"
            + (sourceBaseDir.map { $0 != baseDir ? ", backed up from \(TerminalText.line($0))" : "" } ?? ""))
        let rows: [[String]] = [["MOLT", "SIZE", "FILES", "BACKUP", "TARGET", "USER", "PORT"]] + molts.map { molt in
            let target: String
            switch molt.action {
            case .create: target = "new"
            case .overwrite: target = "overwrite"
            case .refuse: target = "exists (refused)"
            }
            var user: String
            switch molt.user {
            case .exists: user = "exists (uid \(molt.uid.map(String.init) ?? "?"))"
            case .create: user = "will be created"
            case .missing: user = "missing (skipped)"
            case .systemAccount: user = "system account (refused)"
            case .foreign: user = "not this molt's (refused)"
            case .adopted: user = "adopted (uid \(molt.uid.map(String.init) ?? "?"), --adopt-existing-users)"
            }
            if !molt.groups.isEmpty { user += ", groups " + molt.groups.joined(separator: ",") }
            var port = molt.port.map(String.init) ?? "-"
            if let conflict = molt.portConflict {
                port += molt.newPort.map { " → \($0) (used by \(conflict))" } ?? " (used by \(conflict): refused)"
            }
            // From the archive's completeness mark; "?" when it has none (a copy without xattrs, the bash tool's).
            let backup = molt.missedFiles.map { $0 == 0 ? "complete" : "INCOMPLETE (\($0) missed)" } ?? "?"
            return [molt.name, formatBytes(molt.sizeBytes), molt.fileCount.map(String.init) ?? "?", backup, target, user, port]
        }
        lines.append(renderTable(rows, indent: "  "))
        if !notSelected.isEmpty { lines.append("not selected: \(TerminalText.line(notSelected.joined(separator: ", ")))") }
        for note in notes { lines.append("note: \(TerminalText.line(note))") }
        for refusal in refusals { lines.append("\(dryRun ? "would refuse" : "refused"): \(TerminalText.line(refusal))") }
        if dryRun { lines.append("dry run: nothing was changed") }
        return lines.joined(separator: "\n")
    }
}

extension RestoreSummary {
    /// `restored 3 molts into /srv/molts: 1512 files, 28.1 MiB, 1.42 s` and one line per rewrite.
    func rendered(verbose: Bool) -> String {
        var lines: [String] = []
        for molt in molts {
            var detail = "\(molt.name): \(molt.files) files, \(formatBytes(molt.bytes)), user \(molt.user)"
            if molt.userCreated { detail += " (created)" }
            if molt.replaced { detail += ", replaced the previous tree" }
            if verbose || !molt.rewrites.isEmpty { lines.append(detail) }
            for rewrite in molt.rewrites { lines.append("  rewritten: \(TerminalText.line(rewrite))") }
        }
        let time = String(format: "%.2f s", seconds)
        lines.append("restored \(molts.count) molt\(molts.count == 1 ? "" : "s") into \(baseDir): \(files) files, \(formatBytes(bytes)), \(time)"
            + (warnings.isEmpty ? "" : ", \(warnings.count) warning\(warnings.count == 1 ? "" : "s")"))
        return lines.joined(separator: "\n")
    }
}
