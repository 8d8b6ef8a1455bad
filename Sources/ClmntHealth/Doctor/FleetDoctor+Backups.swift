import ClmntCore
import Foundation

/// The doctor's backup checks: the local archives, the off-host copy, the last verify.
extension FleetDoctor {
    static func backupChecks(_ fleet: Fleet, options: DoctorOptions) -> [DoctorCheck] {
        let offHost = OffHostStatus.last(in: options.backupDir.directory)
        return localBackupChecks(fleet, offHost: offHost, options: options)
            + offHostChecks(fleet, record: offHost, options: options)
    }

    /// The backup dir, the newest archive (or, with none, the last off-host copy), its completeness and room for the next.
    static func localBackupChecks(_ fleet: Fleet, offHost: OffHostStatus.Record?, options: DoctorOptions) -> [DoctorCheck] {
        let directory = options.backupDir.directory
        var checks: [DoctorCheck] = []
        // A backup dir inside a molt's home is writable by that molt, and is archived into itself.
        let resolvedBackups = realPath(directory) ?? directory
        let resolvedBase = realPath(fleet.baseDir) ?? fleet.baseDir
        if let molt = fleet.molts.first(where: { isInside(resolvedBackups, resolvedBase + "/" + $0.name) }) {
            checks.append(DoctorCheck(.fail, "backup-dir", "backup dir \(directory) is inside the home of molt \(molt.name), which can read and replace the archives"))
        } else if let problem = BackupDirectory.trustProblem(path: directory) {
            // backup, prune and schedule refuse it: say so before the nightly job does.
            checks.append(DoctorCheck(.fail, "backup-dir", "backup dir \(directory): \(problem); backup --keep, prune and schedule refuse it"))
        } else {
            checks.append(DoctorCheck(.ok, "backup-dir", "backup dir \(directory) (\(options.backupDir.explanation))"))
        }

        let listings: [BackupListing]
        do { listings = try BackupCatalog.list(directory: directory, now: options.now) } catch {
            checks.append(DoctorCheck(.fail, "backup-recent", "cannot list \(directory): \(error)"))
            return checks
        }
        // An archive dated in the future (or far from its mtime) is never the newest: it would hide a stale backup.
        let ours = listings.filter(\.isDated)
        let newest = ours.max { (Timestamp.parse($0.date ?? "") ?? .distantPast) < (Timestamp.parse($1.date ?? "") ?? .distantPast) }
        // A job that streams with --to leaves no local archive: its last copy is the newest backup.
        if newest == nil, let offHost, let date = offHost.completedDate {
            checks.append(ageCheck("backup-recent", "newest backup \(offHost.target) (off-host)", date: date, options: options))
            return checks
        }
        guard let newest, let date = newest.date.flatMap(Timestamp.parse) else {
            let pointer = options.backupDir.pointer.map { "; \(directory) is \($0)" } ?? ""
            checks.append(DoctorCheck(.fail, "backup-recent", "no backup in \(directory) (clmnt fleet backup, or clmnt fleet schedule\(pointer))"))
            return checks
        }
        let name = (newest.file as NSString).lastPathComponent
        let age = options.now.timeIntervalSince(date)
        let when = "\(Timestamp.duration(max(0, age))) ago"
        if age > 2 * options.backupMaxAge {
            checks.append(DoctorCheck(.fail, "backup-recent", "newest backup \(name) is from \(when)"))
        } else if age > options.backupMaxAge {
            checks.append(DoctorCheck(.warn, "backup-recent", "newest backup \(name) is from \(when)"))
        } else {
            checks.append(DoctorCheck(.ok, "backup-recent", "newest backup \(name), \(when)"))
        }
        let missing = fleet.names.filter { !(newest.molts ?? []).contains($0) }
        switch newest.complete {
        case false?:
            checks.append(DoctorCheck(.fail, "backup-complete", "\(name) is incomplete: \(newest.missedFiles ?? 0) files missed (see its backup-report.json)"))
        case _ where !missing.isEmpty:
            checks.append(DoctorCheck(.warn, "backup-complete", "\(name) holds no copy of \(missing.joined(separator: ", "))"))
        case true?:
            checks.append(DoctorCheck(.ok, "backup-complete", "\(name) holds every molt, nothing missed"))
        case nil:
            if let mark = VerifiedMark.read(path: newest.file) {
                checks.append(DoctorCheck(.ok, "backup-complete", "\(name) read back intact and complete by clmnt fleet verify at \(mark.verified)"))
            } else {
                checks.append(DoctorCheck(.warn, "backup-complete", "\(name): completeness unknown (no status mark; clmnt fleet verify \(newest.file))"))
            }
        }
        checks.append(verifiedCheck(fleet: fleet, archive: name, options: options))

        // The next backup needs about as much room as the last one, beside it.
        var space = statvfs()
        if statvfs(directory, &space) == 0 {
            let free = Int64(space.f_bavail) * Int64(space.f_frsize)
            let needed = newest.sizeBytes + newest.sizeBytes / 10
            let line = "\(formatBytes(free)) free in \(directory), the last backup took \(formatBytes(newest.sizeBytes))"
            checks.append(DoctorCheck(free >= needed ? .ok : .fail, "free-space", line))
        } else {
            checks.append(DoctorCheck(.warn, "free-space", "cannot read the free space of \(directory): \(String(cString: strerror(errno)))"))
        }
        return checks
    }

    /// OK, WARN past `backupMaxAge`, FAIL past twice that.
    static func ageCheck(_ name: String, _ what: String, date: Date, options: DoctorOptions) -> DoctorCheck {
        let age = options.now.timeIntervalSince(date)
        let line = "\(what) is from \(Timestamp.duration(max(0, age))) ago"
        if age > 2 * options.backupMaxAge { return DoctorCheck(.fail, name, line) }
        return DoctorCheck(age > options.backupMaxAge ? .warn : .ok, name, line)
    }

    /// Encryption and off-host copies of the scheduled backup: its archives hold every molt's
    /// secrets, and a copy only on this host dies with its disk.
    static func offHostChecks(_ fleet: Fleet, record: OffHostStatus.Record?, options: DoctorOptions) -> [DoctorCheck] {
        var checks: [DoctorCheck] = []
        var entry: [String] = []
        if let crontab = options.scheduleCrontab, crontab.isInstalled, let text = try? crontab.read() {
            entry = BackupSchedule.entryLines(in: text, baseDir: fleet.baseDir)
        }
        let words = Set(entry.flatMap { $0.split(separator: " ").map(String.init) })
        let sendsOffHost = words.contains("--to") || words.contains("--copy-to")
        if !entry.isEmpty {
            if words.contains("--encrypt-to") || words.contains("--recipients-file") {
                checks.append(DoctorCheck(.ok, "backup-encrypted", "the scheduled backup encrypts its archives (age)"))
            } else {
                checks.append(DoctorCheck(.warn, "backup-encrypted", "the scheduled backup is not encrypted: every archive holds the molts' secrets in clear (clmnt fleet schedule --recipients-file FILE)"))
            }
        }
        if let record, let date = record.completedDate {
            checks.append(ageCheck("backup-offhost", "last off-host copy \(record.target)", date: date, options: options))
        } else if sendsOffHost {
            checks.append(DoctorCheck(.warn, "backup-offhost", "the scheduled backup sends archives off the host, but no copy has succeeded yet"))
        }
        // A key beside the only copy of the archives is lost with them (and found with them).
        for path in options.identityFiles {
            var key = stat(), archives = stat()
            guard stat(path, &key) == 0, stat(options.backupDir.directory, &archives) == 0 else { continue }
            if key.st_dev == archives.st_dev && record == nil && !sendsOffHost {
                checks.append(DoctorCheck(.warn, "identity-file", "identity file \(path) is on the same disk as the only copy of the archives (\(options.backupDir.directory)): keep it elsewhere too"))
            } else if let problem = AgeKeyFiles.identityFileProblem(path) {
                checks.append(DoctorCheck(.warn, "identity-file", "identity file \(path): \(problem)"))
            }
        }
        return checks
    }

    /// Verified when the scheduled job runs with `--verify` (every nightly archive is read back).
    static func verifiedCheck(fleet: Fleet, archive: String, options: DoctorOptions) -> DoctorCheck {
        guard let crontab = options.scheduleCrontab, crontab.isInstalled, let text = try? crontab.read() else {
            return DoctorCheck(.warn, "backup-verified", "cannot read the schedule; run clmnt fleet verify on \(archive)")
        }
        let entry = BackupSchedule.entryLines(in: text, baseDir: fleet.baseDir)
        if entry.isEmpty {
            return DoctorCheck(.warn, "backup-verified", "no scheduled backup of \(fleet.baseDir) (clmnt fleet schedule)")
        }
        if entry.contains(where: { $0.split(separator: " ").contains("--verify") }) {
            return DoctorCheck(.ok, "backup-verified", "the scheduled backup verifies every archive (--verify)")
        }
        return DoctorCheck(.warn, "backup-verified", "the scheduled backup does not verify its archives (clmnt fleet schedule --verify)")
    }
}
