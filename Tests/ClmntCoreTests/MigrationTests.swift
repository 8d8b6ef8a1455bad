import ClmntTestSupport
import ClmntCore
import Foundation
import Testing

private typealias F = RestoreFixture

/// A host the bash tool ran, taken over by a newcomer: old archives, old places, old spellings,
/// through the real binary.
@Suite("migration from the bash tool")
struct MigrationTests {
    let clmnt = clmntExecutable()

    /// A bash archive whose manifest lists `listed` molts, one of them (`renamed.from`) stored under
    /// `renamed.to`: its dir was renamed on the old host after the manifest was written.
    private func renamedArchive(_ path: String, intact: String, renamed: (from: String, to: String)) throws {
        let manifest: [String: Any] = [
            "version": "1.0", "timestamp": "2026-02-02T10:30:00Z", "hostname": "claw-mountain",
            "molts": [(intact, "19001"), (renamed.from, "19021")].map {
                ["name": $0.0, "port": $0.1, "created": NSNull(), "backup_size_bytes": 10] as [String: Any]
            },
            "total_size_bytes": 20,
        ]
        let manifestText = String(decoding: try JSONSerialization.data(withJSONObject: manifest), as: UTF8.self)
        var entries = [F.Entry.dir("./"), F.Entry.file("./manifest.json", manifestText)]
        for (dir, name) in [(intact, intact), (renamed.to, renamed.from)] {
            entries += [F.Entry.dir("./\(dir)/"), F.Entry.file("./\(dir)/.molt-info", "MOLT_NAME=\(name)\nMOLT_PORT=19001\n"),
                        F.Entry.dir("./\(dir)/.openclaw/")]
            entries += (0..<20).map { F.Entry.file("./\(dir)/.openclaw/file-\($0).md", "data \($0)\n") }
        }
        entries += [F.Entry.dir("./global/"), F.Entry.file("./global/molts.json", "{}")]
        try F.tar(path, entries)
    }

    /// Before: the dry run showed a normal plan, the restore refused the whole archive (even with
    /// --select of an intact molt), and verify printed one DAMAGED line per entry.
    @Test("a bash archive with a renamed molt dir: dry run and restore agree, one problem, --select restores the intact molt")
    func renamedMoltDirectory() throws {
        let directory = try TemporaryDirectory(prefix: "clmnt-migration")
        defer { directory.remove() }
        let archive = directory.path + "/fleet-2026-02-02.tar.gz"
        let base = directory.path + "/molts"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        let intact = F.uniqueName("i"), mailbot = F.uniqueName("m")
        try renamedArchive(archive, intact: intact, renamed: (mailbot, mailbot + "-old"))

        let verify = try runCapturing(clmnt, ["fleet", "verify", archive])
        #expect(verify.status == 2, "\(verify.stdout)\(verify.stderr)")
        let damaged = verify.stdout.split(separator: "\n").filter { $0.hasPrefix("DAMAGED") }
        #expect(damaged.count == 2, "one for the listed molt without its dir, one for the unlisted dir: \(verify.stdout)")
        #expect(verify.stdout.contains("the archive holds \(mailbot)-old/ (23 entries), which its manifest does not list"), "\(verify.stdout)")

        // Everything: the dry run refuses what the restore refuses.
        let dryRun = try runCapturing(clmnt, ["fleet", "restore", "--from", archive, "-d", base, "--skip-users", "--dry-run"])
        #expect(dryRun.stdout.contains("would refuse: the manifest lists molt '\(mailbot)' but the archive holds no home directory for it"),
                "\(dryRun.stdout)\(dryRun.stderr)")
        let all = try runCapturing(clmnt, ["fleet", "restore", "--from", archive, "-d", base, "--skip-users", "--yes"])
        #expect(all.status == 1, "\(all.stdout)\(all.stderr)")
        #expect(all.stderr.contains("the manifest lists molt '\(mailbot)'"), "\(all.stderr)")
        #expect(!FileManager.default.fileExists(atPath: base + "/" + intact))

        // --select of the intact molt: the dry run plans it, the restore restores it, the renamed dir is named once.
        let selectedDryRun = try runCapturing(clmnt, ["fleet", "restore", "--from", archive, "-d", base, "--skip-users", "--dry-run",
                                                      "--select", intact])
        #expect(!selectedDryRun.stdout.contains("would refuse"), "\(selectedDryRun.stdout)")
        #expect(selectedDryRun.stdout.contains("\(mailbot)-old/ (23 entries), which its manifest does not list"), "\(selectedDryRun.stdout)")
        let selected = try runCapturing(clmnt, ["fleet", "restore", "--from", archive, "-d", base, "--skip-users", "--yes", "--select", intact])
        #expect(selected.status == 0, "\(selected.stdout)\(selected.stderr)")
        #expect(F.read(base + "/" + intact + "/.openclaw/file-7.md") == "data 7\n")
        #expect(!FileManager.default.fileExists(atPath: base + "/" + mailbot + "-old"))
        #expect(!FileManager.default.fileExists(atPath: base + "/" + mailbot))
    }

    /// Before: the bash tool's 0755 homes and .openclaw came back at 0755 without a word.
    @Test("a bash archive's 0755 homes: the plan says so, --fix-modes tightens them")
    func fixModes() throws {
        let directory = try TemporaryDirectory(prefix: "clmnt-migration")
        defer { directory.remove() }
        let archive = directory.path + "/fleet.tar.gz"
        let (first, second) = (F.uniqueName("f"), F.uniqueName("s"))
        try F.bashArchive(archive, molts: [(first, 19001), (second, 19021)].map { name, port in
            F.CraftedMolt(name: name, port: port, entries: [.file(".molt-info", "MOLT_NAME=\(name)\n"), .dir(".openclaw/"),
                                                             .file(".openclaw/.env", "KEY=x\n", mode: 0o600)])
        })
        func mode(_ path: String) -> Int {
            ((try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions]) as? Int) ?? -1
        }
        let plain = directory.path + "/plain"
        let restored = try runCapturing(clmnt, ["fleet", "restore", "--from", archive, "-d", plain, "--skip-users", "--yes", "--select", first])
        #expect(restored.status == 0, "\(restored.stderr)")
        #expect(restored.stdout.contains("note: the bash tool's archives hold homes and .openclaw at 0755"), "\(restored.stdout)")
        #expect(restored.stdout.contains("--fix-modes tightens them"), "\(restored.stdout)")
        #expect(mode(plain + "/" + first) == 0o755 && mode(plain + "/" + first + "/.openclaw") == 0o755)

        let fixed = directory.path + "/fixed"
        let tightened = try runCapturing(clmnt, ["fleet", "restore", "--from", archive, "-d", fixed, "--skip-users", "--yes", "--fix-modes"])
        #expect(tightened.status == 0, "\(tightened.stderr)")
        for name in [first, second] {
            #expect(mode(fixed + "/" + name) == 0o750, "\(tightened.stdout)")
            #expect(mode(fixed + "/" + name + "/.openclaw") == 0o700)
            #expect(tightened.stdout.contains("tightened \(fixed)/\(name)/.openclaw: mode 0755 → 0700"), "\(tightened.stdout)")
        }
        #expect(mode(fixed + "/" + first + "/.openclaw/.env") == 0o600)
    }

    /// Before: run from /root, "no molts found in /root" and "no backup in /root/backups" with no hint;
    /// `fleet backup /srv/molts` said only "Unexpected argument".
    @Test("from the wrong directory: where it looked and how to point it")
    func pointingMessages() throws {
        let directory = try TemporaryDirectory(prefix: "clmnt-migration")
        defer { directory.remove() }
        let environment = ["PATH": "/usr/bin:/bin"]
        let backup = try runCapturing(clmnt, ["fleet", "backup", "-o", directory.path + "/x.tar.gz"],
                                      currentDirectory: directory.path, environment: environment)
        #expect(backup.status == 1)
        #expect(backup.stderr.contains("no molts found in \(directory.path)"), "\(backup.stderr)")
        #expect(backup.stderr.contains("looked in the current directory \(directory.path): give the base dir with -d DIR or set CLMNT_BASE_DIR"),
                "\(backup.stderr)")
        #expect(backup.stderr.split(separator: "\n").count == 1, "\(backup.stderr)")

        let fromEnvironment = try runCapturing(clmnt, ["fleet", "backup", "-o", directory.path + "/x.tar.gz"],
                                               environment: environment.merging(["CLMNT_BASE_DIR": directory.path]) { $1 })
        #expect(fromEnvironment.stderr.contains("looked in \(directory.path), from $CLMNT_BASE_DIR"), "\(fromEnvironment.stderr)")

        let list = try runCapturing(clmnt, ["fleet", "list-backups"], currentDirectory: directory.path, environment: environment)
        #expect(list.status == 0)
        #expect(list.stdout.contains("no backups in \(directory.path)/backups (the default, relative to the current directory: "
                                     + "give --backup-dir DIR or set $CLMNT_BACKUP_DIR"), "\(list.stdout)")

        let doctor = try runCapturing(clmnt, ["fleet", "doctor"], currentDirectory: directory.path, environment: environment)
        #expect(doctor.stdout.contains("give --backup-dir DIR or set $CLMNT_BACKUP_DIR"), "\(doctor.stdout)")
        #expect(doctor.stdout.contains("give the base dir with -d DIR or set CLMNT_BASE_DIR"), "\(doctor.stdout)")

        let positional = try runCapturing(clmnt, ["fleet", "backup", "/srv/molts"])
        #expect(positional.status == 64)
        #expect(positional.stderr.contains("unexpected argument '/srv/molts': the base dir is given with -d (clmnt fleet backup -d /srv/molts)"),
                "\(positional.stderr)")
    }

    /// Before: list-backups and doctor never found the bash tool's `.backups` without --backup-dir.
    @Test("list-backups and doctor find the bash tool's .backups of the base dir, and say so")
    func findsTheBashToolsBackups() throws {
        let fixture = try FleetFixture(molts: ["alpha"])
        defer { fixture.remove() }
        let legacy = fixture.baseDir + "/.backups"
        try FileManager.default.createDirectory(atPath: legacy, withIntermediateDirectories: true)
        try F.bashArchive(legacy + "/fleet-backup-20260202-103000.tar.gz", molts: [F.CraftedMolt(name: "alpha", port: 19001, entries: [])])
        let environment = ["PATH": "/usr/bin:/bin"]
        let list = try runCapturing(clmnt, ["fleet", "list-backups", "-d", fixture.baseDir], currentDirectory: fixture.root.path,
                                    environment: environment)
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout.contains("backup dir \(legacy): the bash tool's .backups"), "\(list.stdout)")
        #expect(list.stdout.contains("fleet-backup-20260202-103000.tar.gz"), "\(list.stdout)")
        let doctor = try runCapturing(clmnt, ["fleet", "doctor", "-d", fixture.baseDir], currentDirectory: fixture.root.path,
                                      environment: environment)
        #expect(doctor.stdout.contains("backup dir \(legacy) (the bash tool's .backups"), "\(doctor.stdout)")

        // A ./backups of clmnt's own is the fallback again.
        try FileManager.default.createDirectory(atPath: fixture.root.path + "/backups", withIntermediateDirectories: true)
        let again = try runCapturing(clmnt, ["fleet", "list-backups", "-d", fixture.baseDir], currentDirectory: fixture.root.path,
                                     environment: environment)
        #expect(again.stdout.contains("no backups in \(fixture.root.path)/backups"), "\(again.stdout)")
    }

    /// Before: prune and --keep never touched the bash tool's archives, so its .backups grew for ever.
    @Test("prune --include-legacy ages out the bash tool's archives; without it they are left alone")
    func pruneIncludesLegacyArchives() throws {
        let fixture = try FleetFixture(molts: ["alpha"])
        defer { fixture.remove() }
        let legacy = fixture.baseDir + "/.backups"
        try FileManager.default.createDirectory(atPath: legacy, withIntermediateDirectories: true)
        chmod(legacy, 0o700)
        // Three nightlies of the bash tool (its default name), each file dated as its manifest says.
        var names: [String] = []
        for day in 1...3 {
            let name = "fleet-2026-02-0\(day).tar.gz"
            try F.bashArchive(legacy + "/" + name, molts: [F.CraftedMolt(name: "alpha", port: 19001, entries: [])],
                              timestamp: "2026-02-0\(day)T10:30:00Z")
            F.setTime(legacy + "/" + name, seconds: 1_769_941_800 + (day - 1) * 86_400)
            names.append(name)
        }
        // An archive of another fleet, clmnt's: never this base dir's.
        let other = "fleet-2026-02-01_00-00-00.tar.gz"
        try F.clmntArchive(legacy + "/" + other, molts: [F.CraftedMolt(name: "bravo", port: 19002, entries: [])], baseDir: "/srv/other")
        F.setTime(legacy + "/" + other, seconds: 1_795_948_200)
        func present() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: legacy)) ?? []).sorted() }

        let plain = try runCapturing(clmnt, ["fleet", "prune", "-d", fixture.baseDir, "--backup-dir", legacy, "--keep", "1", "-v"])
        #expect(plain.status == 0, "\(plain.stderr)")
        #expect(present() == (names + [other]).sorted(), "\(plain.stdout)")
        #expect(plain.stdout.contains("--include-legacy"), "the skipped bash archives point at the flag: \(plain.stdout)")

        let dry = try runCapturing(clmnt, ["fleet", "prune", "-d", fixture.baseDir, "--backup-dir", legacy, "--keep", "1",
                                           "--include-legacy", "--dry-run"])
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(present() == (names + [other]).sorted())

        let pruned = try runCapturing(clmnt, ["fleet", "prune", "-d", fixture.baseDir, "--backup-dir", legacy, "--keep", "1",
                                              "--include-legacy", "--json"])
        #expect(pruned.status == 0, "\(pruned.stderr)")
        #expect(present() == [names[2], other].sorted(), "\(pruned.stdout)")
    }

    /// Before: molt names, --from and -d completed nothing.
    @Test("completion offers the base dir's molt names (also in a --select list) and files for --from")
    func completions() throws {
        let fixture = try FleetFixture(molts: ["alpha", "beta"])
        defer { fixture.remove() }
        let setup = try runCapturing(clmnt, ["---completion", "molt", "health", "setup", "--", "positional@0", "6", "0",
                                             "clmnt", "molt", "health", "setup", "-d", fixture.baseDir, ""])
        #expect(setup.stdout == "alpha\nbeta\n", "\(setup.stdout)\(setup.stderr)")
        let select = try runCapturing(clmnt, ["---completion", "fleet", "backup", "--", "--select", "5", "8",
                                              "clmnt", "fleet", "backup", "--base-dir", fixture.baseDir, "--select", "alpha,b"])
        #expect(select.stdout == "alpha,beta\n", "\(select.stdout)\(select.stderr)")
        let script = try runCapturing(clmnt, ["--generate-completion-script", "bash"])
        #expect(script.stdout.contains("'--from')"), "--from completes files")
    }

    /// Before: on a host without systemd, one loginctl warning per created user.
    @Test("a restore that creates users on a host without systemd says nothing about lingering",
          .enabled(if: !FileManager.default.fileExists(atPath: "/run/systemd/system"),
                   "this host runs systemd: lingering is enabled for real there, so there is no host without it to test"))
    func noLoginctlWarnings() throws {
        let directory = try TemporaryDirectory(prefix: "clmnt-migration")
        let names = [F.uniqueName("l"), F.uniqueName("l")]
        defer { F.removeUsers(names); directory.remove() }
        let archive = directory.path + "/fleet.tar.gz"
        try F.bashArchive(archive, molts: [F.CraftedMolt(name: names[0], port: 19001, entries: [.file(".molt-info", "MOLT_NAME=x\n")]),
                                           F.CraftedMolt(name: names[1], port: 19021, entries: [.file(".molt-info", "MOLT_NAME=y\n")])])
        let run = try runCapturing(clmnt, ["fleet", "restore", "--from", archive, "-d", directory.path + "/molts", "--yes"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(UserAccounts.user(named: names[0]) != nil)
        #expect(!run.stderr.contains("linger"), "\(run.stderr)")
    }

    /// Before: --no-verbose, --no-dry-run, --no-force, --no-skip-users were usage errors.
    @Test("the bash tool's --no- spellings are accepted")
    func bashSpellings() throws {
        let fixture = try FleetFixture(molts: ["alpha"])
        defer { fixture.remove() }
        let archive = fixture.root.path + "/a.tar.gz"
        let backup = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "-o", archive, "--no-verbose", "--no-dry-run", "-q"])
        #expect(backup.status == 0, "\(backup.stderr)")
        #expect(FileManager.default.fileExists(atPath: archive))
        let restore = try runCapturing(clmnt, ["fleet", "restore", "--from", archive, "-d", fixture.root.path + "/new", "--dry-run",
                                               "--no-force", "--no-skip-users", "--no-verbose"])
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect(restore.stdout.contains("Dry run"), "\(restore.stdout)")
    }
}
