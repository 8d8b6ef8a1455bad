import ArgumentParser
import ClmntCore
import ClmntObjectStore
import Foundation

extension FleetCommand {
    struct ListBackups: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list-backups",
            abstract: "List the fleet archives in a directory, from their manifests alone."
        )

        @OptionGroup var global: GlobalOptions

        @OptionGroup var backups: BackupDirOptions

        @Option(help: ArgumentHelp("List the archives in S3-compatible storage under this prefix instead (every host's, or --host's).", valueName: "s3://bucket/prefix"))
        var from: String?

        @Option(help: ArgumentHelp("With --from: only this host's archives.", valueName: "name"))
        var host: String?

        @OptionGroup(title: "Encrypted archives")
        var identities: IdentityOptions

        @OptionGroup(title: "Object storage")
        var store: ObjectStoreOptions

        @Flag(inversion: .prefixedNo, help: "Print the list as JSON.")
        var json = false

        @Flag(name: [.customShort("0"), .customLong("null")],
              help: "Print only the archives' paths, each ended by a NUL byte instead of a newline, exactly as named (for xargs -0).")
        var null = false

        @Argument(help: .hidden)
        var strayArguments: [String] = []

        func validate() throws {
            try refuseStray(strayArguments, command: "fleet list-backups")
            if null && json { throw ValidationError("give --json or -0/--null, not both") }
            if let from, !isObjectURL(from) { throw ValidationError("'\(from)' is not an s3://BUCKET[/PREFIX] URL") }
            if host != nil && from == nil { throw ValidationError("--host lists one host's archives in a bucket: give --from s3://…") }
            if from != nil && backups.backupDir != nil { throw ValidationError("give --from or --backup-dir, not both") }
        }

        /// `--from s3://…`: the archives of every host under the prefix (or of --host).
        func listRemote(_ url: String) throws {
            let remote = try store.open(url)
            if let host, !OffHostBackups.isValidHost(host) { throw ValidationError("'\(host)' cannot name a host directory") }
            let listings = try remote.list(host: host).map(\.listing)
            if json { try printJSON(listings); return }
            if null {
                for listing in listings { FileHandle.standardOutput.write(Data(listing.file.utf8) + Data([0])) }
                return
            }
            if global.quiet {
                for listing in listings { printText(TerminalText.line(listing.file)) }
                return
            }
            guard !listings.isEmpty else {
                printText("no backups in \(TerminalText.line(remote.location.description))" + (host.map { " for host \(TerminalText.line($0))" } ?? ""))
                return
            }
            printText(renderListings(listings, fileName: { String($0.dropFirst("s3://\(remote.location.bucket)/".count)) }))
        }

        func run() throws {
            try reportingErrors {
                try identities.install()
                if let from {
                    try listRemote(from)
                    return
                }
                let location = backups.resolved(baseDir: global.resolvedBaseDir)
                let directory = location.directory
                let listings = try BackupCatalog.list(directory: directory)
                // Listed all the same (only root's files are read), but backup, prune and schedule refuse it.
                if let problem = BackupDirectory.trustProblem(path: directory) {
                    printError("clmnt: warning: backup dir \(directory): \(problem)")
                }
                let leftovers = PartialFiles.stale(in: directory)
                let leftoverLine = leftovers.isEmpty ? nil
                    : "\(leftovers.count) file\(leftovers.count == 1 ? "" : "s") left by killed backups \(leftovers.count == 1 ? "holds" : "hold") "
                    + "\(formatBytes(leftovers.reduce(0) { $0 + $1.sizeBytes })); the next backup into \(directory) removes them"
                global.detail("backup dir \(directory) (\(location.explanation))", json: json)
                if json {
                    if let leftoverLine { printError("clmnt: warning: \(leftoverLine)") }
                    try printJSON(listings)
                    return
                }
                if null {
                    // Exact bytes, as `find -print0`: a name may hold a newline or a control character.
                    for listing in listings {
                        // The listing names the file in its escaped form; -0 gives back the bytes the directory holds.
                        let name = (listing.file as NSString).lastPathComponent
                        let bytes = PathBytes(escaped: name)?.bytes ?? Array(name.utf8)
                        FileHandle.standardOutput.write(Data((directory + "/").utf8) + Data(bytes) + Data([0]))
                    }
                } else if global.quiet {
                    // For scripts (`for f in $(clmnt fleet list-backups -q)`): the archives' paths, nothing else.
                    for listing in listings { printText(TerminalText.line(listing.file)) }
                } else if listings.isEmpty {
                    printText("no backups in \(directory)" + (location.pointer.map { " (\($0))" } ?? ""))
                } else {
                    if location.source == .bashTool { printText("backup dir \(directory): \(location.explanation)") }
                    printText(renderListings(listings, fileName: { ($0 as NSString).lastPathComponent }))
                }
                if let leftoverLine {
                    if null { printError("clmnt: warning: \(leftoverLine)") } else { global.say(leftoverLine) }
                }
                if !json && !null {
                    for listing in listings {
                        guard let why = listing.untrustedDate else { continue }
                        global.say("\(TerminalText.line((listing.file as NSString).lastPathComponent)): date not trusted: \(TerminalText.line(why))")
                    }
                }
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read a whole archive and check every file's SHA-256 and every count.",
            discussion: """
            Exits 0 when the archive is intact and complete, 3 when it is intact but the backup \
            missed files (it names them), 2 when it is damaged, 1 when it cannot be read at all.
            """
        )

        @Argument(help: "The archive to verify: a file, '-' for standard input, or s3://BUCKET/KEY.", completion: .file())
        var file: String

        @OptionGroup(title: "Encrypted archives")
        var identities: IdentityOptions

        @OptionGroup(title: "Object storage")
        var store: ObjectStoreOptions

        @OptionGroup var output: OutputOptions

        @Flag(inversion: .prefixedNo, help: "Print the result as JSON.")
        var json = false

        func run() throws {
            var intact = false
            var complete = true
            try reportingErrors {
                let started = Date()
                try identities.install()
                let path = try registerArchiveSource(file, store: store)
                let held = ArchiveInput.isRegistered(path) ? nil : VerifiedMark.open(path)
                let report = try ArchiveVerifier.verify(path: path)
                intact = report.isIntact
                complete = report.isComplete
                // Root's record that this file read back intact: fleet doctor's verify advice clears.
                if intact && complete, let held {
                    if let reason = held.markVerified(path: path) {
                        output.detail("could not record the verification on \(path): \(reason)", json: json)
                    } else {
                        output.detail("recorded the verification on \(path) (\(VerifiedMark.attributeName))", json: json)
                    }
                }
                let seconds = Date().timeIntervalSince(started)
                output.detail(String(format: "read %@ in %.2f s (%@/s)", report.archive, seconds,
                                     formatBytes(Int64(Double(report.bytesChecked) / max(seconds, 0.001)))), json: json)
                if json {
                    try printJSON(report)
                    return
                }
                for problem in report.problems { printText("DAMAGED: \(TerminalText.line("\(problem)"))") }
                for note in report.notes { output.say("note: \(TerminalText.line(note))") }
                for file in report.missed { printText("MISSED: \(TerminalText.line(file.line))") }
                let verdict = !report.isIntact ? "FAILED (\(report.problems.count) problems)"
                    : !report.isComplete ? "INCOMPLETE (the backup missed \(report.missed.count) file\(report.missed.count == 1 ? "" : "s"))" : "OK"
                // -q: nothing when intact and complete (the exit status says it).
                if output.quiet && intact && complete { return }
                printText("\(report.archive): \(verdict): \(report.entries) entries, \(report.filesChecked) files, "
                      + "\(formatBytes(report.bytesChecked)) checked, \(report.compression)")
            }
            if !intact { throw ExitCode(ExitStatus.checkFailed) }
            if !complete { throw ExitCode(ExitStatus.incomplete) }
        }
    }
}

/// The list-backups table, for a backup dir or a bucket.
func renderListings(_ listings: [BackupListing], fileName: (String) -> String) -> String {
    var rows = [["FILE", "DATE", "SIZE", "MOLTS", "HOST", "STATUS", "COMPRESSION"]]
    for listing in listings {
        let file = fileName(listing.file)
        let encrypted = listing.encrypted == true ? ", encrypted" : ""
        if let reason = listing.unreadable {
            rows.append([file, "-", formatBytes(listing.sizeBytes), "-", "-", "-", "unreadable: \(reason)"])
        } else if listing.encrypted == true && listing.moltCount == nil {
            // Nothing inside was read: no identity given.
            var status = listing.complete.map { $0 ? "complete" : "INCOMPLETE (\(listing.missedFiles ?? 0) missed)" } ?? "-"
            if listing.untrustedDate != nil { status += ", DATE NOT TRUSTED" }
            rows.append([file, listing.date ?? "-", formatBytes(listing.sizeBytes), "?", "?", status,
                         (listing.compression ?? "-") + ", encrypted (no --identity)"])
        } else {
            let legacy = listing.writtenBy == "bash" ? " (bash tool)" : ""
            var status = listing.complete.map { $0 ? "complete" : "INCOMPLETE (\(listing.missedFiles ?? 0) missed)" } ?? "-"
            if listing.untrustedDate != nil { status += ", DATE NOT TRUSTED" }
            rows.append([file, listing.date ?? "-", formatBytes(listing.sizeBytes),
                         String(listing.moltCount ?? 0), listing.hostname ?? "-", status,
                         (listing.compression ?? "-") + legacy + encrypted])
        }
    }
    return renderTable(rows)
}
