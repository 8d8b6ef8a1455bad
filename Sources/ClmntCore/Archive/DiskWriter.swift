import CArchive
import CLinux
import Foundation

/// Writes entries read by an `ArchiveReader` below a root directory, by
/// directory descriptors only, so names are bytes and depth is unlimited:
/// each entry's parent is reached with `openat(..., O_NOFOLLOW)` from the
/// root (the chain of open parents is kept, as entries come depth first).
/// Directories are made with `mkdirat` and get their owner, mode, xattrs,
/// ACLs and times through their own descriptor when the walk leaves them.
/// Regular files and symlinks go through libarchive's `archive_write_disk`
/// (data, sparse holes, xattrs, ACLs, owner, mode, times) with the thread's
/// working directory set to their parent and only their last component as a
/// name, with the SECURE_* flags. The caller runs it on a thread with its own
/// working directory, one `DiskWriter` at a time (libarchive 3.6.2's disk
/// writer changes the umask while it works, CVE-2023-30571).
final class DiskWriter {
    private let handle: OpaquePointer
    /// The directory every path is relative to (not owned).
    private let root: Int32
    /// Warnings libarchive or the xattr filter reported (one line each).
    private(set) var warnings: [String] = []
    private var isOpen = true
    private let zeros = [UInt8](repeating: 0, count: 64 * 1024)
    /// The open directories from the root down to the last entry's parent.
    private var openDirectories: [OpenDirectory] = []
    /// Times of the directories near the top (a home and its children), set
    /// at `close()`, after the caller's rewrites there.
    private var lateTimes: [(path: [PathBytes], times: [timespec])] = []
    private let userID: (String) -> UInt32?
    private let groupID: (String) -> UInt32?

    /// What was written for one regular file.
    struct WrittenFile {
        /// Apparent size (holes of sparse files included).
        var size: Int64
        /// SHA-256 of the content (holes as zeros), nil when not asked for.
        var digest: String?
    }

    static let flags: Int32 = ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT
        | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM
        | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_ACL | ARCHIVE_EXTRACT_XATTR

    /// `root` stays open while the writer works; `userID`/`groupID` map the
    /// names of ACL entries of directories to ids here (files' ACLs go through
    /// libarchive's standard lookup, which does the same).
    init(root: Int32, userID: @escaping (String) -> UInt32?, groupID: @escaping (String) -> UInt32?) throws(ArchiveError) {
        guard let handle = archive_write_disk_new() else {
            throw ArchiveError(.open, path: "(disk)", message: "out of memory")
        }
        self.handle = handle
        self.root = root
        self.userID = userID
        self.groupID = groupID
        do {
            try checkArchive(archive_write_disk_set_options(handle, DiskWriter.flags), handle, .configure, path: "(disk)")
            // Named users and groups of ACL entries are mapped by name; file
            // owners are set by number by the caller (their names are cleared).
            try checkArchive(archive_write_disk_set_standard_lookup(handle), handle, .configure, path: "(disk)")
        } catch {
            archive_write_free(handle)
            throw error
        }
    }

    deinit {
        for directory in openDirectories { Glibc.close(directory.fd) }
        archive_write_free(handle)
    }

    /// Writes the reader's current entry at `path` (relative to the root),
    /// owned by `uid`/`gid`, as a hard link to `hardlinkTarget` (relative to
    /// the root) when given, with its symlink target replaced by
    /// `symlinkTarget` when given. Regular files get their data copied, hashed
    /// when `hash` is set. Extended attributes outside the `user.` namespace
    /// are dropped with a warning (`security.capability` would hand out
    /// privileges, and the `system.posix_acl_*` blobs carry numeric ids; ACLs
    /// come back by name). `displayPath` names the entry in messages.
    @discardableResult
    func write(from reader: some TarEntrySource, path: PathBytes, hardlinkTarget: PathBytes?, symlinkTarget: PathBytes? = nil,
               uid: UInt32, gid: UInt32,
               hash: SHA256Hasher?, displayPath: String,
               shouldStop: () -> Bool = { false }) throws(ArchiveError) -> WrittenFile? {
        let entry = reader.entry.pointer
        let components = path.components.filter { !$0.isEmpty }
        guard let name = components.last else { throw ArchiveError(.extract, path: displayPath, message: "empty path") }
        let parent = try descend(to: Array(components.dropLast()), displayPath: displayPath)
        filterExtendedAttributes(entry, displayPath: displayPath)

        if let hardlinkTarget {
            let targetParts = hardlinkTarget.components.filter { !$0.isEmpty }
            guard let targetName = targetParts.last else { throw ArchiveError(.extract, path: displayPath, message: "empty link target") }
            let targetParent = try openChain(Array(targetParts.dropLast()), displayPath: displayPath)
            defer { if targetParent != root { Glibc.close(targetParent) } }
            let linked = targetName.withCString { from in name.withCString { linkat(targetParent, from, parent, $0, 0) } }
            guard linked == 0 else { throw ArchiveError.fromErrno(.extract, path: displayPath) }
            return nil
        }
        if archive_entry_filetype(entry) == FileType.directory {
            try makeDirectory(name, in: parent, entry: entry, uid: uid, gid: gid,
                              path: components, displayPath: displayPath)
            return nil
        }

        // libarchive gets only the last component, relative to its parent.
        guard fchdir(parent) == 0 else { throw ArchiveError.fromErrno(.extract, path: displayPath) }
        reader.entry.pathname = name
        if let symlinkTarget { reader.entry.symlink = symlinkTarget }
        archive_entry_set_uid(entry, Int64(uid))
        archive_entry_set_gid(entry, Int64(gid))
        archive_entry_copy_uname(entry, nil)
        archive_entry_copy_gname(entry, nil)

        let isRegular = archive_entry_filetype(entry) == FileType.regular
        try check(archive_write_header(handle, entry), displayPath)
        var written: WrittenFile?
        if isRegular {
            written = try copyData(from: reader, size: archive_entry_size(entry), hash: hash, displayPath: displayPath,
                                   shouldStop: shouldStop)
        }
        try check(archive_write_finish_entry(handle), displayPath)
        return written
    }

    // MARK: - directories, by descriptor

    /// A directory the walk is inside, with what to apply when it leaves it.
    private struct OpenDirectory {
        var name: PathBytes
        var fd: Int32
        var pending: DirectoryMetadata?
    }

    /// Owner, mode, xattrs, ACLs and times of a directory entry.
    private struct DirectoryMetadata {
        var uid: UInt32
        var gid: UInt32
        var mode: mode_t
        var times: [timespec]
        var xattrs: [(String, [UInt8])]
        var acls: [(String, [UInt8])]
        /// Its path from the root (kept only for directories whose times are set late).
        var path: [PathBytes]?
        var displayPath: String
    }

    /// The descriptor of the directory `parts` below the root: the open chain
    /// is reused as far as it matches, the rest is opened (created 0700 when
    /// missing, as a parent the archive did not list) with O_NOFOLLOW.
    private func descend(to parts: [PathBytes], displayPath: String) throws(ArchiveError) -> Int32 {
        var common = 0
        while common < parts.count, common < openDirectories.count, openDirectories[common].name == parts[common] { common += 1 }
        try leave(downTo: common)
        for part in parts[common...] {
            let parent = openDirectories.last?.fd ?? root
            let fd = try openOrMake(part, in: parent, displayPath: displayPath)
            openDirectories.append(OpenDirectory(name: part, fd: fd, pending: nil))
        }
        return openDirectories.last?.fd ?? root
    }

    /// Opens `parts` below the root as a separate chain (for hard link targets); close the result unless it is the root.
    private func openChain(_ parts: [PathBytes], displayPath: String) throws(ArchiveError) -> Int32 {
        var current = root
        for part in parts {
            let next = part.withCString { openat(current, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
            let code = errno
            if current != root { Glibc.close(current) }
            guard next >= 0 else { throw ArchiveError.fromErrno(.extract, path: displayPath, errno: code) }
            current = next
        }
        return current
    }

    private func openOrMake(_ name: PathBytes, in parent: Int32, displayPath: String) throws(ArchiveError) -> Int32 {
        var fd = name.withCString { openat(parent, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        if fd < 0 && errno == ENOENT {
            guard name.withCString({ mkdirat(parent, $0, 0o700) }) == 0 || errno == EEXIST else {
                throw ArchiveError.fromErrno(.extract, path: displayPath)
            }
            fd = name.withCString { openat(parent, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        }
        guard fd >= 0 else {
            let code = errno
            throw ArchiveError(.extract, path: displayPath, code: code,
                               message: code == ELOOP || code == ENOTDIR ? "a parent is not a directory" : String(cString: strerror(code)))
        }
        return fd
    }

    private func makeDirectory(_ name: PathBytes, in parent: Int32, entry: OpaquePointer, uid: UInt32, gid: UInt32,
                               path: [PathBytes], displayPath: String) throws(ArchiveError) {
        let fd = try openOrMake(name, in: parent, displayPath: displayPath)
        let atime = archive_entry_atime_is_set(entry) != 0
            ? timespec(tv_sec: archive_entry_atime(entry), tv_nsec: archive_entry_atime_nsec(entry))
            : timespec(tv_sec: archive_entry_mtime(entry), tv_nsec: archive_entry_mtime_nsec(entry))
        let mtime = timespec(tv_sec: archive_entry_mtime(entry), tv_nsec: archive_entry_mtime_nsec(entry))
        var xattrs: [(String, [UInt8])] = []
        if archive_entry_xattr_reset(entry) > 0 {
            var key: UnsafePointer<CChar>?
            var value: UnsafeRawPointer?
            var length = 0
            while archive_entry_xattr_next(entry, &key, &value, &length) == ARCHIVE_OK {
                guard let key else { continue }
                xattrs.append((String(cString: key), value.map { Array(UnsafeRawBufferPointer(start: $0, count: length)) } ?? []))
            }
        }
        var acls: [(String, [UInt8])] = []
        if let access = posixACL(entry, type: ARCHIVE_ENTRY_ACL_TYPE_ACCESS) { acls.append(("system.posix_acl_access", access)) }
        if let defaults = posixACL(entry, type: ARCHIVE_ENTRY_ACL_TYPE_DEFAULT) { acls.append(("system.posix_acl_default", defaults)) }
        let metadata = DirectoryMetadata(uid: uid, gid: gid, mode: mode_t(archive_entry_perm(entry)) & 0o7777,
                                         times: [atime, mtime], xattrs: xattrs, acls: acls,
                                         path: path.count <= 2 ? path : nil, displayPath: displayPath)
        openDirectories.append(OpenDirectory(name: name, fd: fd, pending: metadata))
    }

    /// Leaves the open directories deeper than `depth`, innermost first,
    /// applying each one's metadata through its descriptor.
    private func leave(downTo depth: Int) throws(ArchiveError) {
        while openDirectories.count > depth {
            let directory = openDirectories.removeLast()
            defer { Glibc.close(directory.fd) }
            guard let metadata = directory.pending else { continue }
            let fd = directory.fd
            // Owner first (it clears set-id bits), then mode, then ACLs (they
            // hold the group bits as the mask), xattrs, and the times last.
            guard fchown(fd, metadata.uid, metadata.gid) == 0, fchmod(fd, metadata.mode) == 0 else {
                throw ArchiveError.fromErrno(.extract, path: metadata.displayPath)
            }
            for (key, value) in metadata.acls + metadata.xattrs {
                if fsetxattr(fd, key, value, value.count, 0) != 0 {
                    warnings.append("\(metadata.displayPath): cannot set \(key): \(String(cString: strerror(errno)))")
                }
            }
            if let path = metadata.path {
                lateTimes.append((path, metadata.times))
            } else if futimens(fd, metadata.times) != 0 {
                throw ArchiveError.fromErrno(.extract, path: metadata.displayPath)
            }
        }
    }

    /// The POSIX ACL of `type` of a directory entry in the kernel's xattr
    /// format (version 2, then tag/perm/id triples sorted by tag and id), named
    /// users and groups mapped by name here; nil when the entry has none
    /// beyond what the mode says.
    private func posixACL(_ entry: OpaquePointer, type wanted: Int32) -> [UInt8]? {
        guard archive_entry_acl_reset(entry, wanted) > 0 else { return nil }
        var items: [(tag: UInt16, perm: UInt16, id: UInt32)] = []
        var type: Int32 = 0, permset: Int32 = 0, tag: Int32 = 0, qualifier: Int32 = 0
        var name: UnsafePointer<CChar>?
        while archive_entry_acl_next(entry, wanted, &type, &permset, &tag, &qualifier, &name) == ARCHIVE_OK {
            let perm = UInt16(permset & 0o7)
            let undefined = UInt32.max
            switch tag {
            case ARCHIVE_ENTRY_ACL_USER_OBJ: items.append((0x01, perm, undefined))
            case ARCHIVE_ENTRY_ACL_USER:
                let id = name.flatMap { userID(String(cString: $0)) } ?? UInt32(bitPattern: qualifier)
                items.append((0x02, perm, id))
            case ARCHIVE_ENTRY_ACL_GROUP_OBJ: items.append((0x04, perm, undefined))
            case ARCHIVE_ENTRY_ACL_GROUP:
                let id = name.flatMap { groupID(String(cString: $0)) } ?? UInt32(bitPattern: qualifier)
                items.append((0x08, perm, id))
            case ARCHIVE_ENTRY_ACL_MASK: items.append((0x10, perm, undefined))
            case ARCHIVE_ENTRY_ACL_OTHER: items.append((0x20, perm, undefined))
            default: continue
            }
        }
        // Only the three entries the mode already holds: nothing to add (for an access ACL).
        if wanted == ARCHIVE_ENTRY_ACL_TYPE_ACCESS && items.count <= 3 { return nil }
        guard !items.isEmpty else { return nil }
        items.sort { ($0.tag, $0.id) < ($1.tag, $1.id) }
        var blob: [UInt8] = []
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { blob.append(contentsOf: $0) } }
        append(UInt32(2))
        for item in items { append(item.tag); append(item.perm); append(item.id) }
        return blob
    }

    /// Completes the pending work (directory modes and times are set last,
    /// deepest first) and releases the writer.
    func close() throws(ArchiveError) {
        guard isOpen else { return }
        isOpen = false
        try leave(downTo: 0)
        for (path, times) in lateTimes.reversed() {
            guard let name = path.last else { continue }
            let parent = try openChain(Array(path.dropLast()), displayPath: path.map(\.description).joined(separator: "/"))
            defer { if parent != root { Glibc.close(parent) } }
            _ = name.withCString { utimensat(parent, $0, times, AT_SYMLINK_NOFOLLOW) }
        }
        lateTimes = []
        try check(archive_write_close(handle), "(restore)")
    }

    private func copyData(from reader: some TarEntrySource, size: Int64, hash: SHA256Hasher?, displayPath: String,
                          shouldStop: () -> Bool) throws(ArchiveError) -> WrittenFile {
        var hashedUpTo: Int64 = 0
        var chunks = 0
        func hashZeros(upTo offset: Int64) throws(ArchiveError) {
            guard let hash else { return }
            while hashedUpTo < offset {
                // A huge hole (a sparse bomb) must not outlast a signal: look every 4 MiB.
                chunks += 1
                if chunks % 64 == 0, shouldStop() { throw ArchiveError(.extract, path: displayPath, code: EINTR, message: "interrupted") }
                let count = Int(min(Int64(zeros.count), offset - hashedUpTo))
                zeros.withUnsafeBytes { hash.update(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                hashedUpTo += Int64(count)
            }
        }
        var blocks = 0
        while true {
            blocks += 1
            if blocks % 64 == 0, shouldStop() { throw ArchiveError(.extract, path: displayPath, code: EINTR, message: "interrupted") }
            var buffer: UnsafeRawPointer?
            var length = 0
            var offset: Int64 = 0
            let status = archive_read_data_block(reader.handle, &buffer, &length, &offset)
            if status == ARCHIVE_EOF { break }
            if status != ARCHIVE_OK {
                if status == ARCHIVE_WARN { warnings.append("\(displayPath): \(readerMessage(reader))"); continue }
                throw ArchiveError.fromArchive(reader.handle, .read, path: "\(reader.path): \(displayPath)")
            }
            guard let buffer, length > 0 else { continue }
            if let hash {
                try hashZeros(upTo: offset)
                hash.update(UnsafeRawBufferPointer(start: buffer, count: length))
                hashedUpTo = offset + Int64(length)
            }
            // libarchive reports a failed or short write(2) (ENOSPC, EIO, EDQUOT)
            // as a mere ARCHIVE_WARN: for a restore every one is fatal.
            let result = archive_write_data_block(handle, buffer, length, offset)
            if result != ARCHIVE_OK { throw writeFailure(displayPath) }
        }
        try hashZeros(upTo: size)
        return WrittenFile(size: size, digest: hash?.finalizeHex())
    }

    private func check(_ status: Int32, _ displayPath: String) throws(ArchiveError) {
        if status == ARCHIVE_OK { return }
        // Metadata libarchive could not set is a warning; storage running out or failing never is.
        if status == ARCHIVE_WARN && !DiskWriter.storageErrors.contains(archive_errno(handle)) {
            warnings.append("\(displayPath): \(message())")
            return
        }
        throw ArchiveError.fromArchive(handle, .extract, path: displayPath)
    }

    static let storageErrors: Set<Int32> = [ENOSPC, EDQUOT, EIO, EFBIG, EROFS]

    /// A failed write of data, with the path and errno's text.
    private func writeFailure(_ displayPath: String) -> ArchiveError {
        let code = archive_errno(handle)
        let text = archive_error_string(handle).map { String(cString: $0) } ?? "write failed"
        return ArchiveError(.write, path: displayPath, code: code,
                            message: code != 0 ? "\(text): \(String(cString: strerror(code)))" : text)
    }

    /// Flushes the whole file system holding `directory` (`syncfs(2)`).
    static func syncFileSystem(of directory: Int32, displayPath: String) throws(ArchiveError) {
        guard LinuxCalls.syncFileSystem(directory) else { throw ArchiveError.fromErrno(.write, path: displayPath) }
    }

    private func message() -> String {
        archive_error_string(handle).map { String(cString: $0) } ?? "warning"
    }

    private func readerMessage(_ reader: some TarEntrySource) -> String {
        archive_error_string(reader.handle).map { String(cString: $0) } ?? "warning"
    }

    private func filterExtendedAttributes(_ entry: OpaquePointer, displayPath: String) {
        guard archive_entry_xattr_reset(entry) > 0 else { return }
        var kept: [(String, Data)] = []
        var dropped: [String] = []
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var length = 0
        while archive_entry_xattr_next(entry, &name, &value, &length) == ARCHIVE_OK {
            guard let name else { continue }
            let key = String(cString: name)
            if key.hasPrefix("user.") {
                kept.append((key, value.map { Data(bytes: $0, count: length) } ?? Data()))
            } else {
                dropped.append(key)
            }
        }
        guard !dropped.isEmpty else { return }
        archive_entry_xattr_clear(entry)
        for (key, data) in kept {
            data.withUnsafeBytes { archive_entry_xattr_add_entry(entry, key, $0.baseAddress, data.count) }
        }
        warnings.append("\(displayPath): extended attribute\(dropped.count == 1 ? "" : "s") \(dropped.joined(separator: ", ")) not restored (only user.* are)")
    }
}
