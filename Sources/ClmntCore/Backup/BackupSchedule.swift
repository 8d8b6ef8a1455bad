import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What `fleet schedule` installed.
public struct BackupScheduleReport: Sendable, Equatable {
    /// The crontab lines now in place.
    public var installed: [String]
    /// A previous entry of this base dir was replaced.
    public var replaced: Bool
    public var notes: [String]
    public var warnings: [String]
}

/// Where (and whether) a base dir's backup is scheduled.
public struct BackupScheduleStatus: Sendable, Codable {
    public var baseDir: String
    /// The entry's lines; empty when not scheduled.
    public var entry: [String]
    /// From the installed line, else the one asked about.
    public var backupDir: String
    /// The newest readable archive in `backupDir` whose date is trusted.
    public var newestArchive: BackupListing?
    /// Why `backupDir` could not be listed.
    public var backupDirProblem: String?

    public var isScheduled: Bool { !entry.isEmpty }

    enum CodingKeys: String, CodingKey {
        case entry
        case baseDir = "base_dir"
        case backupDir = "backup_dir"
        case newestArchive = "newest_archive"
        case backupDirProblem = "backup_dir_problem"
    }
}

/// Installs, removes and reports the scheduled `fleet backup` of a base dir in a crontab.
/// Every other line of the crontab is kept byte for byte.
public enum BackupSchedule {
    /// Adds `job`'s entry to the crontab, or replaces this base dir's entry; creates the backup dir (0700).
    /// Nothing is changed when anything is wrong.
    public static func install(_ job: BackupJob, crontab: CronTab) throws(BackupScheduleError) -> BackupScheduleReport {
        guard crontab.isInstalled else { throw .crontab(.notInstalled(program: crontab.program)) }
        guard access(job.executable, X_OK) == 0, isRegularFile(job.executable) else {
            throw .notExecutable(path: job.executable)
        }
        let fleet: Fleet
        do { fleet = try Fleet.discover(baseDir: job.baseDir) } catch { throw .fleet(error) }
        var warnings: [String] = []
        if fleet.molts.isEmpty { warnings.append("no molts in \(job.baseDir) yet: the backup will fail until there are some") }
        let current: String
        do { current = try crontab.read() } catch { throw .crontab(error) }

        var notes: [String] = []
        if try prepareBackupDir(job.backupDir) { notes.append("created \(job.backupDir) (mode 0700)") }
        // The nightly job would refuse it (and prune nothing): refuse now, before the crontab changes.
        if let problem = BackupDirectory.trustProblem(path: job.backupDir) {
            throw .backupDir(path: job.backupDir, reason: problem)
        }
        prepareLog(job.logPath)

        let replaced = !entryLines(in: current, baseDir: job.baseDir).isEmpty
        let updated = replacingEntry(in: current, baseDir: job.baseDir, with: job.cronLines)
        if updated != current {
            do { try crontab.write(updated) } catch { throw .crontab(error) }
        }
        notes.append(replaced ? "replaced the entry of \(job.baseDir) in the crontab of \(crontab.user)"
                              : "added to the crontab of \(crontab.user)")
        for line in otherBackupJobs(in: updated, baseDir: job.baseDir) {
            warnings.append("another crontab line also backs up \(job.baseDir): \(line)")
        }
        return BackupScheduleReport(installed: job.cronLines, replaced: replaced, notes: notes, warnings: warnings)
    }

    /// Removes this base dir's entry; returns the lines removed (empty: there was none).
    public static func remove(baseDir: String, crontab: CronTab) throws(BackupScheduleError) -> [String] {
        try BackupJob.checkPath("base dir", baseDir)
        let base = BackupJob.normalized(baseDir)
        let current: String
        do { current = try crontab.read() } catch { throw .crontab(error) }
        let lines = entryLines(in: current, baseDir: base)
        if !lines.isEmpty {
            do { try crontab.write(replacingEntry(in: current, baseDir: base, with: [])) } catch { throw .crontab(error) }
        }
        return lines
    }

    /// The installed entry and the newest archive of its backup dir (`backupDir` when nothing is installed).
    public static func status(baseDir: String, backupDir: String = BackupJob.defaultBackupDir,
                              crontab: CronTab) throws(BackupScheduleError) -> BackupScheduleStatus {
        try BackupJob.checkPath("base dir", baseDir)
        let base = BackupJob.normalized(baseDir)
        let current: String
        do { current = try crontab.read() } catch { throw .crontab(error) }
        let entry = entryLines(in: current, baseDir: base)
        let directory = entry.compactMap(backupDirArgument).first ?? absolutePath(backupDir)
        var status = BackupScheduleStatus(baseDir: base, entry: entry, backupDir: directory)
        do {
            status.newestArchive = try BackupCatalog.list(directory: directory).last(where: \.isDated)
            status.backupDirProblem = BackupDirectory.trustProblem(path: directory).map { "refusing backup dir \(directory): \($0)" }
        } catch {
            status.backupDirProblem = error.description
        }
        return status
    }

    /// The backup dir of `baseDir`'s installed entry; nil when none is installed or the crontab cannot be read.
    public static func scheduledBackupDir(baseDir: String, crontab: CronTab) -> String? {
        guard crontab.isInstalled, let text = try? crontab.read() else { return nil }
        return entryLines(in: text, baseDir: BackupJob.normalized(baseDir)).compactMap(backupDirArgument).first
    }

    // MARK: - Editing (pure)

    /// Whether `line` is the marker comment of `baseDir` (`# CLMNT-FLEET-BACKUP <base>`, trailing words allowed).
    static func isMarker(_ line: String, baseDir: String) -> Bool {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        guard trimmed.hasPrefix("#") else { return false }
        let words = trimmed.dropFirst().split(whereSeparator: { $0 == " " || $0 == "\t" })
        return words.count >= 2 && words[0] == Substring(BackupJob.marker) && words[1] == Substring(baseDir)
    }

    /// A line cron runs (not blank, not a comment).
    static func isJob(_ line: String) -> Bool {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        return !trimmed.isEmpty && !trimmed.hasPrefix("#")
    }

    /// Indices of `baseDir`'s entries: each marker, and the job line right after it.
    static func entryIndices(_ lines: [String], baseDir: String) -> [Int] {
        var indices: [Int] = []
        for (index, line) in lines.enumerated() where isMarker(line, baseDir: baseDir) {
            indices.append(index)
            if index + 1 < lines.count, isJob(lines[index + 1]) { indices.append(index + 1) }
        }
        return indices
    }

    static func splitLines(_ text: String) -> [String] { CronTab.lines(of: text) }

    /// The lines of `baseDir`'s entry in `text` (marker and job); empty when none.
    public static func entryLines(in text: String, baseDir: String) -> [String] {
        let lines = splitLines(text)
        return entryIndices(lines, baseDir: baseDir).map { lines[$0] }
    }

    /// `text` without `baseDir`'s entries, `entry` in the first one's place (or at the end); every other line as it was.
    public static func replacingEntry(in text: String, baseDir: String, with entry: [String]) -> String {
        CronTab.replacingLines(in: text, selectedBy: { Set(entryIndices($0, baseDir: baseDir)) }, with: entry)
    }

    /// Unmarked job lines that run `fleet backup` on `baseDir` (hand-written ones): the admin should know of the double run.
    static func otherBackupJobs(in text: String, baseDir: String) -> [String] {
        let lines = splitLines(text)
        let ours = Set(entryIndices(lines, baseDir: baseDir))
        return lines.enumerated().filter { index, line in
            guard !ours.contains(index), isJob(line), line.contains("fleet backup") else { return false }
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            return zip(words, words.dropFirst()).contains { ($0 == "-d" || $0 == "--base-dir") && $1 == Substring(baseDir) }
        }.map(\.element)
    }

    /// The `--backup-dir` of a job line we wrote.
    public static func backupDirArgument(_ line: String) -> String? {
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard let index = words.firstIndex(of: "--backup-dir"), index + 1 < words.count else { return nil }
        return String(words[index + 1])
    }

    // MARK: - Files

    /// Creates the backup dir (and missing parents) 0700; true when it was created.
    static func prepareBackupDir(_ path: String) throws(BackupScheduleError) -> Bool {
        var info = stat()
        if stat(path, &info) == 0 {
            guard (UInt32(info.st_mode) & FileType.mask) == FileType.directory else {
                throw .backupDir(path: path, reason: "not a directory")
            }
            return false
        }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw .backupDir(path: path, reason: describeFileError(error))
        }
        chmod(path, 0o700)
        return true
    }

    /// The log, created 0600 so the job's `>>` does not make it world-readable.
    static func prepareLog(_ path: String) {
        _ = try? FileDescriptor.open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW, mode: 0o600)
    }

    static func isRegularFile(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (UInt32(info.st_mode) & FileType.mask) == FileType.regular
    }
}
