import ClmntTestSupport
@testable import ClmntCore
import Foundation
import Testing

/// `fleet schedule` against the real `crontab` of a throwaway user (never root's),
/// and the job line it writes run the way cron runs it.
@Suite("clmnt fleet schedule", .serialized)
struct BackupScheduleTests {
    let clmnt = clmntExecutable()

    /// A Linux user made for one test, with its crontab; removed by `remove()`.
    struct CronUser {
        let name: String
        var crontab: CronTab { CronTab(user: name) }

        init() throws {
            name = "clmnt-s-" + String(UInt32.random(in: 0..<UInt32.max), radix: 36)
            try ProgramRunner.run("useradd", ["-M", "-U", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", name])
        }

        func remove() {
            _ = try? ProgramRunner.capture("crontab", ["-r", "-u", name])
            _ = try? ProgramRunner.capture("userdel", [name])
        }
    }

    /// Other people's lines, which must survive byte for byte (odd spacing, a health-watch entry, no blank line at the end).
    let others = """
    MAILTO=ops@example.com
    # MOLT-HEALTH-WATCH alpha: health check every 5 min, managed by 'clmnt molt health setup'
    */5 * * * * /usr/local/bin/clmnt molt health-watch alpha --base-dir /srv/molts >> /srv/molts/alpha/.molt-state/cron.log 2>&1
    #  a comment   with  spaces\t
    @reboot   /usr/bin/true
    # CLMNT-FLEET-BACKUP /srv/other-fleet
    0 2 * * * /usr/local/bin/clmnt fleet backup -d /srv/other-fleet --backup-dir /var/backups/other --compress zstd --keep 3 -q >> /var/backups/other/clmnt-backup.log 2>&1

    """

    private func rootCrontab() -> String {
        (try? CronTab(user: "root").read()) ?? "<unreadable>"
    }

    @Test("install twice: one entry; every other line kept byte for byte; a new --at replaces it; --remove restores the rest")
    func idempotentInstallAndRemove() throws {
        let user = try CronUser()
        let fleet = try FleetFixture(molts: ["alpha"])
        defer { user.remove(); fleet.remove() }
        let backups = fleet.root.path + "/var/backups/clmnt"
        try user.crontab.write(others)

        let job = try BackupJob(baseDir: fleet.baseDir, executable: clmnt, backupDir: backups)
        let first = try BackupSchedule.install(job, crontab: user.crontab)
        #expect(!first.replaced)
        #expect(first.notes.contains("created \(backups) (mode 0700)"))
        var info = stat()
        #expect(stat(backups, &info) == 0 && info.st_mode & 0o777 == 0o700)
        let second = try BackupSchedule.install(job, crontab: user.crontab)
        #expect(second.replaced)
        let text = try user.crontab.read()
        #expect(text == others + job.cronLines.joined(separator: "\n") + "\n")
        #expect(job.cronLines == [
            "# CLMNT-FLEET-BACKUP \(fleet.baseDir)",
            "15 3 * * * \(clmnt) fleet backup -d \(fleet.baseDir) --backup-dir \(backups) --compress zstd --keep 7 --timestamps 2>&1 >> \(backups)/clmnt-backup.log | /usr/bin/tee -a \(backups)/clmnt-backup.log",
        ])

        // Another time, weekly, with --verify: the entry is replaced in place.
        let weekly = try BackupJob(baseDir: fleet.baseDir + "/", executable: clmnt, backupDir: backups, at: "4:30", weekday: 0,
                                   compression: .gzip, keep: 2, verify: true)
        #expect(try BackupSchedule.install(weekly, crontab: user.crontab).replaced)
        let changed = try user.crontab.read()
        #expect(changed == others + "# CLMNT-FLEET-BACKUP \(fleet.baseDir)\n"
                + "30 4 * * 0 \(clmnt) fleet backup -d \(fleet.baseDir) --backup-dir \(backups) --compress gzip --keep 2 --timestamps --verify 2>&1 >> \(backups)/clmnt-backup.log | /usr/bin/tee -a \(backups)/clmnt-backup.log\n")
        #expect(BackupSchedule.entryLines(in: changed, baseDir: fleet.baseDir).count == 2)
        #expect(BackupSchedule.entryLines(in: changed, baseDir: "/srv/other-fleet").count == 2)

        let removed = try BackupSchedule.remove(baseDir: fleet.baseDir, crontab: user.crontab)
        #expect(removed.count == 2)
        #expect(try user.crontab.read() == others)
        #expect(try BackupSchedule.remove(baseDir: fleet.baseDir, crontab: user.crontab).isEmpty)
        #expect(try user.crontab.read() == others)
    }

    @Test("the entry goes where the old one was; an empty crontab gets just the entry, and --remove empties it again")
    func placement() throws {
        let user = try CronUser()
        let fleet = try FleetFixture(molts: ["alpha"])
        defer { user.remove(); fleet.remove() }
        let job = try BackupJob(baseDir: fleet.baseDir, executable: clmnt, backupDir: fleet.root.path + "/bk")
        #expect(try user.crontab.read() == "")
        _ = try BackupSchedule.install(job, crontab: user.crontab)
        #expect(try user.crontab.read() == job.cronLines.joined(separator: "\n") + "\n")
        _ = try BackupSchedule.remove(baseDir: fleet.baseDir, crontab: user.crontab)
        #expect(try user.crontab.read() == "")

        let stale = "A=1\n# CLMNT-FLEET-BACKUP \(fleet.baseDir)\n0 1 * * * /old/clmnt fleet backup -d \(fleet.baseDir) -q\nB=2\n"
        #expect(BackupSchedule.replacingEntry(in: stale, baseDir: fleet.baseDir, with: job.cronLines)
                == "A=1\n" + job.cronLines.joined(separator: "\n") + "\nB=2\n")
        // A hand-written line for the same base dir is kept, with a warning.
        let handWritten = "15 3 * * * cd /var/backups && /usr/local/bin/clmnt fleet backup -d \(fleet.baseDir) -q"
        try user.crontab.write(handWritten + "\n")
        let report = try BackupSchedule.install(job, crontab: user.crontab)
        #expect(report.warnings.contains { $0.contains(handWritten) })
        #expect(try user.crontab.read().hasPrefix(handWritten + "\n"))
    }

    @Test("--status: the installed line, or not scheduled; the newest archive of the backup dir")
    func status() throws {
        let user = try CronUser()
        let fleet = try FleetFixture(molts: ["alpha"])
        defer { user.remove(); fleet.remove() }
        let backups = fleet.root.path + "/bk"
        let before = try BackupSchedule.status(baseDir: fleet.baseDir, backupDir: backups, crontab: user.crontab)
        // A backup dir not made yet holds no backups: not a problem to report.
        #expect(!before.isScheduled && before.newestArchive == nil && before.backupDirProblem == nil)
        let unreadable = try BackupSchedule.status(baseDir: fleet.baseDir, backupDir: fleet.baseDir + "/alpha/.molt-info",
                                                   crontab: user.crontab)
        #expect(unreadable.backupDirProblem != nil, "a file is not a backup dir")

        let job = try BackupJob(baseDir: fleet.baseDir, executable: clmnt, backupDir: backups)
        _ = try BackupSchedule.install(job, crontab: user.crontab)
        var options = BackupOptions(baseDir: fleet.baseDir)
        options.backupDir = backups
        let older = try FleetBackup(options: options).run(now: Date(timeIntervalSince1970: 1_790_000_000)).output
        let newest = try FleetBackup(options: options).run(now: Date(timeIntervalSince1970: 1_790_086_400)).output
        // Written at those times, as far as the files say (a date far from the mtime is not trusted).
        RestoreFixture.setTime(older, seconds: 1_790_000_000)
        RestoreFixture.setTime(newest, seconds: 1_790_086_400)
        // Asked about another dir: the installed line's --backup-dir wins.
        let after = try BackupSchedule.status(baseDir: fleet.baseDir, backupDir: "/nonexistent", crontab: user.crontab)
        #expect(after.entry == job.cronLines)
        #expect(after.backupDir == backups)
        #expect(after.newestArchive?.file == newest)
    }

    @Test("the job's encryption and off-host copy go into its line as paths, URLs and public keys; anything a shell would read is refused")
    func offHostJob() throws {
        let base = "/srv/molts"
        var job = try BackupJob(baseDir: base, executable: clmnt, backupDir: "/var/backups/clmnt")
        var settings = OffHostSettings()
        settings.recipientsFiles = ["/etc/clmnt/recipients"]
        settings.recipients = ["age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq"]
        settings.to = "s3://backups/molts"
        settings.environment = OffHostSettings.storeVariables(from: ["AWS_ENDPOINT_URL": "https://minio.example:9000",
                                                                     "AWS_SECRET_ACCESS_KEY": "never-in-a-crontab", "AWS_REGION": "eu-west-1"])
        try job.setOffHost(settings)
        let words = job.arguments
        #expect(words.suffix(6) == ["--recipients-file", "/etc/clmnt/recipients", "--encrypt-to", settings.recipients[0],
                                    "--to", "s3://backups/molts"])
        #expect(job.command.hasPrefix("AWS_ENDPOINT_URL=https://minio.example:9000 AWS_REGION=eu-west-1 \(clmnt) fleet backup"))
        #expect(!job.jobLine.contains("never-in-a-crontab"), "credentials stay out of the crontab")
        for bad in ["s3://b/p;rm -rf /", "s3://b/$(id)", "s3://b/a b", "s3://b/`id`", "s3://b/a|b", "s3://b/50%"] {
            var unsafe = OffHostSettings()
            unsafe.copyTo = bad
            #expect(throws: BackupScheduleError.self) { try job.setOffHost(unsafe) }
        }
        var relative = OffHostSettings()
        relative.recipientsFiles = ["recipients.txt"]
        #expect(throws: BackupScheduleError.notAbsolute(what: "recipients file", path: "recipients.txt")) { try job.setOffHost(relative) }
        #expect(job.offHost == settings, "a refused setting leaves the job as it was")
    }

    @Test("unsafe or relative paths, bad times, weekdays and counts are refused before anything changes")
    func refusals() throws {
        let user = try CronUser()
        let fleet = try FleetFixture(molts: ["alpha"])
        defer { user.remove(); fleet.remove() }
        try user.crontab.write(others)
        let base = fleet.baseDir
        let unsafe = ["/srv/a b", "/srv/a%b", "/srv/a\nb", "/srv/a'b", "/srv/a\"b", "/srv/a$b", "/srv/a`b", "/srv/a;b",
                      "/srv/a\\b", "/srv/a\tb", "/srv/a*b", "/srv/a|b"]
        for path in unsafe {
            #expect(throws: BackupScheduleError.self) { try BackupJob(baseDir: path, executable: clmnt) }
            #expect(throws: BackupScheduleError.self) { try BackupJob(baseDir: base, executable: clmnt, backupDir: path) }
            #expect(throws: BackupScheduleError.self) { try BackupJob(baseDir: base, executable: path) }
        }
        do {
            _ = try BackupJob(baseDir: base, executable: clmnt, backupDir: "/srv/50%")
            Issue.record("accepted a %")
        } catch {
            #expect(error.description == "backup dir '/srv/50%' contains '%', which is unsafe in a crontab line; use a path of letters, digits and ._-/+,:@")
            #expect(error.isUsageError)
        }
        #expect(throws: BackupScheduleError.notAbsolute(what: "backup dir", path: "backups")) {
            try BackupJob(baseDir: base, executable: clmnt, backupDir: "backups")
        }
        for time in ["24:00", "3:60", "0315", "3:5", "", "a:bc", "-1:15", "03:15:00", "+3:15"] {
            #expect(throws: BackupScheduleError.invalidTime(time)) { try BackupJob(baseDir: base, executable: clmnt, at: time) }
        }
        #expect(try BackupJob(baseDir: base, executable: clmnt, at: "00:00").timeFields == "0 0 * * *")
        #expect(try BackupJob(baseDir: base, executable: clmnt, at: "23:59", weekday: 6).timeFields == "59 23 * * 6")
        #expect(throws: BackupScheduleError.invalidWeekday(7)) { try BackupJob(baseDir: base, executable: clmnt, weekday: 7) }
        #expect(throws: BackupScheduleError.invalidKeep(0)) { try BackupJob(baseDir: base, executable: clmnt, keep: 0) }

        // Valid job, but no fleet there / no crontab command: nothing changes.
        let nowhere = try BackupJob(baseDir: fleet.root.path + "/missing", executable: clmnt, backupDir: fleet.root.path + "/bk1")
        #expect(throws: BackupScheduleError.self) { try BackupSchedule.install(nowhere, crontab: user.crontab) }
        let job = try BackupJob(baseDir: base, executable: clmnt, backupDir: fleet.root.path + "/bk2")
        let noCron = CronTab(user: user.name, program: "/nonexistent/crontab")
        #expect(throws: BackupScheduleError.crontab(.notInstalled(program: "/nonexistent/crontab"))) {
            try BackupSchedule.install(job, crontab: noCron)
        }
        #expect(BackupScheduleError.crontab(.notInstalled(program: "crontab")).description == "crontab is not installed (Debian: apt-get install cron)")
        #expect(try user.crontab.read() == others)
        #expect(!FileManager.default.fileExists(atPath: fleet.root.path + "/bk1"))
        #expect(!FileManager.default.fileExists(atPath: fleet.root.path + "/bk2"))
    }

    @Test("the command refuses bad values with one line and exit 64, leaving root's crontab alone")
    func commandRefusals() throws {
        let fleet = try FleetFixture(molts: ["alpha"])
        defer { fleet.remove() }
        let rootBefore = rootCrontab()
        let cases: [[String]] = [
            ["-d", fleet.root.path + "/a b"],
            ["-d", fleet.baseDir, "--backup-dir", "/tmp/50%"],
            ["-d", fleet.baseDir, "--backup-dir", "relative/dir"],
            ["-d", fleet.baseDir, "--at", "25:00"],
            ["-d", fleet.baseDir, "--weekday", "9"],
            ["-d", fleet.baseDir, "--keep", "0"],
            ["-d", fleet.baseDir, "--keep-daily", "0"],
            ["-d", fleet.baseDir, "--keep-weekly=-1"],
            ["-d", fleet.baseDir, "--keep-monthly", "100000"],
        ]
        for arguments in cases {
            let result = try runCapturing(clmnt, ["fleet", "schedule"] + arguments)
            #expect(result.status == 64, "\(arguments): \(result.stderr)")
            #expect(result.stderr.hasPrefix("clmnt: ") && result.stderr.split(separator: "\n").count == 1, "\(arguments): \(result.stderr)")
        }
        // Contradictions the parser's validation catches (with the usage, as for its own errors).
        for arguments in [["--remove", "--status"], ["--remove", "--keep-daily", "7"], ["--status", "--keep", "3"]] {
            let both = try runCapturing(clmnt, ["fleet", "schedule", "-d", fleet.baseDir] + arguments)
            #expect(both.status == 64, "\(arguments): \(both.stderr)")
        }
        #expect(rootCrontab() == rootBefore)
    }

    @Test("--keep-daily, --keep-weekly and --keep-monthly go into the job line; --keep 7 only when no rule is given")
    func retentionFlagsInTheLine() throws {
        let user = try CronUser()
        let scratch = try TemporaryDirectory(prefix: "clmnt-sched")
        defer { user.remove(); scratch.remove() }
        // The command run as the throwaway user edits that user's crontab, never root's.
        let rootBefore = rootCrontab()
        try ProgramRunner.run("chown", [user.name, scratch.path])
        chmod(scratch.path, 0o755)
        let base = scratch.path + "/fleet", backups = scratch.path + "/bk"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        // A copy the throwaway user can run: the build tree may sit in a directory only root enters (mktemp -d).
        let binary = scratch.path + "/clmnt"
        try FileManager.default.copyItem(atPath: clmnt, toPath: binary)
        chmod(binary, 0o755)
        func schedule(_ flags: [String]) throws -> String {
            let result = try runCapturing("/usr/sbin/runuser", ["-u", user.name, "--", binary, "fleet", "schedule", "-d", base,
                                                                "--backup-dir", backups] + flags, currentDirectory: "/")
            #expect(result.status == 0, "\(flags): \(result.stderr)")
            let lines = BackupSchedule.entryLines(in: try user.crontab.read(), baseDir: base)
            return lines.last ?? ""
        }
        let rules = try schedule(["--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "12"])
        #expect(rules.contains(" --compress zstd --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --timestamps 2>&1"), "\(rules)")
        #expect(!rules.contains("--keep 7"), "no implicit --keep beside the rules given: \(rules)")
        let both = try schedule(["--keep", "3", "--keep-weekly", "5", "--verify"])
        #expect(both.contains(" --keep 3 --keep-weekly 5 --timestamps --verify 2>&1"), "\(both)")
        let plain = try schedule([])
        #expect(plain.contains(" --keep 7 --timestamps 2>&1") && !plain.contains("--keep-"), "\(plain)")
        #expect(rootCrontab() == rootBefore)

        let job = try BackupJob(baseDir: base, executable: clmnt, backupDir: backups,
                                retention: RetentionPolicy(last: 2, monthly: 6))
        #expect(job.arguments.suffix(6) == ["zstd", "--keep", "2", "--keep-monthly", "6", "--timestamps"])
        #expect(throws: BackupScheduleError.self) { try BackupJob(baseDir: base, executable: clmnt, retention: RetentionPolicy()) }
        #expect(throws: BackupScheduleError.self) {
            try BackupJob(baseDir: base, executable: clmnt, retention: RetentionPolicy(daily: 0))
        }
    }

    @Test("the installed line, run as cron runs it (/bin/sh -c, empty environment), backs up, prunes and logs no error")
    func jobLineRuns() throws {
        let user = try CronUser()
        let fleet = try FleetFixture(molts: ["alpha", "bravo-2"])
        defer { user.remove(); fleet.remove() }
        let backups = fleet.root.path + "/backups-nightly"
        let job = try BackupJob(baseDir: fleet.baseDir, executable: clmnt, backupDir: backups, keep: 1, verify: true)
        _ = try BackupSchedule.install(job, crontab: user.crontab)
        let lines = BackupSchedule.entryLines(in: try user.crontab.read(), baseDir: fleet.baseDir)
        #expect(lines.count == 2)
        // What cron hands to the shell: everything after the five time fields.
        let fields = lines[1].split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
        #expect(fields.count == 6)
        let command = String(fields[5])
        #expect(!command.contains("%"))

        var archives: [String] = []
        for run in 0..<2 {
            // The second run needs no pause for a new default name: today's is taken, so it gains the
            // time of day (and `-2`, `-3`... if that is taken too).
            let result = try runCapturing("/usr/bin/env", ["-i", "SHELL=/bin/sh", "PATH=/usr/bin:/bin", "HOME=/root",
                                                           "LOGNAME=root", "/bin/sh", "-c", command], currentDirectory: "/")
            #expect(result.status == 0, "run \(run): \(result.stdout)\(result.stderr)")
            // What cron would mail: the warnings (this fixture has a fake database and a link out), never the summary.
            #expect(result.stdout.contains("clmnt: warning:") && result.stdout.contains("fake.sqlite"), "\(result.stdout)")
            #expect(!result.stdout.contains(" molts, "), "the summary goes to the log only: \(result.stdout)")
            #expect(result.stderr.isEmpty)
            archives = ((try? FileManager.default.contentsOfDirectory(atPath: backups)) ?? []).filter { $0.hasPrefix("fleet-") }
            #expect(archives.count == 1, "keep 1: \(archives)")
            #expect(archives.allSatisfy { $0.hasSuffix(".tar.zst") })
        }
        let log = try String(contentsOfFile: backups + "/" + BackupJob.logName, encoding: .utf8)
        #expect(log.components(separatedBy: ": 2 molts, ").count == 3, "one summary per run: \(log)")
        #expect(log.contains("removed old backup"), "\(log)")
        #expect(log.contains("clmnt: warning:"), "warnings are logged too")
        // Every line of the log starts with an ISO-8601 timestamp (--timestamps in the job line).
        for line in log.split(separator: "\n") {
            #expect(Timestamp.parse(String(line.prefix(20))) != nil && line.dropFirst(20).first == " ", "\(line)")
        }
        var info = stat()
        #expect(stat(backups + "/" + BackupJob.logName, &info) == 0 && info.st_mode & 0o777 == 0o600)
        let report = try ArchiveVerifier.verify(path: backups + "/" + archives[0])
        #expect(report.isIntact, "\(report.problems)")
        let listed = try runCapturing(clmnt, ["fleet", "list-backups", "--backup-dir", backups])
        #expect(listed.stdout.contains("alpha") || listed.stdout.split(separator: "\n").count == 2, "\(listed.stdout)")
    }
}
