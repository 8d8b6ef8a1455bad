import Foundation

/// Why a restore did not run, or stopped. Each prints as one line an admin can act on.
public enum RestoreError: Error, Equatable, CustomStringConvertible {
    case archive(ArchiveError)
    /// The archive holds something a restore must never write; nothing of it is restored.
    case hostileEntry(path: String, reason: String)
    /// No `manifest.json`, or one that cannot be read.
    case noManifest(archive: String)
    case badManifest(archive: String, reason: String)
    /// The archive's content does not match its manifest, report or checksums:
    /// corrupt, truncated, or tampered with.
    case contentMismatch(archive: String, reason: String)
    case unknownMolts(names: [String], inArchive: [String])
    case invalidName(String)
    /// The plan has blockers (existing molts without --force, port conflicts, ...).
    case refused([String])
    case baseDir(path: String, reason: String)
    case registry(path: String, reason: String)
    /// A backup or another restore of the base dir runs (exit 75), or the lock could not be taken.
    case locked(BaseDirLockError)
    case user(name: String, reason: String)
    case fileSystem(path: String, reason: String)
    case interrupted
    /// Swapping a molt in failed; the molts before it were restored.
    case swapFailed(reason: String, restored: [String])
    /// Every molt was swapped in, but `molts.json` could not be written; the journal is kept
    /// so the next restore (or `--resume`) writes it.
    case registryAfterSwaps(reason: String, replaced: [String], baseDir: String)
    /// The host changed between showing the plan and running it.
    case planChanged(String)
    /// The journal of an interrupted restore names something that is not a molt name
    /// (`--resume` acts on none of it).
    case untrustedJournal(container: String, name: String)

    public var description: String {
        switch self {
        case .archive(let error): return "\(error)"
        case .hostileEntry(let path, let reason):
            return "refusing the whole archive: entry '\(path)' \(reason); nothing was restored"
        case .noManifest(let archive):
            return "\(archive) has no manifest.json: not a fleet backup"
        case .badManifest(let archive, let reason):
            return "cannot read manifest.json of \(archive): \(reason)"
        case .contentMismatch(let archive, let reason):
            return "\(archive) is damaged or truncated: \(reason); nothing was restored"
        case .unknownMolts(let names, let inArchive):
            let list = inArchive.isEmpty ? "none" : inArchive.joined(separator: ", ")
            let plural = names.count == 1 ? "molt" : "molts"
            return "unknown \(plural) \(names.map { "'\($0)'" }.joined(separator: ", ")) (molts in the archive: \(list))"
        case .invalidName(let name):
            return "invalid molt name '\(name)' (lower-case letters, digits, '-' and '_', starting with a letter, at most 32)"
        case .refused(let reasons):
            return "restore refused: " + reasons.joined(separator: "; ")
        case .baseDir(let path, let reason): return "base dir \(path): \(reason)"
        case .registry(let path, let reason): return "cannot update \(path): \(reason)"
        case .locked(let error): return error.description
        case .user(let name, let reason): return "user \(name): \(reason)"
        case .fileSystem(let path, let reason): return "\(path): \(reason)"
        case .untrustedJournal(let container, let name):
            return "\(PathBytes(container).description): the journal of an interrupted restore names '\(PathBytes(name).description)', which is not a molt name; nothing was resumed (examine and remove that directory)"
        case .swapFailed(let reason, let restored):
            let done = restored.isEmpty ? "nothing was restored" : "restored before the failure: \(restored.joined(separator: ", "))"
            return "\(reason); \(done); the other molts were left as they were"
        case .registryAfterSwaps(let reason, let replaced, let baseDir):
            return "\(reason); already restored (swapped in): \(replaced.joined(separator: ", ")); "
                + "molts.json does not list them yet: `clmnt fleet restore --resume -d \(baseDir)` writes it"
        case .interrupted: return "interrupted; every existing molt was left as it was"
        case .planChanged(let what): return "the host changed since the plan was made (\(what)); run the restore again"
        }
    }
}

extension RestoreError {
    /// A problem the integrity rules found, as a restore reports it.
    init(_ problem: IntegrityProblem, archive: String) {
        switch problem {
        case .unreadable(let error): self = .archive(error)
        case .noManifest: self = .noManifest(archive: archive)
        case .badManifest(let reason): self = .badManifest(archive: archive, reason: reason)
        case .hostile(let path, let reason): self = .hostileEntry(path: path, reason: reason)
        case .damaged(let reason): self = .contentMismatch(archive: archive, reason: reason)
        }
    }
}

extension RestoreError {
    /// A file-system failure as a restore reports it: something planted (a symlink, a
    /// special file) refuses the archive's entry; anything else names the path and errno.
    init(_ error: SystemError) {
        self = error.isHostile ? .hostileEntry(path: error.path, reason: error.reason)
            : .fileSystem(path: error.path, reason: error.reason)
    }

    /// Runs a file-system step of a restore, reporting its failure as a `RestoreError`.
    static func step<Value: ~Copyable>(_ body: () throws(SystemError) -> Value) throws(RestoreError) -> Value {
        do { return try body() } catch { throw RestoreError(error) }
    }
}
