import Foundation

/// Everything `fleet backup` can be told.
public struct BackupOptions: Sendable {
    public var baseDir: String
    /// nil: `./backups/fleet-YYYY-MM-DD.<ext>` (with the time added if that exists).
    public var output: String?
    public var compression: Compression = .gzip
    public var level: Int?
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    public var rules = ExclusionRules()
    /// nil: every molt.
    public var selection: [String]?
    /// Replace an existing file at an explicit `output`.
    public var force = false
    /// Where the default-named archive goes instead of `./backups` (ignored with `output`); created 0700 if missing.
    public var backupDir: String?
    /// After a successful backup, apply this policy to the clmnt archives of this base dir
    /// in the new archive's directory (the new one always stays); empty: keep everything.
    public var retention = RetentionPolicy()
    /// `--keep N`: the policy's newest-N rule.
    public var keep: Int? {
        get { retention.last }
        set { retention.last = newValue }
    }
    /// Read the new archive back with `ArchiveVerifier` and fail if it is damaged.
    public var verify = false
    /// How long to wait for another backup or a restore of the same base dir to
    /// finish; 0: refuse at once (exit 75).
    public var wait: Double = 0
    /// Encrypt the archive to these age recipients (`--encrypt-to`, `--recipients-file`);
    /// empty: not encrypted. The archive's name then ends in `.age`.
    public var recipients: [AgeRecipient] = []
    /// `-o -`: the archive goes to standard output.
    public var writesToStandardOutput: Bool { output == "-" }

    /// The archive's file ending: `tar.zst`, or `tar.zst.age` when encrypted.
    public var fileExtension: String { compression.fileExtension + (recipients.isEmpty ? "" : ".age") }

    /// Databases up to this size are snapshotted in memory; larger ones into a
    /// temporary file beside the archive, so memory stays bounded.
    var sqliteMemoryLimit: Int64 = 64 << 20
    /// How long a busy or locked database is retried (with a growing pause)
    /// before it is left out of the archive, with a warning naming it.
    var sqliteBusyTimeout: Duration = .seconds(10)

    public init(baseDir: String) { self.baseDir = baseDir }

    /// Checks what can be checked without touching the disk.
    public func validate() throws(BackupError) {
        if let level {
            guard let levels = compression.levels else {
                throw .invalidOption("--level does not apply to --compress none")
            }
            guard levels.contains(level) else {
                throw .invalidOption("--level \(level) is out of range for \(compression.rawValue) (\(levels.lowerBound)-\(levels.upperBound))")
            }
        }
        guard (1...256).contains(threads) else { throw .invalidOption("--threads must be between 1 and 256") }
        try retention.validate()
        if output != nil, backupDir != nil { throw .invalidOption("give --output or --backup-dir, not both") }
        if let backupDir, backupDir.isEmpty { throw .invalidOption("--backup-dir must not be empty") }
        guard wait >= 0, wait <= 86_400 else { throw .invalidOption("--wait must be between 0 and 86400 seconds") }
    }
}

/// What a finished backup reports.
public struct BackupSummary: Sendable, Codable {
    public var output: String
    public var compression: String
    public var molts: [String]
    public var files: Int
    public var entries: Int
    public var inputBytes: Int64
    public var archiveBytes: Int64
    public var seconds: Double
    public var warnings: [String]
    /// What was archived of each molt.
    public var perMolt: [String: Manifest.SectionStats]
    /// `--verify`: the verifier's report of the new archive (intact, or the run failed).
    public var verified: Bool?
    /// `--keep`: old archives removed, and files left alone with the reason.
    public var pruned: [String] = []
    public var pruneSkipped: [RetentionSkip] = []
    /// Old archives that should have gone but could not be removed.
    public var pruneFailed: [RetentionSkip] = []
    /// Files archived torn or not at all; not empty: the archive is incomplete (exit 3).
    public var missed: [MissedFile] = [] { didSet { complete = missed.isEmpty } }
    /// False when files were missed (`missed`).
    public var complete = true
    /// Partial archives of killed backups removed from the archive's directory before this one.
    public var leftoversRemoved: [PartialFiles.Leftover] = []
    public var leftoversFailed: [RetentionSkip] = []
    /// The archive's completeness mark could not be set (see `BackupStatusMark`).
    public var markFailed: String?
    /// The archive is age-encrypted.
    public var encrypted = false
    /// `--copy-to`: the copy of the archive sent off the host, and whether it arrived.
    public var offhost: OffHostCopy?

    /// Archive size over input size.
    public var ratio: Double { inputBytes > 0 ? Double(archiveBytes) / Double(inputBytes) : 0 }

    enum CodingKeys: String, CodingKey {
        case output, compression, molts, files, entries, seconds, warnings
        case verified, pruned, missed, complete, encrypted, offhost
        case leftoversRemoved = "leftovers_removed"
        case leftoversFailed = "leftovers_failed"
        case markFailed = "mark_failed"
        case perMolt = "per_molt"
        case pruneSkipped = "prune_skipped"
        case pruneFailed = "prune_failed"
        case inputBytes = "input_bytes"
        case archiveBytes = "archive_bytes"
    }
}

/// Progress of a running backup: bytes of file data archived so far of the total.
public struct BackupProgress: Sendable {
    public let bytesDone: Int64
    public let bytesTotal: Int64
    public let currentMolt: String
}

/// An archive's copy in object storage (`--to`, `--copy-to`): where, and whether it arrived.
public struct OffHostCopy: Sendable, Codable, Equatable {
    /// `s3://bucket/key`.
    public var target: String
    public var succeeded: Bool
    public var bytes: Int64?
    public var seconds: Double?
    /// Why the copy failed (the local archive, if any, is still good).
    public var error: String?

    public init(target: String, succeeded: Bool, bytes: Int64? = nil, seconds: Double? = nil, error: String? = nil) {
        self.target = target
        self.succeeded = succeeded
        self.bytes = bytes
        self.seconds = seconds
        self.error = error
    }

    enum CodingKeys: String, CodingKey {
        case target, bytes, seconds, error
        case succeeded = "ok"
    }
}
