import ClmntCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A molt's `.molt-state/` directory: where the health files live, who owns
/// them, and how they are written (atomically, owned by the molt's user).
public struct StateDirectory: Sendable {
    public let path: String
    /// The molt's user (or its home's owner); files written as root are chowned to it.
    public let owner: MoltOwner?

    public init(molt: Molt) {
        self.init(path: molt.stateDir, owner: MoltOwner.of(molt))
    }

    public init(path: String, owner: MoltOwner?) {
        self.path = path
        self.owner = owner
    }

    public var statusPath: String { path + "/health-status.json" }
    public var historyPath: String { path + "/health-history.jsonl" }
    public var watchStatePath: String { path + "/health-watch-state.json" }
    public var cronLogPath: String { path + "/cron.log" }
    var lockPath: String { path + "/.health.lock" }

    /// Creates the directory (0755, owned by the molt) when missing.
    public func ensureExists() throws(HealthError) {
        var info = stat()
        if stat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFDIR else { throw .cannotWrite(path: path, reason: "not a directory") }
            return
        }
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else { throw .cannotWrite(path: path, reason: errnoText()) }
        chownToOwner(path)
    }

    /// Makes `path` (a file or dir inside this directory) belong to the molt's user, when we are root.
    public func chownToOwner(_ target: String) {
        guard let owner, geteuid() == 0 else { return }
        _ = lchown(target, owner.uid, owner.gid)
    }

    /// Writes `text` to `target` through a temp file in the same directory and a rename,
    /// so a reader sees the old file or the new one, never half of one.
    public func writeAtomically(_ text: String, to target: String) throws(HealthError) {
        try ensureExists()
        let name = target.split(separator: "/").last.map(String.init) ?? "state"
        var template = Array((path + "/.\(name).XXXXXX").utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { throw .cannotWrite(path: target, reason: errnoText()) }
        let tempPath = String(decoding: template.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var failure: String?
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count && failure == nil {
            let count = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if count > 0 { written += count } else if count < 0 && errno == EINTR { continue } else { failure = errnoText() }
        }
        if failure == nil {
            fchmod(fd, 0o644)
            if let owner, geteuid() == 0 { _ = fchown(fd, owner.uid, owner.gid) }
            if fsync(fd) != 0 { failure = errnoText() }
        }
        close(fd)
        if failure == nil && rename(tempPath, target) != 0 { failure = errnoText() }
        if let failure {
            unlink(tempPath)
            throw .cannotWrite(path: target, reason: failure)
        }
    }

    /// Appends one line with a single `write` in append mode, so concurrent writers never interleave.
    public func appendLine(_ line: String, to target: String) throws(HealthError) {
        try ensureExists()
        let fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .cannotWrite(path: target, reason: errnoText()) }
        defer { close(fd) }
        var info = stat()
        if fstat(fd, &info) == 0, let owner, geteuid() == 0, info.st_uid != owner.uid || info.st_gid != owner.gid, info.st_size == 0 {
            _ = fchown(fd, owner.uid, owner.gid)
        }
        let bytes = Array((line + "\n").utf8)
        let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard count == bytes.count else {
            throw .cannotWrite(path: target, reason: count < 0 ? errnoText() : "short write")
        }
    }

    /// Runs `body` holding an exclusive `flock` on `.molt-state/.health.lock`, so a
    /// manual check and a cron run never interleave their read-modify-write.
    /// Without a writable state dir, runs unlocked (the writes will report why).
    public func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        try? ensureExists()
        let fd = open(lockPath, O_RDONLY | O_CREAT | O_CLOEXEC, 0o644)
        if fd >= 0 {
            chownToOwner(lockPath)
            while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        }
        defer { if fd >= 0 { flock(fd, LOCK_UN); close(fd) } }
        return try body()
    }

    /// The file's bytes; nil when it does not exist; throws when it exists but cannot be read.
    func contents(of target: String) throws(HealthError) -> Data? {
        try readWholeFile(target)
    }
}
