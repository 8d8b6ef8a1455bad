import ClmntTestSupport
import ClmntCore
import Foundation
import Testing

/// `clmnt fleet restore` through the binary: exit codes, one-line refusals, nothing changed on refusal.
@Suite("clmnt fleet restore command")
struct RestoreCommandTests {
    let clmnt = clmntExecutable()

    @Test("dry run, refusal without --yes, restore to a new base dir, --force, bad archives")
    func commandLine() throws {
        let fixture = try FleetFixture()
        defer { fixture.remove() }
        let archive = fixture.root.path + "/fleet.tar.zst"
        let backup = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "--compress", "zstd", "-o", archive, "-q"])
        #expect(backup.status == 0, "\(backup.stderr)")
        let newBase = fixture.root.path + "/new-host"

        // A dry run prints the plan and changes nothing, not even the base dir.
        let dry = try runCapturing(clmnt, ["fleet", "restore", "--from", archive, "-d", newBase, "--dry-run"])
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("alpha") && dry.stdout.contains("bravo-2"))
        #expect(!FileManager.default.fileExists(atPath: newBase))

        // No terminal and no --yes: refused, one line.
        let unconfirmed = try runCapturing(clmnt, ["fleet", "restore", "--from", archive, "-d", newBase, "--skip-users"])
        #expect(unconfirmed.status == 1)
        #expect(unconfirmed.stderr.contains("--yes") && unconfirmed.stderr.split(separator: "\n").count == 1, "\(unconfirmed.stderr)")
        #expect(!FileManager.default.fileExists(atPath: newBase + "/alpha"))

        // Unknown molt: the archive's molts are listed.
        let unknown = try runCapturing(clmnt, ["fleet", "restore", "--from", archive, "-d", newBase, "--select", "zulu", "--yes", "--skip-users"])
        #expect(unknown.status == 1 && unknown.stderr.contains("zulu") && unknown.stderr.contains("alpha"), "\(unknown.stderr)")

        // The fixture holds links that leave the molt (a dangling one, one to /etc/shadow): refused by default.
        let outside = try runCapturing(clmnt, ["fleet", "restore", "--from", archive, "-d", newBase, "--yes", "--skip-users"])
        #expect(outside.status == 1 && outside.stderr.contains("--allow-outside-symlinks"), "\(outside.stderr)")
        #expect(!FileManager.default.fileExists(atPath: newBase + "/alpha"))

        // The real restore, onto a "new host": paths rewritten, RESTORED= added, registry written.
        let restore = ["fleet", "restore", "--from", archive, "-d", newBase, "--yes", "--skip-users", "--allow-outside-symlinks"]
        let restored = try runCapturing(clmnt, restore + ["--json"])
        #expect(restored.status == 0, "\(restored.stderr)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: newBase + "/alpha/.openclaw/workspace/shadow-link") == "/etc/shadow")
        let info = try String(contentsOfFile: newBase + "/alpha/.molt-info", encoding: .utf8)
        #expect(info.contains("MOLT_HOME=\(newBase)/alpha"), "\(info)")
        #expect(info.contains("RESTORED="))
        let config = try String(contentsOfFile: newBase + "/alpha/.openclaw/openclaw.json", encoding: .utf8)
        #expect(config.contains("\(newBase)/alpha/.openclaw/workspace") && config.hasPrefix("// JSON5"), "\(config)")
        let registry = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: newBase + "/molts.json"))) as? [String: Any]
        #expect(((registry?["molts"] as? [String: Any])?.keys.sorted()) == ["alpha", "bravo-2"])
        let soul = try String(contentsOfFile: newBase + "/bravo-2/.openclaw/workspace/SOUL.md", encoding: .utf8)
        #expect(soul == "# Soul of bravo-2\n")
        var status = stat()
        lstat(newBase + "/alpha/.openclaw/gateway.log.1", &status)
        #expect(status.st_uid == 0, "root-owned files stay root's")
        // The molt's files go to the molt's user, by name; with --skip-users and no user `alpha` here, to the invoker.
        lstat(newBase + "/alpha/.openclaw/workspace/SOUL.md", &status)
        #expect(status.st_uid == getuid())
        let summary = try JSONSerialization.jsonObject(with: Data(restored.stdout.utf8)) as? [String: Any]
        let users = (summary?["molts"] as? [[String: Any]])?.compactMap { $0["user"] as? String }
        #expect(users == ["root", "root"], "the summary says whose the files are: \(restored.stdout)")

        // Again: the molts exist now; refused without --force, nothing touched.
        try Data("local change\n".utf8).write(to: URL(fileURLWithPath: newBase + "/alpha/.openclaw/workspace/SOUL.md"))
        let again = try runCapturing(clmnt, restore)
        #expect(again.status == 1 && again.stderr.contains("alpha"), "\(again.stderr)")
        #expect(try String(contentsOfFile: newBase + "/alpha/.openclaw/workspace/SOUL.md", encoding: .utf8) == "local change\n")
        let forced = try runCapturing(clmnt, restore + ["--force", "--select", "alpha"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(try String(contentsOfFile: newBase + "/alpha/.openclaw/workspace/SOUL.md", encoding: .utf8) == "# Soul of alpha\n")

        // A truncated archive: refused, the restored molts stay as they are, no staging left.
        let data = try Data(contentsOf: URL(fileURLWithPath: archive))
        try data.prefix(data.count * 2 / 3).write(to: URL(fileURLWithPath: archive + ".cut"))
        try Data("local change\n".utf8).write(to: URL(fileURLWithPath: newBase + "/alpha/.openclaw/workspace/SOUL.md"))
        let cut = try runCapturing(clmnt, ["fleet", "restore", "--from", archive + ".cut", "-d", newBase, "--yes", "--skip-users",
                                           "--allow-outside-symlinks", "--force"])
        #expect(cut.status == 1, "\(cut.stdout)\(cut.stderr)")
        #expect(try String(contentsOfFile: newBase + "/alpha/.openclaw/workspace/SOUL.md", encoding: .utf8) == "local change\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: newBase).sorted() == ["alpha", "bravo-2", "molts.json"])

        let missing = try runCapturing(clmnt, ["fleet", "restore", "--from", fixture.root.path + "/nope.tar.gz", "-d", newBase, "--dry-run"])
        #expect(missing.status == 1 && missing.stderr.split(separator: "\n").count == 1, "\(missing.stderr)")
    }
}
