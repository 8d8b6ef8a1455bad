import Foundation

/// How archive owners become owners on this host, for one molt.
struct OwnerMap: Sendable {
    /// The molt user here (or the invoking user when it is missing and users are skipped).
    var moltUID: UInt32
    var moltGID: UInt32
    /// Who owned the molt on the host that made the backup.
    var sourceUser: String
    var sourceGroup: String?
    var sourceUID: UInt32?
    var sourceGID: UInt32?
    /// The bash tool's archives: every file belongs to the molt user.
    var everythingToMolt: Bool
}

/// One selected molt being staged.
struct StageTarget: Sendable {
    var plan: MoltPlan
    var owner: OwnerMap
}

/// Everything the extracting thread needs; plain values only.
struct ExtractionJob: Sendable {
    var archive: String
    /// The manifest the plan was made from; the pass checks the archive against it.
    var located: LocatedManifest
    var format: ArchiveFormat { located.format }
    /// The open base dir; extraction runs with it as the working directory.
    var baseDirectory: Int32
    /// Its path: `<baseDir>/<name>` is where each molt of the archive would land.
    var baseDir: String
    /// The root-only directory (in the base dir) that holds one staged home per molt.
    var containerName: String
    var containerDirectory: Int32
    var stages: [String: StageTarget]
    /// Per molt of the archive: its home on the source host, as the manifest claims
    /// (used only to move absolute links along with the home, never to judge them).
    var sourceHomes: [String: String]
    /// Per molt of the archive: the user and group that owned it on the source host.
    var sourceOwners: [String: (user: String, group: String)]
    var restoredAt: String
    /// `RestoreOptions.allowOutsideSymlinks`; the links found are reported as warnings.
    var allowOutsideSymlinks = false
    /// The most data one molt may bring where the manifest's sizes mean nothing
    /// (bash-tool archives): the free space of the base dir's file system.
    var fallbackByteLimit: Int64?
    var cancellation: RestoreCancellation?
    var onProgress: (@Sendable (RestoreProgress) -> Void)?
}

/// What the extracting thread hands back.
struct ExtractionResult: Sendable {
    struct Molt: Sendable {
        var files = 0
        var bytes: Int64 = 0
        var rewrites: [String] = []
        var created: String?
        var port: Int?
    }
    var molts: [String: Molt] = [:]
    var warnings: [String] = []
}
