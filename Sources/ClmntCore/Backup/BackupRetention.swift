import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file `--keep` left alone, or could not remove, and why.
public struct RetentionSkip: Sendable, Codable, Equatable {
    public var file: String
    public var reason: String

    public init(file: String, reason: String) {
        self.file = file
        self.reason = reason
    }
}

/// An archive that `--keep` may remove: a clmnt archive of this base dir.
public struct RetentionCandidate: Sendable, Equatable {
    /// The file name inside the backup directory.
    public var name: String
    /// The manifest's timestamp (`2026-11-29T03:15:00Z`: sorts as text).
    public var timestamp: String
    /// The file's mtime: breaks ties between archives of the same second.
    public var modified: Double

    public init(name: String, timestamp: String, modified: Double = 0) {
        self.name = name
        self.timestamp = timestamp
        self.modified = modified
    }
}

/// What one pruning pass did.
public struct RetentionResult: Sendable, Equatable {
    /// Paths removed, oldest first.
    public var removed: [String] = []
    /// Files named like archives that were not candidates: symlinks, unreadable,
    /// foreign or another base dir's archives.
    public var skipped: [RetentionSkip] = []
    /// Old archives that should have been removed but could not be.
    public var failed: [RetentionSkip] = []

    public init() {}
}

/// `fleet backup --keep N`: after a successful backup, removes the oldest clmnt
/// archives of the same base dir from the new archive's directory so that N
/// remain, the new one included.
///
/// Only regular files named `fleet-*.tar*` whose manifest (the first entry)
/// says `tool: clmnt` and names this base dir are candidates. Everything is
/// done relative to one descriptor of the directory: names are examined with
/// `fstatat(AT_SYMLINK_NOFOLLOW)` and opened with `O_NOFOLLOW`, and a file is
/// unlinked only if it is still the same inode whose manifest was read.
public enum BackupRetention {
    /// The names `--keep` considers: the default naming and its variants.
    public static let namePattern = "fleet-*.tar*"

    public static func matchesName(_ name: String) -> Bool {
        fnmatch(namePattern, name, FNM_PERIOD) == 0
    }

    /// Which candidates go (oldest first) so that `keep` archives remain, counting
    /// `newArchive` (never selected, whether or not it is among the candidates).
    /// Newest first by manifest timestamp, then mtime, then name.
    public static func select(_ candidates: [RetentionCandidate], newArchive: String, keep: Int) -> [RetentionCandidate] {
        precondition(keep >= 1, "keep is validated to be 1 or more")
        let others = candidates.filter { $0.name != newArchive }
            .sorted { ($0.timestamp, $0.modified, $0.name) > ($1.timestamp, $1.modified, $1.name) }
        return Array(others.dropFirst(keep - 1).reversed())
    }

    /// Prunes `directory`, keeping `keep` archives of `baseDir` counting `newArchive` (a name in `directory`).
    /// Never throws: the backup is done; what could not be examined or removed is reported.
    public static func prune(directory: String, newArchive: String, baseDir: String, keep: Int) -> RetentionResult {
        var result = RetentionResult()
        let dirFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirFD >= 0 else {
            result.failed.append(RetentionSkip(file: directory, reason: "cannot open the directory: \(errnoText())"))
            return result
        }
        defer { close(dirFD) }

        var identities: [String: (dev: UInt64, ino: UInt64)] = [:]
        var candidates: [RetentionCandidate] = []
        for name in directoryNames(dirFD) where name != newArchive && matchesName(name) {
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
            case .candidate(let timestamp):
                let modified = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
                candidates.append(RetentionCandidate(name: name, timestamp: timestamp, modified: modified))
                identities[name] = (UInt64(info.st_dev), UInt64(info.st_ino))
            case .skip(let skip):
                result.skipped.append(skip)
            }
        }

        for victim in select(candidates, newArchive: newArchive, keep: keep) {
            let path = directory + "/" + victim.name
            var info = stat()
            guard fstatat(dirFD, victim.name, &info, AT_SYMLINK_NOFOLLOW) == 0,
                  let identity = identities[victim.name],
                  UInt64(info.st_dev) == identity.dev, UInt64(info.st_ino) == identity.ino else {
                result.failed.append(RetentionSkip(file: path, reason: "replaced while being examined; left alone"))
                continue
            }
            if unlinkat(dirFD, victim.name, 0) == 0 {
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
        return .candidate(timestamp: manifest.timestamp)
    }

    private enum Examined {
        case candidate(timestamp: String)
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

    private static func directoryNames(_ dirFD: Int32) -> [String] {
        let copy = dup(dirFD)
        guard copy >= 0, let dir = fdopendir(copy) else {
            if copy >= 0 { close(copy) }
            return []
        }
        defer { closedir(dir) }
        rewinddir(dir)
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
