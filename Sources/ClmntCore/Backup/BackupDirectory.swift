import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The backup dir as root trusts it, and the one listing of the archives in it that
/// `list-backups`, `fleet prune`, `fleet backup --keep`, `doctor`, `schedule --status`
/// and the dashboard share.
///
/// Root believes only what root wrote. The directory must belong to root (or to the
/// user running clmnt) and be closed to its group and to others: whoever can write
/// there can plant an archive or replace one. A file counts as an archive only when it
/// is a regular file of that owner with one link (a hard link could be anyone's file).
/// Everything is read through descriptors: the directory's, then each file's, opened
/// `O_NOFOLLOW | O_NONBLOCK` (a symlink is never followed, a FIFO never blocks),
/// checked with `fstat` on that descriptor, its manifest read from that descriptor.
public enum BackupDirectory {
    /// How far after this host's clock a manifest's timestamp may be (NTP'd clocks differ by less).
    public static let clockSkew: TimeInterval = 300
    /// How far a manifest's timestamp (the backup's start) may be from the archive's mtime
    /// (its commit): a backup is written within a day.
    public static let mtimeDistance: TimeInterval = 86_400

    /// Why a backup dir with this status cannot hold archives root trusts; nil when it can.
    public static func trustProblem(_ info: stat) -> String? {
        if info.st_uid != 0 && info.st_uid != geteuid() {
            return "it belongs to \(ownerName(info.st_uid)), not to \(trustedOwners)"
        }
        let mode = UInt32(info.st_mode) & 0o7777
        if mode & 0o022 != 0 {
            let who = mode & 0o002 != 0 ? "others" : "its group"
            return "it is writable by \(who) (mode \(String(format: "%04o", mode))), who could plant or replace archives"
        }
        return nil
    }

    /// Why the backup dir at `path` is not trusted; nil when it is trusted or does not exist
    /// (it is then created 0700). For `doctor`.
    public static func trustProblem(path: String) -> String? {
        do {
            _ = try openDirectory(path, requireTrusted: true)
            return nil
        } catch {
            if case .untrustedBackupDir(_, let reason) = error { return reason }
            return error.description
        }
    }

    /// Refuses (`BackupError.untrustedBackupDir`) a backup dir others could plant archives in;
    /// a missing one passes.
    public static func requireTrusted(_ path: String) throws(BackupError) {
        _ = try openDirectory(path, requireTrusted: true)
    }

    /// The directory at `path` opened (a symlink the admin chose as the backup dir is
    /// followed; what was opened is checked); nil when it does not exist.
    static func openDirectory(_ path: String, requireTrusted: Bool) throws(BackupError) -> FileDescriptor? {
        let directory: FileDescriptor
        do { directory = try FileDescriptor.open(path, O_RDONLY | O_DIRECTORY) } catch {
            if error.code == ENOENT { return nil }
            throw .unreadable(path: path, reason: error.code == ENOTDIR ? "not a directory" : error.reason)
        }
        guard requireTrusted else { return directory }
        let info: stat
        do { info = try directory.status() } catch { throw .unreadable(path: path, reason: error.reason) }
        if let problem = trustProblem(info) { throw .untrustedBackupDir(path: path, reason: problem) }
        return directory
    }

    /// The files of the open directory `dirFD` whose names `include` accepts, byte-sorted,
    /// each examined as the type's comment says. Names are bytes: one that is not UTF-8 is
    /// listed too (its `path` carries the escaped form).
    static func scan(_ dirFD: Int32, directory: String, now: Date = Date(),
                     including include: (PathBytes) -> Bool) throws(BackupError) -> [ArchiveFile] {
        let names: [PathBytes]
        do { names = try directoryEntryNames(dirFD, path: directory) } catch { throw .unreadable(path: directory, reason: error.reason) }
        return names.filter(include).map { examine($0, in: dirFD, directory: directory, now: now) }
    }

    private static func examine(_ name: PathBytes, in dirFD: Int32, directory: String, now: Date) -> ArchiveFile {
        var file = ArchiveFile(name: name, path: directory + "/" + name.description)
        // Classified before opening: a device or FIFO is never opened at all.
        var seen = stat()
        guard name.withCString({ fstatat(dirFD, $0, &seen, AT_SYMLINK_NOFOLLOW) }) == 0 else {
            file.refused = errnoText()
            return file
        }
        switch UInt32(seen.st_mode) & FileType.mask {
        case FileType.regular: file.isRegular = true
        case FileType.symlink: file.refused = "a symlink (not followed)"; return file
        default: file.refused = "not a regular file"; return file
        }
        let opened: FileDescriptor
        do { opened = try FileDescriptor.open(name, in: dirFD, O_RDONLY | O_NONBLOCK | O_NOCTTY, path: file.path) } catch {
            file.refused = "cannot open: \(error.reason)"
            return file
        }
        let fd = opened.rawValue
        var info = stat()
        guard fstat(fd, &info) == 0, UInt32(info.st_mode) & FileType.mask == FileType.regular else {
            file.refused = "replaced while being examined"
            return file
        }
        if info.st_uid != 0 && info.st_uid != geteuid() {
            file.refused = "belongs to \(ownerName(info.st_uid)), not to \(trustedOwners); not read"
            return file
        }
        if info.st_nlink != 1 {
            file.refused = "has \(info.st_nlink) links (another name may be anyone's file); not read"
            return file
        }
        file.identity = InodeKey(info)
        file.sizeBytes = Int64(info.st_size)
        file.modified = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
        // libarchive takes a path: the descriptor's own, so what is read is what was checked.
        let descriptorPath = "/proc/self/fd/\(fd)"
        do {
            let located = try BackupCatalog.locate(path: descriptorPath)
            file.located = located
            file.untrustedDate = dateProblem(timestamp: located.manifest.timestamp, modified: file.modified, now: now)
        } catch {
            if case .archive(let archiveError) = error, archiveError.age == .identityRequired {
                // The name gives the day (written by root, as the manifest); the mtime the time within it.
                let modified = Timestamp.format(Date(timeIntervalSince1970: file.modified))
                let named = BackupCatalog.dateFromName(file.path)
                let date = named.flatMap(Timestamp.parse).map { abs($0.timeIntervalSince1970 - file.modified) < 86_400 } == false
                    ? named! : modified
                file.encryptedDate = date
                file.untrustedDate = dateProblem(timestamp: date, modified: file.modified, now: now)
            } else {
                file.unreadable = error.description.replacingOccurrences(of: descriptorPath, with: file.path)
            }
        }
        file.mark = BackupStatusMark.read(fd: fd)
        return file
    }

    /// Why a manifest's `timestamp` may not rank its archive: not a date, in the future
    /// (beyond `clockSkew`), or more than `mtimeDistance` from the file's mtime. Nil: trusted.
    static func dateProblem(timestamp: String, modified: Double, now: Date) -> String? {
        guard let date = Timestamp.parse(timestamp) else { return "its manifest's timestamp is not a date" }
        if date.timeIntervalSince(now) > clockSkew {
            return "dated \(Timestamp.format(date)), more than 5 minutes after this host's clock"
        }
        if abs(date.timeIntervalSince1970 - modified) > mtimeDistance {
            return "dated \(Timestamp.format(date)) but written \(Timestamp.format(Date(timeIntervalSince1970: modified))), "
                + "more than a day apart"
        }
        return nil
    }

    /// `root`, or `root or <user>` when clmnt runs as another user.
    private static var trustedOwners: String {
        geteuid() == 0 ? "root" : "root or \(invokingUserName())"
    }

    private static func ownerName(_ uid: uid_t) -> String {
        UserAccounts.user(uid: uid).map { "\($0.name) (uid \(uid))" } ?? "uid \(uid)"
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}

/// One file named like an archive in a backup dir, as `BackupDirectory.scan` found it.
struct ArchiveFile {
    /// The name as the directory holds it: bytes, not always UTF-8.
    var name: PathBytes
    /// `directory/name`, the name in its escaped form (lossless: `PathBytes(escaped:)`).
    var path: String
    /// A regular file (seen without following a link); list-backups shows the regular files it refused.
    var isRegular = false
    /// Why the file was not read: a symlink, not a regular file, another owner, several links.
    var refused: String?
    var identity = InodeKey(device: 0, inode: 0)
    var sizeBytes: Int64 = 0
    var modified: Double = 0
    /// The manifest (first entry), for a file read.
    var located: LocatedManifest?
    /// Why a file read is no fleet archive.
    var unreadable: String?
    /// Age-encrypted, and no identity was given to read it: dated by its name (or mtime).
    var encryptedDate: String?
    /// Why its manifest's timestamp may not rank it (`BackupDirectory.dateProblem`).
    var untrustedDate: String?
    var mark: BackupStatusMark?
}
