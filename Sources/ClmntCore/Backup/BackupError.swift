import Foundation

/// Failures of `fleet backup`, `verify` and `list-backups`; each prints as one line.
public enum BackupError: Error, CustomStringConvertible {
    case fleet(FleetError)
    case archive(ArchiveError)
    case unreadable(path: String, reason: String)
    case outputExists(path: String)
    case outputDirectory(path: String, reason: String)
    case reservedMoltName(String)
    case invalidOption(String)
    case interrupted
    /// Another backup or a restore of the base dir runs (exit 75), or the lock could not be taken.
    case locked(BaseDirLockError)
    /// A restore into the base dir was killed during its swaps (its journal waits): the fleet
    /// is half restored, so it is not backed up (nor anything pruned) until `restore --resume` (exit 4).
    case restorePending(baseDir: String, archive: String, molts: [String])
    /// `--verify` found the archive just written damaged (it is kept, for inspection; nothing was pruned).
    case damaged(path: String, problems: [String])
    /// A backup dir someone other than root (or the invoking user) owns or can write:
    /// archives there could be planted or replaced (exit 1).
    case untrustedBackupDir(path: String, reason: String)

    public var description: String {
        switch self {
        case .fleet(let error): return error.description
        case .archive(let error): return error.description
        case .unreadable(let path, let reason): return "cannot read \(path): \(reason)"
        case .outputExists(let path): return "\(path) already exists (choose another -o, or --force to replace it)"
        case .outputDirectory(let path, let reason): return "cannot write to \(path): \(reason)"
        case .reservedMoltName(let name): return "molt name '\(name)' collides with the archive's \(name)/ section; rename the molt"
        case .invalidOption(let message): return message
        case .interrupted: return "interrupted; the partial archive was removed"
        case .locked(let error): return error.description
        case .restorePending(let baseDir, let archive, let molts):
            let base = PathBytes(baseDir).description
            return "\(base) is half restored (a restore from \(PathBytes(archive).description) was interrupted while swapping in "
                + "\(molts.joined(separator: ", "))): not backed up, nothing pruned; run `clmnt fleet restore --resume -d \(base)` first"
        case .damaged(let path, let problems):
            let first = problems.first.map { ": \($0)" } ?? ""
            let more = problems.count > 1 ? " (and \(problems.count - 1) more problems)" : ""
            return "\(path) failed verification\(first)\(more); no old backup was removed"
        case .untrustedBackupDir(let path, let reason):
            return "refusing backup dir \(path): \(reason) (chown root and chmod go-w it, or choose another --backup-dir)"
        }
    }
}

extension BackupError {
    /// A failure writing the archive or its directory: EEXIST means the name is taken.
    init(writing error: SystemError) {
        self = error.code == EEXIST ? .outputExists(path: error.path) : .outputDirectory(path: error.path, reason: error.reason)
    }
}
