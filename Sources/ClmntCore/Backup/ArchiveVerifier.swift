import Foundation

/// What `fleet verify` found.
public struct VerifyReport: Sendable, Encodable {
    public var archive: String
    public var compression: String
    public var entries: Int
    public var filesChecked: Int
    public var bytesChecked: Int64
    /// Damage: each one line. Empty means the archive is intact.
    public var problems: [String]
    /// Notes that are not damage (files that changed while the backup ran, an archive without checksums).
    public var notes: [String]
    /// Files the backup itself reported missed (`backup-report.json`): an intact archive of an incomplete backup.
    public var missed: [MissedFile] = []
    public var isIntact: Bool { problems.isEmpty }
    public var isComplete: Bool { missed.isEmpty }

    enum CodingKeys: String, CodingKey {
        case archive, compression, entries, problems, notes, missed
        case isComplete = "complete"
        case filesChecked = "files_checked"
        case bytesChecked = "bytes_checked"
        case isIntact = "intact"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(archive, forKey: .archive)
        try c.encode(compression, forKey: .compression)
        try c.encode(entries, forKey: .entries)
        try c.encode(filesChecked, forKey: .filesChecked)
        try c.encode(bytesChecked, forKey: .bytesChecked)
        try c.encode(problems, forKey: .problems)
        try c.encode(notes, forKey: .notes)
        try c.encode(isIntact, forKey: .isIntact)
        try c.encode(missed, forKey: .missed)
        try c.encode(isComplete, forKey: .isComplete)
    }
}

/// Reads a whole archive once, recomputing every file's SHA-256 and every
/// count; `IntegrityCheck` (the rules restore uses too) judges the result.
/// libarchive does not check gzip CRCs and takes a stream cut between two
/// entries for a clean end: these checks are what catch both.
public enum ArchiveVerifier {
    /// `selection`: the molts a restore would take (see `IntegrityCheck.finish`); nil: every molt matters.
    public static func verify(path: String, selection: Set<String>? = nil,
                              onProgress: ((Int64) -> Void)? = nil) throws(BackupError) -> VerifyReport {
        var report = VerifyReport(archive: path, compression: "none", entries: 0, filesChecked: 0, bytesChecked: 0,
                                  problems: [], notes: [])
        let located: LocatedManifest
        do { located = try ArchiveIntegrity.locateManifest(archive: path) } catch {
            // A key that does not fit cannot read it (exit 1); an encrypted file that was cut or changed is damaged (2).
            if case .unreadable(let archiveError) = error, archiveError.age?.isDamage != true { throw .archive(archiveError) }
            report.problems.append("\(error)")
            return report
        }
        report.compression = located.compression
        let reader: ArchiveReader
        do { reader = try ArchiveReader(path: path) } catch {
            guard error.age?.isDamage == true else { throw .archive(error) }
            report.problems.append("\(error)")
            return report
        }
        let check = IntegrityCheck(located: located)
        let hasher = SHA256Hasher()
        do {
            while let entry = try reader.next() {
                guard let place = check.admit(entry) else { continue }
                switch place {
                case .manifest: check.manifestData(try reader.readAll(limit: ArchiveIntegrity.manifestSizeLimit))
                case .report: check.reportData(try reader.readAll(limit: ArchiveIntegrity.reportSizeLimit))
                case .checksums: try reader.readData(limit: ArchiveIntegrity.checksumsSizeLimit) { check.checksumsData($0) }
                default:
                    // Bash-tool archives carry no checksums: their data is read (by the next header) but not hashed.
                    guard entry.kind == .regular, located.format == .clmnt else { continue }
                    try reader.readData { chunk in hasher.update(chunk) }
                    check.fileDigest(hasher.finalizeHex(), path: entry.path)
                    report.filesChecked += 1
                    report.bytesChecked += entry.size
                    onProgress?(reader.compressedBytesRead)
                }
            }
        } catch {
            report.entries = check.entries
            report.problems.append("archive is damaged after \(check.entries) entries: \(error)")
        }
        check.finish(selection: selection)
        report.entries = check.entries
        report.problems += check.problems.map(\.description)
        report.notes += check.notes
        report.missed = check.missed
        if located.format == .bash {
            report.notes.append("written by the bash tool: it carries no checksums; only its layout and readability were checked")
        }
        return report
    }
}
