import Foundation

/// Whether a backup archived everything, written on the archive file itself as
/// the extended attribute `user.clmnt.status` just before it is linked into
/// place, so `list-backups` and `restore --dry-run` learn it without reading
/// the archive to its end (where `backup-report.json` says the same in full).
///
/// `{"complete":false,"missed":3,"molts":{"alpha":3}}` (`molts`: missed files per molt).
/// A copy that lost its xattrs (scp, a filesystem without them) has no mark:
/// then only `fleet verify` can tell.
public struct BackupStatusMark: Codable, Sendable, Equatable {
    public static let attributeName = "user.clmnt.status"

    public var complete: Bool
    public var missed: Int
    public var molts: [String: Int]

    public init(missed files: [MissedFile]) {
        complete = files.isEmpty
        missed = files.count
        var perMolt: [String: Int] = [:]
        for file in files { perMolt[file.molt ?? ArchiveLayout.globalDir, default: 0] += 1 }
        molts = perMolt
    }

    /// Writes the mark on the open archive; the errno's text when the filesystem refuses.
    func write(to fd: Int32) -> String? {
        // A few numbers and names: encoding cannot fail.
        let value = Array(try! JSONStyle.compact(self))
        return FileAttribute.set(fd, name: Self.attributeName, value: value).map { String(cString: strerror($0)) }
    }

    /// The mark of the archive at `path` (opened without following a symlink), or nil when it has none.
    public static func read(path: String) -> BackupStatusMark? {
        guard let file = try? FileDescriptor.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK) else { return nil }
        return read(fd: file.rawValue)
    }

    /// The mark of the open archive `fd`, or nil when it has none.
    static func read(fd: Int32) -> BackupStatusMark? {
        guard let value = FileAttribute.get(fd, name: attributeName) else { return nil }
        return try? JSONDecoder().decode(BackupStatusMark.self, from: Data(value))
    }
}
