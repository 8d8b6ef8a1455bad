import ClmntTestSupport
import ClmntCore
import Foundation
import Testing

/// An archive's words reach root's terminal escaped: a crafted manifest and report cannot
/// retitle or clear the terminal, nor print a forged line above the plan (issue 16, part 4).
@Suite("control characters from archives, through the binary")
struct TerminalEscapeCommandTests {
    typealias F = RestoreFixture
    let clmnt = clmntExecutable()

    /// Retitles the terminal, then starts a line of its own.
    static let hostile = "evil\u{1B}]0;pwned\u{07}\nclmnt: everything fine"

    static func assertNoControls(_ text: String, _ what: String) {
        #expect(rawControlCharacters(text).isEmpty, "\(what) printed raw control characters: \(rawControlCharacters(text))")
        #expect(!hasForgedLine(text), "\(what) printed a forged line")
    }

    @Test("restore --dry-run, list-backups and verify escape the manifest and report; --json and -0 stay exact")
    func archiveWordsEscaped() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let backups = dir.path + "/backups"
        try FileManager.default.createDirectory(atPath: backups, withIntermediateDirectories: true)
        chmod(backups, 0o700)
        let name = F.uniqueName()
        // A clmnt-named archive whose own name carries an escape sequence.
        let archive = backups + "/fleet-2026-11-29_10-30-00\u{1B}[31m.tar.gz"
        try F.clmntArchive(archive, molts: [F.CraftedMolt(name: name, port: 19001, entries: [.file(".molt-info", "MOLT_NAME=\(name)\n")])],
                           baseDir: "/srv/old\u{1B}[2J-molts", hostname: Self.hostile, warnings: ["read\u{1B}[2J\nclmnt: everything fine"])

        let plan = try runCapturing(clmnt, ["fleet", "restore", "--from", archive, "-d", dir.path + "/new", "--dry-run", "--skip-users"])
        #expect(plan.status == 0, "\(plan.stderr)")
        Self.assertNoControls(plan.stdout + plan.stderr, "restore --dry-run")
        #expect(plan.stdout.contains(#"made on evil\x1B]0;pwned\x07\x0Aclmnt: everything fine at"#), "\(plan.stdout)")
        #expect(plan.stdout.contains(#"backed up from /srv/old\x1B[2J-molts"#), "\(plan.stdout)")

        // --json keeps the exact value.
        let json = try runCapturing(clmnt, ["fleet", "restore", "--from", archive, "-d", dir.path + "/new", "--dry-run", "--skip-users", "--json"])
        #expect(json.status == 0, "\(json.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["hostname"] as? String == Self.hostile)

        let list = try runCapturing(clmnt, ["fleet", "list-backups", "--backup-dir", backups, "-d", dir.path])
        #expect(list.status == 0, "\(list.stderr)")
        Self.assertNoControls(list.stdout + list.stderr, "list-backups")
        #expect(list.stdout.contains(#"evil\x1B]0;pwned\x07\x0Aclmnt: everything fine"#), "\(list.stdout)")
        #expect(list.stdout.contains(#"fleet-2026-11-29_10-30-00\x1B[31m.tar.gz"#), "\(list.stdout)")

        let quiet = try runCapturing(clmnt, ["fleet", "list-backups", "--backup-dir", backups, "-d", dir.path, "-q"])
        Self.assertNoControls(quiet.stdout, "list-backups -q")
        #expect(quiet.stdout.contains(#"\x1B[31m.tar.gz"#))
        // -0: the exact path, NUL-terminated, for xargs -0.
        let null = try runCapturing(clmnt, ["fleet", "list-backups", "--backup-dir", backups, "-d", dir.path, "-0"])
        #expect(null.status == 0, "\(null.stderr)")
        #expect(null.stdout == archive + "\0")

        let verify = try runCapturing(clmnt, ["fleet", "verify", archive])
        Self.assertNoControls(verify.stdout + verify.stderr, "verify")
        #expect(verify.stdout.contains(#"read\x1B[2J\x0Aclmnt: everything fine"#), "\(verify.stdout)")
    }
}
