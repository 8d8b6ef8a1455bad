import ClmntTestSupport
@testable import ClmntCore
import Foundation
import Testing

/// `fleet prune` through the real binary, over real archives of many dates (made by real
/// backups with their clock set, since an archive's time is its manifest's).
@Suite("clmnt fleet prune")
struct PruneCommandTests {
    let clmnt = clmntExecutable()

    private func files(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    private func name(_ date: Date) -> String {
        let stamp = Timestamp.format(date)  // 2026-11-08T12:00:00Z
        let digits = stamp.replacingOccurrences(of: "T", with: "-").replacingOccurrences(of: ":", with: "").dropLast()
        return "fleet-\(digits).tar.gz"
    }

    @discardableResult
    private func backup(_ fixture: FleetFixture, into directory: String, at timestamp: String) throws -> BackupSummary {
        let date = try #require(Timestamp.parse(timestamp))
        var options = BackupOptions(baseDir: fixture.baseDir)
        options.output = directory + "/" + name(date)
        options.threads = 1
        let summary = try FleetBackup(options: options).run(now: date)
        // Written at that time, as far as the file says: a date far from the mtime is not trusted.
        RestoreFixture.setTime(summary.output, seconds: Int(date.timeIntervalSince1970))
        return summary
    }

    /// A one-molt fleet with archives of 2026-11-01 and 2026-11-02 in its `bk/`.
    private func fleetWithTwoArchives() throws -> (FleetFixture, String) {
        let fleet = try FleetFixture(molts: ["alpha"])
        let dir = fleet.root.path + "/bk"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try backup(fleet, into: dir, at: "2026-11-01T03:15:00Z")
        try backup(fleet, into: dir, at: "2026-11-02T03:15:00Z")
        return (fleet, dir)
    }

    /// The environment of the binary, in a time zone whose days differ from UTC's.
    private var berlin: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["TZ"] = "Europe/Berlin"
        return environment
    }

    @Test("prune --dry-run removes nothing; prune removes exactly what it listed, and only this fleet's clmnt archives")
    func dryRunThenPrune() throws {
        let fleet = try FleetFixture(molts: ["alpha"])
        let other = try FleetFixture(molts: ["zulu"])
        let scratch = try TemporaryDirectory(prefix: "clmnt-prune")
        defer { fleet.remove(); other.remove(); scratch.remove() }
        let dir = scratch.path + "/backups"
        let outside = scratch.path + "/outside"
        for path in [dir, outside] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }

        // 20 nightly archives, a second one on the last day, and an incomplete one in between.
        var day = try #require(Timestamp.parse("2026-10-20T03:15:00Z"))
        for _ in 0..<20 {
            try backup(fleet, into: dir, at: Timestamp.format(day))
            day += 86_400
        }
        try backup(fleet, into: dir, at: "2026-11-08T12:00:00Z")
        // A file another process holds a write lease on cannot be read: that backup is incomplete.
        let leased = fleet.baseDir + "/alpha/leased.txt"
        try Data("held".utf8).write(to: URL(fileURLWithPath: leased))
        let holder = try LeaseHolder(path: leased)
        let incomplete = try backup(fleet, into: dir, at: "2026-11-07T20:00:00Z")
        holder.stop()
        #expect(!incomplete.complete)
        unlink(leased)
        // What is never removed: another fleet's old archive, a file that is no archive, an archive
        // renamed out of the naming, a symlink to an old archive, other files.
        try backup(other, into: dir, at: "2026-01-01T03:15:00Z")
        try Data("junk".utf8).write(to: URL(fileURLWithPath: dir + "/fleet-junk.tar.gz"))
        try backup(fleet, into: dir, at: "2026-01-02T03:15:00Z")
        try FileManager.default.moveItem(atPath: dir + "/fleet-2026-01-02-031500.tar.gz", toPath: dir + "/kept-by-hand.tar.gz")
        try backup(fleet, into: outside, at: "2026-01-03T03:15:00Z")
        symlink(outside + "/fleet-2026-01-03-031500.tar.gz", dir + "/fleet-link.tar.gz")
        try Data("notes".utf8).write(to: URL(fileURLWithPath: dir + "/notes.txt"))

        let policy = ["--keep", "1", "--keep-daily", "3", "--keep-weekly", "2", "--keep-monthly", "2"]
        let before = BackupDryRunTests.snapshot(dir)
        let dry = try runCapturing(clmnt, ["fleet", "prune", "-d", fleet.baseDir, "--backup-dir", dir, "--dry-run", "--json"] + policy,
                                   environment: berlin)
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(BackupDryRunTests.snapshot(dir) == before, "a dry run removes nothing")
        let plan = try BackupDryRunTests.json(dry.stdout)
        #expect(plan["dry_run"] as? Bool == true)
        #expect(plan["removed"] as? [String] == [])
        let archives = try #require(plan["archives"] as? [[String: Any]])
        #expect(archives.count == 22, "this fleet's 22 clmnt archives, nothing else")
        let kept = archives.filter { $0["action"] as? String == "keep" }.compactMap { $0["file"] as? String }
        let going = archives.filter { $0["action"] as? String == "remove" }.compactMap { $0["file"] as? String }
        let expectedKept = ["2026-11-08-120000", "2026-11-07-200000", "2026-11-07-031500", "2026-11-06-031500",
                            "2026-11-01-031500", "2026-10-31-031500"].map { dir + "/fleet-\($0).tar.gz" }
        #expect(kept == expectedKept)
        #expect(going.count == 16)
        let reasons = Dictionary(uniqueKeysWithValues: archives.map { ($0["file"] as? String ?? "", $0["reasons"] as? [String] ?? []) })
        #expect(reasons[dir + "/fleet-2026-11-08-120000.tar.gz"] == ["newest 1", "daily 2026-11-08", "weekly 2026-W45", "monthly 2026-11"])
        #expect(reasons[dir + "/fleet-2026-11-07-200000.tar.gz"]?.allSatisfy { $0.hasPrefix("incomplete, ") } == true)
        #expect(reasons[dir + "/fleet-2026-11-01-031500.tar.gz"] == ["weekly 2026-W44"])
        #expect(reasons[dir + "/fleet-2026-10-31-031500.tar.gz"] == ["monthly 2026-10"])
        let statuses = Dictionary(uniqueKeysWithValues: archives.map { ($0["file"] as? String ?? "", $0["complete"] as? Bool) })
        #expect(statuses[dir + "/fleet-2026-11-07-200000.tar.gz"] == false)
        #expect(statuses[dir + "/fleet-2026-11-06-031500.tar.gz"] == true)

        let table = try runCapturing(clmnt, ["fleet", "prune", "-d", fleet.baseDir, "--backup-dir", dir, "--dry-run", "-v"] + policy,
                                     environment: berlin)
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.contains("policy: keep 1 newest, 3 daily, 2 weekly, 2 monthly"), "\(table.stdout)")
        #expect(table.stdout.contains("dry run: 16 archives") && table.stdout.contains("would be removed, 6 kept"), "\(table.stdout)")
        #expect(table.stdout.contains("INCOMPLETE"), "\(table.stdout)")
        #expect(table.stdout.contains("left alone: \(dir)/fleet-link.tar.gz: a symlink"), "\(table.stdout)")
        #expect(BackupDryRunTests.snapshot(dir) == before)

        let real = try runCapturing(clmnt, ["fleet", "prune", "-d", fleet.baseDir, "--backup-dir", dir, "--json"] + policy,
                                    environment: berlin)
        #expect(real.status == 0, "\(real.stderr)")
        let result = try BackupDryRunTests.json(real.stdout)
        #expect(Set(result["removed"] as? [String] ?? []) == Set(going), "removes exactly what the dry run listed")
        let remaining = files(in: dir)
        let expectedRemaining = (expectedKept.map { ($0 as NSString).lastPathComponent }
            + ["fleet-2026-01-01-031500.tar.gz", "fleet-junk.tar.gz", "fleet-link.tar.gz", "kept-by-hand.tar.gz", "notes.txt"]).sorted()
        #expect(remaining == expectedRemaining)
        #expect(FileManager.default.fileExists(atPath: outside + "/fleet-2026-01-03-031500.tar.gz"), "a symlink's target stays")

        // Again: nothing more goes.
        let again = try runCapturing(clmnt, ["fleet", "prune", "-d", fleet.baseDir, "--backup-dir", dir] + policy, environment: berlin)
        #expect(again.status == 0 && again.stdout.contains("removed 0 archives"), "\(again.stdout)\(again.stderr)")
        #expect(files(in: dir) == expectedRemaining)
    }

    @Test("no policy, a count below 1, or a bad --wait: one line, exit 64, nothing removed; no backup dir: nothing to do")
    func refusals() throws {
        let (fleet, dir) = try fleetWithTwoArchives()
        defer { fleet.remove() }
        let before = files(in: dir)
        for arguments in [[], ["--keep", "0"], ["--keep-daily", "0"], ["--keep-weekly=-2"], ["--keep-monthly=-1"],
                          ["--keep-daily", "99999999"], ["--keep", "1", "--wait=-1"], ["--dry-run"]] {
            let result = try runCapturing(clmnt, ["fleet", "prune", "-d", fleet.baseDir, "--backup-dir", dir] + arguments)
            #expect(result.status == 64, "\(arguments): \(result.stderr)")
            #expect(result.stderr.hasPrefix("clmnt: ") && result.stderr.split(separator: "\n").count == 1, "\(arguments): \(result.stderr)")
        }
        #expect(files(in: dir) == before)
        let none = try runCapturing(clmnt, ["fleet", "prune", "-d", fleet.baseDir, "--backup-dir", dir + "/missing", "--keep", "1"])
        #expect(none.status == 0 && none.stdout.contains("no archives of"), "\(none.stdout)\(none.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/missing"))
    }

    @Test("a prune waits for nobody: a running backup of the base dir makes it exit 75; --dry-run runs beside it")
    func lockedByBackup() throws {
        let (fleet, dir) = try fleetWithTwoArchives()
        defer { fleet.remove() }
        let running = try StoppedRun(clmnt, ["fleet", "backup", "-d", fleet.baseDir, "-o", fleet.root.path + "/slow.tar.gz"],
                                     at: "after-scan")
        defer { running.kill() }
        let busy = try runCapturing(clmnt, ["fleet", "prune", "-d", fleet.baseDir, "--backup-dir", dir, "--keep", "1"])
        #expect(busy.status == 75, "\(busy.stderr)")
        #expect(files(in: dir).count == 2)
        let dry = try runCapturing(clmnt, ["fleet", "prune", "-d", fleet.baseDir, "--backup-dir", dir, "--keep", "1", "--dry-run"])
        #expect(dry.status == 0, "\(dry.stderr)")
        running.resume()
        #expect(running.wait() == 0, "\(running.stderr)")
        let done = try runCapturing(clmnt, ["fleet", "prune", "-d", fleet.baseDir, "--backup-dir", dir, "--keep", "1", "-q"])
        #expect(done.status == 0 && done.stdout.isEmpty && done.stderr.isEmpty, "-q: silent when all is well: \(done.stdout)\(done.stderr)")
        #expect(files(in: dir) == ["fleet-2026-11-02-031500.tar.gz"])
    }

    @Test("--keep-daily and friends on fleet backup: applied after a good backup, the new archive staying")
    func backupFlags() throws {
        let fleet = try FleetFixture(molts: ["alpha"])
        defer { fleet.remove() }
        let dir = fleet.root.path + "/bk"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for stamp in ["2026-11-01T03:15:00Z", "2026-11-01T15:00:00Z", "2026-11-02T03:15:00Z", "2026-11-02T15:00:00Z"] {
            try backup(fleet, into: dir, at: stamp)
        }
        let result = try runCapturing(clmnt, ["fleet", "backup", "-d", fleet.baseDir, "-o", dir + "/fleet-new.tar.gz",
                                              "--keep-daily", "2", "--json"], environment: berlin)
        #expect(result.status == 0, "\(result.stderr)")
        // The new archive (today) takes one day; 2026-11-02's newest the other.
        #expect(files(in: dir) == ["fleet-2026-11-02-150000.tar.gz", "fleet-new.tar.gz"])
        let summary = try BackupDryRunTests.json(result.stdout)
        #expect((summary["pruned"] as? [String])?.count == 3)
    }
}
