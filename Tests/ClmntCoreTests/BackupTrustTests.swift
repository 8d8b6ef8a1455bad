import ClmntTestSupport
@testable import ClmntCore
import Foundation
import Testing

/// Root trusts only archives root wrote (issue 16 §2): planted archives, a shared backup
/// dir, links, FIFOs, names that are not UTF-8 and dates from the future, against the real binary.
@Suite("backup dir trust")
struct BackupTrustTests {
    let clmnt = clmntExecutable()
    /// `nobody`: the unprivileged user who plants files.
    let nobody: uid_t = 65534

    private func files(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    /// A real archive of `fleet` written at `timestamp` (its mtime too, as if the clock said so).
    @discardableResult
    private func backup(_ fleet: FleetFixture, into directory: String, at timestamp: String, name: String? = nil) throws -> String {
        let date = try #require(Timestamp.parse(timestamp))
        var options = BackupOptions(baseDir: fleet.baseDir)
        options.output = directory + "/" + (name ?? "fleet-\(timestamp.prefix(10)).tar.gz")
        options.compression = .gzip
        options.threads = 1
        let output = try FleetBackup(options: options).run(now: date).output
        RestoreFixture.setTime(output, seconds: Int(date.timeIntervalSince1970))
        return output
    }

    /// A fleet with three real archives (2026-11-01 … 03) in `<root>/bk`, a 0700 dir of root's.
    private func fleetWithArchives() throws -> (FleetFixture, String, [String]) {
        let fleet = try FleetFixture(molts: ["alpha"])
        let dir = fleet.root.path + "/bk"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        let real = try ["2026-11-01", "2026-11-02", "2026-11-03"].map { try backup(fleet, into: dir, at: $0 + "T03:15:00Z") }
        return (fleet, dir, real.map { ($0 as NSString).lastPathComponent })
    }

    /// JSON rows by the last component of their `file`.
    static func byName(_ rows: [[String: Any]]) -> [String: [String: Any]] {
        var result: [String: [String: Any]] = [:]
        for row in rows { result[((row["file"] as? String ?? "") as NSString).lastPathComponent] = row }
        return result
    }

    private func oneLine(_ text: String) -> Bool { text.hasPrefix("clmnt: ") && text.split(separator: "\n").count == 1 }

    @Test("a shared (1777) backup dir where nobody planted three archives dated 2099: prune, backup --keep and schedule refuse it, nothing is deleted, doctor FAILs it")
    func sharedDirectoryIsRefused() throws {
        let (fleet, dir, real) = try fleetWithArchives()
        defer { fleet.remove() }
        // nobody may reach the dir (not list the fleet's root) and write into it, as in /tmp.
        chmod(fleet.root.path, 0o711)
        chmod(dir, 0o1777)
        let source = fleet.root.path + "/forged"
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
        for day in 1...3 {
            let forged = source + "/\(day).tar.gz"
            try writeForgedArchive(to: forged, baseDir: fleet.baseDir, timestamp: "2099-01-0\(day)T00:00:00Z")
            chmod(forged, 0o644)
            let planted = try runCapturing("/usr/bin/setpriv", ["--reuid=\(nobody)", "--regid=65534", "--clear-groups",
                                                                "/bin/cp", forged, dir + "/fleet-2099-01-0\(day).tar.gz"])
            #expect(planted.status == 0, "\(planted.stderr)")
        }
        var info = stat()
        #expect(stat(dir + "/fleet-2099-01-01.tar.gz", &info) == 0 && info.st_uid == nobody && info.st_size < 1000)
        let before = files(in: dir)
        #expect(before.count == 6)

        for arguments in [["fleet", "prune", "--keep", "3"], ["fleet", "prune", "--keep", "3", "--dry-run"],
                          ["fleet", "backup", "--keep", "3"], ["fleet", "backup"]] {
            let result = try runCapturing(clmnt, arguments + ["-d", fleet.baseDir, "--backup-dir", dir])
            #expect(result.status == 1, "\(arguments): \(result.stdout)\(result.stderr)")
            #expect(oneLine(result.stderr), "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains("refusing backup dir \(dir): it is writable by others (mode 1777)"), "\(arguments): \(result.stderr)")
            #expect(files(in: dir) == before, "\(arguments): nothing written, nothing removed")
        }
        for name in real { #expect(FileManager.default.fileExists(atPath: dir + "/" + name)) }

        let doctor = try runCapturing(clmnt, ["fleet", "doctor", "-d", fleet.baseDir, "--backup-dir", dir])
        #expect(doctor.status == 1)
        let line = doctor.stdout.split(separator: "\n").first { $0.split(separator: " ").dropFirst().first == "backup-dir" }
        #expect(line?.hasPrefix("FAIL") == true && line?.contains("writable by others") == true, "\(doctor.stdout)")
        // The planted files are not read: the newest backup is still the real one of 2026-11-03.
        #expect(doctor.stdout.contains("newest backup \(real[2])"), "\(doctor.stdout)")

        // A group-writable one, and one that belongs to nobody, are refused too; `schedule` changes no crontab.
        chmod(dir, 0o770)
        let group = try runCapturing(clmnt, ["fleet", "prune", "--keep", "3", "-d", fleet.baseDir, "--backup-dir", dir])
        #expect(group.status == 1 && group.stderr.contains("writable by its group (mode 0770)"), "\(group.stderr)")
        chmod(dir, 0o700)
        chown(dir, nobody, 65534)
        let owned = try runCapturing(clmnt, ["fleet", "prune", "--keep", "3", "-d", fleet.baseDir, "--backup-dir", dir])
        #expect(owned.status == 1 && owned.stderr.contains("belongs to nobody (uid 65534), not to root"), "\(owned.stderr)")
        let user = try BackupScheduleTests.CronUser()
        defer { user.remove() }
        let job = try BackupJob(baseDir: fleet.baseDir, executable: clmnt, backupDir: dir)
        #expect(throws: BackupScheduleError.self) { try BackupSchedule.install(job, crontab: user.crontab) }
        #expect((try? user.crontab.read()) ?? "" == "", "nothing installed")
        #expect(files(in: dir) == before)
    }

    @Test("files root did not write are never candidates: nobody's 2099 archives and a hard link stay unread, the real archives are ranked alone")
    func foreignFilesAreNotCandidates() throws {
        let (fleet, dir, real) = try fleetWithArchives()
        defer { fleet.remove() }
        // Planted while the dir was open to others (then closed): nobody's files, and a hard link to a root-only file.
        for day in 1...3 {
            let planted = dir + "/fleet-2099-01-0\(day).tar.gz"
            try writeForgedArchive(to: planted, baseDir: fleet.baseDir, timestamp: "2099-01-0\(day)T00:00:00Z")
            chown(planted, nobody, 65534)
        }
        let secret = fleet.root.path + "/secret"
        try Data(repeating: 0x41, count: 4321).write(to: URL(fileURLWithPath: secret))
        chmod(secret, 0o600)
        link(secret, dir + "/fleet-link.tar.gz")

        let dry = try runCapturing(clmnt, ["fleet", "prune", "-d", fleet.baseDir, "--backup-dir", dir, "--keep", "3", "--dry-run", "--json"])
        #expect(dry.status == 0, "\(dry.stderr)")
        let plan = try BackupDryRunTests.json(dry.stdout)
        let archives = try #require(plan["archives"] as? [[String: Any]])
        #expect(archives.compactMap { $0["file"] as? String } == real.reversed().map { dir + "/" + $0 })
        #expect(archives.allSatisfy { $0["action"] as? String == "keep" })
        let skipped = try #require(plan["skipped"] as? [[String: Any]])
        let reasons = Dictionary(skipped.map { ((($0["file"] as? String) ?? "") as NSString).lastPathComponent }
            .enumerated().map { ($1, skipped[$0]["reason"] as? String ?? "") }, uniquingKeysWith: { first, _ in first })
        #expect(reasons["fleet-2099-01-01.tar.gz"]?.contains("belongs to nobody (uid 65534), not to root") == true, "\(reasons)")
        #expect(reasons["fleet-link.tar.gz"]?.contains("has 2 links") == true, "\(reasons)")

        let prune = try runCapturing(clmnt, ["fleet", "prune", "-d", fleet.baseDir, "--backup-dir", dir, "--keep", "3"])
        #expect(prune.status == 0 && prune.stdout.contains("removed 0 archives"), "\(prune.stdout)\(prune.stderr)")
        // The nightly job: the new archive and the two newest real ones stay; only the oldest real one goes.
        let nightly = try runCapturing(clmnt, ["fleet", "backup", "-d", fleet.baseDir, "--backup-dir", dir, "--keep", "3", "--json"])
        #expect(nightly.status == 0, "\(nightly.stderr)")
        let summary = try BackupDryRunTests.json(nightly.stdout)
        #expect(summary["pruned"] as? [String] == [dir + "/" + real[0]])
        for name in real.dropFirst() + ["fleet-2099-01-01.tar.gz", "fleet-2099-01-02.tar.gz", "fleet-2099-01-03.tar.gz", "fleet-link.tar.gz"] {
            #expect(FileManager.default.fileExists(atPath: dir + "/" + name), "\(name)")
        }

        // list-backups shows them as not read: no date, no manifest, no size.
        let list = try runCapturing(clmnt, ["fleet", "list-backups", "--backup-dir", dir, "--json"])
        #expect(list.status == 0, "\(list.stderr)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        let byName = Self.byName(rows)
        let planted = try #require(byName["fleet-2099-01-03.tar.gz"])
        #expect(planted["date"] == nil && planted["hostname"] == nil && (planted["size_bytes"] as? Int) == 0, "\(planted)")
        #expect((planted["unreadable"] as? String)?.contains("belongs to nobody") == true)
        let linked = try #require(byName["fleet-link.tar.gz"])
        #expect((linked["size_bytes"] as? Int) == 0 && (linked["unreadable"] as? String)?.contains("links") == true, "\(linked)")
        #expect(!list.stdout.contains("forged"), "\(list.stdout)")
    }

    @Test("list-backups through descriptors: links to a root-only archive and to /etc/shadow show nothing, a FIFO does not block, a name that is not UTF-8 is listed (and pruned)")
    func listingThroughDescriptors() throws {
        let (fleet, dir, real) = try fleetWithArchives()
        defer { fleet.remove() }
        let hidden = fleet.root.path + "/root-only"
        try FileManager.default.createDirectory(atPath: hidden, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        let secretArchive = try backup(fleet, into: hidden, at: "2026-11-04T03:15:00Z", name: "fleet-secret.tar.gz")
        symlink(secretArchive, dir + "/fleet-link.tar.gz")
        symlink("/etc/shadow", dir + "/fleet-shadow.tar.gz")
        #expect(mkfifo(dir + "/fleet-fifo.tar.gz", 0o600) == 0)
        // The oldest real archive under a name of bytes: not UTF-8, with an escape character.
        let odd = PathBytes(Array("fleet-".utf8) + [0xFF, 0x1B] + Array(".tar.gz".utf8))
        let target = PathBytes(dir).appending(odd)
        #expect(PathBytes(dir + "/" + real[0]).withCString { from in target.withCString { rename(from, $0) } } == 0)
        let escaped = dir + "/fleet-\\xFF\\x1B.tar.gz"

        // Bounded: a listing that opened the FIFO would block until `timeout` kills it (124).
        let list = try runCapturing("/usr/bin/timeout", ["60", clmnt, "fleet", "list-backups", "--backup-dir", dir, "--json"])
        #expect(list.status == 0, "\(list.status): \(list.stderr)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        let listed = rows.compactMap { $0["file"] as? String }
        #expect(listed == [escaped, dir + "/" + real[1], dir + "/" + real[2]], "\(listed)")
        #expect(!list.stdout.contains("fleet-secret") && !list.stdout.contains("shadow") && !list.stdout.contains("fifo"))
        let table = try runCapturing("/usr/bin/timeout", ["60", clmnt, "fleet", "list-backups", "--backup-dir", dir])
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.contains("fleet-\\xFF\\x1B.tar.gz") && !table.stdout.contains("\u{1B}"), "\(table.stdout)")

        let dry = try runCapturing("/usr/bin/timeout", ["60", clmnt, "fleet", "prune", "-d", fleet.baseDir, "--backup-dir", dir,
                                                        "--keep", "2", "--dry-run", "--json"])
        #expect(dry.status == 0, "\(dry.stderr)")
        let plan = try BackupDryRunTests.json(dry.stdout)
        let archives = try #require(plan["archives"] as? [[String: Any]])
        #expect(archives.last?["file"] as? String == escaped && archives.last?["action"] as? String == "remove", "\(archives)")
        let prune = try runCapturing("/usr/bin/timeout", ["60", clmnt, "fleet", "prune", "-d", fleet.baseDir, "--backup-dir", dir, "--keep", "2"])
        #expect(prune.status == 0 && prune.stdout.contains("removed old backup \(escaped)"), "\(prune.stdout)\(prune.stderr)")
        #expect(target.withCString { access($0, F_OK) } != 0, "the archive named in bytes is gone")
        #expect(FileManager.default.fileExists(atPath: secretArchive), "a link's target is never touched")
    }

    @Test("an archive dated in the future (a clock that was ahead) fills no slot and never holds newest; the plan says why")
    func futureDateIsNotTrusted() throws {
        let (fleet, dir, real) = try fleetWithArchives()
        defer { fleet.remove() }
        let ahead = Timestamp.format(Date().addingTimeInterval(30 * 86_400))
        let future = try backup(fleet, into: dir, at: ahead, name: "fleet-ahead.tar.gz")
        // An archive whose mtime is a week from its timestamp (copied without -p): not ranked either.
        let copied = try backup(fleet, into: dir, at: "2026-11-05T03:15:00Z", name: "fleet-copied.tar.gz")
        RestoreFixture.setTime(copied, seconds: Int(Timestamp.parse("2026-11-12T03:15:00Z")!.timeIntervalSince1970))

        let dry = try runCapturing(clmnt, ["fleet", "prune", "-d", fleet.baseDir, "--backup-dir", dir, "--keep", "2", "--dry-run", "--json"])
        #expect(dry.status == 0, "\(dry.stderr)")
        let plan = try BackupDryRunTests.json(dry.stdout)
        let archives = try #require(plan["archives"] as? [[String: Any]])
        let byName = Self.byName(archives)
        #expect(byName[real[2]]?["reasons"] as? [String] == ["newest 1"])
        #expect(byName[real[1]]?["reasons"] as? [String] == ["newest 2"])
        #expect(byName[real[0]]?["action"] as? String == "remove")
        for name in ["fleet-ahead.tar.gz", "fleet-copied.tar.gz"] {
            #expect(byName[name]?["action"] as? String == "keep", "\(name)")
            #expect(byName[name]?["reasons"] as? [String] == ["date not trusted"], "\(name)")
        }
        #expect((byName["fleet-ahead.tar.gz"]?["untrusted_date"] as? String)?.contains("after this host's clock") == true)
        #expect((byName["fleet-copied.tar.gz"]?["untrusted_date"] as? String)?.contains("more than a day apart") == true)
        #expect(byName[real[2]]?["untrusted_date"] is NSNull)
        let text = try runCapturing(clmnt, ["fleet", "prune", "-d", fleet.baseDir, "--backup-dir", dir, "--keep", "2", "--dry-run"])
        #expect(text.stdout.contains("not ranked: fleet-ahead.tar.gz: dated \(ahead)"), "\(text.stdout)")

        // The nightly backup keeps itself and the newest real archive; the future one stays but is not "newest".
        let nightly = try runCapturing(clmnt, ["fleet", "backup", "-d", fleet.baseDir, "--backup-dir", dir, "--keep", "2", "--json"])
        #expect(nightly.status == 0, "\(nightly.stderr)")
        let pruned = try BackupDryRunTests.json(nightly.stdout)["pruned"] as? [String]
        #expect(pruned == [real[0], real[1]].map { dir + "/" + $0 }, "\(nightly.stdout)")
        #expect(FileManager.default.fileExists(atPath: future) && FileManager.default.fileExists(atPath: dir + "/" + real[2]))
        let listings = try BackupCatalog.list(directory: dir)
        #expect(listings.first { $0.file == future }?.untrustedDate != nil)
        #expect(listings.last(where: \.isDated)?.file != future)
    }

    @Test("retention ranks only trusted dates: an untrusted one never takes a slot, whatever its date")
    func decideSetsUntrustedAside() {
        let candidates = [
            RetentionCandidate(name: "fleet-1.tar.gz", timestamp: "2026-11-01T03:15:00Z"),
            RetentionCandidate(name: "fleet-2.tar.gz", timestamp: "2026-11-02T03:15:00Z"),
            RetentionCandidate(name: "fleet-2099.tar.gz", timestamp: "2099-01-01T00:00:00Z", untrustedDate: "in the future"),
        ]
        let decisions = RetentionPolicy(last: 1, daily: 1).decide(candidates, timeZone: TimeZone(identifier: "UTC")!)
        #expect(decisions.map(\.candidate.name) == ["fleet-2.tar.gz", "fleet-1.tar.gz", "fleet-2099.tar.gz"])
        #expect(decisions.map(\.reasons) == [["newest 1", "daily 2026-11-02"], [], ["date not trusted"]])
        // The new archive is ranked whatever its date: it is the backup just written.
        let withNew = RetentionPolicy(last: 1).decide(candidates, newArchive: "fleet-2099.tar.gz")
        #expect(withNew.first?.candidate.name == "fleet-2099.tar.gz" && withNew.first?.reasons == ["newest 1"])
    }
}
