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
    /// Why the file could not be read as a fleet archive.
    public var unreadable: String?
    /// From the archive's `BackupStatusMark`: false when the backup missed files; nil when unknown.
    public var complete: Bool?
    public var missedFiles: Int?

    enum CodingKeys: String, CodingKey {
        case file, date, molts, hostname, compression, unreadable, complete
        case missedFiles = "missed_files"
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

    /// Every archive in `directory` (by file ending), oldest first; unreadable ones included.
    /// A directory that does not exist holds no backups (no backup has been made there yet).
    public static func list(directory: String) throws(BackupError) -> [BackupListing] {
        var info = stat()
        if stat(directory, &info) != 0 && errno == ENOENT { return [] }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw .unreadable(path: directory, reason: describeFileError(error))
        }
        var listings: [BackupListing] = []
        for name in names.sorted() where !name.hasPrefix(".") && Compression.archiveExtensions.contains(where: { name.hasSuffix("." + $0) }) {
            let path = directory + "/" + name
            var status = stat()
            guard stat(path, &status) == 0, (UInt32(status.st_mode) & 0o170000) == 0o100000 else { continue }
            var listing = BackupListing(file: path, sizeBytes: Int64(status.st_size))
            do {
                let located = try locate(path: path)
                let manifest = located.manifest
                // In UTC like every date clmnt prints (an offset written by another tool is converted).
                listing.date = Timestamp.parse(manifest.timestamp).map(Timestamp.format) ?? manifest.timestamp
                listing.moltCount = manifest.molts.count
                listing.molts = manifest.molts.map(\.name)
                listing.hostname = manifest.hostname
                listing.compression = manifest.compression ?? compressionFromName(name)
                listing.writtenBy = located.format.rawValue
                if located.format == .clmnt, let mark = BackupStatusMark.read(path: path) {
                    listing.complete = mark.complete
                    listing.missedFiles = mark.missed
                }
            } catch {
                listing.unreadable = error.description
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
