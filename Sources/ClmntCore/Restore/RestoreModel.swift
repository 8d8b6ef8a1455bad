import Foundation

/// Everything `fleet restore` can be told.
public struct RestoreOptions: Sendable {
    /// The archive to restore from.
    public var archive: String
    /// Where the molts land (`<base-dir>/<name>`).
    public var baseDir: String
    /// nil: every molt of the archive.
    public var selection: [String]?
    /// Replace molts that already exist.
    public var force = false
    /// Create no users; files of a missing user stay owned by the invoking user.
    public var skipUsers = false
    /// Restore symlinks whose targets leave their molt (a molt's own `~/bin/node ->
    /// /usr/bin/node`, a dangling export link) instead of refusing the archive.
    /// They are created as links only: nothing is ever written through a symlink
    /// (libarchive's SECURE_SYMLINKS, and entries below a link are still refused).
    public var allowOutsideSymlinks = false
    /// Give a molt whose port another molt here uses the next free port.
    public var reassignPorts = false
    /// How long to wait for a backup or another restore of the base dir to finish; 0: refuse at once (exit 75).
    public var wait: Double = 0
    /// Reuse an existing regular account of a molt's name even when its home is
    /// neither the molt's target nor its recorded home (shown in the plan).
    public var adoptExistingUsers = false

    public init(archive: String, baseDir: String) {
        self.archive = archive
        self.baseDir = baseDir
    }
}

/// What a restore will do, computed from the manifest alone and the state of this host.
public struct RestorePlan: Sendable, Equatable, Codable {
    public var archive: String
    public var format: ArchiveFormat
    public var hostname: String
    /// When the backup was made, as the manifest says.
    public var timestamp: String
    public var compression: String
    /// The base dir on the host that made the backup, when known.
    public var sourceBaseDir: String?
    public var baseDir: String
    public var baseDirExists: Bool
    /// The molts to restore, in archive order.
    public var molts: [MoltPlan]
    /// Molts of the archive left out by `--select`.
    public var notSelected: [String]
    public var notes: [String]
    /// Why the restore would be refused; empty when it can run.
    public var refusals: [String]
    /// The manifest's SHA-256, so the restore can tell the archive has not changed.
    public var manifestDigest: String

    public var canRun: Bool { refusals.isEmpty }
    public var totalBytes: Int64 { molts.reduce(0) { $0 + $1.sizeBytes } }

    enum CodingKeys: String, CodingKey {
        case archive, format, hostname, timestamp, compression, molts, notes, refusals
        case sourceBaseDir = "source_base_dir"
        case baseDir = "base_dir"
        case baseDirExists = "base_dir_exists"
        case notSelected = "not_selected"
        case manifestDigest = "manifest_sha256"
    }
}

/// One molt of a plan.
public struct MoltPlan: Sendable, Equatable, Codable {
    public enum Action: String, Sendable, Codable {
        /// Nothing is at the target.
        case create = "new"
        /// The target exists and `--force` replaces it.
        case overwrite
        /// The target exists and there is no `--force`.
        case refuse = "exists"
    }

    public enum UserAction: String, Sendable, Codable {
        case exists
        case create
        /// `--skip-users` and no such user: files stay owned by the invoking user.
        case missing
        /// A system account of that name exists: refused.
        case systemAccount = "system-account"
        /// A regular account of that name exists that nothing on this host shows to be this molt's
        /// (`MoltAccountEvidence`): refused.
        case foreign = "not-the-molts"
        /// Such an account, reused because of `--adopt-existing-users`.
        case adopted
    }

    public var name: String
    public var target: String
    public var sizeBytes: Int64
    public var fileCount: Int?
    public var action: Action
    public var user: UserAction
    /// The uid when the user exists.
    public var uid: UInt32?
    public var port: Int?
    /// The port it gets with `--reassign-ports`.
    public var newPort: Int?
    /// The molt here that already uses `port`, if any.
    public var portConflict: String?
    /// The home on the host that made the backup, when the manifest tells.
    public var sourceHome: String?
    /// Files of this molt the backup missed (vanished, unreadable, changed while read),
    /// from the archive's `BackupStatusMark`: 0 complete, nil unknown (no mark).
    public var missedFiles: Int? = nil
    /// The supplementary groups a created user gets (the source host's that exist here).
    public var groups: [String] = []

    /// Whether paths inside `.molt-info` and `openclaw.json` will be rewritten (known source home only).
    public var movesHome: Bool { sourceHome.map { $0 != target } ?? false }
    public var finalPort: Int? { newPort ?? port }

    enum CodingKeys: String, CodingKey {
        case name, target, action, user, uid, port
        case sizeBytes = "size_bytes"
        case fileCount = "file_count"
        case newPort = "new_port"
        case portConflict = "port_conflict"
        case sourceHome = "source_home"
        case missedFiles = "missed_files"
        case groups
    }
}

/// Progress of a running restore (called from the extracting thread).
public struct RestoreProgress: Sendable {
    /// Compressed bytes of the archive read so far, of `archiveBytes`.
    public let bytesRead: Int64
    public let archiveBytes: Int64
    public let filesWritten: Int
    public let currentMolt: String?
}

/// What a finished restore reports.
public struct RestoreSummary: Sendable, Codable, Equatable {
    public struct RestoredMolt: Sendable, Codable, Equatable {
        public var name: String
        public var home: String
        public var user: String
        public var uid: UInt32
        public var userCreated: Bool
        public var replaced: Bool
        public var port: Int?
        public var files: Int
        public var bytes: Int64
        /// What was rewritten for the new host (paths, port).
        public var rewrites: [String]

        enum CodingKeys: String, CodingKey {
            case name, home, user, uid, replaced, port, files, bytes, rewrites
            case userCreated = "user_created"
        }
    }

    public var archive: String
    public var baseDir: String
    public var molts: [RestoredMolt]
    public var files: Int
    public var bytes: Int64
    public var seconds: Double
    public var warnings: [String]

    enum CodingKeys: String, CodingKey {
        case archive, molts, files, bytes, seconds, warnings
        case baseDir = "base_dir"
    }
}

/// Set from a signal handler (or a test) to stop a running restore between
/// two blocks of data; everything it staged is removed.
public final class RestoreCancellation: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false

    public init() {}

    public func cancel() { lock.withLock { cancelled = true } }
    public var isCancelled: Bool { lock.withLock { cancelled } }
}
