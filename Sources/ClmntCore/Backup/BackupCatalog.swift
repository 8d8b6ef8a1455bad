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
    /// Age-encrypted. Without an identity nothing inside is read: the date is the name's.
    public var encrypted: Bool?

    /// Read, and its date trusted: only such an archive can be the newest backup
    /// (`doctor`, `schedule --status`, the dashboard's last-success time).
    public var isDated: Bool { unreadable == nil && untrustedDate == nil && date != nil }

    public init(file: String, sizeBytes: Int64) {
        self.file = file
        self.sizeBytes = sizeBytes
    }

    enum CodingKeys: String, CodingKey {
        case file, date, molts, hostname, compression, unreadable, complete, encrypted
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
        guard let opened = try BackupDirectory.openDirectory(directory, requireTrusted: false) else { return [] }
        let files = try BackupDirectory.scan(opened.rawValue, directory: directory, now: now) { name in
            !name.hasPrefix(".") && Compression.archiveExtensions.contains { name.hasSuffix(PathBytes("." + $0)) }
        }
        var listings: [BackupListing] = []
        for file in files where file.isRegular {
            var listing = BackupListing(file: file.path, sizeBytes: file.sizeBytes)
            if let refused = file.refused {
                listing.sizeBytes = 0
                listing.unreadable = refused
            } else if let located = file.located {
                listing.describe(located, name: file.path)
                listing.encrypted = file.path.hasSuffix(".age") ? true : nil
                listing.untrustedDate = file.untrustedDate
                if located.format == .clmnt, let mark = file.mark {
                    listing.complete = mark.complete
                    listing.missedFiles = mark.missed
                }
            } else if let date = file.encryptedDate {
                listing.encrypted = true
                listing.date = date
                listing.untrustedDate = file.untrustedDate
                listing.compression = compressionFromName(file.path)
                if let mark = file.mark {
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

    static func compressionName(_ path: String) -> String { compressionFromName(path) }

    private static func compressionFromName(_ path: String) -> String {
        let name = path.hasSuffix(".age") ? String(path.dropLast(4)) : path
        if name.hasSuffix(".gz") || name.hasSuffix(".tgz") { return "gzip" }
        if name.hasSuffix(".zst") { return "zstd" }
        if name.hasSuffix(".xz") { return "xz" }
        if name.hasSuffix(".bz2") { return "bzip2" }
        return "none"
    }

    /// A name that a fleet archive may have (`fleet-2026-12-07.tar.zst.age`, any stem).
    public static func isArchiveName(_ name: String) -> Bool {
        !name.hasPrefix(".") && Compression.archiveExtensions.contains { name.hasSuffix("." + $0) }
    }

    /// The date in a default archive name, `fleet-2026-12-07[-031500][-2].tar…`, as a
    /// timestamp (local time, as the name was made); nil for any other name.
    public static func dateFromName(_ path: String) -> String? {
        let name = (path as NSString).lastPathComponent
        guard name.hasPrefix("fleet-"), let dot = name.range(of: ".tar") else { return nil }
        let parts = name[name.index(name.startIndex, offsetBy: 6)..<dot.lowerBound].split(separator: "-").map(String.init)
        guard parts.count >= 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]) else { return nil }
        var components = DateComponents(year: year, month: month, day: day)
        if parts.count >= 4, parts[3].count == 6, let time = Int(parts[3]) {
            components.hour = time / 10000
            components.minute = time / 100 % 100
            components.second = time % 100
        }
        guard let date = Calendar.current.date(from: components) else { return nil }
        return Timestamp.format(date)
    }

    /// One archive read by name (a local path, or anything `ArchiveInput` knows, such as an
    /// `s3://` object): its manifest, or why not; an encrypted one without an identity is
    /// listed with its name's date and `encrypted`.
    public static func listing(archive name: String, sizeBytes: Int64) -> BackupListing {
        var listing = BackupListing(file: name, sizeBytes: sizeBytes)
        do {
            let located = try locate(path: name)
            listing.describe(located, name: name)
            listing.encrypted = name.hasSuffix(".age") ? true : nil
        } catch {
            if case .archive(let archiveError) = error, archiveError.age == .identityRequired {
                listing.encrypted = true
                listing.date = dateFromName(name)
                listing.compression = compressionFromName(name)
                if listing.date == nil { listing.unreadable = "encrypted, and its name carries no date" }
            } else {
                listing.unreadable = error.description
            }
        }
        return listing
    }
}

extension BackupListing {
    /// Fills in what the manifest tells.
    mutating func describe(_ located: LocatedManifest, name: String) {
        let manifest = located.manifest
        // In UTC like every date clmnt prints (an offset written by another tool is converted).
        date = Timestamp.parse(manifest.timestamp).map(Timestamp.format) ?? manifest.timestamp
        moltCount = manifest.molts.count
        molts = manifest.molts.map(\.name)
        hostname = manifest.hostname
        compression = manifest.compression ?? BackupCatalog.compressionName(name)
        writtenBy = located.format.rawValue
    }
}
