import Foundation

/// The write half of a backup: owns the archive writer and the running counts,
/// and streams each scanned entry from a descriptor opened with O_NOFOLLOW and
/// checked (device and inode) against what the scan saw.
struct StreamingSession {
    private let writer: ArchiveWriter
    private let disk = DiskMetadataReader()
    private let denseDisk = DiskMetadataReader(detectSparse: false)
    private let hasher = SHA256Hasher()
    private let buffer: UnsafeMutableRawBufferPointer
    private let onProgress: ((BackupProgress) -> Void)?
    private let onWarning: ((String) -> Void)?
    private let bytesTotal: Int64
    /// Where large database snapshots are written for a moment (the archive's directory).
    private let scratchDirectory: String
    private let sqliteMemoryLimit: Int64
    private let sqliteBusyTimeout: Duration
    /// Credentials of database owners, looked up once per uid.
    private var ownerCredentials: [UInt32: OwnerCredentials] = [:]
    private var bytesDone: Int64 = 0
    private var lastProgress = Date.distantPast
    private var lastProgressMolt = ""

    /// Raw 32-byte digests, in the order of `digestOwners`.
    private var digests: [UInt8] = []
    /// Whose each digest is: a molt file is named by its scan position (paths are
    /// rebuilt for SHA256SUMS at the end, not held), other entries by `namedPaths`.
    private var digestOwners: [DigestOwner] = []
    private var namedPaths: [PathBytes] = []
    /// The molt entry being written, while a molt is.
    private var currentOwner: DigestOwner?
    private(set) var stats: [String: Manifest.SectionStats] = [:]
    private(set) var globalStats = Manifest.SectionStats()
    private(set) var entryCount = 0
    var warnings: [String] = []
    /// Files archived torn or not at all (see `MissedFile`).
    var missed: [MissedFile] = []
    /// The molt being written, for `missed`.
    private var currentMolt: String?
    /// Per molt, what was archived beyond the manifest's plan (`BackupReport.beyondPlan`).
    private(set) var beyondPlan: [String: Manifest.SectionStats] = [:]
    /// Set while an unplanned sidecar is written: all of it counts as beyond the plan, not its growth.
    private var writingUnplanned = false

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
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        self.scratchDirectory = scratchDirectory
        sqliteMemoryLimit = options.sqliteMemoryLimit
        sqliteBusyTimeout = options.sqliteBusyTimeout
        self.onProgress = onProgress
        self.onWarning = onWarning
        self.bytesTotal = bytesTotal
    }

    private mutating func warn(_ message: String) {
        warnings.append(message)
        onWarning?(message)
    }

    /// Warns, and records the file as missed: the backup will exit 3.
    private mutating func miss(_ path: String, _ problem: MissedFile.Problem, _ detail: String, _ message: String) {
        missed.append(MissedFile(molt: currentMolt, path: path, problem: problem, detail: detail))
        warn(message)
    }

    /// `path` is recorded in its escaped form (docs/backup-format.md, "Names are bytes").
    private mutating func miss(_ path: PathBytes, _ problem: MissedFile.Problem, _ detail: String, _ message: String) {
        miss(path.description, problem, detail, message)
    }

    mutating func writeManifest(_ manifest: Manifest, now: Date) throws(BackupError) {
        let entry = ArchiveEntry.synthesizedFile(path: ArchiveLayout.manifestPath, size: 0, mode: 0o600,
                                                 mtime: Int64(now.timeIntervalSince1970))
        try writeInMemoryFile(Array(manifest.encoded()), entry: entry, section: nil)
    }

    mutating func writeMolt(_ molt: Molt, index moltIndex: Int, tree: ScannedTree, baseDir: String) throws(BackupError) {
        let baseFd = open(baseDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard baseFd >= 0 else { throw .unreadable(path: baseDir, reason: String(cString: strerror(errno))) }
        // Open directories, innermost last; index = depth.
        var openDirectories: [Int32] = [baseFd]
        defer { openDirectories.forEach { close($0) } }
        // Per open directory: the databases snapshotted in it, whose sidecars stay out.
        var snapshotted: [Set<PathBytes>] = [[]]
        var seenInodes: [InodeKey: PathBytes] = [:]
        var skipBelowDepth = Int.max
        var section = Manifest.SectionStats()
        var paths = TreePathBuilder()
        currentMolt = molt.name
        defer { currentOwner = nil; currentMolt = nil }

        let moltName = PathBytes(molt.name)
        let home = PathBytes(molt.home)
        for (entryIndex, scanned) in tree.entries.enumerated() {
            let depth = Int(scanned.depth)
            let relativePath = paths.relativePath(of: scanned, in: tree)
            if depth > skipBelowDepth { continue }
            skipBelowDepth = Int.max
            while openDirectories.count > depth + 1 {
                close(openDirectories.removeLast())
                snapshotted.removeLast()
            }
            guard openDirectories.count == depth + 1 else { continue }
            currentOwner = DigestOwner(section: Int32(moltIndex), index: Int32(entryIndex))
            let parentFd = openDirectories[depth]
            // Names are bytes from the scan's arena, handed to openat as they are.
            func withName<Result>(_ body: (UnsafePointer<CChar>) -> Result) -> Result {
                depth == 0 ? molt.name.withCString(body) : tree.withName(of: scanned, body)
            }
            let sourcePath = depth == 0 ? home : home.appending(relativePath)
            let archivePath = depth == 0 ? moltName + "/" : moltName.appending(relativePath)

            switch scanned.kind {
            case .directory:
                let fd = withName { openat(parentFd, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
                guard let status = verifiedStatus(fd, scanned, sourcePath) else {
                    if fd >= 0 { close(fd) }
                    skipBelowDepth = depth
                    continue
                }
                openDirectories.append(fd)
                snapshotted.append([])
                let entry = try diskEntry(fd: fd, status: status, sourcePath: sourcePath, archivePath: archivePath)
                try writeHeader(entry)
                section.entryCount += 1
            case .symlink:
                var status = stat()
                guard withName({ fstatat(parentFd, $0, &status, AT_SYMLINK_NOFOLLOW) }) == 0,
                      (UInt32(status.st_mode) & FileType.mask) == FileType.symlink,
                      let target = withName({ readLink(parentFd, $0) }) else {
                    miss(sourcePath, .vanished, "gone or no longer a symlink",
                         "\(sourcePath): vanished or changed type while backing up; skipped")
                    continue
                }
                if !EntryPolicy.symlinkStaysInside(linkPath: relativePath, target: target, homes: [home]) {
                    // Archived as it is, but an admin should learn now, not at restore time.
                    warn("\(sourcePath): symlink points outside the molt (\(target)); fleet restore needs --allow-outside-symlinks for it")
                }
                try writeHeader(disk.symlinkEntry(status: status, target: target, archivePath: archivePath))
                section.entryCount += 1
                section.fileCount += 1
            case .regular, .databaseSidecar:
                let name = depth == 0 ? moltName : tree.name(of: scanned)
                let unplanned = scanned.kind == .databaseSidecar
                if unplanned, let base = SQLiteSidecar.base(of: name) {
                    if snapshotted[depth].contains(base) { continue }  // the snapshot holds its content
                    warn("\(sourcePath): archived, as its database \(base) was not snapshotted")
                }
                var fd = withName { openat(parentFd, $0, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | LinuxCalls.noAccessTime) }
                if fd < 0 && errno == EPERM { fd = withName { openat(parentFd, $0, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) } }
                guard let status = verifiedStatus(fd, scanned, sourcePath) else {
                    if fd >= 0 { close(fd) }
                    continue
                }
                defer { close(fd) }
                let location = FileLocation(directory: parentFd, name: name.string, sourcePath: sourcePath, archivePath: archivePath,
                                            moltName: molt.name)
                // The plan left a database's sidecar out: whatever of it is archived is beyond the plan.
                let before = section
                writingUnplanned = unplanned
                if try writeRegularFile(fd: fd, status: status, scanned: scanned, location: location,
                                        seenInodes: &seenInodes, section: &section) {
                    snapshotted[depth].insert(name)
                }
                writingUnplanned = false
                if unplanned {
                    var extra = beyondPlan[molt.name] ?? Manifest.SectionStats()
                    extra.entryCount += section.entryCount - before.entryCount
                    extra.fileCount += section.fileCount - before.fileCount
                    extra.backupSizeBytes += section.backupSizeBytes - before.backupSizeBytes
                    beyondPlan[molt.name] = extra
                }
            }
        }
        stats[molt.name] = section
        if beyondPlan[molt.name] == nil { beyondPlan[molt.name] = Manifest.SectionStats() }  // stated, even when nothing was
    }

    /// Counts a file archived at `archived` bytes that the scan saw at `scanned` (the manifest's size).
    private mutating func noteGrowth(archived: Int64, scanned: Int64) {
        guard let molt = currentMolt, archived > scanned, !writingUnplanned else { return }
        beyondPlan[molt, default: Manifest.SectionStats()].backupSizeBytes += archived - scanned
    }

    /// Checks that `fd` is open on the same file the scan saw; warns and returns nil if not.
    private mutating func verifiedStatus(_ fd: Int32, _ scanned: ScannedEntry, _ sourcePath: PathBytes) -> stat? {
        guard fd >= 0 else {
            let code = errno
            let reason = code == ELOOP ? "replaced by a symlink" : String(cString: strerror(code))
            let problem: MissedFile.Problem = code == ELOOP ? .replaced : code == ENOENT || code == ENOTDIR ? .vanished : .unreadable
            let below = scanned.kind == .directory ? " with everything below it" : ""
            miss(sourcePath, problem, reason, "\(sourcePath): \(reason) while backing up; skipped\(below)")
            return nil
        }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            let reason = String(cString: strerror(errno))
            miss(sourcePath, .unreadable, reason, "\(sourcePath): \(reason); skipped")
            return nil
        }
        guard UInt64(status.st_dev) == scanned.device, UInt64(status.st_ino) == scanned.inode else {
            miss(sourcePath, .replaced, "another file is at its path now", "\(sourcePath): replaced while backing up; skipped")
            return nil
        }
        return status
    }

    /// Writes one regular file: a consistent snapshot for a SQLite database,
    /// else its bytes. Returns true when a database was snapshotted.
    private mutating func writeRegularFile(fd: Int32, status: stat, scanned: ScannedEntry, location: FileLocation,
                                           seenInodes: inout [InodeKey: PathBytes],
                                           section: inout Manifest.SectionStats) throws(BackupError) -> Bool {
        let sourcePath = location.sourcePath, archivePath = location.archivePath
        let key = InodeKey(status)
        if status.st_nlink > 1, let first = seenInodes[key] {
            let entry = try diskEntry(fd: fd, status: status, sourcePath: sourcePath, archivePath: archivePath)
            entry.setHardlink(first)
            try writeHeader(entry)
            section.entryCount += 1
            section.fileCount += 1
            return false
        }
        let entry = try diskEntry(fd: fd, status: status, sourcePath: sourcePath, archivePath: archivePath)
        let snapshot = databaseSnapshot(fd: fd, status: status, location: location)
        if case .missed = snapshot { return false }
        if status.st_nlink > 1 { seenInodes[key] = archivePath }
        section.entryCount += 1
        section.fileCount += 1
        switch snapshot {
        case .inMemory(let bytes):
            noteGrowth(archived: Int64(bytes.count), scanned: scanned.size)
            try writeInMemoryFile(bytes, entry: entry, section: &section)
            return true
        case .onDisk(let snapshotFd):
            defer { close(snapshotFd) }
            var snapshotStatus = stat()
            fstat(snapshotFd, &snapshotStatus)
            entry.clearSparse()
            entry.size = Int64(snapshotStatus.st_size)
            noteGrowth(archived: entry.size, scanned: scanned.size)
            try writeHeader(entry)
            _ = try writer.streamFileData(from: snapshotFd, entry: entry, buffer: buffer, hasher: hasher, sourcePath: sourcePath.description)
            recordDigest(archivePath)
            section.backupSizeBytes += entry.size
            advanceProgress(by: entry.size, molt: location.moltName)
            return true
        case .asIs, .missed:
            break
        }
        // (A live database's size changes all the time; its snapshot is consistent whatever the size.)
        if Int64(status.st_size) != scanned.size {
            warn("\(sourcePath): size changed from \(scanned.size) to \(status.st_size) bytes while backing up")
        }
        noteGrowth(archived: entry.size, scanned: scanned.size)
        try writeHeader(entry)
        let outcome = try writer.streamFileData(from: fd, entry: entry, buffer: buffer, hasher: hasher, sourcePath: sourcePath.description)
        if outcome.paddedBytes > 0 {
            miss(sourcePath, .changed, "shrank by \(outcome.paddedBytes) bytes while read",
                 "\(sourcePath): shrank by \(outcome.paddedBytes) bytes while being read; padded with zeros")
        }
        var after = stat()
        if fstat(fd, &after) == 0, after.st_size != status.st_size || after.st_mtim.tv_sec != status.st_mtim.tv_sec
            || after.st_mtim.tv_nsec != status.st_mtim.tv_nsec, outcome.paddedBytes == 0 {
            miss(sourcePath, .changed, "modified while read",
                 "\(sourcePath): changed while being read; the archived copy may be inconsistent")
        }
        recordDigest(archivePath)
        section.backupSizeBytes += entry.size
        advanceProgress(by: entry.size, molt: location.moltName)
        return false
    }

    /// What to archive for the regular file open as `fd`: a consistent copy of a
    /// SQLite database, nothing (it stayed locked), or its bytes as they are.
    /// Every outcome but a clean snapshot or a plain file comes with a warning.
    private mutating func databaseSnapshot(fd: Int32, status: stat, location: FileLocation) -> DatabaseSnapshot {
        let header = SQLiteSnapshot.header(of: fd, size: Int64(status.st_size))
        guard header != .notDatabase else { return .asIs }
        let sourcePath = location.sourcePath
        // SQLite opens databases by name (its -wal file is found beside it): a
        // name that is not UTF-8 cannot be handed to it, so it is archived as read.
        guard let name = location.name else {
            warn("\(sourcePath): SQLite database whose name is not UTF-8: archived byte for byte with its -wal/-journal files, not snapshotted")
            return .asIs
        }
        // Root never runs SQLite inside a home, and has no owner to become here.
        guard status.st_uid != 0 else {
            warn("\(sourcePath): SQLite database owned by root inside a molt's home: archived byte for byte with its -wal/-journal files, not snapshotted")
            return .asIs
        }
        var walStatus = stat()
        let hasWal = fstatat(location.directory, name + "-wal", &walStatus, AT_SYMLINK_NOFOLLOW) == 0
        let source = SQLiteSource(directory: location.directory, name: name,
                                  owner: credentials(uid: status.st_uid, gid: status.st_gid),
                                  needsWriteAccessToCleanUp: header == .writeAheadLog && !hasWal)
        let snapshot: DatabaseSnapshot
        do throws(SQLiteError) {
            if Int64(status.st_size) <= sqliteMemoryLimit {
                snapshot = .inMemory(try SQLiteSnapshot.capture(source, busyTimeout: sqliteBusyTimeout))
            } else {
                snapshot = .onDisk(try snapshotToScratchFile(source))
            }
        } catch {
            if error.isBusy {
                // Its bytes without a consistent -wal would be the torn copy snapshots exist to avoid.
                miss(sourcePath, .locked, error.message, "\(sourcePath): NOT ARCHIVED: the SQLite database stayed locked (\(error))")
                return .missed
            }
            if error.isHotJournal {
                // A writer died mid-transaction: the file and its journal no longer change, and SQLite rolls back on next open.
                warn("\(sourcePath): SQLite database with a hot journal from an interrupted write: archived byte for byte together with its -journal")
            } else {
                warn("\(sourcePath): cannot snapshot it as a SQLite database (\(error.message)); archived byte for byte with its -wal/-journal files")
            }
            return .asIs
        }
        // SQLite opened the name again: make sure it was still our file.
        var now = stat()
        guard fstatat(location.directory, name, &now, AT_SYMLINK_NOFOLLOW) == 0,
              now.st_dev == status.st_dev, now.st_ino == status.st_ino else {
            if case .onDisk(let snapshotFd) = snapshot { close(snapshotFd) }
            warn("\(sourcePath): replaced while backing up; archived as read")
            return .asIs
        }
        return snapshot
    }

    private mutating func credentials(uid: UInt32, gid: UInt32) -> OwnerCredentials {
        if let known = ownerCredentials[uid] { return known }
        let credentials = OwnerCredentials.of(uid: uid, gid: gid)
        ownerCredentials[uid] = credentials
        return credentials
    }

    /// Snapshots a large database into a 0600 file root creates beside the
    /// archive, and returns it open for reading, already unlinked.
    private func snapshotToScratchFile(_ source: SQLiteSource) throws(SQLiteError) -> Int32 {
        let path = "\(scratchDirectory)/.clmnt-sqlite-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).db"
        let created = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard created >= 0 else {
            throw SQLiteError("cannot create \(path): \(String(cString: strerror(errno)))", operation: "snapshot")
        }
        close(created)
        SignalCleanup.shared.register(path)
        defer {
            unlink(path)
            SignalCleanup.shared.unregister(path)
        }
        try SQLiteSnapshot.capture(source, intoFile: path, busyTimeout: sqliteBusyTimeout)
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            throw SQLiteError("cannot read \(path): \(String(cString: strerror(errno)))", operation: "snapshot")
        }
        return fd
    }

    private mutating func writeInMemoryFile(_ bytes: [UInt8], entry: ArchiveEntry, section: inout Manifest.SectionStats) throws(BackupError) {
        do { try writer.writeBytes(bytes, entry: entry, hasher: hasher) } catch { throw .archive(error) }
        entryCount += 1
        let path = entry.pathname
        recordDigest(path)
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
            let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
            var status = stat()
            guard fd >= 0, fstat(fd, &status) == 0 else {
                let code = errno
                if fd >= 0 { close(fd) }
                miss(path, code == ENOENT ? .vanished : .unreadable, String(cString: strerror(code)),
                     "\(path): \(String(cString: strerror(code))); skipped")
                continue
            }
            defer { close(fd) }
            let archivePath = PathBytes(ArchiveLayout.globalDir + "/" + (path as NSString).lastPathComponent)
            let entry = try diskEntry(fd: fd, status: status, sourcePath: PathBytes(path), archivePath: archivePath)
            try writeHeader(entry)
            _ = try writer.streamFileData(from: fd, entry: entry, buffer: buffer, hasher: hasher, sourcePath: path)
            recordDigest(archivePath)
            globalStats.entryCount += 1
            globalStats.fileCount += 1
            globalStats.backupSizeBytes += entry.size
            advanceProgress(by: entry.size, molt: ArchiveLayout.globalDir)
        }
    }

    /// The report, then `SHA256SUMS` as the very last entry. `trees` and
    /// `moltNames` are those given to `writeMolt`, by index.
    mutating func writeTrailer(now: Date, trees: [ScannedTree], moltNames: [String]) throws(BackupError) {
        let mtime = Int64(now.timeIntervalSince1970)
        let report = BackupReport(entryCount: entryCount + 2, molts: stats, global: globalStats, warnings: warnings,
                                  missed: missed, beyondPlan: beyondPlan)
        let reportEntry = ArchiveEntry.synthesizedFile(path: ArchiveLayout.reportPath, size: 0, mtime: mtime)
        try writeInMemoryFile(Array(report.encoded()), entry: reportEntry, section: nil)

        // Lines are made twice (size, then data) rather than held: a large fleet has 200,000 of them.
        func forEachLine(_ body: ([UInt8]) throws(BackupError) -> Void) throws(BackupError) {
            var builders: [Int32: (builder: TreePathBuilder, next: Int)] = [:]
            for (number, owner) in digestOwners.enumerated() {
                let path: PathBytes
                if owner.section < 0 {
                    path = namedPaths[Int(owner.index)]
                } else {
                    // Owners of one molt come in scan order: walk its tree forward to each.
                    var state = builders[owner.section] ?? (TreePathBuilder(), 0)
                    let tree = trees[Int(owner.section)]
                    var relative = PathBytes([])
                    while state.next <= Int(owner.index) {
                        relative = state.builder.relativePath(of: tree.entries[state.next], in: tree)
                        state.next += 1
                    }
                    builders[owner.section] = state
                    path = PathBytes(moltNames[Int(owner.section)]).appending(relative)
                }
                try body(ChecksumList.line(digest: digests[(number * 32)..<(number * 32 + 32)], path: path))
            }
        }
        var size = 0
        try forEachLine { size += $0.count }
        let entry = ArchiveEntry.synthesizedFile(path: ArchiveLayout.checksumsPath, size: Int64(size), mtime: mtime)
        try writeHeader(entry)
        var batch = [UInt8]()
        batch.reserveCapacity(1 << 16)
        try forEachLine { (line) throws(BackupError) in
            batch.append(contentsOf: line)
            if batch.count >= 1 << 16 { try writeRaw(&batch, entryPath: ArchiveLayout.checksumsPath) }
        }
        try writeRaw(&batch, entryPath: ArchiveLayout.checksumsPath)
    }

    mutating func finish() throws(BackupError) {
        do { try writer.close() } catch { throw .archive(error) }
        buffer.deallocate()
        warnings += writer.warnings
    }

    // MARK: - helpers

    private mutating func writeRaw(_ batch: inout [UInt8], entryPath: String) throws(BackupError) {
        let result: Result<Void, ArchiveError> = batch.withUnsafeBytes { raw in
            do throws(ArchiveError) { try writer.writeData(raw, entryPath: entryPath); return .success(()) }
            catch { return .failure(error) }
        }
        do { try result.get() } catch { throw .archive(error) }
        batch.removeAll(keepingCapacity: true)
    }

    private mutating func writeHeader(_ entry: ArchiveEntry) throws(BackupError) {
        do { try writer.writeHeader(entry) } catch { throw .archive(error) }
        entryCount += 1
    }

    private mutating func diskEntry(fd: Int32, status: stat, sourcePath: PathBytes, archivePath: PathBytes) throws(BackupError) -> ArchiveEntry {
        var diskWarnings: [String] = []
        defer { diskWarnings.forEach { warn($0) } }
        // A file with as many blocks as bytes has no holes: no need to look for them.
        let mayBeSparse = Int64(status.st_blocks) * 512 < Int64(status.st_size)
        do {
            return try (mayBeSparse ? disk : denseDisk).entry(fileDescriptor: fd, status: status, displayPath: sourcePath.description,
                                                              archivePath: archivePath, warnings: &diskWarnings)
        } catch { throw .archive(error) }
    }

    private mutating func recordDigest(_ archivePath: PathBytes) {
        hasher.finalize(appendingTo: &digests)
        if let currentOwner {
            digestOwners.append(currentOwner)
        } else {
            namedPaths.append(archivePath)
            digestOwners.append(DigestOwner(section: -1, index: Int32(namedPaths.count - 1)))
        }
    }

    private mutating func advanceProgress(by bytes: Int64, molt: String) {
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

/// The target of the symlink `name` in `directoryFd`, as bytes (any length the kernel allows).
private func readLink(_ directoryFd: Int32, _ name: UnsafePointer<CChar>) -> PathBytes? {
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let length = buffer.withUnsafeMutableBufferPointer { raw in
            raw.withMemoryRebound(to: CChar.self) { readlinkat(directoryFd, name, $0.baseAddress!, $0.count) }
        }
        guard length >= 0 else { return nil }
        if length < buffer.count { return PathBytes(bytes: buffer[0..<length]) }
        buffer = [UInt8](repeating: 0, count: buffer.count * 2)
    }
}

/// The `sha256sum` line format. Names are written as bytes, as `sha256sum`
/// writes them; a name holding `\`, a newline or a carriage return gets GNU's
/// escaping (the line starts with `\`; those become `\\`, `\n`, `\r`).
public enum ChecksumList {
    static func line<Digest: Collection<UInt8>>(digest: Digest, path: PathBytes) -> [UInt8] {
        var line: [UInt8] = []
        line.reserveCapacity(path.count + 68)
        let needsEscape = path.bytes.contains { $0 == backslashByte || $0 == newlineByte || $0 == returnByte }
        if needsEscape { line.append(backslashByte) }
        line.append(contentsOf: hexString(digest).utf8)
        line += [UInt8(ascii: " "), UInt8(ascii: " ")]
        if needsEscape {
            for byte in path.bytes {
                switch byte {
                case backslashByte: line += [backslashByte, backslashByte]
                case newlineByte: line += [backslashByte, UInt8(ascii: "n")]
                case returnByte: line += [backslashByte, UInt8(ascii: "r")]
                default: line.append(byte)
                }
            }
        } else {
            line.append(contentsOf: path.bytes)
        }
        line.append(newlineByte)
        return line
    }

    /// Parses `sha256sum` output (bytes, not text: names need not be UTF-8)
    /// into path → lowercase hex digest. Text (`  `) and binary (` *`) lines both.
    public static func parse<Bytes: Collection<UInt8>>(_ data: Bytes) -> [PathBytes: String] {
        var result: [PathBytes: String] = [:]
        for rawLine in data.split(separator: newlineByte) {
            var line = Array(rawLine)
            let escaped = line.first == backslashByte
            if escaped { line.removeFirst() }
            guard line.count > 66 else { continue }
            let digest = String(decoding: line[0..<64], as: UTF8.self).lowercased()
            var path = Array(line[66...])
            if escaped {
                var unescaped: [UInt8] = []
                var index = 0
                while index < path.count {
                    let byte = path[index]
                    index += 1
                    guard byte == backslashByte, index < path.count else { unescaped.append(byte); continue }
                    let next = path[index]
                    index += 1
                    switch next {
                    case UInt8(ascii: "n"): unescaped.append(newlineByte)
                    case UInt8(ascii: "r"): unescaped.append(returnByte)
                    default: unescaped.append(next)
                    }
                }
                path = unescaped
            }
            result[PathBytes(path)] = digest
        }
        return result
    }
}

private let backslashByte = UInt8(ascii: "\\")
private let newlineByte = UInt8(ascii: "\n")
private let returnByte = UInt8(ascii: "\r")

/// Who a digest belongs to: entry `index` of molt `section`, or `namedPaths[index]` when `section` is -1.
private struct DigestOwner {
    let section: Int32
    let index: Int32
}

/// What a backup archives for a regular file: a database's consistent copy (in
/// memory when small, else an open, unlinked scratch file), nothing, or its bytes.
private enum DatabaseSnapshot {
    case inMemory([UInt8])
    case onDisk(Int32)
    /// A database that stayed locked: left out, with a warning.
    case missed
    case asIs
}

/// A regular file being archived: its name in the directory descriptor the
/// walk holds, and its paths on disk (for messages) and in the archive.
private struct FileLocation {
    let directory: Int32
    /// The name as text, nil when it is not UTF-8 (then no SQLite snapshot: see `databaseSnapshot`).
    let name: String?
    let sourcePath: PathBytes
    let archivePath: PathBytes
    let moltName: String
}
