import CArchiveTestSupport
import ClmntCore
@testable import ClmntHealth
import Foundation
import Testing

/// `clmnt fleet doctor`, run as the binary against real users, crontabs, state files and archives.
@Suite("clmnt fleet doctor", .serialized)
struct DoctorTests {
    let clmnt = clmntExecutable()

    /// The line of `check` (and molt) in the doctor's output.
    private func line(_ output: String, _ check: String, molt: String? = nil) -> String? {
        output.split(separator: "\n").map(String.init).first {
            $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first == Substring(check)
                && (molt == nil || $0.contains(" \(molt!): "))
        }
    }

    @Test("a sound host: users own their homes, health-watch scheduled and recent, a fresh complete backup: exit 0")
    func soundHost() throws {
        let fleet = try TestFleet()
        let user = try TestUser(prefix: "clmnt-dr")
        defer { user.remove(); fleet.remove() }
        let home = try fleet.addMolt(user.name, port: 19001)
        try ProgramRunner.run("chown", ["-R", "\(user.uid):\(user.gid)", home])
        try CronTab(user: user.name).write("# MOLT-HEALTH-WATCH \(user.name): health check every 5 min\n*/5 * * * * /usr/bin/true\n")
        let files = HealthStateFiles(directory: StateDirectory(molt: try fleet.molt(user.name)))
        try files.writeStatus(HealthRecord(timestamp: Date(), status: .healthy))
        let backups = fleet.base + "-backups"
        defer { try? FileManager.default.removeItem(atPath: backups) }
        let backup = try runCapturing(clmnt, ["fleet", "backup", "-d", fleet.base, "--backup-dir", backups, "-q"])
        #expect(backup.status == 0, "\(backup.stderr)")

        let result = try runCapturing(clmnt, ["fleet", "doctor", "-d", fleet.base, "--backup-dir", backups])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        for check in ["user", "home", "health-schedule", "health-recent"] {
            #expect(line(result.stdout, check, molt: user.name)?.hasPrefix("OK") == true, "\(check): \(result.stdout)")
        }
        for check in ["backup-dir", "backup-recent", "backup-complete", "free-space", "leftovers"] {
            #expect(line(result.stdout, check)?.hasPrefix("OK") == true, "\(check): \(result.stdout)")
        }
        let json = try runCapturing(clmnt, ["fleet", "doctor", "-d", fleet.base, "--backup-dir", backups, "--json"])
        #expect(json.status == 0 && json.stdout.contains("\"passed\": true"), "\(json.stdout)")
    }

    @Test("failures: no user, a home owned by someone else, no backup, a backup dir inside a molt; leftovers warn; exit 1")
    func failingHost() throws {
        let fleet = try TestFleet()
        let user = try TestUser(prefix: "clmnt-dr")
        defer { user.remove(); fleet.remove() }
        try fleet.addMolt("clmnt-dr-nobody", port: 19001)
        try fleet.addMolt(user.name, port: 19021)   // still root's: the molt user cannot write its home
        try FileManager.default.createDirectory(atPath: fleet.base + "/" + FleetRestore.stagingPrefix + "x",
                                                withIntermediateDirectories: true)
        let inside = fleet.base + "/\(user.name)/backups"
        try FileManager.default.createDirectory(atPath: inside, withIntermediateDirectories: true)

        let result = try runCapturing(clmnt, ["fleet", "doctor", "-d", fleet.base, "--backup-dir", inside])
        #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
        #expect(line(result.stdout, "user", molt: "clmnt-dr-nobody")?.hasPrefix("FAIL") == true, "\(result.stdout)")
        #expect(line(result.stdout, "home", molt: user.name)?.hasPrefix("FAIL") == true, "\(result.stdout)")
        #expect(line(result.stdout, "health-schedule", molt: user.name)?.hasPrefix("WARN") == true, "\(result.stdout)")
        #expect(line(result.stdout, "health-recent", molt: user.name)?.hasPrefix("WARN") == true, "\(result.stdout)")
        #expect(line(result.stdout, "backup-dir")?.hasPrefix("FAIL") == true, "\(result.stdout)")
        #expect(line(result.stdout, "backup-recent")?.hasPrefix("FAIL") == true, "\(result.stdout)")
        #expect(line(result.stdout, "leftovers")?.hasPrefix("WARN") == true, "\(result.stdout)")
        #expect(result.stdout.hasSuffix("FAIL\n"), "a summary line: \(result.stdout)")
        // Read-only: nothing was removed or created.
        #expect(FileManager.default.fileExists(atPath: fleet.base + "/" + FleetRestore.stagingPrefix + "x"))
        #expect((try? FileManager.default.contentsOfDirectory(atPath: inside)) == [])
    }
}
