import Foundation

/// Follows one pass over an archive (entry by entry) and decides whether it is
/// intact. The caller reads the data; this class only judges. A restore stops
/// at the first problem, `verify` collects them all.
final class IntegrityCheck {
    let located: LocatedManifest
    var format: ArchiveFormat { located.format }
    private let moltNames: Set<String>
    private(set) var problems: [IntegrityProblem] = []
    private(set) var notes: [String] = []
    private(set) var entries = 0
    /// Counts per molt, and for `global`.
    private(set) var sections: [String: Manifest.SectionStats] = [:]
    /// Every data entry (regular file) in order, its SHA-256 when the caller hashed it, and `SHA256SUMS`.
    private let ledger: DigestLedger
    /// `backup-report.json`, once read.
    private(set) var report: BackupReport?
    private var sawReport = false
    private var sawManifest = false
    private var homes = Set<String>()
    private var byteLimits: [String: Int64] = [:]
    /// Bash-tool archives: entries under a valid molt name the manifest does not list
    /// (a molt dir renamed after the backup), counted per directory, never extracted.
    private var unlisted: [String: Int] = [:]

    /// `fallbackByteLimit` bounds each molt's data where the manifest gives no
    /// trustworthy size (bash-tool archives); nil: unbounded.
    /// The ledger of digests moves to an unnamed file in `scratchDirectory` when it grows.
    init(located: LocatedManifest, fallbackByteLimit: Int64? = nil, scratchDirectory: String = SpillFile.defaultDirectory) {
        self.located = located
        ledger = DigestLedger(scratchDirectory: scratchDirectory)
        moltNames = Set(located.manifest.molts.map(\.name))
        for molt in located.manifest.molts {
            if located.format == .clmnt {
                byteLimits[molt.name] = ArchiveIntegrity.byteAllowance(declared: molt.backupSizeBytes)
            } else if let fallbackByteLimit {
                byteLimits[molt.name] = fallbackByteLimit
            }
        }
    }

    var firstProblem: IntegrityProblem? { problems.first }

    /// Admits the next entry: where it belongs, or nil when it breaks the rules
    /// (the reason is appended to `problems`).
    func admit(_ entry: EntryMetadata) -> EntryPlace? {
        entries += 1
        if ledger.sawChecksums {
            problems.append(.damaged("entry '\(entry.path)' follows \(ArchiveLayout.checksumsPath), which must be last"))
            return nil
        }
        if let name = unlistedMolt(entry.path) {
            unlisted[name, default: 0] += 1
            return nil
        }
        let place: EntryPlace
        do { place = try EntryPolicy.place(of: entry.path, format: format, molts: moltNames) } catch {
            if format == .bash, [ArchiveLayout.reportPath, ArchiveLayout.checksumsPath].map { PathBytes($0) }.contains(entry.path) {
                problems.append(.damaged("it holds \(entry.path), which only clmnt archives have, but its manifest is not the first entry (tampered)"))
            } else if case .hostileEntry(let path, let reason) = error {
                problems.append(.hostile(path: path, reason: reason))
            } else {
                problems.append(.hostile(path: entry.path.description, reason: "\(error)"))
            }
            return nil
        }
        func require(_ condition: Bool, _ reason: String) -> EntryPlace? {
            if condition { return place }
            problems.append(.hostile(path: entry.path.description, reason: reason))
            return nil
        }
        switch place {
        case .manifest:
            if sawManifest { return require(false, "is a second manifest") }
            if format == .clmnt && entries != 1 {
                problems.append(.damaged("manifest.json is entry \(entries), not the first"))
                return nil
            }
            return require(entry.kind == .regular, "is not a regular file")
        case .report, .checksums:
            return require(entry.kind == .regular, "is not a regular file")
        case .archiveRoot:
            return require(entry.kind == .directory, "is not a directory")
        case .global:
            count(entry, in: ArchiveLayout.globalDir)
            return place
        case .molt(let name, let relative):
            if format == .clmnt && !sawManifest {
                problems.append(.damaged("no manifest before the molts"))
                return nil
            }
            if relative.isEmpty {
                guard entry.kind == .directory else { return require(false, "is the molt's home but not a directory") }
                homes.insert(name)
            }
            count(entry, in: name)
            if let limit = byteLimits[name], let bytes = sections[name]?.backupSizeBytes, bytes > limit {
                let declared = located.manifest.molts.first { $0.name == name }?.backupSizeBytes
                let what = declared.map { "the \($0) bytes its manifest declares" } ?? "the \(limit) bytes free here"
                return require(false, "brings \(name) to \(bytes) bytes, far beyond \(what) (a compression bomb?)")
            }
            return place
        }
    }

    /// The directory of a bash-tool archive entry that lies under a valid molt name
    /// the manifest does not list: one problem for the directory (see `finish`), not
    /// one per entry. clmnt's own archives list every molt: there it stays hostile.
    private func unlistedMolt(_ path: PathBytes) -> String? {
        guard format == .bash, let parts = try? EntryPolicy.components(of: path, format: format),
              let name = parts.first?.string, name != ArchiveLayout.globalDir, !moltNames.contains(name), MoltName.isValid(name),
              parts.count > 1 || path.hasSuffix("/") else { return nil }
        return name
    }

    private func count(_ entry: EntryMetadata, in section: String) {
        var stats = sections[section] ?? Manifest.SectionStats()
        stats.entryCount += 1
        if entry.kind != .directory { stats.fileCount += 1 }
        if entry.kind == .regular {
            stats.backupSizeBytes += entry.size
            ledger.note(entry.path)
        }
        sections[section] = stats
    }

    /// The manifest's bytes, as read in this pass.
    func manifestData(_ data: Data) {
        sawManifest = true
        let digest = Self.digest(data)
        ledger.note(PathBytes(ArchiveLayout.manifestPath), digest: digest)
        if digest != located.digest {
            problems.append(.damaged("its manifest changed since it was first read"))
        }
    }

    func reportData(_ data: Data) {
        sawReport = true
        ledger.note(PathBytes(ArchiveLayout.reportPath), digest: Self.digest(data))
        do { report = try JSONDecoder().decode(BackupReport.self, from: data) } catch {
            problems.append(.damaged("\(ArchiveLayout.reportPath) cannot be read"))
        }
    }

    /// The next bytes of `SHA256SUMS`.
    func checksumsData(_ bytes: UnsafeRawBufferPointer) { ledger.checksums(bytes) }

    /// The SHA-256 of the regular file just admitted at `path`.
    func fileDigest(_ digest: String, path: PathBytes) { ledger.digest(digest, path: path) }

    /// The files the backup reported missed (`backup-report.json`): an intact
    /// archive of an incomplete backup. Empty until the report is read.
    var missed: [MissedFile] { report?.missed ?? [] }

    /// Whether the backup missed files of molt `name` (an incomplete molt).
    func isIncomplete(molt name: String) -> Bool { missed.contains { $0.molt == name } }

    /// Molts the manifest lists without a home in the archive.
    var absentMolts: [String] { located.manifest.molts.map(\.name).filter { !homes.contains($0) } }

    /// After the last entry: checks the counts, the report and the checksums.
    /// An absent molt is damage, except in a bash-tool archive for a molt not
    /// in `selection` (nil: every molt matters), where it is a note.
    func finish(selection: Set<String>? = nil) {
        if !sawManifest { problems.append(.damaged("manifest.json is missing from the pass over the archive")) }
        let renamed = unlisted.keys.sorted()
        for name in absentMolts {
            if format == .bash, let selection, !selection.contains(name) {
                notes.append("molt \(name) is listed by the manifest but absent from the archive")
            } else {
                let hint = renamed.isEmpty ? "" : " (renamed to \(renamed.joined(separator: ", "))? restore the others with --select)"
                problems.append(.damaged("the manifest lists molt '\(name)' but the archive holds no home directory for it\(hint)"))
            }
        }
        for name in renamed {
            let line = "the archive holds \(name)/ (\(unlisted[name] ?? 0) entries), which its manifest does not list "
                + "(a molt dir renamed after the backup?)"
            if selection != nil { notes.append(line + ": not restored") } else { problems.append(.damaged(line)) }
        }
        guard format == .clmnt else { return }
        guard ledger.sawChecksums else {
            problems.append(.damaged("\(ArchiveLayout.checksumsPath) is missing: the archive ends early (truncated)"))
            return
        }
        guard let report else {
            if !sawReport { problems.append(.damaged("\(ArchiveLayout.reportPath) is missing")) }
            return
        }
        checkCounts(against: report)
        do { problems += try ledger.mismatches() } catch {
            problems.append(.unreadable(ArchiveError(.write, path: error.path, message: "cannot keep the digests aside: \(error.reason)")))
        }
    }

    /// The report's and the manifest's counts against what the pass saw.
    private func checkCounts(against report: BackupReport) {
        let manifest = located.manifest
        if report.entryCount != entries {
            problems.append(.damaged("it holds \(entries) entries where the backup wrote \(report.entryCount)"))
        }
        let changedDuringBackup = !report.warnings.isEmpty
        func disagreement(_ line: String) {
            if changedDuringBackup { notes.append(line + " (files changed while the backup ran)") }
            else { problems.append(.damaged(line)) }
        }
        if let expected = manifest.entryCount, expected != entries {
            let line = "it holds \(entries) entries, the manifest planned \(expected)"
            // A backup archives only what its scan saw, plus what the report says it added.
            let stated = report.beyondPlan.map { $0.values.reduce(0) { $0 + $1.entryCount } } ?? 0
            if entries > expected + stated {
                problems.append(.damaged(line + "; more than the manifest lists and the report states: a backup never archives what its scan did not see"))
            } else { disagreement(line) }
        }
        for molt in manifest.molts {
            let actual = sections[molt.name] ?? Manifest.SectionStats()
            guard let written = report.molts[molt.name] else {
                problems.append(.damaged("\(ArchiveLayout.reportPath) has no counts for molt '\(molt.name)'"))
                continue
            }
            if written != actual {
                problems.append(.damaged("molt \(molt.name): the archive holds \(Self.describe(actual)), the backup wrote \(Self.describe(written))"))
            }
            let planned = Manifest.SectionStats(backupSizeBytes: molt.backupSizeBytes, fileCount: molt.fileCount ?? -1,
                                                entryCount: molt.entryCount ?? -1)
            if planned != actual {
                let line = "molt \(molt.name): the archive holds \(Self.describe(actual)), the manifest says \(Self.describe(planned))"
                // The manifest's totals are what the plan showed and the free-space check used: warnings
                // in the report relax the comparison, never beyond what the report itself states.
                if let excess = Self.excess(actual: actual, planned: planned, stated: report.beyondPlan?[molt.name]) {
                    problems.append(.damaged(line + "; " + excess))
                    continue
                }
                // A database is archived as its snapshot, whose size is known only once taken (a WAL
                // database's snapshot holds its -wal too): bytes alone differing (within the bound
                // above) is no damage; the report's exact counts and the checksums catch the rest.
                if !changedDuringBackup && planned.entryCount == actual.entryCount && planned.fileCount == actual.fileCount {
                    notes.append(line + " (SQLite snapshots differ in size from their files)")
                } else {
                    disagreement(line)
                }
            }
        }
        let global = sections[ArchiveLayout.globalDir] ?? Manifest.SectionStats()
        if report.global != global {
            problems.append(.damaged("global/: the archive holds \(Self.describe(global)), the backup wrote \(Self.describe(report.global))"))
        }
        if changedDuringBackup {
            notes.append("the backup reported \(report.warnings.count) warnings: " + report.warnings.prefix(3).joined(separator: "; "))
        }
    }

    private static func digest(_ data: Data) -> String {
        let hasher = SHA256Hasher()
        data.withUnsafeBytes { hasher.update($0) }
        return hasher.finalizeHex()
    }

    /// Without a `beyond_plan` statement (a report of clmnt before it was recorded), bytes may
    /// exceed the manifest's by this much: an eighth of them plus 1 MiB.
    static func unstatedGrowthAllowance(planned: Int64) -> Int64 { max(planned, 0) / 8 + (1 << 20) }

    /// Why a molt's archived totals exceed its manifest's beyond what the report states it
    /// archived beyond the plan (`beyondPlan`: unplanned sidecars, files that grew), or nil.
    /// Without a statement: no entry or file more (a backup archives only what its scan listed),
    /// bytes up to `unstatedGrowthAllowance`.
    static func excess(actual: Manifest.SectionStats, planned: Manifest.SectionStats, stated: Manifest.SectionStats?) -> String? {
        let extra = stated ?? Manifest.SectionStats(backupSizeBytes: unstatedGrowthAllowance(planned: planned.backupSizeBytes))
        let statement = stated == nil ? "the report states nothing beyond the plan"
            : "the report states \(describe(extra)) beyond the plan"
        if planned.entryCount >= 0 && actual.entryCount > planned.entryCount + max(extra.entryCount, 0) {
            return "more entries than the manifest lists, and \(statement)"
        }
        if planned.fileCount >= 0 && actual.fileCount > planned.fileCount + max(extra.fileCount, 0) {
            return "more files than the manifest lists, and \(statement)"
        }
        if actual.backupSizeBytes > planned.backupSizeBytes + max(extra.backupSizeBytes, 0) {
            return "\(actual.backupSizeBytes - planned.backupSizeBytes) bytes more than the manifest lists, and \(statement)"
                + (stated == nil ? " (allowed: \(extra.backupSizeBytes) bytes)" : "")
        }
        return nil
    }

    private static func describe(_ stats: Manifest.SectionStats) -> String {
        func count(_ value: Int) -> String { value < 0 ? "?" : String(value) }
        return "\(count(stats.entryCount)) entries, \(count(stats.fileCount)) files, \(stats.backupSizeBytes) bytes"
    }
}
