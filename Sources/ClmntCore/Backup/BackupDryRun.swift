import Foundation

/// A path of a molt's home that the exclusion rules leave out, and what lies below it.
public struct ExcludedPath: Sendable, Codable, Equatable {
    /// Relative to the molt's home (`.cache`, `.openclaw/gateway.pid`).
    public var path: String
    /// The rule, as the manifest's `excludes` writes it (`.cache/`, `*.pid`, an `--exclude` pattern).
    public var rule: String
    public var directory: Bool
    /// Files (regular files and symlinks) left out, at or below `path`.
    public var files: Int
    /// Their apparent size.
    public var bytes: Int64

    public init(path: String, rule: String, directory: Bool, files: Int = 0, bytes: Int64 = 0) {
        self.path = path; self.rule = rule; self.directory = directory; self.files = files; self.bytes = bytes
    }

    enum CodingKeys: String, CodingKey { case path, rule, directory, files, bytes }
}

/// A file that starts with SQLite's header, as the backup will treat it.
public struct PlannedDatabase: Sendable, Codable, Equatable {
    /// Relative to the molt's home.
    public var path: String
    public var sizeBytes: Int64
    /// True: captured through SQLite's online backup API (as its owner); false: owned by
    /// root, archived byte for byte (root never runs SQLite inside a home).
    public var snapshot: Bool

    enum CodingKeys: String, CodingKey {
        case path, snapshot
        case sizeBytes = "size_bytes"
    }
}

/// What `fleet backup --dry-run` found: what the backup would archive, leave out and miss.
public struct BackupPlan: Sendable, Encodable {
    public struct MoltPlan: Sendable, Encodable {
        public var name: String
        public var home: String
        /// Files (non-directory entries) and bytes the backup would archive: the manifest's
        /// `file_count` and `backup_size_bytes`, less the files it would miss.
        public var files: Int
        public var entries: Int
        public var bytes: Int64
        public var databases: [PlannedDatabase]
        public var excluded: [ExcludedPath]
        public var excludedFiles: Int
        public var excludedBytes: Int64
        public var missed: [MissedFile]

        enum CodingKeys: String, CodingKey {
            case name, home, files, entries, bytes, databases, excluded, missed
            case excludedFiles = "excluded_files"
            case excludedBytes = "excluded_bytes"
        }
    }

    /// Always true: says what this JSON is, beside a backup's summary.
    public let dryRun = true
    public var baseDir: String
    /// Where the archive would be written (the name the backup would choose now).
    public var output: String
    public var compression: String
    /// The exclusion patterns in effect, as the manifest would list them.
    public var excludes: [String]
    public var molts: [MoltPlan]
    /// The base dir's own files (`molts.json`), archived under `global/`.
    public var globalFiles: Int
    public var globalBytes: Int64
    /// Totals over the molts and `global/`, as the backup's summary counts them.
    public var files: Int
    public var bytes: Int64
    public var warnings: [String]
    /// False when the backup would miss files (it would exit 3).
    public var complete: Bool

    enum CodingKeys: String, CodingKey {
        case output, compression, excludes, molts, files, bytes, warnings, complete
        case baseDir = "base_dir"
        case globalFiles = "global_files"
        case globalBytes = "global_bytes"
        case dryRun = "dry_run"
    }
}

extension FleetBackup {
    /// `fleet backup --dry-run`: the same discovery, `--select`, output name, lock and scan
    /// (`TreeScanner` with the same `ExclusionRules`) as `run`, so the two cannot disagree,
    /// but nothing is written: no archive, no backup dir, no leftover cleanup. The lock is the
    /// shared one a restore excludes (`BaseDirLock.Mode.inspect`): a dry run never sees a molt
    /// half swapped by a restore, and runs beside a backup.
    public func dryRun(now: Date = Date()) throws(BackupError) -> BackupPlan {
        try options.validate()
        let (fleet, molts) = try selectedMolts()
        let lock = try lockBaseDir(fleet.baseDir, mode: .inspect)
        defer { withExtendedLifetime(lock) {} }
        try refuseHalfRestored(fleet.baseDir)
        let (outputPath, _) = try resolveOutputPath(now: now, create: false)
        try refuseOutputInside(molts: molts, outputPath: outputPath)
        try refuseUntrustedDirectory((outputPath as NSString).deletingLastPathComponent)

        let scanner = TreeScanner(rules: options.rules, inventory: true)
        var plans: [BackupPlan.MoltPlan] = []
        var warnings: [String] = []
        for molt in molts {
            let tree = try scanner.scan(home: molt.home)
            warnings += tree.warnings
            plans.append(BackupPlan.MoltPlan(
                name: molt.name, home: molt.home, files: tree.plannedFileCount, entries: tree.plannedEntryCount,
                bytes: tree.regularBytes, databases: tree.databases, excluded: tree.excluded,
                excludedFiles: tree.excluded.reduce(0) { $0 + $1.files },
                excludedBytes: tree.excluded.reduce(0) { $0 + $1.bytes },
                missed: tree.missed.map { MissedFile(molt: molt.name, path: $0.path, problem: $0.problem, detail: $0.detail) }))
        }
        var globalBytes: Int64 = 0
        let globalFiles = globalFilesToArchive(fleet: fleet)
        for path in globalFiles {
            var status = stat()
            if lstat(path, &status) == 0 { globalBytes += Int64(status.st_size) }
        }
        return BackupPlan(
            baseDir: fleet.baseDir, output: outputPath, compression: options.compression.rawValue,
            excludes: options.rules.effectivePatterns, molts: plans, globalFiles: globalFiles.count, globalBytes: globalBytes,
            files: plans.reduce(globalFiles.count) { $0 + $1.files }, bytes: plans.reduce(globalBytes) { $0 + $1.bytes },
            warnings: warnings, complete: plans.allSatisfy { $0.missed.isEmpty })
    }
}
