import ClmntTestSupport
@testable import ClmntCore
import Foundation
import Testing

/// `fleet backup --keep N` and `--verify`, with real archives of real fixture fleets.
@Suite("fleet backup --keep and --verify")
struct BackupRetentionTests {
    let clmnt = clmntExecutable()

    private func files(in directory: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: directory))?.sorted() ?? []
    }

    /// One archive of `fixture` named `name` in `directory`, dated `day` days after a fixed date.
    @discardableResult
    private func backup(_ fixture: FleetFixture, into directory: String, name: String, day: Int,
                        keep: Int? = nil) throws -> BackupSummary {
        var options = BackupOptions(baseDir: fixture.baseDir)
        options.output = directory + "/" + name
        options.compression = name.hasSuffix(".zst") ? .zstd : .gzip
        options.keep = keep
        let seconds = 1_790_000_000 + day * 86_400
        let summary = try FleetBackup(options: options).run(now: Date(timeIntervalSince1970: Double(seconds)))
        // Written at that time, as far as the file says: a date far from the mtime is not trusted.
        RestoreFixture.setTime(summary.output, seconds: seconds)
        return summary
    }

    @Test("keep N removes only the oldest archives of this base dir; foreign, corrupt, other fleets' files and symlinks stay")
    func keepRemovesOnlyOwnOldest() throws {
        let fleet = try FleetFixture(molts: ["alpha"])
        let other = try FleetFixture(molts: ["zulu"])
        let scratch = try TemporaryDirectory(prefix: "clmnt-keep")
        defer { fleet.remove(); other.remove(); scratch.remove() }
        let dir = scratch.path + "/backups"
        let elsewhere = scratch.path + "/elsewhere"
        for path in [dir, elsewhere] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }

        // Names do not sort like dates: order must come from the manifests.
        try backup(fleet, into: dir, name: "fleet-c.tar.gz", day: 1)
        try backup(fleet, into: dir, name: "fleet-a.tar.zst", day: 2)
        try backup(fleet, into: dir, name: "fleet-b.tar.gz", day: 3)
        try backup(fleet, into: dir, name: "fleet-d.tar.gz", day: 4)
        try backup(other, into: dir, name: "fleet-other.tar.gz", day: 0)        // another base dir, oldest of all
        try backup(fleet, into: dir, name: "mine-but-renamed.tar.gz", day: 0)    // not fleet-*.tar*
        try backup(fleet, into: elsewhere, name: "fleet-outside.tar.gz", day: -1) // reached only through a symlink
        symlink(elsewhere + "/fleet-outside.tar.gz", dir + "/fleet-link.tar.gz")
        try Data("not an archive".utf8).write(to: URL(fileURLWithPath: dir + "/fleet-x.tar.gz"))
        try Data("notes".utf8).write(to: URL(fileURLWithPath: dir + "/notes.txt"))
        try FileManager.default.createDirectory(atPath: dir + "/fleet-dir.tar", withIntermediateDirectories: true)

        let summary = try backup(fleet, into: dir, name: "fleet-e.tar.gz", day: 5, keep: 3)
        #expect(summary.pruned == [dir + "/fleet-c.tar.gz", dir + "/fleet-a.tar.zst"])
        #expect(summary.pruneFailed.isEmpty)
        #expect(files(in: dir) == ["fleet-b.tar.gz", "fleet-d.tar.gz", "fleet-dir.tar", "fleet-e.tar.gz", "fleet-link.tar.gz",
                                   "fleet-other.tar.gz", "fleet-x.tar.gz", "mine-but-renamed.tar.gz", "notes.txt"])
        #expect(FileManager.default.fileExists(atPath: elsewhere + "/fleet-outside.tar.gz"), "a symlink's target is never touched")
        let skipped = Dictionary(uniqueKeysWithValues: summary.pruneSkipped.map { (($0.file as NSString).lastPathComponent, $0.reason) })
        #expect(skipped["fleet-link.tar.gz"]?.contains("symlink") == true)
        #expect(skipped["fleet-x.tar.gz"]?.hasPrefix("unreadable") == true)
        #expect(skipped["fleet-x.tar.gz"]?.contains("/proc/") == false, "reasons name the file, not the descriptor")
        #expect(skipped["fleet-other.tar.gz"]?.contains("another base dir") == true)
        #expect(skipped["fleet-dir.tar"]?.contains("not a regular file") == true)
        #expect(skipped["notes.txt"] == nil && skipped["mine-but-renamed.tar.gz"] == nil)

        // keep 1: only the new one of this fleet remains; the other fleet's archive still stays.
        let last = try backup(fleet, into: dir, name: "fleet-f.tar.gz", day: 6, keep: 1)
        #expect(last.pruned.map { ($0 as NSString).lastPathComponent } == ["fleet-b.tar.gz", "fleet-d.tar.gz", "fleet-e.tar.gz"])
        #expect(FileManager.default.fileExists(atPath: dir + "/fleet-other.tar.gz"))
    }

    @Test("selection: the new archive always counts and stays; ties fall to mtime, then name")
    func selection() {
        let candidates = [
            RetentionCandidate(name: "fleet-1.tar.gz", timestamp: "2026-11-01T03:15:00Z", modified: 10),
            RetentionCandidate(name: "fleet-3.tar.gz", timestamp: "2026-11-03T03:15:00Z", modified: 30),
            RetentionCandidate(name: "fleet-2.tar.gz", timestamp: "2026-11-02T03:15:00Z", modified: 20),
            RetentionCandidate(name: "fleet-2b.tar.gz", timestamp: "2026-11-02T03:15:00Z", modified: 5),
            // The new archive, older by its clock than the others: it stays anyway.
            RetentionCandidate(name: "fleet-new.tar.gz", timestamp: "2026-10-01T00:00:00Z", modified: 40),
        ]
        let removed = { (candidates: [RetentionCandidate], newArchive: String, keep: Int) in
            RetentionPolicy(last: keep).decide(candidates, newArchive: newArchive).reversed().filter { !$0.keep }.map(\.candidate.name)
        }
        let names = { (keep: Int) in removed(candidates, "fleet-new.tar.gz", keep) }
        #expect(names(1) == ["fleet-1.tar.gz", "fleet-2b.tar.gz", "fleet-2.tar.gz", "fleet-3.tar.gz"])
        #expect(names(2) == ["fleet-1.tar.gz", "fleet-2b.tar.gz", "fleet-2.tar.gz"])
        #expect(names(3) == ["fleet-1.tar.gz", "fleet-2b.tar.gz"])
        #expect(names(5).isEmpty)
        #expect(names(50).isEmpty)
        // A new archive named otherwise (-o custom.tar.gz) is a candidate like the others and counts as one.
        let older = candidates.filter { $0.name != "fleet-new.tar.gz" }
        let custom = older + [RetentionCandidate(name: "custom.tar.gz", timestamp: "2026-10-01T00:00:00Z")]
        #expect(removed(custom, "custom.tar.gz", 5).isEmpty)
        #expect(removed(custom, "custom.tar.gz", 4) == ["fleet-1.tar.gz"])
        #expect(BackupRetention.matchesName("fleet-2026-11-29-031500.tar.zst"))
        #expect(BackupRetention.matchesName("fleet-x.tar"))
        #expect(!BackupRetention.matchesName("fleet.tar.gz"))
        #expect(!BackupRetention.matchesName(".fleet-2026-11-29.tar.gz.tmp"))
        #expect(!BackupRetention.matchesName("old-fleet-1.tar.gz"))
    }

    @Test("--keep 0 and --keep with --output and --backup-dir: one line, exit 64, nothing written")
    func badKeep() throws {
        let fixture = try FleetFixture(molts: ["alpha"])
        defer { fixture.remove() }
        let dir = fixture.root.path + "/bk"
        for arguments in [["--keep", "0"], ["--keep=-2"], ["--backup-dir", dir, "-o", dir + "/a.tar.gz"]] {
            let result = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "--backup-dir", dir] + arguments,
                                          currentDirectory: fixture.root.path)
            #expect(result.status == 64, "\(arguments): \(result.stderr)")
            #expect(result.stderr.hasPrefix("clmnt: "), "\(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "one line: \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir))
        #expect(!FileManager.default.fileExists(atPath: fixture.root.path + "/backups"))
    }

    @Test("--backup-dir, --verify and --keep through the binary: summary lines and JSON")
    func commandLine() throws {
        let fixture = try FleetFixture(molts: ["alpha"])
        defer { fixture.remove() }
        let dir = fixture.root.path + "/bk"
        let first = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "--backup-dir", dir, "--verify",
                                             "--compress", "zstd"], currentDirectory: "/")
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains(", verified"), "\(first.stdout)")
        var info = stat()
        #expect(stat(dir, &info) == 0 && info.st_mode & 0o777 == 0o700, "created 0700")
        let firstName = files(in: dir)
        #expect(firstName.count == 1 && firstName[0].hasPrefix("fleet-") && firstName[0].hasSuffix(".tar.zst"), "\(firstName)")

        // A new name without a pause: this one is .tar.gz, the first .tar.zst (and a name already taken
        // would gain the time of day, then `-2`, `-3`...).
        let second = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "--backup-dir", dir, "--verify",
                                              "--keep", "1", "--json"], currentDirectory: "/")
        #expect(second.status == 0, "\(second.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(second.stdout.utf8)) as? [String: Any]
        #expect(json?["verified"] as? Bool == true)
        #expect(json?["pruned"] as? [String] == [dir + "/" + firstName[0]])
        #expect(files(in: dir).count == 1 && files(in: dir) != firstName)

        // Today's plain .tar.gz is the second archive's: this one gains the time of day (or `-2`...),
        // a new name again without a pause.
        let verbose = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "--backup-dir", dir, "--keep", "1", "-v"],
                                       currentDirectory: "/")
        #expect(verbose.status == 0, "\(verbose.stderr)")
        #expect(verbose.stdout.contains("removed old backup \(dir)/fleet-"), "\(verbose.stdout)")
        let quiet = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "-o", dir + "/fleet-q.tar.gz",
                                             "--keep", "1", "-q"])
        // -q: nothing on stdout; the fixture's warnings (a fake database, outside links) still on stderr.
        #expect(quiet.status == 0 && quiet.stdout.isEmpty, "\(quiet.stdout)\(quiet.stderr)")
        #expect(quiet.stderr.split(separator: "\n").allSatisfy { $0.hasPrefix("clmnt: warning: ") }, "\(quiet.stderr)")
        #expect(files(in: dir) == ["fleet-q.tar.gz"])
    }

    @Test("a damaged archive fails --verify as one line")
    func damagedMessage() {
        let error = BackupError.damaged(path: "/b/fleet.tar.gz", problems: ["SHA256SUMS is missing: the archive is truncated", "x"])
        #expect(error.description == "/b/fleet.tar.gz failed verification: SHA256SUMS is missing: the archive is truncated (and 1 more problems); no old backup was removed")
    }
}
