import CArchive
import Foundation

/// Reads a file's metadata the way bsdtar does (owner names, xattrs, ACLs,
/// sparse map, file flags) through libarchive's disk reader, from a
/// descriptor the caller opened with O_NOFOLLOW: never from a path that could
/// have been swapped for a symlink.
final class DiskMetadataReader {
    private let handle: OpaquePointer

    /// `detectSparse: false` skips the SEEK_DATA/SEEK_HOLE probing (six lseeks a
    /// file) for files whose allocated blocks show they have no holes.
    init(detectSparse: Bool = true) {
        guard let handle = archive_read_disk_new() else { fatalError("archive_read_disk_new failed") }
        self.handle = handle
        archive_read_disk_set_standard_lookup(handle)
        archive_read_disk_set_symlink_physical(handle)
        if !detectSparse { archive_read_disk_set_behavior(handle, ARCHIVE_READDISK_NO_SPARSE) }
    }

    deinit { archive_read_free(handle) }

    /// An entry for the open file or directory `fd`, whose `fstat` is `status`.
    /// Warnings (an unreadable xattr, say) are appended to `warnings`, naming `displayPath`.
    func entry(fileDescriptor fd: Int32, status: stat, displayPath: @autoclosure () -> String, archivePath: PathBytes,
               warnings: inout [String]) throws(ArchiveError) -> ArchiveEntry {
        let entry = ArchiveEntry()
        // libarchive reads a directory's default ACL by path: give it the
        // descriptor's own path, which works at any depth, for any name, and
        // cannot be swapped for a symlink meanwhile.
        archive_entry_copy_sourcepath(entry.pointer, "/proc/self/fd/\(fd)")
        entry.pathname = archivePath
        var status = status
        try checkArchive(archive_read_disk_entry_from_file(handle, entry.pointer, fd, &status),
                         handle, .read, path: displayPath(), warnings: &warnings)
        return entry
    }

    /// An entry for a symlink (links carry no xattrs or ACLs on Linux worth keeping).
    func symlinkEntry(status: stat, target: PathBytes, archivePath: PathBytes) -> ArchiveEntry {
        let entry = ArchiveEntry()
        var status = status
        archive_entry_copy_stat(entry.pointer, &status)
        entry.pathname = archivePath
        entry.symlink = target
        if let name = archive_read_disk_uname(handle, Int64(status.st_uid)) { archive_entry_copy_uname(entry.pointer, name) }
        if let name = archive_read_disk_gname(handle, Int64(status.st_gid)) { archive_entry_copy_gname(entry.pointer, name) }
        return entry
    }

    func userName(uid: UInt32) -> String? { archive_read_disk_uname(handle, Int64(uid)).map { String(cString: $0) } }
    func groupName(gid: UInt32) -> String? { archive_read_disk_gname(handle, Int64(gid)).map { String(cString: $0) } }
}
