import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file retention left alone, or could not remove, and why.
public struct RetentionSkip: Sendable, Codable, Equatable {
    public var file: String
    public var reason: String

    public init(file: String, reason: String) {
        self.file = file
        self.reason = reason
    }
}

/// What one pruning pass decided and did.
public struct RetentionResult: Sendable, Equatable {
    /// Every clmnt archive of the base dir, newest first, with what the policy decided.
    public var decisions: [RetentionDecision] = []
    /// Paths removed, oldest first (none in a dry run).
    public var removed: [String] = []
    /// Files named like archives that were not candidates: symlinks, unreadable,
    /// foreign or another base dir's archives.
    public var skipped: [RetentionSkip] = []
    /// Old archives that should have been removed but could not be.
    public var failed: [RetentionSkip] = []

    public init() {}
}

/// Retention of a base dir's archives: `fleet backup --keep...` after a successful
/// backup, and `fleet prune`. The policy (`RetentionPolicy`) decides; this finds the
/// candidates and removes what it lets go.
///
/// Only regular files named `fleet-*.tar*` whose manifest (the first entry)
/// says `tool: clmnt` and names this base dir are candidates. Everything is
/// done relative to one descriptor of the directory: names are examined with
/// `fstatat(AT_SYMLINK_NOFOLLOW)` and opened with `O_NOFOLLOW`, and a file is
/// unlinked only if it is still the same inode whose manifest was read. The
/// report and `SHA256SUMS` are entries of the archive: they go with it; no other
/// file is ever removed.
public enum BackupRetention {
    /// The names retention considers: the default naming and its variants.
    public static let namePattern = "fleet-*.tar*"

    public static func matchesName(_ name: String) -> Bool {
        fnmatch(namePattern, name, FNM_PERIOD) == 0
    }

    /// `fleet prune`: applies `policy` to the archives of `baseDir` in `directory` under the
    /// base dir's backup lock (so it never races a backup's own retention), or, with `dryRun`,
    /// decides without the lock and removes nothing. A directory that does not exist holds no
    /// archives. Refuses an empty policy: pruning everything is never a default.
    public static func prune(backupDir directory: String, baseDir: String, policy: RetentionPolicy, dryRun: Bool,
                             wait: Double = 0) throws(BackupError) -> RetentionResult {
        if policy.isEmpty {
            throw .invalidOption("give a policy: --keep N, --keep-daily N, --keep-weekly N and/or --keep-monthly N")
        }
        try policy.validate()
        guard wait >= 0, wait <= 86_400 else { throw .invalidOption("--wait must be between 0 and 86400 seconds") }
        var info = stat()
        if stat(directory, &info) != 0 {
            if errno == ENOENT { return RetentionResult() }
            throw .unreadable(path: directory, reason: errnoText())
        }
        guard (UInt32(info.st_mode) & FileType.mask) == FileType.directory else {
            throw .unreadable(path: directory, reason: "not a directory")
        }
        var lock: BaseDirLock?
        if !dryRun {
            var options = BackupOptions(baseDir: baseDir)
            options.wait = wait
            lock = try FleetBackup(options: options).lockBaseDir(baseDir)
        }
        defer { withExtendedLifetime(lock) {} }
        return prune(directory: directory, baseDir: baseDir, policy: policy, dryRun: dryRun)
    }

    /// Applies `policy` to the archives of `baseDir` in `directory`. `newArchive` (a name in
    /// `directory`, possibly not named `fleet-*`) is the backup just written: always kept,
    /// counted as the newest. With `dryRun`, decides and removes nothing.
    /// Never throws: what could not be examined or removed is reported.
    public static func prune(directory: String, baseDir: String, policy: RetentionPolicy, newArchive: String? = nil,
                             dryRun: Bool = false, timeZone: TimeZone = .current) -> RetentionResult {
        var result = RetentionResult()
        let dirFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirFD >= 0 else {
            result.failed.append(RetentionSkip(file: directory, reason: "cannot open the directory: \(errnoText())"))
            return result
        }
        defer { close(dirFD) }

        var identities: [String: (dev: UInt64, ino: UInt64)] = [:]
        var candidates: [RetentionCandidate] = []
        // Archive names are clmnt's own (UTF-8); a listing that fails leaves nothing to remove.
        for name in (try? directoryNames(dirFD)) ?? [] where name == newArchive || matchesName(name) {
            let path = directory + "/" + name
            var info = stat()
            guard fstatat(dirFD, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
                result.skipped.append(RetentionSkip(file: path, reason: errnoText()))
                continue
            }
            let type = UInt32(info.st_mode) & FileType.mask
            guard type == FileType.regular else {
                let reason = type == FileType.symlink ? "a symlink (not followed)" : "not a regular file"
                result.skipped.append(RetentionSkip(file: path, reason: reason))
                continue
            }
            switch examine(dirFD: dirFD, name: name, path: path, expected: info, baseDir: baseDir) {
            case .candidate(let timestamp, let complete):
                let modified = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
                candidates.append(RetentionCandidate(name: name, timestamp: timestamp, modified: modified, complete: complete,
                                                     sizeBytes: Int64(info.st_size)))
                identities[name] = (UInt64(info.st_dev), UInt64(info.st_ino))
            case .skip(let skip):
                result.skipped.append(skip)
            }
        }

        result.decisions = policy.decide(candidates, newArchive: newArchive, timeZone: timeZone)
        guard !dryRun else { return result }
        for victim in result.decisions.reversed() where !victim.keep && victim.candidate.name != newArchive {
            let name = victim.candidate.name
            let path = directory + "/" + name
            var info = stat()
            guard fstatat(dirFD, name, &info, AT_SYMLINK_NOFOLLOW) == 0,
                  let identity = identities[name],
                  UInt64(info.st_dev) == identity.dev, UInt64(info.st_ino) == identity.ino else {
                result.failed.append(RetentionSkip(file: path, reason: "replaced while being examined; left alone"))
                continue
            }
            if unlinkat(dirFD, name, 0) == 0 {
                result.removed.append(path)
            } else {
                result.failed.append(RetentionSkip(file: path, reason: errnoText()))
            }
        }
        return result
    }

    /// The manifest timestamp of a clmnt archive of `baseDir`, read through a
    /// descriptor opened without following links; otherwise why it is left alone.
    private static func examine(dirFD: Int32, name: String, path: String, expected: stat,
                                baseDir: String) -> Examined {
        let fd = openat(dirFD, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return .skip(RetentionSkip(file: path, reason: errnoText())) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_dev == expected.st_dev, info.st_ino == expected.st_ino else {
            return .skip(RetentionSkip(file: path, reason: "replaced while being examined"))
        }
        let descriptorPath = descriptorDirectory + "/\(fd)"
        let manifest: Manifest
        do { manifest = try BackupCatalog.readManifest(path: descriptorPath) } catch {
            let reason = error.description.replacingOccurrences(of: descriptorPath, with: path)
            return .skip(RetentionSkip(file: path, reason: "unreadable: \(reason)"))
        }
        guard manifest.tool == "clmnt" else {
            return .skip(RetentionSkip(file: path, reason: "not written by clmnt (tool: \(manifest.tool ?? "none"))"))
        }
        guard manifest.baseDir == baseDir else {
            return .skip(RetentionSkip(file: path, reason: "an archive of another base dir (\(manifest.baseDir ?? "none"))"))
        }
        return .candidate(timestamp: manifest.timestamp, complete: BackupStatusMark.read(fd: fd)?.complete)
    }

    private enum Examined {
        case candidate(timestamp: String, complete: Bool?)
        case skip(RetentionSkip)
    }

    /// Where an open descriptor can be opened again by path (libarchive takes a path).
    private static var descriptorDirectory: String {
        #if os(Linux)
        "/proc/self/fd"
        #else
        "/dev/fd"
        #endif
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
