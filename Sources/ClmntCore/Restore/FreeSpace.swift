import Foundation

/// Free space and inodes of a file system, checked before a restore writes anything.
struct FreeSpace: Equatable, Sendable {
    var bytes: Int64
    /// nil where the file system sets no inode limit (btrfs reports 0 of 0).
    var inodes: Int64?

    /// The file system holding the open directory `fd`.
    static func of(_ fd: Int32) -> FreeSpace? {
        var info = statvfs()
        guard fstatvfs(fd, &info) == 0 else { return nil }
        return FreeSpace(info)
    }

    /// The file system `path` would be on: its nearest existing ancestor's.
    static func of(path: String) -> FreeSpace? {
        var candidate = path
        var info = statvfs()
        while statvfs(candidate, &info) != 0 {
            guard errno == ENOENT, candidate != "/" else { return nil }
            candidate = (candidate as NSString).deletingLastPathComponent
            if candidate.isEmpty { candidate = "/" }
        }
        return FreeSpace(info)
    }

    private init(_ info: statvfs) {
        bytes = Int64(info.f_bavail) * Int64(info.f_frsize)
        inodes = info.f_files == 0 ? nil : Int64(info.f_favail)
    }

    /// What restoring molts of `bytes` in `entries` entries takes: their data plus
    /// a block per entry (directories, tails of files, small files).
    static func needed(bytes: Int64, entries: Int) -> (bytes: Int64, inodes: Int64) {
        (bytes + Int64(entries) * 4096, Int64(entries))
    }
}
