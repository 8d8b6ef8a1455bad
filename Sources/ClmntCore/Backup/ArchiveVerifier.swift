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
/// count, and compares them with `SHA256SUMS`, the report and the manifest.
/// libarchive does not check gzip CRCs and takes a stream cut between two
/// entries for a clean end: these checks are what catch both.
public enum ArchiveVerifier {
    public static func verify(path: String, onProgress: ((Int64) -> Void)? = nil) throws(BackupError) -> VerifyReport {
        let reader: ArchiveReader
        do { reader = try ArchiveReader(path: path) } catch { throw .archive(error) }
        var report = VerifyReport(archive: path, compression: "none", entries: 0, filesChecked: 0, bytesChecked: 0,
                                  problems: [], notes: [])
        var manifest: Manifest?
        var backupReport: BackupReport?
        var checksums: [String: String]?
        var computed: [String: String] = [:]
        var sections: [String: Manifest.SectionStats] = [:]
        var sawEntryAfterChecksums = false
        var manifestPosition: Int?
        let hasher = SHA256Hasher()

        do {
            while let entry = try reader.next() {
                report.entries += 1
                if checksums != nil { sawEntryAfterChecksums = true }
                let path = entry.path
                if report.entries == 1 { report.compression = reader.compressionName }
                if manifest == nil, BackupCatalog.isManifestPath(path) {
                    let data = try reader.readAll(limit: 16 << 20)
                    computed[path] = digest(data, hasher)
                    manifest = try? Manifest.decode(data)
                    if manifest == nil { report.problems.append("\(path) is not a valid manifest") }
                    if report.entries != 1 { manifestPosition = report.entries }
                    continue
                }
                if path == ArchiveLayout.reportPath {
                    let data = try reader.readAll(limit: 64 << 20)
                    computed[path] = digest(data, hasher)
                    backupReport = try? JSONDecoder().decode(BackupReport.self, from: data)
                    if backupReport == nil { report.problems.append("backup-report.json is not valid") }
                    continue
                }
                if path == ArchiveLayout.checksumsPath {
                    checksums = ChecksumList.parse(String(decoding: try reader.readAll(limit: 512 << 20), as: UTF8.self))
                    continue
                }
                let section = String(path.split(separator: "/", maxSplits: 1).first ?? "")
                var stats = sections[section] ?? Manifest.SectionStats()
                stats.entryCount += 1
                if entry.kind != .directory { stats.fileCount += 1 }
                if entry.kind == .regular {
                    try reader.readData { chunk in hasher.update(chunk) }
                    computed[path] = hasher.finalizeHex()
                    stats.backupSizeBytes += entry.size
                    report.filesChecked += 1
                    report.bytesChecked += entry.size
                    onProgress?(reader.compressedBytesRead)
                }
                sections[section] = stats
            }
        } catch {
            report.problems.append("archive is damaged after \(report.entries) entries: \(error)")
        }

        guard let manifest else {
            report.problems.append("no manifest.json: not a fleet backup")
            return report
        }
        guard manifest.isClmntArchive else {
            report.notes.append("written by the bash tool: it carries no checksums; only readability was checked")
            return report
        }
        if let manifestPosition {
            report.problems.append("manifest.json is entry \(manifestPosition), not the first")
        }
        compare(&report, manifest: manifest, backupReport: backupReport, checksums: checksums,
                computed: computed, sections: sections, sawEntryAfterChecksums: sawEntryAfterChecksums)
        return report
    }

    private static func compare(_ report: inout VerifyReport, manifest: Manifest, backupReport: BackupReport?,
                                checksums: [String: String]?, computed: [String: String],
                                sections: [String: Manifest.SectionStats], sawEntryAfterChecksums: Bool) {
        guard let checksums else {
            report.problems.append("\(ArchiveLayout.checksumsPath) is missing: the archive is truncated")
            return
        }
        if sawEntryAfterChecksums { report.problems.append("entries follow \(ArchiveLayout.checksumsPath), which must be last") }
        for (path, digest) in computed.sorted(by: { $0.key < $1.key }) {
            guard let expected = checksums[path] else {
                report.problems.append("\(path): not listed in \(ArchiveLayout.checksumsPath)")
                continue
            }
            if expected != digest { report.problems.append("\(path): SHA-256 mismatch (content is corrupt)") }
        }
        for path in checksums.keys.sorted() where computed[path] == nil {
            report.problems.append("\(path): listed in \(ArchiveLayout.checksumsPath) but missing from the archive")
        }
        guard let backupReport else {
            report.problems.append("\(ArchiveLayout.reportPath) is missing")
            return
        }
        if backupReport.entryCount != report.entries {
            report.problems.append("archive has \(report.entries) entries, the backup wrote \(backupReport.entryCount)")
        }
        report.missed = backupReport.missed ?? []
        let changedDuringBackup = !backupReport.warnings.isEmpty
        if let expected = manifest.entryCount, expected != report.entries {
            let line = "archive has \(report.entries) entries, the manifest planned \(expected)"
            if changedDuringBackup { report.notes.append(line + " (files changed while the backup ran)") }
            else { report.problems.append(line) }
        }
        for molt in manifest.molts {
            let actual = sections[molt.name] ?? Manifest.SectionStats()
            if let written = backupReport.molts[molt.name], written != actual {
                report.problems.append("molt \(molt.name): archive holds \(describe(actual)), the backup wrote \(describe(written))")
            }
            let planned = Manifest.SectionStats(backupSizeBytes: molt.backupSizeBytes, fileCount: molt.fileCount ?? actual.fileCount,
                                                entryCount: molt.entryCount ?? actual.entryCount)
            if planned != actual {
                let line = "molt \(molt.name): archive holds \(describe(actual)), the manifest says \(describe(planned))"
                // A database is archived as its snapshot, whose size is known only once taken (a WAL
                // database's snapshot holds its -wal too): bytes alone differing is no damage, the
                // report's exact counts and the checksums are what catch a cut or corrupt archive.
                let onlyBytesDiffer = planned.entryCount == actual.entryCount && planned.fileCount == actual.fileCount
                if changedDuringBackup { report.notes.append(line + " (files changed while the backup ran)") }
                else if onlyBytesDiffer { report.notes.append(line + " (SQLite snapshots differ in size from their files)") }
                else { report.problems.append(line) }
            }
        }
        let known = Set(manifest.molts.map(\.name)).union([ArchiveLayout.globalDir])
        for section in sections.keys.sorted() where !known.contains(section) {
            report.problems.append("\(section)/: not a molt of the manifest")
        }
        if changedDuringBackup {
            report.notes.append("the backup reported \(backupReport.warnings.count) warnings: " + backupReport.warnings.prefix(3).joined(separator: "; "))
        }
    }

    private static func digest(_ data: Data, _ hasher: SHA256Hasher) -> String {
        data.withUnsafeBytes { hasher.update($0) }
        return hasher.finalizeHex()
    }

    private static func describe(_ stats: Manifest.SectionStats) -> String {
        "\(stats.entryCount) entries, \(stats.fileCount) files, \(stats.backupSizeBytes) bytes"
    }
}
