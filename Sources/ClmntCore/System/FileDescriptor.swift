import Foundation

/// One open file descriptor with one owner: closed exactly once, when its owner
/// lets go of it (`deinit`), or explicitly by `close()` when a close error matters.
/// Opening inside a directory always adds `O_NOFOLLOW | O_CLOEXEC`: root never
/// follows a link a molt user planted. Reads and writes retry on EINTR and short counts.
public struct FileDescriptor: ~Copyable {
    /// -1 once closed or released, so `deinit` leaves it alone.
    public private(set) var rawValue: Int32
    /// The path shown in errors.
    public let path: String

    /// Takes ownership of an open descriptor.
    public init(adopting rawValue: Int32, path: String) {
        self.rawValue = rawValue
        self.path = path
    }

    deinit { if rawValue >= 0 { Glibc.close(rawValue) } }

    /// `open(path, flags | O_CLOEXEC)`.
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o600) throws(SystemError) -> FileDescriptor {
        let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
        guard fd >= 0 else { throw SystemError(path: path) }
        return FileDescriptor(adopting: fd, path: path)
    }

    /// Opens the directory `path`; its last component must not be a symlink.
    public static func openDirectory(_ path: String) throws(SystemError) -> FileDescriptor {
        try open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
    }

    /// `openat(self, name, flags | O_NOFOLLOW | O_CLOEXEC)`: a symlink fails with ELOOP.
    public func open(_ name: PathBytes, _ flags: Int32, mode: mode_t = 0o600, path display: String? = nil) throws(SystemError) -> FileDescriptor {
        try Self.open(name, in: rawValue, flags, mode: mode, path: display ?? (path + "/" + name.description))
    }

    /// `openat(directory, name, flags | O_NOFOLLOW | O_CLOEXEC)` for a directory descriptor
    /// someone else owns (a `FileDescriptor` further up, or libarchive's).
    public static func open(_ name: PathBytes, in directory: Int32, _ flags: Int32, mode: mode_t = 0o600,
                            path: String) throws(SystemError) -> FileDescriptor {
        let fd = name.withCString { openat(directory, $0, flags | O_NOFOLLOW | O_CLOEXEC, mode) }
        guard fd >= 0 else { throw SystemError(path: path) }
        return FileDescriptor(adopting: fd, path: path)
    }

    public func open(_ name: String, _ flags: Int32, mode: mode_t = 0o600, path display: String? = nil) throws(SystemError) -> FileDescriptor {
        try open(PathBytes(name), flags, mode: mode, path: display)
    }

    /// Opens `name` as a directory, refusing symlinks.
    public func openDirectory(_ name: String, path display: String? = nil) throws(SystemError) -> FileDescriptor {
        try open(PathBytes(name), O_RDONLY | O_DIRECTORY, path: display)
    }

    public func openDirectory(_ name: PathBytes, path display: String? = nil) throws(SystemError) -> FileDescriptor {
        try open(name, O_RDONLY | O_DIRECTORY, path: display)
    }

    /// Like `open`, but nil when `name` does not exist.
    public func openIfPresent(_ name: String, _ flags: Int32, mode: mode_t = 0o600, path display: String? = nil) throws(SystemError) -> FileDescriptor? {
        do { return try open(PathBytes(name), flags, mode: mode, path: display) } catch where error.code == ENOENT {
            return nil
        }
    }

    /// `fstat`.
    public func status() throws(SystemError) -> stat {
        var info = stat()
        guard fstat(rawValue, &info) == 0 else { throw SystemError(path: path) }
        return info
    }

    /// `fstatat(self, name, AT_SYMLINK_NOFOLLOW)`, nil when it does not exist (or cannot be stat'ed).
    public func status(of name: String) -> stat? {
        var info = stat()
        return fstatat(rawValue, name, &info, AT_SYMLINK_NOFOLLOW) == 0 ? info : nil
    }

    /// One `read` into `buffer`, retried on EINTR; 0 at the end.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Int {
        while true {
            let count = Glibc.read(rawValue, buffer.baseAddress, buffer.count)
            if count >= 0 { return count }
            if errno != EINTR { throw SystemError(path: path) }
        }
    }

    /// Reads to the end; throws `.tooLarge` past `limit` bytes.
    public func readAll(limit: Int = 64 << 20) throws(SystemError) -> [UInt8] {
        let bytes = try read(upTo: limit + 1)
        guard bytes.count <= limit else { throw SystemError(path: path, refusal: .tooLarge(limit: limit)) }
        return bytes
    }

    /// Reads until the end or `limit` bytes, whichever comes first.
    public func read(upTo limit: Int) throws(SystemError) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while bytes.count < limit {
            let wanted = min(chunk.count, limit - bytes.count)
            let count = chunk.withUnsafeMutableBytes { raw in
                Result { () throws(SystemError) in try read(into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<wanted])) }
            }
            let got = try count.get()
            if got == 0 { break }
            bytes.append(contentsOf: chunk[0..<got])
        }
        return bytes
    }

    /// Up to `count` bytes from `offset` (`pread`, retried on EINTR and short counts); fewer
    /// when the file ends first (it shrank meanwhile).
    public func read(at offset: Int, count: Int) throws(SystemError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = bytes.withUnsafeMutableBytes { raw in pread(rawValue, raw.baseAddress! + done, count - done, off_t(offset + done)) }
            if got < 0 {
                if errno == EINTR { continue }
                throw SystemError(path: path)
            }
            if got == 0 { break }
            done += got
        }
        return Array(bytes[0..<done])
    }

    /// Writes every byte, retrying on EINTR and short counts.
    public func writeAll(_ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        var done = 0
        while done < bytes.count {
            let count = Glibc.write(rawValue, bytes.baseAddress! + done, bytes.count - done)
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemError(path: path)
            }
            done += count
        }
    }

    public func writeAll<Bytes: ContiguousBytes>(_ bytes: Bytes) throws(SystemError) {
        try bytes.withUnsafeBytes { raw in Result { () throws(SystemError) in try writeAll(raw) } }.get()
    }

    /// `fsync`.
    public func sync() throws(SystemError) {
        guard fsync(rawValue) == 0 else { throw SystemError(path: path) }
    }

    /// Closes now and reports close's error (a write that failed late, on NFS or a full disk).
    public consuming func close() throws(SystemError) {
        let fd = rawValue
        rawValue = -1
        guard Glibc.close(fd) == 0 else { throw SystemError(path: path) }
    }

    /// Hands the descriptor to an owner outside Swift (`fdopendir`, libarchive) that closes it.
    public consuming func release() -> Int32 {
        let fd = rawValue
        rawValue = -1
        return fd
    }
}

/// fsyncs the directory holding `path`, so a rename or create in it survives a crash.
func syncDirectory(of path: String) {
    let directory = (path as NSString).deletingLastPathComponent
    guard let fd = try? FileDescriptor.open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY) else { return }
    try? fd.sync()
}
