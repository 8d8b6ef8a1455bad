import Foundation

/// The partial archives (`.<name>.partial-<pid>-<random>`, see `AtomicOutputFile`)
/// and SQLite scratch copies (`.clmnt-sqlite-<pid>-<random>.db`, `-journal`) that
/// killed backups left in a directory.
///
/// One is stale only when all of these hold, checked through one descriptor of
/// the directory (no path is followed): the name is clmnt's own pattern; it is a
/// regular file (not a symlink: `fstatat(AT_SYMLINK_NOFOLLOW)`, then opened with
/// `O_NOFOLLOW` and checked to be the same inode) owned by us; no process holds
/// the writer's `flock` on it (the kernel drops it when the writer dies, even by
/// SIGKILL); and the pid in its name is gone (which covers the instant between
/// a writer's `open` and its `flock`). A pid reused by another process only
/// delays the removal until that process ends.
public enum PartialFiles {
    public struct Leftover: Sendable, Codable, Equatable {
        public var file: String
        public var sizeBytes: Int64

        enum CodingKeys: String, CodingKey {
            case file
            case sizeBytes = "size_bytes"
        }
    }

    /// Stale partial files in `directory` (nothing is removed).
    public static func stale(in directory: String) -> [Leftover] {
        visit(directory, remove: false).found
    }

    /// Removes the stale partial files in `directory`; what went, and what could not.
    public static func removeStale(in directory: String) -> (removed: [Leftover], failed: [RetentionSkip]) {
        let result = visit(directory, remove: true)
        return (result.found, result.failed)
    }

    /// The name `AtomicOutputFile` writes `finalName` under: `.<finalName>.partial-<pid>-<random>`.
    static func partialName(for finalName: String) -> String {
        ".\(finalName).partial-\(pidAndRandom())"
    }

    /// The name of a scratch copy of a large SQLite database: `.clmnt-sqlite-<pid>-<random>.db`.
    static func scratchDatabaseName() -> String {
        "\(scratchPrefix)\(pidAndRandom()).db"
    }

    private static func pidAndRandom() -> String { "\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

    /// `.fleet-2026-11-29.tar.gz.partial-4242-123456789` → 4242; nil for any other name
    /// (the final name must end like an archive: `.tar.gz`, `.tgz`, `.tar.zst`, `.tar.xz`, `.tar.bz2`, `.tar`).
    static func writerPID(_ name: String) -> pid_t? {
        if name.hasPrefix(scratchPrefix) { return scratchWriterPID(name) }
        guard name.hasPrefix("."), let marker = name.range(of: ".partial-", options: .backwards),
              marker.lowerBound > name.index(after: name.startIndex) else { return nil }
        let finalName = name[name.index(after: name.startIndex)..<marker.lowerBound]
        guard Compression.archiveExtensions.contains(where: { finalName.hasSuffix("." + $0) }) else { return nil }
        return pid(inPIDAndRandom: name[marker.upperBound...])
    }

    private static let scratchPrefix = ".clmnt-sqlite-"

    /// `.clmnt-sqlite-4242-123456789.db` (or `.db-journal`) → 4242.
    private static func scratchWriterPID(_ name: String) -> pid_t? {
        var rest = name.dropFirst(scratchPrefix.count)
        if rest.hasSuffix(".db-journal") { rest = rest.dropLast(".db-journal".count) }
        else if rest.hasSuffix(".db") { rest = rest.dropLast(".db".count) }
        else { return nil }
        return pid(inPIDAndRandom: rest)
    }

    /// `4242-123456789` (decimal pid, decimal 32-bit random) → 4242.
    private static func pid(inPIDAndRandom text: Substring) -> pid_t? {
        let fields = text.split(separator: "-", omittingEmptySubsequences: false)
        guard fields.count == 2, fields.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }),
              let pid = pid_t(fields[0]), pid > 0, UInt32(fields[1]) != nil else { return nil }
        return pid
    }

    private static func visit(_ directory: String, remove: Bool) -> (found: [Leftover], failed: [RetentionSkip]) {
        guard let opened = try? FileDescriptor.open(directory, O_RDONLY | O_DIRECTORY) else { return ([], []) }
        let dirFD = opened.rawValue
        var found: [Leftover] = []
        var failed: [RetentionSkip] = []
        let names = (try? directoryNames(dirFD)) ?? []
        for name in names {
            guard let pid = writerPID(name), !processExists(pid) else { continue }
            var seen = stat()
            guard fstatat(dirFD, name, &seen, AT_SYMLINK_NOFOLLOW) == 0,
                  (UInt32(seen.st_mode) & FileType.mask) == FileType.regular, seen.st_uid == geteuid() else { continue }
            // A held lock: its writer lives (or the pid was reused by a new writer).
            guard let file = try? opened.open(name, O_RDONLY | O_NONBLOCK), let status = try? file.status(),
                  status.st_dev == seen.st_dev, status.st_ino == seen.st_ino,
                  flock(file.rawValue, LOCK_EX | LOCK_NB) == 0 else { continue }
            let leftover = Leftover(file: directory + "/" + name, sizeBytes: Int64(status.st_size))
            guard remove else {
                found.append(leftover)
                continue
            }
            // Still the file we locked? (Only root writes here, but check anyway.)
            var now = stat()
            guard fstatat(dirFD, name, &now, AT_SYMLINK_NOFOLLOW) == 0, now.st_ino == status.st_ino, now.st_dev == status.st_dev else {
                continue
            }
            if unlinkat(dirFD, name, 0) == 0 {
                found.append(leftover)
            } else {
                failed.append(RetentionSkip(file: leftover.file, reason: String(cString: strerror(errno))))
            }
        }
        return (found, failed)
    }

    /// kill(pid, 0): EPERM still means the process exists.
    private static func processExists(_ pid: pid_t) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }
}
