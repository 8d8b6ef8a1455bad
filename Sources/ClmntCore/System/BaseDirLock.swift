import Foundation

/// Keeps `fleet backup` and `fleet restore` of one base dir apart.
///
/// Two `flock` files per base dir, in a root-only directory outside every base
/// dir (`/run/clmnt`: `/run` is writable by root alone, so no molt user can
/// plant a link or hold a lock there; a lock on the base dir itself could be
/// taken by anyone who can open it, and held forever):
/// - `<dev>-<inode>.lock`: shared by every backup, exclusive for a restore;
/// - `<dev>-<inode>.backup.lock`: exclusive, one backup at a time.
/// The base dir is named by device and inode, so every path to it (symlinks,
/// bind mounts, `..`) meets the same lock. The kernel drops a `flock` when its
/// holder dies, even by SIGKILL: a dead run never blocks the next.
public final class BaseDirLock {
    /// `inspect`: a dry run, which must not see a fleet half-restored but may run beside a backup.
    public enum Mode: Sendable { case backup, restore, inspect }

    /// Where the lock files live; created 0700 by root.
    public static var directory: String {
        if geteuid() == 0 { return "/run/clmnt" }
        if let runtime = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"], runtime.hasPrefix("/") {
            return runtime + "/clmnt"
        }
        return "/tmp/clmnt-\(geteuid())"
    }

    /// The base dir, open (not following a symlink at its last component) for as long as the lock is held.
    public let baseDirectory: FileDescriptor
    private var descriptors: [HeldLock] = []

    /// Opens `baseDir` and takes the locks `mode` needs, waiting up to `wait` seconds (0: refuse at once).
    /// The one way every command takes it.
    public init(baseDir: String, mode: Mode, wait: Double = 0) throws(BaseDirLockError) {
        do { baseDirectory = try FileDescriptor.open(baseDir, O_RDONLY | O_DIRECTORY) } catch { throw .baseDir(error) }
        let status: stat
        do { status = try baseDirectory.status() } catch { throw .lockDirectory(path: baseDir, reason: error.reason) }
        let directory = try Self.openLockDirectory()
        let name = "\(UInt64(status.st_dev))-\(UInt64(status.st_ino))"
        let deadline = Date().addingTimeInterval(max(0, wait))
        switch mode {
        case .backup:
            // One backup at a time first: a second backup waits here, not in a restore's way.
            descriptors.append(try Self.lock(directory, name + ".backup.lock", LOCK_EX, deadline: deadline,
                                             busy: .busy(baseDir: baseDir, holder: "another backup")))
            descriptors.append(try Self.lock(directory, name + ".lock", LOCK_SH, deadline: deadline,
                                             busy: .busy(baseDir: baseDir, holder: "a restore")))
        case .inspect:
            descriptors.append(try Self.lock(directory, name + ".lock", LOCK_SH, deadline: deadline,
                                             busy: .busy(baseDir: baseDir, holder: "a restore")))
        case .restore:
            descriptors.append(try Self.lock(directory, name + ".lock", LOCK_EX, deadline: deadline,
                                             busy: .busy(baseDir: baseDir, holder: "a backup or another restore")))
        }
    }

    // Unlocked before the close: a flock belongs to the open file description, and a
    // child forked meanwhile by another thread shares it until its exec closes it; a
    // close alone would leave the lock held that long, and the next run (of this
    // process: tests, the dashboard) would be refused as "another backup is running".
    /// One lock file held, unlocked in `deinit` before its descriptor closes.
    private final class HeldLock {
        let file: FileDescriptor

        init(_ file: consuming FileDescriptor) { self.file = file }

        deinit { flock(file.rawValue, LOCK_UN) }
    }

    private static func lock(_ directory: borrowing FileDescriptor, _ name: String, _ operation: Int32, deadline: Date,
                             busy: BaseDirLockError) throws(BaseDirLockError) -> HeldLock {
        let file: FileDescriptor
        do { file = try directory.open(name, O_RDWR | O_CREAT, mode: 0o600, path: Self.directory + "/" + name) } catch {
            throw .lockDirectory(path: error.path, reason: error.reason)
        }
        // Polled rather than blocking: a signal or the deadline ends the wait cleanly.
        while flock(file.rawValue, operation | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR, Date() < deadline else { throw busy }
            usleep(100_000)
        }
        return HeldLock(file)
    }

    /// The lock directory, created if missing, refused unless it is ours and closed to others.
    private static func openLockDirectory() throws(BaseDirLockError) -> FileDescriptor {
        let path = directory
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw .lockDirectory(path: path, reason: SystemError.text())
        }
        let opened: FileDescriptor
        do { opened = try FileDescriptor.openDirectory(path) } catch { throw .lockDirectory(path: path, reason: error.reason) }
        guard let status = try? opened.status(), status.st_uid == geteuid(), status.st_mode & 0o022 == 0 else {
            throw .lockDirectory(path: path, reason: "not a directory owned by uid \(geteuid()) and closed to others")
        }
        return opened
    }
}

/// Why the base-dir lock was not taken.
public enum BaseDirLockError: Error, Equatable, CustomStringConvertible {
    /// Another run holds it (exit 75).
    case busy(baseDir: String, holder: String)
    case lockDirectory(path: String, reason: String)
    /// The base dir itself could not be opened (each command says this in its own words).
    case baseDir(SystemError)

    public var description: String {
        switch self {
        case .baseDir(let error): return "cannot open base dir \(error.description)"
        case .busy(let baseDir, let holder):
            return "\(holder) of \(baseDir) is running; try again later (or pass --wait SECONDS)"
        case .lockDirectory(let path, let reason): return "cannot take the base-dir lock in \(path): \(reason)"
        }
    }
}
