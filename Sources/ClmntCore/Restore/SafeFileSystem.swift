import Foundation

/// File operations for a process running as root among directories that
/// other users control: every path is walked with `openat(..., O_NOFOLLOW)`
/// from a directory descriptor, so a symlink planted in a tree is never followed.
enum SafeFileSystem {
    /// An error carrying the path and errno's text.
    static func failure(_ path: String, _ code: Int32 = errno) -> RestoreError {
        .fileSystem(path: path, reason: String(cString: strerror(code)))
    }

    /// Opens the directory `path` (absolute); its last component must not be a symlink.
    static func openDirectory(_ path: String) throws(RestoreError) -> Int32 {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw failure(path) }
        return fd
    }

    /// Opens `name` inside `directory` as a directory, refusing symlinks.
    static func openDirectory(at directory: Int32, _ name: String) -> Int32 {
        openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    }

    /// `lstat` of `name` in `directory`, or nil when it does not exist.
    static func status(at directory: Int32, _ name: String) -> stat? {
        var st = stat()
        return fstatat(directory, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st : nil
    }

    /// Removes `name` in `directory` and everything below it, never following
    /// a symlink (each level is opened with O_NOFOLLOW from its parent). Names
    /// are bytes, so any name the kernel allows is removed, at any depth.
    static func removeTree(at directory: Int32, _ name: String, displayPath: String) throws(RestoreError) {
        try removeTree(at: directory, PathBytes(name), displayPath: displayPath)
    }

    static func removeTree(at directory: Int32, _ name: PathBytes, displayPath: String) throws(RestoreError) {
        if name.withCString({ unlinkat(directory, $0, 0) }) == 0 || errno == ENOENT { return }
        guard errno == EISDIR || errno == EPERM else { throw failure(displayPath) }
        let fd = name.withCString { openat(directory, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        if fd < 0 {
            // Replaced meanwhile by a file or a symlink: remove that instead.
            if errno == ENOTDIR || errno == ELOOP {
                if name.withCString({ unlinkat(directory, $0, 0) }) == 0 || errno == ENOENT { return }
            }
            if errno == ENOENT { return }
            throw failure(displayPath)
        }
        // Something still writing into the tree (a process of the molt user
        // with its working directory inside) could refill it: a bounded number
        // of passes, then a clear error, never an endless loop.
        defer { close(fd) }
        for _ in 1...removalPasses {
            try emptyDirectory(fd, displayPath: displayPath)
            if name.withCString({ unlinkat(directory, $0, AT_REMOVEDIR) }) == 0 || errno == ENOENT { return }
            guard errno == ENOTEMPTY || errno == EEXIST else { throw failure(displayPath) }
        }
        throw .fileSystem(path: displayPath, reason: "still not empty after \(removalPasses) passes: something keeps writing into it")
    }

    private static let removalPasses = 8

    /// Removes everything inside the open directory `fd` in one pass over its
    /// entries (reading on after each batch, never rewinding: every pass ends).
    private static func emptyDirectory(_ fd: Int32, displayPath: String) throws(RestoreError) {
        let own = dup(fd)
        guard own >= 0, let stream = fdopendir(own) else {
            let code = errno
            if own >= 0 { close(own) }
            throw failure(displayPath, code)
        }
        defer { closedir(stream) }
        rewinddir(stream)
        var names: [PathBytes] = []
        func removeBatch() throws(RestoreError) {
            for child in names { try removeTree(at: fd, child, displayPath: displayPath + "/" + child.description) }
            names.removeAll(keepingCapacity: true)
        }
        while true {
            errno = 0
            guard let item = readdir(stream) else {
                if errno != 0 { throw failure(displayPath) }
                break
            }
            let name = withUnsafeBytes(of: item.pointee.d_name) { raw in PathBytes(bytes: raw.prefix(while: { $0 != 0 })) }
            if name != "." && name != ".." { names.append(name) }
            // Remove in batches so a huge directory does not grow `names` unbounded.
            if names.count >= 4096 { try removeBatch() }
        }
        try removeBatch()
    }

    /// Reads the regular file `name` in `directory` (not a symlink), at most `limit` bytes.
    /// Returns nil when it does not exist.
    static func readFile(at directory: Int32, _ name: String, displayPath: String,
                         limit: Int = 16 << 20) throws(RestoreError) -> (data: Data, status: stat)? {
        let fd = openat(directory, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            if errno == ELOOP { throw .hostileEntry(path: displayPath, reason: "is a symlink where a file is expected") }
            throw failure(displayPath)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw failure(displayPath) }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw .hostileEntry(path: displayPath, reason: "is not a regular file")
        }
        guard Int(st.st_size) <= limit else {
            throw .fileSystem(path: displayPath, reason: "larger than \(limit) bytes")
        }
        var data = Data(count: Int(st.st_size))
        var done = 0
        let total = data.count
        let ok = data.withUnsafeMutableBytes { raw -> Bool in
            while done < total {
                let count = read(fd, raw.baseAddress! + done, total - done)
                if count < 0 { if errno == EINTR { continue }; return false }
                if count == 0 { break }
                done += count
            }
            return true
        }
        guard ok else { throw failure(displayPath) }
        return (data.prefix(done), st)
    }

    /// Replaces (or creates) `name` in `directory` with `data` atomically: a
    /// temporary file beside it, flushed, then renamed over it. Owner and mode as given.
    static func writeFile(at directory: Int32, _ name: String, data: Data, uid: UInt32, gid: UInt32,
                          mode: mode_t, displayPath: String) throws(RestoreError) {
        let temporary = ".\(name).clmnt-\(UInt32.random(in: 0...UInt32.max))"
        let fd = openat(directory, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw failure(displayPath) }
        var failed: Int32 = 0
        data.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let count = write(fd, raw.baseAddress! + done, raw.count - done)
                if count < 0 { if errno == EINTR { continue }; failed = errno; return }
                done += count
            }
        }
        if failed == 0, fchown(fd, uid, gid) != 0 { failed = errno }
        if failed == 0, fchmod(fd, mode) != 0 { failed = errno }
        if failed == 0, fsync(fd) != 0 { failed = errno }
        close(fd)
        if failed == 0, renameat(directory, temporary, directory, name) != 0 { failed = errno }
        if failed != 0 {
            unlinkat(directory, temporary, 0)
            throw failure(displayPath, failed)
        }
    }

    /// Links the new tree `staging` at `target` (both names in `directory`):
    /// an atomic exchange when `target` exists, so the old tree is never
    /// missing; returns true when an old tree now sits at `staging`.
    static func swapIn(at directory: Int32, staging: String, target: String, displayPath: String) throws(RestoreError) -> Bool {
        if status(at: directory, target) != nil {
            if LinuxCalls.renameat2(directory, staging, directory, target, LinuxCalls.renameExchange) == 0 { return true }
            guard errno == EINVAL || errno == ENOSYS else { throw failure(displayPath) }
            // No RENAME_EXCHANGE here (old kernel or file system): two renames.
            let aside = staging + ".old"
            guard renameat(directory, target, directory, aside) == 0 else { throw failure(displayPath) }
            guard renameat(directory, staging, directory, target) == 0 else {
                let code = errno
                renameat(directory, aside, directory, target)
                throw failure(displayPath, code)
            }
            guard renameat(directory, aside, directory, staging) == 0 else { throw failure(displayPath) }
            return true
        }
        if LinuxCalls.renameat2(directory, staging, directory, target, LinuxCalls.renameNoReplace) == 0 { return false }
        guard errno == EINVAL || errno == ENOSYS else { throw failure(displayPath) }
        guard renameat(directory, staging, directory, target) == 0 else { throw failure(displayPath) }
        return false
    }

    static func syncDirectory(_ fd: Int32) { fsync(fd) }

    /// An old tree swapped out is no longer anyone's home: lock its owner out before removing it.
    static func lockOut(at directory: Int32, _ name: String) {
        let old = openDirectory(at: directory, name)
        if old >= 0 { fchown(old, 0, 0); fchmod(old, 0o700); close(old) }
    }
}
