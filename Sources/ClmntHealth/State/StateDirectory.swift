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
    /// Every file the health commands keep here (what the dashboard watches for changes).
    public static var healthFileNames: [String] {
        [statusName, watchStateName, historyName, HealthHistory.rotatedName, totalsName]
    }
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
        let home: FileDescriptor
        do { home = try FileDescriptor.openDirectory(parent) } catch {
            if error.code == ELOOP || error.code == ENOTDIR { throw .unsafeStateFile(path: parent, reason: "is a symbolic link or not a directory") }
            throw create ? .cannotWrite(path: path, reason: error.reason) : .cannotRead(path: path, reason: error.reason)
        }
        let homeInfo: stat
        do { homeInfo = try home.status() } catch { throw .cannotRead(path: parent, reason: error.reason) }
        let uid = owner?.uid ?? homeInfo.st_uid
        let gid = owner?.gid ?? homeInfo.st_gid
        let directory: OpenStateDirectory
        let info: stat
        do throws(SystemError) {
            let opened: FileDescriptor
            if let existing = try home.openIfPresent(name, O_RDONLY | O_DIRECTORY, path: path) {
                opened = existing
            } else {
                guard create else { return nil }
                guard mkdirat(home.rawValue, name, 0o755) == 0 || errno == EEXIST else { throw SystemError(path: path) }
                opened = try home.openDirectory(name, path: path)
                // Ours only if it is still the directory we made: empty and root's.
                if geteuid() == 0, let made = try? opened.status(), made.st_uid == 0, made.st_nlink == 2 {
                    _ = fchown(opened.rawValue, uid, gid)
                }
            }
            info = try opened.status()
            directory = OpenStateDirectory(directory: opened, uid: uid, gid: gid)
        } catch {
            let isLink = home.status(of: name).map { ($0.st_mode & S_IFMT) == S_IFLNK } ?? false
            switch error.code {
            case ELOOP, ENOTDIR where isLink: throw .unsafeStateFile(path: path, reason: "is a symbolic link")
            case ENOTDIR: throw .unsafeStateFile(path: path, reason: "is not a directory")
            default: throw create ? .cannotWrite(path: path, reason: error.reason) : .cannotRead(path: path, reason: error.reason)
            }
        }
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
              let file = try directory.openFile(name, writing: true, create: true) else { return }
        var bytes = Array((line + "\n").utf8)
        if let info = try? file.status(), info.st_size > 0,
           let last = try? file.read(at: Int(info.st_size) - 1, count: 1), last != [UInt8(ascii: "\n")] {
            bytes.insert(UInt8(ascii: "\n"), at: 0)
        }
        // One write, not `writeAll`: a second write could interleave with another writer's line.
        let count = bytes.withUnsafeBytes { write(file.rawValue, $0.baseAddress, $0.count) }
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
        // Checked (a regular file of the molt's), then closed.
        guard try directory.openFile(from, writing: false, create: false) != nil else { return }
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
        var lockFile: FileDescriptor?
        var warning: String?
        do throws(HealthError) {
            if let directory = try open(create: true) {
                lockFile = try directory.openFile(Self.lockName, writing: false, create: true)
            }
        } catch {
            warning = "running without the state lock: \(error)"
        }
        let fd = lockFile?.rawValue ?? -1
        var locked = fd >= 0
        if locked {
            // Bounded: the lock file is the molt user's, who could hold it forever.
            let deadline = Date().addingTimeInterval(Self.lockWait)
            while flock(fd, LOCK_EX | LOCK_NB) != 0 {
                guard errno == EWOULDBLOCK || errno == EINTR, Date() < deadline else {
                    warning = "running without the state lock: \(lockPath) stayed locked for \(Int(Self.lockWait)) s"
                    locked = false
                    break
                }
                usleep(20_000)
            }
        }
        defer { if locked { flock(fd, LOCK_UN) } }
        return try body(warning)
    }

    // MARK: - Reading

    /// The whole of `name`; nil when it (or `.molt-state`) does not exist. Throws when it
    /// is unsafe, unreadable or larger than `limit` bytes.
    public func contents(of name: String, limit: Int = StateDirectory.stateFileLimit) throws(HealthError) -> Data? {
        guard let directory = try open(create: false),
              let file = try directory.openFile(name, writing: false, create: false) else { return nil }
        let size = Int((try? file.status())?.st_size ?? 0)
        guard size <= limit else {
            throw .cannotRead(path: display(name), reason: "\(size) bytes, more than a state file holds (\(limit)); ignored")
        }
        do { return Data(try file.read(at: 0, count: size)) } catch { throw .cannotRead(path: display(name), reason: error.reason) }
    }

    /// The newest whole lines of `name` within its last `maxBytes` bytes, and how many
    /// bytes before them were left unread; nil when it does not exist.
    public func tail(of name: String, maxBytes: Int) throws(HealthError) -> (data: Data, skipped: Int)? {
        guard let directory = try open(create: false),
              let file = try directory.openFile(name, writing: false, create: false) else { return nil }
        let size = Int((try? file.status())?.st_size ?? 0)
        let start = max(0, size - maxBytes)
        var data: Data
        do { data = Data(try file.read(at: start, count: size - start)) } catch {
            throw .cannotRead(path: display(name), reason: error.reason)
        }
        var skipped = start
        if start > 0 {
            // Started mid-line: that partial line is skipped too.
            let cut = data.firstIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? data.endIndex
            skipped += cut - data.startIndex
            data = Data(data[cut...])
        }
        return (data, skipped)
    }
}
