import Foundation

/// The write half of a backup: owns the archive writer and the running counts,
/// and streams each scanned entry from a descriptor opened with O_NOFOLLOW and
/// checked (device and inode) against what the scan saw.
struct StreamingSession {
    private let writer: ArchiveWriter
    let disk = DiskMetadataReader()
    private let denseDisk = DiskMetadataReader(detectSparse: false)
    let hasher = SHA256Hasher()
    /// File data passes through it on its way into the archive.
    private let buffer = TransferBuffer(byteCount: 1 << 20)
    private let onProgress: ((BackupProgress) -> Void)?
    private let onWarning: ((String) -> Void)?
    private let bytesTotal: Int64
    var databases: DatabaseSnapshotter
    private var bytesDone: Int64 = 0
    private var lastProgress = Date.distantPast
    private var lastProgressMolt = ""

    var digests: DigestLog
    var stats: [String: Manifest.SectionStats] = [:]
    private(set) var globalStats = Manifest.SectionStats()
    private(set) var entryCount = 0
    var warnings: [String] = []
    /// Files archived torn or not at all (see `MissedFile`).
    var missed: [MissedFile] = []
    /// The molt being written, for `missed`.
    var currentMolt: String?
    /// Per molt, what was archived beyond the manifest's plan (`BackupReport.beyondPlan`).
    var beyondPlan: [String: Manifest.SectionStats] = [:]
    /// Set while an unplanned sidecar is written: all of it counts as beyond the plan, not its growth.
    var writingUnplanned = false

    /// Into a local file; large database snapshots go beside it.
    init(output: AtomicOutputFile, options: BackupOptions, onProgress: ((BackupProgress) -> Void)?,
         onWarning: ((String) -> Void)?, bytesTotal: Int64) throws(BackupError) {
        try self.init(sink: FileDescriptorSink(fileDescriptor: output.fileDescriptor, path: output.finalPath), path: output.finalPath,
                      scratchDirectory: (output.finalPath as NSString).deletingLastPathComponent, options: options,
                      onProgress: onProgress, onWarning: onWarning, bytesTotal: bytesTotal)
    }

    /// `sink` takes the archive's bytes (`path` names it in messages); with recipients in
    /// `options`, they are age-encrypted on the way. Large database snapshots go for a
    /// moment into `scratchDirectory`.
    init(sink: any OutputSink, path: String, scratchDirectory: String, options: BackupOptions,
         onProgress: ((BackupProgress) -> Void)?, onWarning: ((String) -> Void)?, bytesTotal: Int64) throws(BackupError) {
        do {
            let destination = options.recipients.isEmpty
                ? sink : try EncryptingSink(destination: sink, recipients: options.recipients, path: path)
            writer = try ArchiveWriter(sink: destination, compression: options.compression, level: options.level,
                                       threads: options.threads, path: path)
        } catch { throw .archive(error) }
        digests = DigestLog(scratchDirectory: scratchDirectory)
        databases = DatabaseSnapshotter(scratchDirectory: scratchDirectory, memoryLimit: options.sqliteMemoryLimit,
                                        busyTimeout: options.sqliteBusyTimeout)
        self.onProgress = onProgress
        self.onWarning = onWarning
        self.bytesTotal = bytesTotal
    }

    mutating func warn(_ message: String) {
        warnings.append(message)
        onWarning?(message)
    }

    /// Warns, and records the file as missed: the backup will exit 3.
    mutating func miss(_ path: String, _ problem: MissedFile.Problem, _ detail: String, _ message: String) {
        missed.append(MissedFile(molt: currentMolt, path: path, problem: problem, detail: detail))
        warn(message)
    }

    /// `path` is recorded in its escaped form (docs/backup-format.md, "Names are bytes").
    mutating func miss(_ path: PathBytes, _ problem: MissedFile.Problem, _ detail: String, _ message: String) {
        miss(path.description, problem, detail, message)
    }

    mutating func writeManifest(_ manifest: Manifest, now: Date) throws(BackupError) {
        let entry = ArchiveEntry.synthesizedFile(path: ArchiveLayout.manifestPath, size: 0, mode: 0o600,
                                                 mtime: Int64(now.timeIntervalSince1970))
        try writeInMemoryFile(Array(manifest.encoded()), entry: entry, section: nil)
    }

    mutating func writeInMemoryFile(_ bytes: [UInt8], entry: ArchiveEntry, section: inout Manifest.SectionStats) throws(BackupError) {
        do { try writer.writeBytes(bytes, entry: entry, hasher: hasher) } catch { throw .archive(error) }
        entryCount += 1
        let path = entry.pathname
        try digests.record(hasher, archivePath: path)
        section.backupSizeBytes += Int64(bytes.count)
        advanceProgress(by: Int64(bytes.count), molt: path.components.first?.string ?? "")
    }

    private mutating func writeInMemoryFile(_ bytes: [UInt8], entry: ArchiveEntry, section: Manifest.SectionStats?) throws(BackupError) {
        var ignored = Manifest.SectionStats()
        try writeInMemoryFile(bytes, entry: entry, section: &ignored)
    }

    mutating func writeGlobal(_ files: [String], now: Date) throws(BackupError) {
        let directory = ArchiveEntry.synthesizedFile(path: ArchiveLayout.globalDir + "/", size: 0, mtime: Int64(now.timeIntervalSince1970))
        directory.setDirectory(mode: 0o755)
        try writeHeader(directory)
        globalStats.entryCount += 1
        for path in files {
            let file: FileDescriptor
            let status: stat
            do { file = try FileDescriptor.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK) } catch {
                miss(path, error.code == ENOENT ? .vanished : .unreadable, error.reason, "\(path): \(error.reason); skipped")
                continue
            }
            do { status = try file.status() } catch {
                miss(path, .unreadable, error.reason, "\(path): \(error.reason); skipped")
                continue
            }
            let archivePath = PathBytes(ArchiveLayout.globalDir + "/" + (path as NSString).lastPathComponent)
            let entry = try diskEntry(fd: file.rawValue, status: status, sourcePath: PathBytes(path), archivePath: archivePath)
            try writeHeader(entry)
            _ = try streamData(from: file.rawValue, entry: entry, sourcePath: path)
            try digests.record(hasher, archivePath: archivePath)
            globalStats.entryCount += 1
            globalStats.fileCount += 1
            globalStats.backupSizeBytes += entry.size
            advanceProgress(by: entry.size, molt: ArchiveLayout.globalDir)
        }
    }

    /// The report, then `SHA256SUMS` as the very last entry.
    mutating func writeTrailer(now: Date) throws(BackupError) {
        let mtime = Int64(now.timeIntervalSince1970)
        let report = BackupReport(entryCount: entryCount + 2, molts: stats, global: globalStats, warnings: warnings,
                                  missed: missed, beyondPlan: beyondPlan)
        let reportEntry = ArchiveEntry.synthesizedFile(path: ArchiveLayout.reportPath, size: 0, mtime: mtime)
        try writeInMemoryFile(Array(report.encoded()), entry: reportEntry, section: nil)

        let entry = ArchiveEntry.synthesizedFile(path: ArchiveLayout.checksumsPath, size: Int64(digests.byteCount), mtime: mtime)
        try writeHeader(entry)
        try digests.forEachChunk { (chunk) throws(BackupError) in
            let result: Result<Void, ArchiveError> = chunk.withUnsafeBytes { raw in
                do throws(ArchiveError) { try writer.writeData(raw, entryPath: ArchiveLayout.checksumsPath); return .success(()) }
                catch { return .failure(error) }
            }
            do throws(ArchiveError) { try result.get() } catch { throw .archive(error) }
        }
    }

    mutating func finish() throws(BackupError) {
        do { try writer.close() } catch { throw .archive(error) }
        warnings += writer.warnings
    }

    // MARK: - helpers

    mutating func writeHeader(_ entry: ArchiveEntry) throws(BackupError) {
        do { try writer.writeHeader(entry) } catch { throw .archive(error) }
        entryCount += 1
    }

    mutating func diskEntry(fd: Int32, status: stat, sourcePath: PathBytes, archivePath: PathBytes) throws(BackupError) -> ArchiveEntry {
        var diskWarnings: [String] = []
        defer { diskWarnings.forEach { warn($0) } }
        // A file with as many blocks as bytes has no holes: no need to look for them.
        let mayBeSparse = Int64(status.st_blocks) * 512 < Int64(status.st_size)
        do {
            return try (mayBeSparse ? disk : denseDisk).entry(fileDescriptor: fd, status: status, displayPath: sourcePath.description,
                                                              archivePath: archivePath, warnings: &diskWarnings)
        } catch { throw .archive(error) }
    }

    /// Copies an open file's data; a failed read is the file's, a failed write the archive's.
    mutating func streamData(from fd: Int32, entry: ArchiveEntry, sourcePath: @autoclosure () -> String) throws(BackupError) -> StreamOutcome {
        do { return try writer.streamFileData(from: fd, entry: entry, buffer: buffer, hasher: hasher, sourcePath: sourcePath()) } catch {
            if error.operation == .read { throw .unreadable(path: error.path, reason: error.message) }
            throw .archive(error)
        }
    }

    mutating func advanceProgress(by bytes: Int64, molt: String) {
        bytesDone += bytes
        guard let onProgress else { return }
        let now = Date()
        // At most ten a second, and at once when a molt starts (its label; `-v` times each molt from it).
        guard now.timeIntervalSince(lastProgress) >= 0.1 || molt != lastProgressMolt else { return }
        lastProgress = now
        lastProgressMolt = molt
        onProgress(BackupProgress(bytesDone: bytesDone, bytesTotal: bytesTotal, currentMolt: molt))
    }
}
