import Foundation

/// Where `StreamingSession.writeMolt` is in a molt's tree: the chain of open
/// parent directories, what was snapshotted in each, the hard links seen, and
/// the molt's running counts.
struct MoltWalk {
    let molt: Molt
    let moltIndex: Int
    let tree: ScannedTree
    let moltName: PathBytes
    let home: PathBytes
    /// Open directories, innermost last; index = depth (0 is the base dir).
    let directories = DescriptorStack()
    /// Per open directory: the databases snapshotted in it, whose sidecars stay out.
    var snapshotted: [Set<PathBytes>] = [[]]
    var seenInodes: [InodeKey: PathBytes] = [:]
    var section = Manifest.SectionStats()

    init(molt: Molt, index: Int, tree: ScannedTree, base: consuming FileDescriptor) {
        self.molt = molt
        moltIndex = index
        self.tree = tree
        moltName = PathBytes(molt.name)
        home = PathBytes(molt.home)
        directories.push(base)
    }

    /// Closes the directories deeper than `depth`; false when `depth`'s parent is not open
    /// (it was skipped, with everything below it).
    mutating func leave(toDepth depth: Int) -> Bool {
        while directories.count > depth + 1 {
            directories.pop()
            snapshotted.removeLast()
        }
        return directories.count == depth + 1
    }

    mutating func enter(_ directory: consuming FileDescriptor) {
        directories.push(directory)
        snapshotted.append([])
    }
}

/// One scanned entry being written: its depth, paths and parent's descriptor.
struct WalkStep {
    let scanned: ScannedEntry
    let entryIndex: Int
    let depth: Int
    let relativePath: PathBytes
    let sourcePath: PathBytes
    let archivePath: PathBytes
    let parent: Int32
}

extension StreamingSession {
    mutating func writeMolt(_ molt: Molt, index moltIndex: Int, tree: ScannedTree, baseDir: String) throws(BackupError) {
        let base: FileDescriptor
        do { base = try FileDescriptor.open(baseDir, O_RDONLY | O_DIRECTORY) } catch {
            throw .unreadable(path: baseDir, reason: error.reason)
        }
        var walk = MoltWalk(molt: molt, index: moltIndex, tree: tree, base: base)
        var paths = TreePathBuilder()
        var skipBelowDepth = Int.max
        currentMolt = molt.name
        defer { currentMolt = nil }
        for (entryIndex, scanned) in tree.entries.enumerated() {
            let depth = Int(scanned.depth)
            let relativePath = paths.relativePath(of: scanned, in: tree)
            if depth > skipBelowDepth { continue }
            skipBelowDepth = Int.max
            guard walk.leave(toDepth: depth) else { continue }
            let step = WalkStep(scanned: scanned, entryIndex: entryIndex, depth: depth, relativePath: relativePath,
                                sourcePath: depth == 0 ? walk.home : walk.home.appending(relativePath),
                                archivePath: depth == 0 ? walk.moltName + "/" : walk.moltName.appending(relativePath),
                                parent: walk.directories[depth])
            switch scanned.kind {
            case .directory:
                if try !writeDirectory(step, walk: &walk) { skipBelowDepth = depth }
            case .symlink:
                try writeSymlink(step, walk: &walk)
            case .regular, .databaseSidecar:
                try writeFile(step, walk: &walk)
            }
        }
        stats[molt.name] = walk.section
        if beyondPlan[molt.name] == nil { beyondPlan[molt.name] = Manifest.SectionStats() }  // stated, even when nothing was
    }

    /// Opens `step`'s entry (names are bytes from the scan's arena, handed to openat as they are).
    private func open(_ step: WalkStep, _ flags: Int32, walk: MoltWalk) throws(SystemError) -> FileDescriptor {
        let fd = step.depth == 0
            ? walk.molt.name.withCString { openat(step.parent, $0, flags | O_NOFOLLOW | O_CLOEXEC) }
            : walk.tree.withName(of: step.scanned) { openat(step.parent, $0, flags | O_NOFOLLOW | O_CLOEXEC) }
        guard fd >= 0 else { throw SystemError(path: step.sourcePath.description) }
        return FileDescriptor(adopting: fd, path: step.sourcePath.description)
    }

    /// Opens a regular file to read without touching its access time where allowed
    /// (O_NOATIME: root on any file, others on their own).
    private func openFile(_ step: WalkStep, walk: MoltWalk) throws(SystemError) -> FileDescriptor {
        do { return try open(step, O_RDONLY | O_NONBLOCK | LinuxCalls.noAccessTime, walk: walk) } catch where error.code == EPERM {
            return try open(step, O_RDONLY | O_NONBLOCK, walk: walk)
        }
    }

    /// False when the directory could not be opened as the one scanned: it is skipped with everything below it.
    private mutating func writeDirectory(_ step: WalkStep, walk: inout MoltWalk) throws(BackupError) -> Bool {
        let directory: FileDescriptor
        do { directory = try open(step, O_RDONLY | O_DIRECTORY, walk: walk) } catch {
            missUnopened(step, error.code)
            return false
        }
        guard let status = verifiedStatus(directory, step) else { return false }
        let entry = try diskEntry(fd: directory.rawValue, status: status, sourcePath: step.sourcePath, archivePath: step.archivePath)
        walk.enter(directory)
        try writeHeader(entry)
        walk.section.entryCount += 1
        return true
    }

    private mutating func writeSymlink(_ step: WalkStep, walk: inout MoltWalk) throws(BackupError) {
        var status = stat()
        let statusRead = step.depth == 0
            ? walk.molt.name.withCString { fstatat(step.parent, $0, &status, AT_SYMLINK_NOFOLLOW) }
            : walk.tree.withName(of: step.scanned) { fstatat(step.parent, $0, &status, AT_SYMLINK_NOFOLLOW) }
        let name = step.depth == 0 ? walk.moltName : walk.tree.name(of: step.scanned)
        guard statusRead == 0, (UInt32(status.st_mode) & FileType.mask) == FileType.symlink,
              let target = readLink(step.parent, name) else {
            miss(step.sourcePath, .vanished, "gone or no longer a symlink",
                 "\(step.sourcePath): vanished or changed type while backing up; skipped")
            return
        }
        if !EntryPolicy.symlinkStaysInside(linkPath: step.relativePath, target: target, homes: [walk.home]) {
            // Archived as it is, but an admin should learn now, not at restore time.
            warn("\(step.sourcePath): symlink points outside the molt (\(target)); fleet restore needs --allow-outside-symlinks for it")
        }
        try writeHeader(disk.symlinkEntry(status: status, target: target, archivePath: step.archivePath))
        walk.section.entryCount += 1
        walk.section.fileCount += 1
    }

    private mutating func writeFile(_ step: WalkStep, walk: inout MoltWalk) throws(BackupError) {
        let name = step.depth == 0 ? walk.moltName : walk.tree.name(of: step.scanned)
        let unplanned = step.scanned.kind == .databaseSidecar
        if unplanned, let base = SQLiteSidecar.base(of: name) {
            if walk.snapshotted[step.depth].contains(base) { return }  // the snapshot holds its content
            warn("\(step.sourcePath): archived, as its database \(base) was not snapshotted")
        }
        let file: FileDescriptor
        do { file = try openFile(step, walk: walk) } catch {
            missUnopened(step, error.code)
            return
        }
        guard let status = verifiedStatus(file, step) else { return }
        let location = FileLocation(directory: step.parent, name: name.string, sourcePath: step.sourcePath,
                                    archivePath: step.archivePath, moltName: walk.molt.name)
        // The plan left a database's sidecar out: whatever of it is archived is beyond the plan.
        let before = walk.section
        writingUnplanned = unplanned
        if try writeRegularFile(fd: file.rawValue, status: status, scanned: step.scanned, location: location,
                                seenInodes: &walk.seenInodes, section: &walk.section) {
            walk.snapshotted[step.depth].insert(name)
        }
        writingUnplanned = false
        if unplanned {
            var extra = beyondPlan[walk.molt.name] ?? Manifest.SectionStats()
            extra.entryCount += walk.section.entryCount - before.entryCount
            extra.fileCount += walk.section.fileCount - before.fileCount
            extra.backupSizeBytes += walk.section.backupSizeBytes - before.backupSizeBytes
            beyondPlan[walk.molt.name] = extra
        }
    }

    /// Counts a file archived at `archived` bytes that the scan saw at `scanned` (the manifest's size).
    private mutating func noteGrowth(archived: Int64, scanned: Int64) {
        guard let molt = currentMolt, archived > scanned, !writingUnplanned else { return }
        beyondPlan[molt, default: Manifest.SectionStats()].backupSizeBytes += archived - scanned
    }

    /// Records an entry that could not be opened (errno `code`) as missed.
    private mutating func missUnopened(_ step: WalkStep, _ code: Int32) {
        let reason = code == ELOOP ? "replaced by a symlink" : SystemError.text(of: code)
        let problem: MissedFile.Problem = code == ELOOP ? .replaced : code == ENOENT || code == ENOTDIR ? .vanished : .unreadable
        let below = step.scanned.kind == .directory ? " with everything below it" : ""
        miss(step.sourcePath, problem, reason, "\(step.sourcePath): \(reason) while backing up; skipped\(below)")
    }

    /// Checks that `file` is the file the scan saw; records a miss and returns nil if not.
    private mutating func verifiedStatus(_ file: borrowing FileDescriptor, _ step: WalkStep) -> stat? {
        let status: stat
        do { status = try file.status() } catch {
            miss(step.sourcePath, .unreadable, error.reason, "\(step.sourcePath): \(error.reason); skipped")
            return nil
        }
        guard UInt64(status.st_dev) == step.scanned.device, UInt64(status.st_ino) == step.scanned.inode else {
            miss(step.sourcePath, .replaced, "another file is at its path now", "\(step.sourcePath): replaced while backing up; skipped")
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
        let (snapshot, note) = databases.snapshot(fd: fd, status: status, location: location)
        switch note {
        case .warning(let message): warn(message)
        case .missed(let detail, let message): miss(sourcePath, .locked, detail, message)
        case nil: break
        }
        if case .missed = snapshot { return false }
        if status.st_nlink > 1 { seenInodes[key] = archivePath }
        section.entryCount += 1
        section.fileCount += 1
        switch snapshot {
        case .inMemory(let bytes):
            noteGrowth(archived: Int64(bytes.count), scanned: scanned.size)
            try writeInMemoryFile(bytes, entry: entry, section: &section)
            return true
        case .onDisk(let scratch):
            let snapshotStatus: stat
            do { snapshotStatus = try scratch.file.status() } catch { throw .unreadable(path: error.path, reason: error.reason) }
            entry.clearSparse()
            entry.size = Int64(snapshotStatus.st_size)
            noteGrowth(archived: entry.size, scanned: scanned.size)
            try writeHeader(entry)
            _ = try streamData(from: scratch.file.rawValue, entry: entry, sourcePath: sourcePath.description)
            try digests.record(hasher, archivePath: archivePath)
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
        let outcome = try streamData(from: fd, entry: entry, sourcePath: sourcePath.description)
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
        try digests.record(hasher, archivePath: archivePath)
        section.backupSizeBytes += entry.size
        advanceProgress(by: entry.size, molt: location.moltName)
        return false
    }
}

/// The target of the symlink `name` in `directory`, as bytes (any length the kernel allows).
private func readLink(_ directory: Int32, _ name: PathBytes) -> PathBytes? {
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let length = name.withCString { cName in
            buffer.withUnsafeMutableBufferPointer { raw in
                raw.withMemoryRebound(to: CChar.self) { readlinkat(directory, cName, $0.baseAddress!, $0.count) }
            }
        }
        guard length >= 0 else { return nil }
        if length < buffer.count { return PathBytes(bytes: buffer[0..<length]) }
        buffer = [UInt8](repeating: 0, count: buffer.count * 2)
    }
}
