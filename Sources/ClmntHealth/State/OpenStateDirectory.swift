import ClmntCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `.molt-state` opened through descriptors; every file is reached relative to `fd`.
final class OpenStateDirectory {
    let directory: FileDescriptor
    var fd: Int32 { directory.rawValue }
    var path: String { directory.path }
    /// The molt's user: files must be its (or root's), and new ones are given to it.
    let uid: uid_t
    let gid: gid_t

    init(directory: consuming FileDescriptor, uid: uid_t, gid: gid_t) {
        self.directory = directory
        self.uid = uid
        self.gid = gid
    }

    /// Why a file or directory with this status may not be used, or nil.
    func ownerProblem(_ info: stat) -> String? {
        info.st_uid == uid || info.st_uid == 0 ? nil : "belongs to uid \(info.st_uid), not to the molt's user (uid \(uid)) or root"
    }

    /// Why the file with this status may not be used, or nil.
    func fileProblem(_ info: stat) -> String? {
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFLNK: return "is a symbolic link"
        case S_IFIFO: return "is a FIFO"
        case S_IFDIR: return "is a directory"
        default: return "is not a regular file"
        }
        if info.st_nlink > 1 { return "has \(info.st_nlink) hard links" }
        return ownerProblem(info)
    }

    /// Opens `name` (O_NOFOLLOW, O_NONBLOCK so a FIFO cannot block us) and checks it
    /// with `fileProblem`; nil when missing and not `create`d. A file created here is
    /// given to the molt's user through its descriptor.
    func openFile(_ name: String, writing: Bool, create: Bool) throws(HealthError) -> FileDescriptor? {
        let display = path + "/" + name
        // O_RDWR for appending: the last byte is read to see whether the file ends in a cut line.
        let flags = (writing ? O_RDWR | O_APPEND : O_RDONLY) | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC
        var fd: Int32 = -1
        var created = false
        for _ in 0..<5 {
            fd = openat(self.fd, name, flags)
            if fd >= 0 || errno != ENOENT || !create { break }
            fd = openat(self.fd, name, flags | O_CREAT | O_EXCL, 0o644)
            if fd >= 0 { created = true; break }
            if errno != EEXIST { break }
        }
        guard fd >= 0 else {
            switch errno {
            case ENOENT where !create: return nil
            case ELOOP: throw .unsafeStateFile(path: display, reason: "is a symbolic link")
            case ENXIO: throw .unsafeStateFile(path: display, reason: "is a FIFO")
            default: throw writing || create ? .cannotWrite(path: display, reason: errnoText()) : .cannotRead(path: display, reason: errnoText())
            }
        }
        let file = FileDescriptor(adopting: fd, path: display)
        let info: stat
        do { info = try file.status() } catch { throw .cannotRead(path: display, reason: error.reason) }
        if let problem = fileProblem(info) { throw .unsafeStateFile(path: display, reason: problem) }
        if created, geteuid() == 0 { _ = fchown(fd, uid, gid) }
        return file
    }

    /// `replace`'s temp name for `name`: `.<name>.<random base-36 UInt32>`.
    static func temporaryName(of name: String) -> String {
        ".\(name).\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
    }

    /// Whether `entry` has the shape of `temporaryName(of: name)` (1 to 7 base-36 digits).
    static func isTemporary(_ entry: String, of name: String) -> Bool {
        let prefix = ".\(name)."
        guard entry.hasPrefix(prefix) else { return false }
        let suffix = entry.utf8.dropFirst(prefix.utf8.count)
        return (1...7).contains(suffix.count)
            && suffix.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) }
    }

    /// Temp files of a writer killed before its `renameat` would stay here forever.
    /// Older than this, none is a live writer's (a write takes milliseconds).
    static let staleTemporaryAge: time_t = 10 * 60

    /// Removes `replace`'s temp files for `name` that a killed writer left: only names of
    /// `temporaryName`'s shape, only files `fileProblem` accepts (regular, one link, the molt's
    /// or root's), only ones older than `staleTemporaryAge`; by name relative to this directory's
    /// descriptor (`unlinkat` follows nothing). Best effort: a failure leaves the file for the next writer.
    func removeStaleTemporaries(of name: String, now: time_t = time(nil)) {
        for entry in (try? directoryNames(fd)) ?? [] where Self.isTemporary(entry, of: name) {
            var info = stat()
            guard fstatat(fd, entry, &info, AT_SYMLINK_NOFOLLOW) == 0, fileProblem(info) == nil,
                  now - info.st_mtim.tv_sec > Self.staleTemporaryAge else { continue }
            unlinkat(fd, entry, 0)
        }
    }

    /// Gives a file that root left here (make-fleet, an older clmnt) to the molt's user; checked like any other.
    func handOver(_ name: String) throws(HealthError) {
        guard let file = try openFile(name, writing: false, create: false) else { return }
        if geteuid() == 0 { _ = fchown(file.rawValue, uid, gid) }
    }

    /// Replaces `name` with `data`: a new file under a temp name, fsynced, owned by the
    /// molt's user, then `renameat` over it. An existing `name` must pass `fileProblem`.
    func replace(_ name: String, with data: Data) throws(HealthError) {
        let display = path + "/" + name
        var existing = stat()
        if fstatat(fd, name, &existing, AT_SYMLINK_NOFOLLOW) == 0, let problem = fileProblem(existing) {
            throw .unsafeStateFile(path: display, reason: problem)
        }
        removeStaleTemporaries(of: name)
        do {
            try SafeFileSystem.writeFile(at: fd, name, data: data, owner: geteuid() == 0 ? (uid, gid) : nil, mode: 0o644,
                                         displayPath: display, temporaryName: Self.temporaryName(of:))
        } catch {
            throw .cannotWrite(path: display, reason: error.reason)
        }
    }
}
