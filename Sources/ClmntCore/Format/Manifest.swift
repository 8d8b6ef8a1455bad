import Foundation

/// Names of the fixed entries of a clmnt fleet archive, in stream order:
/// `manifest.json`, then `<molt>/...` per molt, then `global/...`, then
/// `backup-report.json`, then `SHA256SUMS` (always the last entry).
public enum ArchiveLayout {
    public static let manifestPath = "manifest.json"
    public static let globalDir = "global"
    public static let reportPath = "backup-report.json"
    public static let checksumsPath = "SHA256SUMS"
    /// Molt names that would collide with the fixed entries.
    public static let reservedNames: Set<String> = [globalDir]
}

/// `manifest.json`, the first entry: the plan's format plus what a restore needs.
/// Counts and sizes are those seen when the backup started; `backup-report.json`
/// holds what was actually archived (they differ only if files changed meanwhile).
public struct Manifest: Codable, Sendable, Equatable {
    /// "1.0" as in the plan; `tool` tells a clmnt archive from the bash tool's.
    public var version: String = "1.0"
    public var timestamp: String
    public var hostname: String
    public var tool: String? = "clmnt"
    public var toolVersion: String? = ClmntVersion.current
    public var baseDir: String?
    public var compression: String?
    public var compressionLevel: Int?
    public var excludes: [String]?
    public var includeCaches: Bool?
    /// Every entry of the archive, the manifest, report and checksum entries included.
    public var entryCount: Int?
    public var molts: [MoltRecord]
    public var global: SectionStats?
    public var totalSizeBytes: Int64

    public struct MoltRecord: Codable, Sendable, Equatable {
        public var name: String
        public var port: Int?
        /// The plan allows a string or null.
        public var created: String?
        public var backupSizeBytes: Int64
        public var home: String?
        public var owner: Owner?
        /// Regular-file paths (hardlinks included), symlinks and other non-directories.
        public var fileCount: Int?
        /// All entries under `<name>/`, directories included.
        public var entryCount: Int?
        /// The supplementary groups of the molt's user on the source host (by name).
        public var groups: [String]?

        enum CodingKeys: String, CodingKey {
            case name, port, created, home, owner, groups
            case backupSizeBytes = "backup_size_bytes"
            case fileCount = "file_count"
            case entryCount = "entry_count"
        }

        public init(name: String, port: Int?, created: String?, backupSizeBytes: Int64, home: String?,
                    owner: Owner?, fileCount: Int?, entryCount: Int?) {
            self.name = name; self.port = port; self.created = created
            self.backupSizeBytes = backupSizeBytes; self.home = home; self.owner = owner
            self.fileCount = fileCount; self.entryCount = entryCount
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            // The bash tool wrote numbers as strings now and then.
            port = (try? c.decodeIfPresent(Int.self, forKey: .port)) ?? (try? c.decodeIfPresent(String.self, forKey: .port)).flatMap { $0.flatMap { Int($0) } }
            created = try? c.decodeIfPresent(String.self, forKey: .created)
            backupSizeBytes = (try? c.decodeIfPresent(Int64.self, forKey: .backupSizeBytes))
                ?? (try? c.decodeIfPresent(String.self, forKey: .backupSizeBytes)).flatMap { $0.flatMap { Int64($0) } } ?? 0
            home = try? c.decodeIfPresent(String.self, forKey: .home)
            owner = try? c.decodeIfPresent(Owner.self, forKey: .owner)
            fileCount = try? c.decodeIfPresent(Int.self, forKey: .fileCount)
            entryCount = try? c.decodeIfPresent(Int.self, forKey: .entryCount)
            groups = try? c.decodeIfPresent([String].self, forKey: .groups)
        }
    }

    public struct Owner: Codable, Sendable, Equatable {
        public var user: String
        public var uid: UInt32
        public var group: String
        public var gid: UInt32

        public init(user: String, uid: UInt32, group: String, gid: UInt32) {
            self.user = user; self.uid = uid; self.group = group; self.gid = gid
        }
    }

    /// Counts for one part of the archive (a molt, or `global/`).
    public struct SectionStats: Codable, Sendable, Equatable {
        public var backupSizeBytes: Int64
        public var fileCount: Int
        public var entryCount: Int

        public init(backupSizeBytes: Int64 = 0, fileCount: Int = 0, entryCount: Int = 0) {
            self.backupSizeBytes = backupSizeBytes; self.fileCount = fileCount; self.entryCount = entryCount
        }

        enum CodingKeys: String, CodingKey {
            case backupSizeBytes = "backup_size_bytes"
            case fileCount = "file_count"
            case entryCount = "entry_count"
        }
    }

    enum CodingKeys: String, CodingKey {
        case version, timestamp, hostname, tool, compression, excludes, molts, global
        case toolVersion = "tool_version"
        case baseDir = "base_dir"
        case compressionLevel = "compression_level"
        case includeCaches = "include_caches"
        case entryCount = "entry_count"
        case totalSizeBytes = "total_size_bytes"
    }

    public init(timestamp: String, hostname: String, molts: [MoltRecord], totalSizeBytes: Int64) {
        self.timestamp = timestamp; self.hostname = hostname; self.molts = molts; self.totalSizeBytes = totalSizeBytes
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = (try? c.decode(String.self, forKey: .version)) ?? "1.0"
        timestamp = try c.decode(String.self, forKey: .timestamp)
        hostname = (try? c.decode(String.self, forKey: .hostname)) ?? "unknown"
        tool = try? c.decodeIfPresent(String.self, forKey: .tool)
        toolVersion = try? c.decodeIfPresent(String.self, forKey: .toolVersion)
        baseDir = try? c.decodeIfPresent(String.self, forKey: .baseDir)
        compression = try? c.decodeIfPresent(String.self, forKey: .compression)
        compressionLevel = try? c.decodeIfPresent(Int.self, forKey: .compressionLevel)
        excludes = try? c.decodeIfPresent([String].self, forKey: .excludes)
        includeCaches = try? c.decodeIfPresent(Bool.self, forKey: .includeCaches)
        entryCount = try? c.decodeIfPresent(Int.self, forKey: .entryCount)
        molts = try c.decode([MoltRecord].self, forKey: .molts)
        global = try? c.decodeIfPresent(SectionStats.self, forKey: .global)
        totalSizeBytes = (try? c.decode(Int64.self, forKey: .totalSizeBytes))
            ?? (try? c.decode(String.self, forKey: .totalSizeBytes)).flatMap { Int64($0) }
            ?? molts.reduce(0) { $0 + $1.backupSizeBytes }
    }

    /// True for archives written by clmnt (they carry checksums); false for the bash tool's.
    public var isClmntArchive: Bool { tool == "clmnt" }

    /// Compact JSON on one line (`"name":"x"`): the bash tool's `list-backups` counts molts with
    /// `grep -o '"name":'` and reads `"hostname":"..."`, which a pretty-printed `"name" : ` defeats.
    /// Only molt records have a `name` key, and a `"` inside a value is escaped, so the count is exact.
    public func encoded() -> Data {
        // Encoding plain structs of strings and numbers cannot fail.
        return try! JSONStyle.compact(self) + Data("\n".utf8)
    }

    public static func decode(_ data: Data) throws -> Manifest {
        try JSONDecoder().decode(Manifest.self, from: data)
    }
}

/// `backup-report.json`, just before `SHA256SUMS`: what was really archived.
public struct BackupReport: Codable, Sendable, Equatable {
    /// Every entry of the archive, as in `Manifest.entryCount`.
    public var entryCount: Int
    public var molts: [String: Manifest.SectionStats]
    public var global: Manifest.SectionStats
    /// Everything the backup warned about, one line each.
    public var warnings: [String]
    /// The files the archive lacks or holds torn: they vanished, could not be read, or changed
    /// while read. Empty: the backup is complete. Nil in reports written before clmnt recorded it.
    public var missed: [MissedFile]?
    /// Per molt, what the backup archived beyond its manifest's plan: the sidecars (`X-wal`, ...)
    /// of a database that could not be snapshotted after all (entries, files and bytes the plan
    /// left out), and the bytes by which files grew between the scan and their turn (a log
    /// appended to, a live database's snapshot). The most a molt's archive may exceed the
    /// manifest's totals (`ArchiveIntegrity.excess`). Nil in reports written before clmnt recorded it.
    public var beyondPlan: [String: Manifest.SectionStats]?

    public init(entryCount: Int, molts: [String: Manifest.SectionStats], global: Manifest.SectionStats, warnings: [String],
                missed: [MissedFile] = [], beyondPlan: [String: Manifest.SectionStats]? = nil) {
        self.entryCount = entryCount; self.molts = molts; self.global = global; self.warnings = warnings
        self.missed = missed
        self.beyondPlan = beyondPlan
    }

    enum CodingKeys: String, CodingKey {
        case molts, global, warnings, missed
        case entryCount = "entry_count"
        case beyondPlan = "beyond_plan"
    }

    /// In the one JSON style (`JSONStyle`). Encoding plain structs of strings and numbers cannot fail.
    public func encoded() -> Data { Data(try! JSONStyle.encode(self).utf8) }
}

/// A file a backup could not archive whole; the backup then exits 3 and the
/// archive counts as incomplete (`verify`, `list-backups`, `restore --dry-run`).
public struct MissedFile: Codable, Sendable, Equatable {
    public enum Problem: String, Codable, Sendable {
        /// Gone (or its directory gone) between the scan and its turn.
        case vanished
        /// There, but it could not be opened, listed or read.
        case unreadable
        /// Swapped for another file or a symlink since the scan: skipped, never followed.
        case replaced
        /// Archived, but it changed while being read: the copy may be torn.
        case changed
        /// A SQLite database that stayed locked through every retry: not archived,
        /// as its bytes without a consistent -wal would be a torn copy.
        case locked
    }

    /// The molt it belongs to; nil for the base dir's own files (`global/`).
    public var molt: String?
    /// Its path on the host.
    public var path: String
    public var problem: Problem
    /// The cause, as the system said it.
    public var detail: String

    public init(molt: String?, path: String, problem: Problem, detail: String) {
        self.molt = molt; self.path = path; self.problem = problem; self.detail = detail
    }

    /// `<path>: vanished (No such file or directory)`
    public var line: String { "\(path): \(problem.rawValue) (\(detail))" }
}
