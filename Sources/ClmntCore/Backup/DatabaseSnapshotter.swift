import Foundation

/// Decides what a backup archives for a regular file that may be a live SQLite
/// database, and takes the snapshot: in memory when small, else in an unlinked
/// scratch file root creates beside the archive. Never runs SQLite as root
/// inside a home (`SQLiteSnapshot` does it with the owner's credentials).
struct DatabaseSnapshotter {
    /// Where large database snapshots are written for a moment (the archive's directory).
    let scratchDirectory: String
    let memoryLimit: Int64
    let busyTimeout: Duration
    /// Credentials of database owners, looked up once per uid.
    private var ownerCredentials: [UInt32: OwnerCredentials] = [:]

    init(scratchDirectory: String, memoryLimit: Int64, busyTimeout: Duration) {
        self.scratchDirectory = scratchDirectory
        self.memoryLimit = memoryLimit
        self.busyTimeout = busyTimeout
    }

    /// What to archive for the regular file open as `fd`: a consistent copy of a
    /// SQLite database, nothing (it stayed locked), or its bytes as they are.
    /// Every outcome but a clean snapshot or a plain file comes with a note.
    mutating func snapshot(fd: Int32, status: stat, location: FileLocation) -> (DatabaseSnapshot, SnapshotNote?) {
        let header = SQLiteSnapshot.header(of: fd, size: Int64(status.st_size))
        guard header != .notDatabase else { return (.asIs, nil) }
        let sourcePath = location.sourcePath
        // SQLite opens databases by name (its -wal file is found beside it): a
        // name that is not UTF-8 cannot be handed to it, so it is archived as read.
        guard let name = location.name else {
            return (.asIs, .warning("\(sourcePath): SQLite database whose name is not UTF-8: archived byte for byte with its -wal/-journal files, not snapshotted"))
        }
        // Root never runs SQLite inside a home, and has no owner to become here.
        guard status.st_uid != 0 else {
            return (.asIs, .warning("\(sourcePath): SQLite database owned by root inside a molt's home: archived byte for byte with its -wal/-journal files, not snapshotted"))
        }
        var walStatus = stat()
        let hasWal = fstatat(location.directory, name + "-wal", &walStatus, AT_SYMLINK_NOFOLLOW) == 0
        let source = SQLiteSource(directory: location.directory, name: name,
                                  owner: credentials(uid: status.st_uid, gid: status.st_gid),
                                  needsWriteAccessToCleanUp: header == .writeAheadLog && !hasWal)
        let snapshot: DatabaseSnapshot
        do throws(SQLiteError) {
            if Int64(status.st_size) <= memoryLimit {
                snapshot = .inMemory(try SQLiteSnapshot.capture(source, busyTimeout: busyTimeout))
            } else {
                snapshot = .onDisk(try snapshotToScratchFile(source))
            }
        } catch {
            return (error.isBusy ? .missed : .asIs, Self.note(for: error, sourcePath: sourcePath))
        }
        // SQLite opened the name again: make sure it was still our file (a dropped scratch file closes itself).
        var now = stat()
        guard fstatat(location.directory, name, &now, AT_SYMLINK_NOFOLLOW) == 0,
              now.st_dev == status.st_dev, now.st_ino == status.st_ino else {
            return (.asIs, .warning("\(sourcePath): replaced while backing up; archived as read"))
        }
        return (snapshot, nil)
    }

    private static func note(for error: SQLiteError, sourcePath: PathBytes) -> SnapshotNote {
        if error.isBusy {
            // Its bytes without a consistent -wal would be the torn copy snapshots exist to avoid.
            return .missed(detail: error.message, message: "\(sourcePath): NOT ARCHIVED: the SQLite database stayed locked (\(error))")
        }
        if error.isHotJournal {
            // A writer died mid-transaction: the file and its journal no longer change, and SQLite rolls back on next open.
            return .warning("\(sourcePath): SQLite database with a hot journal from an interrupted write: archived byte for byte together with its -journal")
        }
        return .warning("\(sourcePath): cannot snapshot it as a SQLite database (\(error.message)); archived byte for byte with its -wal/-journal files")
    }

    private mutating func credentials(uid: UInt32, gid: UInt32) -> OwnerCredentials {
        if let known = ownerCredentials[uid] { return known }
        let credentials = OwnerCredentials.of(uid: uid, gid: gid)
        ownerCredentials[uid] = credentials
        return credentials
    }

    /// Snapshots a large database into a 0600 file root creates beside the
    /// archive, and returns it open for reading, already unlinked.
    private func snapshotToScratchFile(_ source: SQLiteSource) throws(SQLiteError) -> ScratchSnapshot {
        let path = scratchDirectory + "/" + PartialFiles.scratchDatabaseName()
        do {
            _ = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0o600)
        } catch {
            throw SQLiteError("cannot create \(path): \(error.reason)", operation: "snapshot")
        }
        SignalCleanup.shared.register(path)
        defer {
            unlink(path)
            SignalCleanup.shared.unregister(path)
        }
        try SQLiteSnapshot.capture(source, intoFile: path, busyTimeout: busyTimeout)
        do { return ScratchSnapshot(file: try FileDescriptor.open(path, O_RDONLY | O_NOFOLLOW)) } catch {
            throw SQLiteError("cannot read \(path): \(error.reason)", operation: "snapshot")
        }
    }
}

/// What a backup archives for a regular file: a database's consistent copy (in
/// memory when small, else an open, unlinked scratch file), nothing, or its bytes.
enum DatabaseSnapshot {
    case inMemory([UInt8])
    case onDisk(ScratchSnapshot)
    /// A database that stayed locked: left out, with a note.
    case missed
    case asIs
}

/// An unlinked scratch copy of a database, open for reading; closed when dropped.
final class ScratchSnapshot {
    let file: FileDescriptor

    init(file: consuming FileDescriptor) { self.file = file }
}

/// What the backup should say about a file's snapshot.
enum SnapshotNote {
    case warning(String)
    /// Not archived at all: the backup exits 3.
    case missed(detail: String, message: String)
}

/// A regular file being archived: its name in the directory descriptor the
/// walk holds, and its paths on disk (for messages) and in the archive.
struct FileLocation {
    let directory: Int32
    /// The name as text, nil when it is not UTF-8 (then no SQLite snapshot).
    let name: String?
    let sourcePath: PathBytes
    let archivePath: PathBytes
    let moltName: String
}
