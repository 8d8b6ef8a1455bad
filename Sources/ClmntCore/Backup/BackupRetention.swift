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
    /// foreign, another owner's or another base dir's archives.
    public var skipped: [RetentionSkip] = []
    /// Old archives that should have been removed but could not be.
    public var failed: [RetentionSkip] = []

    public init() {}
}

/// Retention of a base dir's archives: `fleet backup --keep...` after a successful
/// backup, and `fleet prune`. The policy (`RetentionPolicy`) decides; this finds the
/// candidates and removes what it lets go.
///
/// Only regular files named `fleet-*.tar*`, owned by root (or the invoking user)
/// with one link, whose manifest (the first entry) says `tool: clmnt` and names
/// this base dir are candidates, in a backup dir no one else can write
/// (`BackupDirectory`: the listing `list-backups` uses too). Everything is done
/// relative to one descriptor of the directory, and a file is unlinked only if it
/// is still the same inode whose manifest was read. An archive whose date is not
/// trusted (in the future, far from its mtime) fills no slot and is never removed. The
/// report and `SHA256SUMS` are entries of the archive: they go with it; no other
/// file is ever removed.
public enum BackupRetention {
    /// The names retention considers: the default naming and its variants.
    public static let namePattern = "fleet-*.tar*"

    public static func matchesName(_ name: String) -> Bool {
        matchesName(PathBytes(name))
    }

    /// The name as bytes: one that is not UTF-8 matches too (`fleet-\xFF.tar.gz`).
    static func matchesName(_ name: PathBytes) -> Bool {
        name.withCString { fnmatch(namePattern, $0, FNM_PERIOD) == 0 }
    }

    /// `fleet prune`: applies `policy` to the archives of `baseDir` in `directory` under the
    /// base dir's backup lock (so it never races a backup's own retention), or, with `dryRun`,
    /// decides without the lock and removes nothing. A directory that does not exist holds no
    /// archives. Refuses an empty policy: pruning everything is never a default.
    /// `includeLegacy`: the bash tool's archives (no `tool`, no base dir in their manifest) are
    /// candidates too, as archives of `baseDir` (`fleet prune --include-legacy`).
    public static func prune(backupDir directory: String, baseDir: String, policy: RetentionPolicy, dryRun: Bool,
                             includeLegacy: Bool = false, wait: Double = 0) throws(BackupError) -> RetentionResult {
        if policy.isEmpty {
            throw .invalidOption("give a policy: --keep N, --keep-daily N, --keep-weekly N and/or --keep-monthly N")
        }
        try policy.validate()
        guard wait >= 0, wait <= 86_400 else { throw .invalidOption("--wait must be between 0 and 86400 seconds") }
        // A backup dir others can write is refused, even for a dry run: its archives could be anyone's.
        guard try BackupDirectory.openDirectory(directory, requireTrusted: true) != nil else { return RetentionResult() }
        var lock: BaseDirLock?
        if !dryRun {
            var options = BackupOptions(baseDir: baseDir)
            options.wait = wait
            lock = try FleetBackup(options: options).lockBaseDir(baseDir)
        }
        defer { withExtendedLifetime(lock) {} }
        return prune(directory: directory, baseDir: baseDir, policy: policy, dryRun: dryRun, includeLegacy: includeLegacy)
    }

    /// Applies `policy` to the archives of `baseDir` in `directory`. `newArchive` (a name in
    /// `directory`, possibly not named `fleet-*`) is the backup just written: always kept,
    /// counted as the newest. With `dryRun`, decides and removes nothing.
    /// Never throws: what could not be examined or removed is reported.
    public static func prune(directory: String, baseDir: String, policy: RetentionPolicy, newArchive: String? = nil,
                             dryRun: Bool = false, includeLegacy: Bool = false, timeZone: TimeZone = .current) -> RetentionResult {
        var result = RetentionResult()
        let opened: FileDescriptor
        do throws(BackupError) {
            guard let directoryFile = try BackupDirectory.openDirectory(directory, requireTrusted: true) else { return result }
            opened = directoryFile
        } catch {
            result.failed.append(RetentionSkip(file: directory, reason: error.description))
            return result
        }
        let dirFD = opened.rawValue

        let newName = newArchive.map { PathBytes($0) }
        let files: [ArchiveFile]
        do {
            files = try BackupDirectory.scan(dirFD, directory: directory) { $0 == newName || matchesName($0) }
        } catch {
            // A listing that fails leaves nothing to remove.
            result.failed.append(RetentionSkip(file: directory, reason: error.description))
            return result
        }
        var examined: [String: ArchiveFile] = [:]
        var candidates: [RetentionCandidate] = []
        for file in files {
            if let refused = file.refused {
                result.skipped.append(RetentionSkip(file: file.path, reason: refused))
                continue
            }
            guard let manifest = file.located?.manifest else {
                let reason = file.encryptedDate != nil ? "encrypted: give --identity to read which base dir it is of"
                    : "unreadable: \(file.unreadable ?? "no manifest")"
                result.skipped.append(RetentionSkip(file: file.path, reason: reason))
                continue
            }
            // The bash tool's archives carry neither a tool nor a base dir: only asked for, they are
            // taken as this base dir's (its `.backups` held one fleet's).
            let legacy = includeLegacy && file.located?.format == .bash && manifest.tool == nil && manifest.baseDir == nil
            guard manifest.tool == "clmnt" || legacy else {
                let hint = file.located?.format == .bash ? "; fleet prune --include-legacy ages them out" : ""
                result.skipped.append(RetentionSkip(file: file.path, reason: "not written by clmnt (tool: \(manifest.tool ?? "none"))\(hint)"))
                continue
            }
            guard legacy || manifest.baseDir == baseDir else {
                result.skipped.append(RetentionSkip(file: file.path, reason: "an archive of another base dir (\(manifest.baseDir ?? "none"))"))
                continue
            }
            // The escaped name is lossless, so unique: it keys the decision (and the JSON shows it).
            let name = file.name.description
            candidates.append(RetentionCandidate(name: name, timestamp: manifest.timestamp, modified: file.modified,
                                                 complete: file.mark?.complete, sizeBytes: file.sizeBytes,
                                                 untrustedDate: file.name == newName ? nil : file.untrustedDate))
            examined[name] = file
        }

        result.decisions = policy.decide(candidates, newArchive: newArchive.map { PathBytes($0).description },
                                         timeZone: timeZone)
        guard !dryRun else { return result }
        for victim in result.decisions.reversed() where !victim.keep {
            guard let file = examined[victim.candidate.name], file.name != newName else { continue }
            var info = stat()
            guard file.name.withCString({ fstatat(dirFD, $0, &info, AT_SYMLINK_NOFOLLOW) }) == 0,
                  InodeKey(info) == file.identity else {
                result.failed.append(RetentionSkip(file: file.path, reason: "replaced while being examined; left alone"))
                continue
            }
            if file.name.withCString({ unlinkat(dirFD, $0, 0) }) == 0 {
                result.removed.append(file.path)
            } else {
                result.failed.append(RetentionSkip(file: file.path, reason: errnoText()))
            }
        }
        return result
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
