import Foundation

/// One archive as `list-backups` shows it.
public struct BackupListing: Sendable, Codable {
    public var file: String
    public var sizeBytes: Int64
    /// The manifest's timestamp.
    public var date: String?
    public var moltCount: Int?
    public var molts: [String]?
    public var hostname: String?
    public var compression: String?
    /// "clmnt" or "bash" (the plan's tool); nil when unreadable.
    public var writtenBy: String?
    /// Why the file could not be read as a fleet archive, or was not read (another owner, several links).
    public var unreadable: String?
    /// Why the manifest's date does not rank this archive (in the future, or far from the file's
    /// mtime: `BackupDirectory.dateProblem`); such an archive is never "the newest".
    public var untrustedDate: String?
    /// From the archive's `BackupStatusMark`: false when the backup missed files; nil when unknown.
    public var complete: Bool?
    public var missedFiles: Int?

    /// Read, and its date trusted: only such an archive can be the newest backup
    /// (`doctor`, `schedule --status`, the dashboard's last-success time).
    public var isDated: Bool { unreadable == nil && untrustedDate == nil && date != nil }

    enum CodingKeys: String, CodingKey {
        case file, date, molts, hostname, compression, unreadable, complete
        case missedFiles = "missed_files"
        case untrustedDate = "untrusted_date"
        case sizeBytes = "size_bytes"
        case moltCount = "molt_count"
        case writtenBy = "written_by"
    }
}

/// Reads manifests of archives: from the first entry alone for clmnt's archives.
public enum BackupCatalog {
    /// The manifest of the archive at `path`, found by the rules restore and
    /// verify use (`ArchiveIntegrity.locateManifest`): only the first entry of
    /// a clmnt archive is read.
    public static func readManifest(path: String) throws(BackupError) -> Manifest {
        try locate(path: path).manifest
    }

    static func locate(path: String) throws(BackupError) -> LocatedManifest {
        do { return try ArchiveIntegrity.locateManifest(archive: path) } catch {
            if case .unreadable(let archiveError) = error { throw .archive(archiveError) }
            throw .unreadable(path: path, reason: error.description)
        }
    }

    /// Every archive in `directory` (by file ending), oldest first; unreadable ones included,
    /// through the one descriptor listing (`BackupDirectory`): symlinks and special files are
    /// not listed, a regular file of another owner or with several links is listed as not
    /// read (size 0: nothing of it is shown), names that are not UTF-8 are listed escaped.
    /// A directory that does not exist holds no backups (no backup has been made there yet).
    public static func list(directory: String, now: Date = Date()) throws(BackupError) -> [BackupListing] {
        guard let dirFD = try BackupDirectory.openDirectory(directory, requireTrusted: false) else { return [] }
        defer { close(dirFD) }
        let files = try BackupDirectory.scan(dirFD, directory: directory, now: now) { name in
            !name.hasPrefix(".") && Compression.archiveExtensions.contains { name.hasSuffix(PathBytes("." + $0)) }
        }
        var listings: [BackupListing] = []
        for file in files where file.isRegular {
            var listing = BackupListing(file: file.path, sizeBytes: file.sizeBytes)
            if let refused = file.refused {
                listing.sizeBytes = 0
                listing.unreadable = refused
            } else if let located = file.located {
                let manifest = located.manifest
                // In UTC like every date clmnt prints (an offset written by another tool is converted).
                listing.date = Timestamp.parse(manifest.timestamp).map(Timestamp.format) ?? manifest.timestamp
                listing.untrustedDate = file.untrustedDate
                listing.moltCount = manifest.molts.count
                listing.molts = manifest.molts.map(\.name)
                listing.hostname = manifest.hostname
                listing.compression = manifest.compression ?? compressionFromName(file.path)
                listing.writtenBy = located.format.rawValue
                if located.format == .clmnt, let mark = file.mark {
                    listing.complete = mark.complete
                    listing.missedFiles = mark.missed
                }
            } else {
                listing.unreadable = file.unreadable ?? "unreadable"
            }
            listings.append(listing)
        }
        // Oldest first; unreadable files last.
        return listings.sorted { ($0.date == nil ? 1 : 0, $0.date ?? "", $0.file) < ($1.date == nil ? 1 : 0, $1.date ?? "", $1.file) }
    }

    private static func compressionFromName(_ name: String) -> String {
        if name.hasSuffix(".gz") || name.hasSuffix(".tgz") { return "gzip" }
        if name.hasSuffix(".zst") { return "zstd" }
        if name.hasSuffix(".xz") { return "xz" }
        if name.hasSuffix(".bz2") { return "bzip2" }
        return "none"
    }
}
