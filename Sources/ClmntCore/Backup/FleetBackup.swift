import Foundation

/// `clmnt fleet backup`: scans the selected molts, then streams them in one
/// pass into a single archive: manifest first, trees, `global/`, the report,
/// and the SHA-256 of every file last.
public struct FleetBackup {
    public let options: BackupOptions
    /// Called now and then with the progress (from the calling thread).
    public var onProgress: ((BackupProgress) -> Void)?
    /// Called for each file that changed, vanished or could not be read.
    public var onWarning: ((String) -> Void)?

    /// Makes the stream the archive goes to instead of a local file (`--to s3://…`), given the
    /// archive's default file name (`fleet-2026-12-07.tar.zst.age`). `-o -` needs none.
    public var makeStream: ((_ archiveName: String) throws -> any BackupStream)?

    public init(options: BackupOptions) { self.options = options }

    /// Runs the backup in stages: check and lock; decide where the archive goes; scan every
    /// molt (the manifest, written first, carries every count and size); stream the archive;
    /// commit it (or give it up on any failure); then verify and prune when asked.
    public func run(now: Date = Date()) throws(BackupError) -> BackupSummary {
        let started = Date()
        try options.validate()
        try refuseStreamingConflicts()
        let (fleet, molts) = try selectedMolts()
        // Held to the end: no restore swaps a molt away under us, no second backup runs.
        let lock = try lockBaseDir(fleet.baseDir)
        defer { withExtendedLifetime(lock) {} }
        try refuseHalfRestored(fleet.baseDir)
        let (place, leftovers) = try choosePlace(molts: molts, now: now)
        let scratchDirectory = scratchDirectory(for: place)
        let scan = try scan(molts, scratchDirectory: scratchDirectory)
        TestHook.stop(at: "after-scan")
        let globalFiles = globalFilesToArchive(fleet: fleet)
        let manifest = makeManifest(fleet: fleet, molts: molts, scans: scan.spool.summaries, globalFiles: globalFiles, now: now)

        let destination = try open(place, now: now)
        let cleanup = StreamCleanup(stream: destination.stream)
        defer { cleanup.unregister() }
        var session = try StreamingSession(sink: destination.makeSink(), path: destination.displayPath,
                                           scratchDirectory: scratchDirectory, options: options,
                                           onProgress: onProgress, onWarning: onWarning,
                                           bytesTotal: manifest.totalSizeBytes + (manifest.global?.backupSizeBytes ?? 0))
        session.warnings = scan.spool.summaries.flatMap(\.warnings)
        session.missed = scan.missed
        let committed: BackupDestination.Committed
        do throws(BackupError) {
            try session.writeManifest(manifest, now: now)
            for index in molts.indices {
                let tree: ScannedTree
                do { tree = try scan.spool.tree(at: index) } catch {
                    throw .unreadable(path: error.path, reason: "cannot read the scan back: \(error.reason)")
                }
                try session.writeMolt(molts[index], index: index, tree: tree, baseDir: fleet.baseDir)
            }
            try session.writeGlobal(globalFiles, now: now)
            try session.writeTrailer(now: now)
            try session.finish()
            TestHook.stop(at: "before-commit")
            committed = try destination.commit(missed: session.missed, replace: options.force)
        } catch {
            destination.discard()
            throw error
        }
        var summary = makeSummary(session: session, molts: molts, committed: committed, started: started)
        summary.leftoversRemoved = leftovers.removed
        summary.leftoversFailed = leftovers.failed
        if destination.isLocalFile {
            try finishWithChecks(&summary, outputPath: summary.output, baseDir: fleet.baseDir)
        }
        summary.seconds = Date().timeIntervalSince(started)
        return summary
    }

    /// `-o -` and `--to` write no local file: nothing to verify, nor (for `-o -`) to prune.
    private func refuseStreamingConflicts() throws(BackupError) {
        let streams = options.writesToStandardOutput || makeStream != nil
        if streams, options.verify {
            throw .invalidOption("--verify reads the archive back from disk: not with -o - or --to (run 'clmnt fleet verify' on it afterwards)")
        }
        if streams, !options.retention.isEmpty, options.writesToStandardOutput {
            throw .invalidOption("--keep... prunes a backup dir: not with -o -")
        }
    }

    /// Where the archive is to go, before anything is written.
    private enum Place {
        case file(path: String, alternatives: [String])
        case stream
    }

    /// The stream, or the local path (checked: not inside a molt, in a trusted directory,
    /// whose stale partial files are removed first).
    private func choosePlace(molts: [Molt], now: Date) throws(BackupError)
        -> (Place, (removed: [PartialFiles.Leftover], failed: [RetentionSkip])) {
        if options.writesToStandardOutput || makeStream != nil { return (.stream, ([], [])) }
        let (outputPath, alternatives) = try resolveOutputPath(now: now)
        try refuseOutputInside(molts: molts, outputPath: outputPath)
        let outputDirectory = (outputPath as NSString).deletingLastPathComponent
        try refuseUntrustedDirectory(outputDirectory)
        return (.file(path: outputPath, alternatives: alternatives), PartialFiles.removeStale(in: outputDirectory))
    }

    /// Every molt's scan, set aside until its turn (see `ScanSpool`), and what the scans missed.
    /// Molts are scanned two at a time (each waits on the kernel for its own tree), and each
    /// pair is set aside before the next starts: at most two trees are in memory.
    private func scan(_ molts: [Molt], scratchDirectory: String) throws(BackupError) -> (spool: ScanSpool, missed: [MissedFile]) {
        let scanner = TreeScanner(rules: options.rules)
        var spool = ScanSpool(scratchDirectory: scratchDirectory)
        var missed: [MissedFile] = []
        let width = min(2, options.threads)
        for start in stride(from: 0, to: molts.count, by: width) {
            let window = Array(molts[start..<min(start + width, molts.count)])
            for (molt, result) in zip(window, ConcurrentScan.scan(window.map(\.home), with: scanner)) {
                let tree = try result.get()
                tree.warnings.forEach { onWarning?($0) }
                missed += tree.missed.map { MissedFile(molt: molt.name, path: $0.path, problem: $0.problem, detail: $0.detail) }
                do { try spool.add(tree) } catch {
                    throw .outputDirectory(path: error.path, reason: "cannot set the scan aside: \(error.reason)")
                }
            }
        }
        return (spool, missed)
    }

    /// Where scratch files go (large database snapshots, the spilled scan and checksum lines):
    /// beside the archive, or for a stream (no archive directory) `SpillFile.defaultDirectory`.
    private func scratchDirectory(for place: Place) -> String {
        switch place {
        case .file(let path, _): return (path as NSString).deletingLastPathComponent
        case .stream: return SpillFile.defaultDirectory
        }
    }

    private func open(_ place: Place, now: Date) throws(BackupError) -> BackupDestination {
        switch place {
        case .file(let path, let alternatives):
            do { return .file(try AtomicOutputFile(finalPath: path), alternatives: alternatives) } catch {
                throw BackupError(writing: error)
            }
        case .stream:
            return .stream(try openStream(now: now))
        }
    }

    private func makeSummary(session: StreamingSession, molts: [Molt], committed: BackupDestination.Committed,
                             started: Date) -> BackupSummary {
        var summary = BackupSummary(
            output: committed.path, compression: options.compression.rawValue, molts: molts.map(\.name),
            files: session.stats.values.reduce(0) { $0 + $1.fileCount } + session.globalStats.fileCount,
            entries: session.entryCount,
            inputBytes: session.stats.values.reduce(0) { $0 + $1.backupSizeBytes } + session.globalStats.backupSizeBytes,
            archiveBytes: committed.bytes, seconds: Date().timeIntervalSince(started),
            warnings: session.warnings, perMolt: session.stats)
        summary.encrypted = !options.recipients.isEmpty
        summary.missed = session.missed
        summary.markFailed = committed.markFailed
        return summary
    }

    /// The default file name of an archive made at `now`: `fleet-2026-12-07.tar.zst[.age]`.
    public func defaultArchiveName(now: Date) -> String {
        "fleet-\(Timestamp.day(now)).\(options.fileExtension)"
    }

    private func openStream(now: Date) throws(BackupError) -> any BackupStream {
        guard let makeStream else { return StandardOutputStream() }
        do { return try makeStream(defaultArchiveName(now: now)) } catch let error as BackupError { throw error } catch {
            throw .archive(ArchiveError(.open, path: "the off-host copy", message: "\(error)"))
        }
    }

    /// The fleet and the molts `--select` names (all by default).
    func selectedMolts() throws(BackupError) -> (Fleet, [Molt]) {
        let fleet: Fleet
        let molts: [Molt]
        do {
            fleet = try Fleet.discoverNonEmpty(baseDir: options.baseDir)
            molts = try fleet.select(options.selection)
        } catch { throw .fleet(error) }
        if let reserved = molts.first(where: { ArchiveLayout.reservedNames.contains($0.name) }) {
            throw .reservedMoltName(reserved.name)
        }
        return (fleet, molts)
    }

    /// `--verify`, then `--keep`: old archives go only once the new one is known good (when asked to check).
    private func finishWithChecks(_ summary: inout BackupSummary, outputPath: String, baseDir: String) throws(BackupError) {
        if options.verify {
            let report = try ArchiveVerifier.verify(path: outputPath)
            guard report.isIntact else { throw .damaged(path: outputPath, problems: report.problems) }
            summary.verified = true
        }
        if !options.retention.isEmpty {
            let directory = (outputPath as NSString).deletingLastPathComponent
            let result = BackupRetention.prune(directory: directory, baseDir: baseDir, policy: options.retention,
                                               newArchive: (outputPath as NSString).lastPathComponent)
            summary.pruned = result.removed
            summary.pruneSkipped = result.skipped
            summary.pruneFailed = result.failed
        }
    }

    /// The backup dir (and, when retention acts, the directory of `-o`) must be one no one else
    /// can write: others could plant archives that retention ranks, or replace ours
    /// (`BackupDirectory`). A one-off `-o` file without `--keep...` is the admin's own choice.
    func refuseUntrustedDirectory(_ directory: String) throws(BackupError) {
        guard options.output == nil || !options.retention.isEmpty else { return }
        try BackupDirectory.requireTrusted(directory)
    }

    /// Refuses a base dir that a killed restore left half swapped (its journal waits for
    /// `restore --resume`): a backup of it would be marked complete with some molts new, some
    /// old and the old `molts.json`, and its retention would remove the last good archive.
    /// Checked under the base-dir lock, which no running restore shares: a journal found is a dead run's.
    func refuseHalfRestored(_ baseDir: String) throws(BackupError) {
        guard let (_, journal) = RestoreRecovery.pendingJournals(baseDir: baseDir).first else { return }
        throw .restorePending(baseDir: baseDir, archive: journal.archive, molts: journal.molts.map(\.name))
    }

    /// The shared base-dir lock of a backup (see `BaseDirLock`); `.inspect` for a dry run.
    func lockBaseDir(_ baseDir: String, mode: BaseDirLock.Mode = .backup) throws(BackupError) -> BaseDirLock {
        do { return try BaseDirLock(baseDir: baseDir, mode: mode, wait: options.wait) } catch {
            if case .baseDir(let failure) = error { throw .unreadable(path: baseDir, reason: failure.reason) }
            throw .locked(error)
        }
    }

    /// The archive's path, and the names to fall back on if it is taken when the
    /// archive is committed (default names only: an explicit `-o` is never changed).
    /// The default name gains the time of day when a backup of today exists, then `-2`, `-3`, ...
    /// A missing backup dir is created, unless `create` is false (the dry run).
    func resolveOutputPath(now: Date, create: Bool = true) throws(BackupError) -> (path: String, alternatives: [String]) {
        let fileManager = FileManager.default
        if let output = options.output {
            // Placeholders only in the file name: a directory is taken as written.
            let name = Timestamp.expandingDatePlaceholders(in: (output as NSString).lastPathComponent, now)
            let path = absolutePath((output as NSString).deletingLastPathComponent.isEmpty
                ? name : (output as NSString).deletingLastPathComponent + "/" + name)
            var isDirectory: ObjCBool = false
            if fileManager.fileExists(atPath: path, isDirectory: &isDirectory) {
                if isDirectory.boolValue { throw .outputDirectory(path: path, reason: "is a directory") }
                if !options.force { throw .outputExists(path: path) }
            }
            let directory = (path as NSString).deletingLastPathComponent
            guard fileManager.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw .outputDirectory(path: directory, reason: "no such directory")
            }
            return (path, [])
        }
        let directory = absolutePath(options.backupDir ?? "backups")
        var isDirectory: ObjCBool = false
        if fileManager.fileExists(atPath: directory, isDirectory: &isDirectory) {
            if !isDirectory.boolValue { throw .outputDirectory(path: directory, reason: "not a directory") }
        } else if create {
            guard mkdir(directory, 0o700) == 0 || errno == EEXIST else {
                throw .outputDirectory(path: directory, reason: String(cString: strerror(errno)))
            }
        }
        let ext = options.fileExtension
        let day = "\(directory)/fleet-\(Timestamp.day(now))"
        let timed = "\(day)-\(Timestamp.timeOfDay(now))"
        let names = ["\(day).\(ext)", "\(timed).\(ext)"] + (2...99).map { "\(timed)-\($0).\(ext)" }
        guard let free = names.firstIndex(where: { !fileManager.fileExists(atPath: $0) }) else {
            throw .outputExists(path: names[names.count - 1])
        }
        return (names[free], Array(names[(free + 1)...]))
    }

    /// An archive written inside a molt's home would try to archive itself.
    func refuseOutputInside(molts: [Molt], outputPath: String) throws(BackupError) {
        let directory = realDirectory((outputPath as NSString).deletingLastPathComponent)
        for molt in molts {
            let home = realDirectory(molt.home)
            if directory == home || directory.hasPrefix(home + "/") {
                throw .outputDirectory(path: outputPath, reason: "inside the home of molt \(molt.name), which is being backed up")
            }
        }
    }

    private func realDirectory(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Top-level files of the base dir that belong to the fleet: the registry.
    func globalFilesToArchive(fleet: Fleet) -> [String] {
        var status = stat()
        guard lstat(fleet.registryPath, &status) == 0, (UInt32(status.st_mode) & FileType.mask) == FileType.regular else {
            return []
        }
        return [fleet.registryPath]
    }

    private func makeManifest(fleet: Fleet, molts: [Molt], scans: [ScanSummary], globalFiles: [String], now: Date) -> Manifest {
        let lookup = OwnerLookup()
        var records: [Manifest.MoltRecord] = []
        for (molt, tree) in zip(molts, scans) {
            var homeStatus = stat()
            lstat(molt.home, &homeStatus)
            let owner = Manifest.Owner(user: lookup.userName(homeStatus.st_uid), uid: homeStatus.st_uid,
                                       group: lookup.groupName(homeStatus.st_gid), gid: homeStatus.st_gid)
            var record = Manifest.MoltRecord(
                name: molt.name, port: molt.port, created: molt.created, backupSizeBytes: tree.regularBytes,
                home: molt.home, owner: owner,
                fileCount: tree.plannedFileCount, entryCount: tree.plannedEntryCount)
            // The molt user's supplementary groups, so a restore recreates the user as it was.
            record.groups = UserAccounts.user(uid: homeStatus.st_uid).map { UserAccounts.supplementaryGroups(of: $0) }
            records.append(record)
        }
        var globalStats = Manifest.SectionStats(entryCount: 1)
        for path in globalFiles {
            var status = stat()
            lstat(path, &status)
            globalStats.backupSizeBytes += Int64(status.st_size)
            globalStats.fileCount += 1
            globalStats.entryCount += 1
        }
        var manifest = Manifest(timestamp: Timestamp.format(now), hostname: ProcessInfo.processInfo.hostName,
                                molts: records, totalSizeBytes: records.reduce(0) { $0 + $1.backupSizeBytes })
        manifest.baseDir = fleet.baseDir
        manifest.compression = options.compression.rawValue
        manifest.compressionLevel = options.level ?? options.compression.defaultLevel
        manifest.excludes = options.rules.effectivePatterns
        manifest.includeCaches = options.rules.includeCaches
        manifest.global = globalStats
        // manifest + molts + global + report + checksums
        manifest.entryCount = 1 + records.reduce(0) { $0 + ($1.entryCount ?? 0) } + globalStats.entryCount + 2
        return manifest
    }
}

/// A signal during a streamed backup gives the stream up (an upload is aborted, so no
/// multipart upload is left behind) before the process exits.
private final class StreamCleanup: @unchecked Sendable {
    private let stream: (any BackupStream)?
    private let key = "backup-stream-\(UInt32.random(in: 0...UInt32.max))"

    init(stream: (any BackupStream)?) {
        self.stream = stream
        guard stream != nil else { return }
        SignalCleanup.shared.register(key: key) { [self] in self.stream?.discard() }
    }

    func unregister() {
        if stream != nil { SignalCleanup.shared.unregister(key: key) }
    }
}

/// Scans a few homes at once, one thread each; the results in the homes' order.
private final class ConcurrentScan: @unchecked Sendable {  // each slot written by one thread, read after all end
    private final class Slot {
        var result: Result<ScannedTree, BackupError>?
    }

    private let scanner: TreeScanner
    private let homes: [String]
    private let slots: [Slot]

    private init(scanner: TreeScanner, homes: [String]) {
        self.scanner = scanner
        self.homes = homes
        slots = homes.map { _ in Slot() }
    }

    static func scan(_ homes: [String], with scanner: TreeScanner) -> [Result<ScannedTree, BackupError>] {
        let work = ConcurrentScan(scanner: scanner, homes: homes)
        DispatchQueue.concurrentPerform(iterations: homes.count) { work.scanOne($0) }
        return zip(homes, work.slots).map { home, slot in slot.result ?? .failure(.unreadable(path: home, reason: "not scanned")) }
    }

    private func scanOne(_ index: Int) {
        do throws(BackupError) { slots[index].result = .success(try scanner.scan(home: homes[index])) } catch {
            slots[index].result = .failure(error)
        }
    }
}
