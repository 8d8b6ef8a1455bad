import Foundation

/// File operations for a process running as root among directories that
/// other users control: every path is walked with `openat(..., O_NOFOLLOW)`
/// from a directory descriptor, so a symlink planted in a tree is never followed.
public enum SafeFileSystem {
    // Directory parameters are descriptors the caller owns (a `FileDescriptor`'s `rawValue`).

    /// `lstat` of `name` in `directory`, or nil when it does not exist.
    static func status(at directory: Int32, _ name: String) -> stat? {
        var st = stat()
        return fstatat(directory, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st : nil
    }

    /// Opens `name` inside `directory` as a directory, refusing symlinks.
    static func openDirectory(at directory: Int32, _ name: String, path: String) throws(SystemError) -> FileDescriptor {
        try FileDescriptor.open(PathBytes(name), in: directory, O_RDONLY | O_DIRECTORY, path: path)
    }

    /// Removes `name` in `directory` and everything below it, never following
    /// a symlink (each level is opened with O_NOFOLLOW from its parent). Names
    /// are bytes, so any name the kernel allows is removed, at any depth.
    static func removeTree(at directory: Int32, _ name: String, displayPath: String) throws(SystemError) {
        try removeTree(at: directory, PathBytes(name), displayPath: displayPath)
    }

    static func removeTree(at directory: Int32, _ name: PathBytes, displayPath: String) throws(SystemError) {
        if name.withCString({ unlinkat(directory, $0, 0) }) == 0 || errno == ENOENT { return }
        guard errno == EISDIR || errno == EPERM else { throw SystemError(path: displayPath) }
        let fd = name.withCString { openat(directory, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        if fd < 0 {
            // Replaced meanwhile by a file or a symlink: remove that instead.
            if errno == ENOTDIR || errno == ELOOP {
                if name.withCString({ unlinkat(directory, $0, 0) }) == 0 || errno == ENOENT { return }
            }
            if errno == ENOENT { return }
            throw SystemError(path: displayPath)
        }
        // Something still writing into the tree (a process of the molt user
        // with its working directory inside) could refill it: a bounded number
        // of passes, then a clear error, never an endless loop.
        let opened = FileDescriptor(adopting: fd, path: displayPath)
        for _ in 1...removalPasses {
            try emptyDirectory(opened)
            if name.withCString({ unlinkat(directory, $0, AT_REMOVEDIR) }) == 0 || errno == ENOENT { return }
            guard errno == ENOTEMPTY || errno == EEXIST else { throw SystemError(path: displayPath) }
        }
        throw SystemError(path: displayPath, refusal: .keepsRefilling(passes: removalPasses))
    }

    private static let removalPasses = 8

    /// Removes everything inside the open `directory` in one pass over its
    /// entries (reading on after each batch, never rewinding: every pass ends).
    private static func emptyDirectory(_ directory: borrowing FileDescriptor) throws(SystemError) {
        let displayPath = directory.path
        let fd = directory.rawValue
        var names: [PathBytes] = []
        func removeBatch() throws(SystemError) {
            for child in names { try removeTree(at: fd, child, displayPath: displayPath + "/" + child.description) }
            names.removeAll(keepingCapacity: true)
        }
        try forEachDirectoryEntry(fd, path: displayPath) { (name) throws(SystemError) in
            names.append(name)
            // Remove in batches so a huge directory does not grow `names` unbounded.
            if names.count >= 4096 { try removeBatch() }
        }
        try removeBatch()
    }

    /// Reads the regular file `name` in `directory` (not a symlink: a `.symlink`
    /// refusal), at most `limit` bytes. Returns nil when it does not exist.
    static func readFile(at directory: Int32, _ name: String, displayPath: String,
                         limit: Int = 16 << 20) throws(SystemError) -> (data: Data, status: stat)? {
        let fd = openat(directory, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            if errno == ELOOP { throw SystemError(path: displayPath, refusal: .symlink) }
            throw SystemError(path: displayPath)
        }
        let file = FileDescriptor(adopting: fd, path: displayPath)
        let st = try file.status()
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw SystemError(path: displayPath, refusal: .notRegularFile) }
        guard Int(st.st_size) <= limit else { throw SystemError(path: displayPath, refusal: .tooLarge(limit: limit)) }
        return (Data(try file.readAll(limit: limit)), st)
    }

    /// Replaces (or creates) `name` in `directory` with `data` atomically: a
    /// temporary file beside it (`temporaryName`, created exclusively), flushed, then
    /// renamed over it. Mode as given; chowned to `owner` when one is given.
    /// The one small-file writer: restores, state files and status records all use it.
    public static func writeFile(at directory: Int32, _ name: String, data: Data, owner: (uid: UInt32, gid: UInt32)?,
                          mode: mode_t, displayPath: String,
                          temporaryName: (String) -> String = temporaryName(for:)) throws(SystemError) {
        var temporary = ""
        var fd: Int32 = -1
        for _ in 0..<8 {
            temporary = temporaryName(name)
            fd = openat(directory, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else { throw SystemError(path: displayPath) }
        do throws(SystemError) {
            let file = FileDescriptor(adopting: fd, path: displayPath)
            try file.writeAll(data)
            // chown first: it clears set-id bits that the mode may ask for.
            if let owner, fchown(file.rawValue, owner.uid, owner.gid) != 0 { throw SystemError(path: displayPath) }
            guard fchmod(file.rawValue, mode) == 0 else { throw SystemError(path: displayPath) }
            try file.sync()
            try file.close()
            guard renameat(directory, temporary, directory, name) == 0 else { throw SystemError(path: displayPath) }
        } catch {
            unlinkat(directory, temporary, 0)
            throw error
        }
    }

    static func writeFile(at directory: Int32, _ name: String, data: Data, uid: UInt32, gid: UInt32,
                          mode: mode_t, displayPath: String) throws(SystemError) {
        try writeFile(at: directory, name, data: data, owner: (uid, gid), mode: mode, displayPath: displayPath)
    }

    /// `writeFile`'s temporary name beside `name`: `.<name>.clmnt-<digits>`.
    public static func temporaryName(for name: String) -> String {
        ".\(name).clmnt-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Whether `candidate` is a temporary `writeFile` left beside `name` (killed before its rename).
    static func isTemporaryName(_ candidate: String, for name: String) -> Bool {
        let prefix = ".\(name).clmnt-"
        guard candidate.hasPrefix(prefix) else { return false }
        let suffix = candidate.dropFirst(prefix.count)
        return !suffix.isEmpty && suffix.allSatisfy { $0.isASCII && $0.isNumber }
    }

    /// Links the new tree `staging` at `target` (both names in `directory`):
    /// an atomic exchange when `target` exists, so the old tree is never
    /// missing; returns true when an old tree now sits at `staging`.
    static func swapIn(at directory: Int32, staging: String, target: String, displayPath: String) throws(SystemError) -> Bool {
        if status(at: directory, target) != nil {
            if LinuxCalls.renameat2(directory, staging, directory, target, LinuxCalls.renameExchange) == 0 { return true }
            guard errno == EINVAL || errno == ENOSYS else { throw SystemError(path: displayPath) }
            // No RENAME_EXCHANGE here (old kernel or file system): two renames.
            let aside = staging + ".old"
            guard renameat(directory, target, directory, aside) == 0 else { throw SystemError(path: displayPath) }
            guard renameat(directory, staging, directory, target) == 0 else {
                let code = errno
                renameat(directory, aside, directory, target)
                throw SystemError(path: displayPath, code: code)
            }
            guard renameat(directory, aside, directory, staging) == 0 else { throw SystemError(path: displayPath) }
            return true
        }
        if LinuxCalls.renameat2(directory, staging, directory, target, LinuxCalls.renameNoReplace) == 0 { return false }
        guard errno == EINVAL || errno == ENOSYS else { throw SystemError(path: displayPath) }
        guard renameat(directory, staging, directory, target) == 0 else { throw SystemError(path: displayPath) }
        return false
    }

    static func syncDirectory(_ fd: Int32) { fsync(fd) }

    /// An old tree swapped out is no longer anyone's home: lock its owner out before removing it.
    static func lockOut(at directory: Int32, _ name: String) {
        guard let old = try? openDirectory(at: directory, name, path: name) else { return }
        fchown(old.rawValue, 0, 0)
        fchmod(old.rawValue, 0o700)
    }
}
