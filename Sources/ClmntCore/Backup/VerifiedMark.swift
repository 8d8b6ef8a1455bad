import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// That `fleet verify` read an archive whole and found it intact and complete,
/// written on the archive as the extended attribute `trusted.clmnt.verified`.
///
/// The `trusted.` namespace is readable and writable only with CAP_SYS_ADMIN, so
/// the mark is root's word: the archive's owner (or a molt that copied it there)
/// cannot forge it, unlike a `user.` attribute or a file beside the archive. It
/// records the file's size and modification time as verified: an archive changed
/// afterwards no longer matches and counts as unverified. Used for archives that
/// carry no `BackupStatusMark` (the bash tool's, or a copy that lost its xattrs),
/// so `fleet doctor`'s "run clmnt fleet verify" advice clears once verify says OK.
public struct VerifiedMark: Codable, Sendable, Equatable {
    public static let attributeName = "trusted.clmnt.verified"

    /// When verify found it intact (ISO-8601 UTC).
    public var verified: String
    public var size: Int64
    public var mtimeSeconds: Int
    public var mtimeNanoseconds: Int

    enum CodingKeys: String, CodingKey {
        case verified, size
        case mtimeSeconds = "mtime_s"
        case mtimeNanoseconds = "mtime_ns"
    }

    init(_ info: stat, verified: Date) {
        self.verified = Timestamp.format(verified)
        size = Int64(info.st_size)
        mtimeSeconds = info.st_mtim.tv_sec
        mtimeNanoseconds = info.st_mtim.tv_nsec
    }

    /// The archive at `path`, opened without following a symlink, as it is before a verify.
    public static func open(_ path: String) -> VerifiedArchive? {
        guard let file = try? FileDescriptor.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK),
              let info = try? file.status(), (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return VerifiedArchive(file: file, before: info)
    }

    /// The mark of the archive at `path` when it still matches the file; nil otherwise
    /// (no mark, not root, or the file changed since it was verified).
    public static func read(path: String) -> VerifiedMark? {
        guard let archive = open(path) else { return nil }
        guard let value = FileAttribute.get(archive.fd, name: attributeName),
              let mark = try? JSONDecoder().decode(VerifiedMark.self, from: Data(value)) else { return nil }
        return mark == VerifiedMark(archive.before, verified: Timestamp.parse(mark.verified) ?? Date()) ? mark : nil
    }
}

/// An archive held open across `fleet verify`, so the mark lands on the file that was read.
public final class VerifiedArchive: @unchecked Sendable {
    private let file: FileDescriptor
    var fd: Int32 { file.rawValue }
    let before: stat

    init(file: consuming FileDescriptor, before: stat) {
        self.file = file
        self.before = before
    }

    /// Marks the file verified now, if `path` (which verify read) is still this file and
    /// it did not change while it was read; the reason when not.
    public func markVerified(path: String, now: Date = Date()) -> String? {
        var after = stat(), named = stat()
        guard fstat(fd, &after) == 0 else { return String(cString: strerror(errno)) }
        guard lstat(path, &named) == 0, named.st_dev == before.st_dev, named.st_ino == before.st_ino else {
            return "\(path) was replaced while it was read"
        }
        guard after.st_size == before.st_size, after.st_mtim.tv_sec == before.st_mtim.tv_sec,
              after.st_mtim.tv_nsec == before.st_mtim.tv_nsec else { return "it changed while it was read" }
        // A date and three numbers: encoding cannot fail.
        let value = Array(try! JSONStyle.compact(VerifiedMark(after, verified: now)))
        return FileAttribute.set(fd, name: VerifiedMark.attributeName, value: value).map { String(cString: strerror($0)) }
    }

}
