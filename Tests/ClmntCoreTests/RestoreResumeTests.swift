import ClmntTestSupport
@testable import ClmntCore
import Foundation
import Testing

/// Issue 9.3: a restore SIGKILLed between two swaps is completed, not left half done.
@Suite("an interrupted restore is completed", .serialized)
struct RestoreResumeTests {
    let clmnt = clmntExecutable()

    private func soul(_ fixture: FleetFixture, _ name: String) -> String {
        (try? String(contentsOfFile: fixture.home(name) + "/.openclaw/workspace/SOUL.md", encoding: .utf8)) ?? "missing"
    }

    private func debris(_ fixture: FleetFixture) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: fixture.baseDir)) ?? [])
            .filter { $0.hasPrefix(FleetRestore.stagingPrefix) || $0.hasPrefix(".molts.json.clmnt-") }
    }

    @Test("SIGKILL between swaps: the dry run tells, --resume (or the next restore) swaps in the rest and writes molts.json")
    func killedBetweenSwaps() throws {
        let names = ["alpha", "bravo-2", "charlie"]
        let fixture = try FleetFixture(molts: names)
        defer { fixture.remove() }
        let archive = fixture.root.path + "/fleet.tar.gz"
        #expect(try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "-o", archive, "-q"]).status == 0)
        func changeLocally() throws {
            for name in names {
                try Data("local change\n".utf8).write(to: URL(fileURLWithPath: fixture.home(name) + "/.openclaw/workspace/SOUL.md"))
            }
        }
        try changeLocally()
        let registry = fixture.baseDir + "/molts.json"
        let registryBefore = try String(contentsOfFile: registry, encoding: .utf8)
        let restore = ["fleet", "restore", "--from", archive, "-d", fixture.baseDir, "--yes", "--skip-users",
                       "--allow-outside-symlinks", "--force"]

        // Killed after alpha was swapped in, before bravo-2.
        let killed = try StoppedRun(clmnt, restore, at: "before-swap-2")
        killed.kill()
        #expect(soul(fixture, "alpha") == "# Soul of alpha\n")
        #expect(soul(fixture, "bravo-2") == "local change\n" && soul(fixture, "charlie") == "local change\n")
        #expect(try String(contentsOfFile: registry, encoding: .utf8) == registryBefore, "molts.json not yet updated")
        #expect(!debris(fixture).isEmpty)
        // A registry write cut short by a kill.
        try Data("{\"version\":".utf8).write(to: URL(fileURLWithPath: fixture.baseDir + "/.molts.json.clmnt-12345"))

        let dry = try runCapturing(clmnt, ["fleet", "restore", "--from", archive, "-d", fixture.baseDir, "--dry-run"])
        #expect(dry.status == 0 && dry.stderr.contains("was interrupted while swapping in alpha, bravo-2, charlie"), "\(dry.stderr)")
        #expect(soul(fixture, "bravo-2") == "local change\n", "the dry run changes nothing")

        let dryResume = try runCapturing(clmnt, ["fleet", "restore", "--resume", "--dry-run", "-d", fixture.baseDir])
        #expect(dryResume.status == 0 && dryResume.stdout.contains("was interrupted while swapping in"), "\(dryResume.stdout)")
        #expect(soul(fixture, "bravo-2") == "local change\n", "--resume --dry-run changes nothing")
        let resumed = try runCapturing(clmnt, ["fleet", "restore", "--resume", "-d", fixture.baseDir])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.contains("alpha had been swapped in, bravo-2, charlie swapped in now; molts.json updated"), "\(resumed.stdout)")
        #expect(resumed.stdout.contains(".molts.json.clmnt-12345"), "\(resumed.stdout)")
        for name in names { #expect(soul(fixture, name) == "# Soul of \(name)\n", "\(name)") }
        #expect(try String(contentsOfFile: registry, encoding: .utf8) != registryBefore)
        #expect(debris(fixture).isEmpty, "\(debris(fixture))")
        let nothing = try runCapturing(clmnt, ["fleet", "restore", "--resume", "-d", fixture.baseDir])
        #expect(nothing.status == 0 && nothing.stdout.contains("nothing to resume"), "\(nothing.stdout)")

        // Killed again, before the last swap: the next ordinary restore completes it first, then runs.
        try changeLocally()
        let again = try StoppedRun(clmnt, restore, at: "before-swap-3")
        again.kill()
        #expect(soul(fixture, "charlie") == "local change\n")
        let next = try runCapturing(clmnt, restore + ["--select", "alpha"])
        #expect(next.status == 0, "\(next.stderr)")
        #expect(next.stderr.contains("alpha, bravo-2 had been swapped in, charlie swapped in now"), "\(next.stderr)")
        for name in names { #expect(soul(fixture, name) == "# Soul of \(name)\n", "\(name)") }
        #expect(debris(fixture).isEmpty, "\(debris(fixture))")

        // --resume with --from is a usage mistake.
        #expect(try runCapturing(clmnt, ["fleet", "restore", "--resume", "--from", archive]).status == 64)
    }
}

@Suite("a registry write failing after the swaps")
struct RestoreRegistryFailureTests {
    let clmnt = clmntExecutable()

    @Test("ENOSPC writing molts.json after the swaps: the error names the molts already restored; --resume writes it later")
    func fullDiskAtTheRegistry() throws {
        let fixture = try FleetFixture(molts: ["alpha", "bravo-2"])
        defer { fixture.remove() }
        let archive = fixture.root.path + "/fleet.tar.gz"
        #expect(try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "-o", archive, "-q"]).status == 0)
        let base = fixture.root.path + "/small"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        let mounted = try runCapturing("/usr/bin/env", ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", base])
        guard mounted.status == 0 else {
            Issue.record("cannot mount a tmpfs to fill up: \(mounted.stderr)")
            return
        }
        defer { _ = try? runCapturing("/usr/bin/env", ["umount", base]) }
        let run = try StoppedRun(clmnt, ["fleet", "restore", "--from", archive, "-d", base, "--yes", "--skip-users",
                                         "--allow-outside-symlinks"], at: "before-registry")
        defer { run.kill() }
        // Fill the file system to the last byte.
        let filler = open(base + "/filler", O_WRONLY | O_CREAT, 0o600)
        let block = [UInt8](repeating: 1, count: 1 << 16)
        while write(filler, block, block.count) > 0 {}
        var byte: UInt8 = 1
        while write(filler, &byte, 1) > 0 {}
        close(filler)
        run.resume()
        #expect(run.wait() == 1)
        #expect(run.stderr.contains("No space left on device") && run.stderr.contains("already restored (swapped in): alpha, bravo-2")
                && run.stderr.contains("--resume"), "\(run.stderr)")
        #expect(run.stderr.split(separator: "\n").count == 1, "\(run.stderr)")
        #expect(!FileManager.default.fileExists(atPath: base + "/molts.json"))

        unlink(base + "/filler")
        let resumed = try runCapturing(clmnt, ["fleet", "restore", "--resume", "-d", base])
        #expect(resumed.status == 0 && resumed.stdout.contains("alpha, bravo-2 had been swapped in; molts.json updated"), "\(resumed.stdout)")
        let registry = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: base + "/molts.json"))) as? [String: Any]
        #expect(((registry?["molts"] as? [String: Any])?.keys.sorted()) == ["alpha", "bravo-2"])
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).filter { $0.hasPrefix(".") }.isEmpty)
    }
}

/// Issue 16 §3 and §5: what a restore killed between two swaps leaves is trusted by no one else.
@Suite("a half-restored fleet", .serialized)
struct HalfRestoredFleetTests {
    let clmnt = clmntExecutable()

    private func archives(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasPrefix("fleet-") }.sorted()
    }

    /// A fleet whose restore from its own backup was SIGKILLed after the first swap; returns the backup dir.
    private func halfRestored(_ fixture: FleetFixture) throws -> String {
        let backups = fixture.root.path + "/backups"
        let first = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "--backup-dir", backups, "-q"])
        #expect(first.status == 0, "\(first.stderr)")
        let archive = backups + "/" + (try #require(archives(backups).first))
        let killed = try StoppedRun(clmnt, ["fleet", "restore", "--from", archive, "-d", fixture.baseDir, "--yes", "--skip-users",
                                            "--allow-outside-symlinks", "--force"], at: "before-swap-2")
        killed.kill()
        #expect(!RestoreRecovery.pendingJournals(baseDir: fixture.baseDir).isEmpty)
        return backups
    }

    @Test("backup, its dry run and its --keep refuse a base dir with a restore journal pending (exit 4), and prune nothing")
    func backupRefusesAHalfRestoredFleet() throws {
        let fixture = try FleetFixture(molts: ["alpha", "bravo-2", "charlie"])
        defer { fixture.remove() }
        let backups = try halfRestored(fixture)
        let good = archives(backups)
        #expect(good.count == 1)
        // A new archive would get a new name at once (today's plain name is taken, so it would gain the
        // time of day, or `-2`...): no pause needed for `archives(backups) == good` to catch one.
        for extra in [["--keep", "1"], ["--dry-run"], ["--dry-run", "--json"], []] {
            let run = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "--backup-dir", backups] + extra)
            #expect(run.status == 4, "\(extra): \(run.status) \(run.stderr)")
            #expect(run.stderr.split(separator: "\n").count == 1, "\(run.stderr)")
            #expect(run.stderr.contains("is half restored") && run.stderr.contains("clmnt fleet restore --resume -d \(fixture.baseDir)"),
                    "\(run.stderr)")
            #expect(run.stdout.isEmpty, "\(run.stdout)")
            #expect(archives(backups) == good, "\(extra): \(archives(backups))")
        }
        // Resumed, the fleet is whole again: the backup runs and its retention works.
        let resumed = try runCapturing(clmnt, ["fleet", "restore", "--resume", "-d", fixture.baseDir])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let after = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "--backup-dir", backups, "--keep", "1", "-q"])
        #expect(after.status == 0, "\(after.stderr)")
        #expect(archives(backups).count == 1 && archives(backups) != good, "\(archives(backups))")
    }

    @Test("--resume refuses a journal naming a path instead of a molt: nothing swapped, nothing chowned, the container kept")
    func resumeValidatesTheJournalsNames() throws {
        let fixture = try FleetFixture(molts: ["alpha", "bravo-2"])
        defer { fixture.remove() }
        _ = try halfRestored(fixture)
        let soul = fixture.home("bravo-2") + "/.openclaw/workspace/SOUL.md"
        try Data("local change\n".utf8).write(to: URL(fileURLWithPath: soul))
        let (container, _) = try #require(RestoreRecovery.pendingJournals(baseDir: fixture.baseDir).first)
        // Root planted (or a disk mangled) a journal whose second molt is a path out of the base dir.
        let journalPath = container + "/journal.json"
        var journal = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: journalPath))) as? [String: Any])
        var molts = try #require(journal["molts"] as? [[String: Any]])
        molts.append(["name": "../../outside/x", "home": "/tmp/x", "staged_device": 1, "staged_inode": 1])
        journal["molts"] = molts
        try JSONSerialization.data(withJSONObject: journal).write(to: URL(fileURLWithPath: journalPath))
        let registryBefore = try String(contentsOfFile: fixture.baseDir + "/molts.json", encoding: .utf8)

        let resumed = try runCapturing(clmnt, ["fleet", "restore", "--resume", "-d", fixture.baseDir])
        #expect(resumed.status == 1, "\(resumed.stdout) \(resumed.stderr)")
        #expect(resumed.stderr.split(separator: "\n").count == 1
                && resumed.stderr.contains("names '../../outside/x', which is not a molt name; nothing was resumed"), "\(resumed.stderr)")
        #expect(try String(contentsOfFile: soul, encoding: .utf8) == "local change\n", "bravo-2 was not swapped")
        #expect(try String(contentsOfFile: fixture.baseDir + "/molts.json", encoding: .utf8) == registryBefore)
        #expect(FileManager.default.fileExists(atPath: journalPath), "the container is kept for examination")
    }
}
