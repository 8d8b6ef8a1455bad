import ClmntCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A molt's `.molt-state/` directory: where the health files live, who owns
/// them, and how they are read and written.
///
/// clmnt often runs as root (`check`, `health-watch --systemd`) over a directory
/// the molt's user controls, so nothing here goes by path (docs/health.md,
/// "State file safety"): the home is opened with `O_NOFOLLOW`, `.molt-state`
/// relative to it with `O_NOFOLLOW | O_DIRECTORY`, and every file relative to
/// that with `O_NOFOLLOW | O_NONBLOCK`. A symlinked `.molt-state`, and a file
/// that is a symlink, a FIFO or anything but a regular file, has other hard
/// links, or belongs to anyone but the molt's user or root, is refused
/// (`HealthError.unsafeStateFile`). Replacements are written to a temp name and
/// `renameat`ed relative to the directory's descriptor, chowned through their own.
/// Reads are bounded.
public struct StateDirectory: Sendable {
    public let path: String
    /// The molt's user (or its home's owner); files written as root are chowned to it.
    public let owner: MoltOwner?

    public static let statusName = "health-status.json"
    public static let historyName = "health-history.jsonl"
    public static let watchStateName = "health-watch-state.json"
    public static let totalsName = "health-history-totals.json"
    public static let cronLogName = "cron.log"
    static let lockName = ".health.lock"

    /// The most a state file (`health-status.json`, `health-watch-state.json`, the totals) may hold.
    public static let stateFileLimit = 1 << 20

    public init(molt: Molt) {
        self.init(path: molt.stateDir, owner: MoltOwner.of(molt))
    }

    public init(path: String, owner: MoltOwner?) {
        self.path = path
        self.owner = owner
    }

    public var statusPath: String { path + "/" + Self.statusName }
    public var historyPath: String { path + "/" + Self.historyName }
    public var watchStatePath: String { path + "/" + Self.watchStateName }
    public var cronLogPath: String { path + "/" + Self.cronLogName }
    var lockPath: String { path + "/" + Self.lockName }

    func display(_ name: String) -> String { path + "/" + name }

    // MARK: - The directory

    /// Opens `.molt-state` through an `O_NOFOLLOW` descriptor of the home; nil when it
    /// does not exist and `create` is false. Created 0755 and owned by the molt's user.
    func open(create: Bool) throws(HealthError) -> OpenStateDirectory? {
        let slash = path.lastIndex(of: "/")
        let parent = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let home = Glibc.open(parent, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard home >= 0 else {
            if errno == ELOOP || errno == ENOTDIR { throw .unsafeStateFile(path: parent, reason: "is a symbolic link or not a directory") }
            throw create ? .cannotWrite(path: path, reason: errnoText()) : .cannotRead(path: path, reason: errnoText())
        }
        defer { close(home) }
        var homeInfo = stat()
        guard fstat(home, &homeInfo) == 0 else { throw .cannotRead(path: parent, reason: errnoText()) }
        let uid = owner?.uid ?? homeInfo.st_uid
        let gid = owner?.gid ?? homeInfo.st_gid

        var fd = openat(home, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 && errno == ENOENT {
            guard create else { return nil }
            guard mkdirat(home, name, 0o755) == 0 || errno == EEXIST else { throw .cannotWrite(path: path, reason: errnoText()) }
            fd = openat(home, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            // Ours only if it is still the directory we made: empty and root's.
            var made = stat()
            if fd >= 0, geteuid() == 0, fstat(fd, &made) == 0, made.st_uid == 0, made.st_nlink == 2 {
                _ = fchown(fd, uid, gid)
            }
        }
        guard fd >= 0 else {
            let code = errno
            var info = stat()
            let isLink = fstatat(home, name, &info, AT_SYMLINK_NOFOLLOW) == 0 && (info.st_mode & S_IFMT) == S_IFLNK
            switch code {
            case ELOOP, ENOTDIR where isLink: throw .unsafeStateFile(path: path, reason: "is a symbolic link")
            case ENOTDIR: throw .unsafeStateFile(path: path, reason: "is not a directory")
            default:
                let reason = String(cString: strerror(code))
                throw create ? .cannotWrite(path: path, reason: reason) : .cannotRead(path: path, reason: reason)
            }
        }
        let directory = OpenStateDirectory(fd: fd, path: path, uid: uid, gid: gid)
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .cannotRead(path: path, reason: errnoText()) }
        if let problem = directory.ownerProblem(info) { throw .unsafeStateFile(path: path, reason: problem) }
        return directory
    }

    /// Creates the directory (0755, owned by the molt) when missing.
    public func ensureExists() throws(HealthError) {
        _ = try open(create: true)
    }

    // MARK: - Writing

    /// Writes `data` as `name` through a temp file in the same directory and a
    /// `renameat`, so a reader sees the old file or the new one, never half of one.
    public func writeAtomically(_ data: Data, name: String) throws(HealthError) {
        guard let directory = try open(create: true) else { return }
        try directory.replace(name, with: data)
    }

    public func writeAtomically(_ text: String, name: String) throws(HealthError) {
        try writeAtomically(Data(text.utf8), name: name)
    }

    /// Appends one line with a single `write` in append mode, so concurrent writers
    /// never interleave. A file that ends in a cut line (no final newline) gets a
    /// newline first, so the new line is never glued onto the broken one.
    public func appendLine(_ line: String, name: String) throws(HealthError) {
        guard let directory = try open(create: true),
              let fd = try directory.openFile(name, writing: true, create: true) else { return }
        defer { close(fd) }
        var bytes = Array((line + "\n").utf8)
        var info = stat()
        if fstat(fd, &info) == 0, info.st_size > 0 {
            var last: UInt8 = 0
            if pread(fd, &last, 1, info.st_size - 1) == 1, last != UInt8(ascii: "\n") { bytes.insert(UInt8(ascii: "\n"), at: 0) }
        }
        let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard count == bytes.count else {
            throw .cannotWrite(path: display(name), reason: count < 0 ? errnoText() : "short write")
        }
    }

    /// The size of `name` (not following a symlink), nil when missing.
    func size(of name: String) throws(HealthError) -> Int? {
        guard let directory = try open(create: false) else { return nil }
        var info = stat()
        guard fstatat(directory.fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { return nil }
        return Int(info.st_size)
    }

    /// Renames `from` to `to` inside the directory (`to` is replaced).
    func rename(_ from: String, to: String) throws(HealthError) {
        guard let directory = try open(create: false) else { return }
        guard let fd = try directory.openFile(from, writing: false, create: false) else { return }
        close(fd) // Checked: a regular file of the molt's.
        guard renameat(directory.fd, from, directory.fd, to) == 0 else { throw .cannotWrite(path: display(to), reason: errnoText()) }
    }

    func remove(_ name: String) throws(HealthError) {
        guard let directory = try open(create: false) else { return }
        guard unlinkat(directory.fd, name, 0) == 0 || errno == ENOENT else { throw .cannotWrite(path: display(name), reason: errnoText()) }
    }

    // MARK: - Locking

    /// How long to wait for the state lock before going on without it.
    static let lockWait = 90.0

    /// Runs `body` holding an exclusive `flock` on `.molt-state/.health.lock`, so a
    /// manual check and a cron run never interleave their read-modify-write.
    /// Without a usable lock file (unwritable or unsafe `.molt-state`, a lock file
    /// that is not a regular file of the molt's) or after `lockWait` seconds, `body`
    /// runs unlocked and is told why (its writes report their own failures).
    public func withLock<T, E: Error>(_ body: (_ lockWarning: String?) throws(E) -> T) throws(E) -> T {
        var fd: Int32 = -1
        var warning: String?
        do {
            if let directory = try open(create: true) {
                fd = try directory.openFile(Self.lockName, writing: false, create: true) ?? -1
            }
        } catch {
            warning = "running without the state lock: \(error)"
        }
        if fd >= 0 {
            // Bounded: the lock file is the molt user's, who could hold it forever.
            let deadline = Date().addingTimeInterval(Self.lockWait)
            while flock(fd, LOCK_EX | LOCK_NB) != 0 {
                guard errno == EWOULDBLOCK || errno == EINTR, Date() < deadline else {
                    warning = "running without the state lock: \(lockPath) stayed locked for \(Int(Self.lockWait)) s"
                    close(fd)
                    fd = -1
                    break
                }
                usleep(20_000)
            }
        }
        defer { if fd >= 0 { flock(fd, LOCK_UN); close(fd) } }
        return try body(warning)
    }

    // MARK: - Reading

    /// The whole of `name`; nil when it (or `.molt-state`) does not exist. Throws when it
    /// is unsafe, unreadable or larger than `limit` bytes.
    public func contents(of name: String, limit: Int = StateDirectory.stateFileLimit) throws(HealthError) -> Data? {
        guard let directory = try open(create: false),
              let fd = try directory.openFile(name, writing: false, create: false) else { return nil }
        defer { close(fd) }
        var info = stat()
        fstat(fd, &info)
        guard Int(info.st_size) <= limit else {
            throw .cannotRead(path: display(name), reason: "\(info.st_size) bytes, more than a state file holds (\(limit)); ignored")
        }
        return try readRange(fd, from: 0, count: Int(info.st_size), name: name)
    }

    /// The newest whole lines of `name` within its last `maxBytes` bytes, and how many
    /// bytes before them were left unread; nil when it does not exist.
    public func tail(of name: String, maxBytes: Int) throws(HealthError) -> (data: Data, skipped: Int)? {
        guard let directory = try open(create: false),
              let fd = try directory.openFile(name, writing: false, create: false) else { return nil }
        defer { close(fd) }
        var info = stat()
        fstat(fd, &info)
        let size = Int(info.st_size)
        let start = max(0, size - maxBytes)
        var data = try readRange(fd, from: start, count: size - start, name: name)
        var skipped = start
        if start > 0 {
            // Started mid-line: that partial line is skipped too.
            let cut = data.firstIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? data.endIndex
            skipped += cut - data.startIndex
            data = Data(data[cut...])
        }
        return (data, skipped)
    }

    private func readRange(_ fd: Int32, from start: Int, count: Int, name: String) throws(HealthError) -> Data {
        var data = Data(count: count)
        var done = 0
        let failed = data.withUnsafeMutableBytes { raw -> Bool in
            while done < count {
                let got = pread(fd, raw.baseAddress! + done, count - done, off_t(start + done))
                if got < 0 { if errno == EINTR { continue }; return true }
                if got == 0 { break } // Shrank meanwhile.
                done += got
            }
            return false
        }
        if failed { throw .cannotRead(path: display(name), reason: errnoText()) }
        return data.prefix(done)
    }
}

/// `.molt-state` opened through descriptors; every file is reached relative to `fd`.
final class OpenStateDirectory {
    let fd: Int32
    let path: String
    /// The molt's user: files must be its (or root's), and new ones are given to it.
    let uid: uid_t
    let gid: gid_t

    init(fd: Int32, path: String, uid: uid_t, gid: gid_t) {
        self.fd = fd
        self.path = path
        self.uid = uid
        self.gid = gid
    }

    deinit { close(fd) }

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
    func openFile(_ name: String, writing: Bool, create: Bool) throws(HealthError) -> Int32? {
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
        var info = stat()
        guard fstat(fd, &info) == 0 else { close(fd); throw .cannotRead(path: display, reason: errnoText()) }
        if let problem = fileProblem(info) {
            close(fd)
            throw .unsafeStateFile(path: display, reason: problem)
        }
        if created, geteuid() == 0 { _ = fchown(fd, uid, gid) }
        return fd
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
        guard let fd = try openFile(name, writing: false, create: false) else { return }
        defer { close(fd) }
        if geteuid() == 0 { _ = fchown(fd, uid, gid) }
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
        var temporary = ""
        var file: Int32 = -1
        for _ in 0..<8 {
            temporary = Self.temporaryName(of: name)
            file = openat(fd, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if file >= 0 || errno != EEXIST { break }
        }
        guard file >= 0 else { throw .cannotWrite(path: display, reason: errnoText()) }
        var failure: String?
        data.withUnsafeBytes { raw in
            var written = 0
            while written < raw.count {
                let count = write(file, raw.baseAddress! + written, raw.count - written)
                if count > 0 { written += count } else if count < 0 && errno == EINTR { continue } else {
                    failure = count < 0 ? errnoText() : "short write"
                    return
                }
            }
        }
        if failure == nil {
            fchmod(file, 0o644)
            if geteuid() == 0 { _ = fchown(file, uid, gid) }
            if fsync(file) != 0 { failure = errnoText() }
        }
        close(file)
        if failure == nil && renameat(fd, temporary, fd, name) != 0 { failure = errnoText() }
        if let failure {
            unlinkat(fd, temporary, 0)
            throw .cannotWrite(path: display, reason: failure)
        }
    }
}
