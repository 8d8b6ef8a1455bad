import ClmntTestSupport
import ClmntCore
@testable import ClmntHealth
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

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
        let fleet = try FleetFixture.bare()
        let user = try TestUser(prefix: "clmnt-dr")
        defer { user.remove(); fleet.remove() }
        let home = try fleet.addMolt(user.name, port: 19001)
        try ProgramRunner.run("chown", ["-R", "\(user.uid):\(user.gid)", home])
        try CronTab(user: user.name).write("# MOLT-HEALTH-WATCH \(user.name): health check every 5 min\n"
            + "*/5 * * * * /usr/bin/true molt health-watch \(user.name) --base-dir \(fleet.base) --alert-email ops@example.com\n")
        let files = HealthStateFiles(directory: StateDirectory(molt: try fleet.molt(user.name)))
        try files.writeStatus(HealthRecord(timestamp: Date(), status: .healthy))
        let backups = fleet.base + "-backups"
        defer { try? FileManager.default.removeItem(atPath: backups) }
        let backup = try runCapturing(clmnt, ["fleet", "backup", "-d", fleet.base, "--backup-dir", backups, "-q"])
        #expect(backup.status == 0, "\(backup.stderr)")

        let result = try runCapturing(clmnt, ["fleet", "doctor", "-d", fleet.base, "--backup-dir", backups])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        for check in ["user", "home", "health-schedule", "health-alerts", "health-recent"] {
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
        let fleet = try FleetFixture.bare()
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

    /// A molt with a home its user owns, and a crontab holding `job` as its health-watch entry.
    private func scheduled(_ fleet: FleetFixture, _ user: TestUser, job: String) throws {
        try CronTab(user: user.name).write("# MOLT-HEALTH-WATCH \(user.name): health check every 5 min\n\(job)\n")
    }

    /// Before: OK for an entry watching another base dir, for the bash tool's removed script,
    /// and for a home the job's user cannot enter; no word on a watch that alerts no one.
    @Test("health-schedule: the entry must run for this base dir; health-alerts warns without a channel")
    func scheduleThatWouldNotRun() throws {
        let fleet = try FleetFixture.bare()
        let user = try TestUser(prefix: "clmnt-dr")
        defer { user.remove(); fleet.remove() }
        let home = try fleet.addMolt(user.name, port: 19001)
        try ProgramRunner.run("chown", ["-R", "\(user.uid):\(user.gid)", home])
        func doctor() throws -> String {
            let result = try runCapturing(clmnt, ["fleet", "doctor", "-d", fleet.base, "--backup-dir", fleet.base + "-none"])
            return result.stdout
        }

        try scheduled(fleet, user, job: "*/5 * * * * /usr/bin/true molt health-watch \(user.name) --base-dir /srv/elsewhere")
        let elsewhere = try doctor()
        #expect(line(elsewhere, "health-schedule", molt: user.name)?.hasPrefix("FAIL") == true, "\(elsewhere)")
        #expect(elsewhere.contains("watches base dir /srv/elsewhere, not \(fleet.base)"), "\(elsewhere)")

        try scheduled(fleet, user, job: "2,7,12,17,22,27,32,37,42,47,52,57 * * * * \(fleet.base)/.scripts/_molt/_health/../health-watch "
                      + "\(user.name) --alert-email ops@example.com --consecutive-failures 2 --verbose >> /dev/null 2>&1")
        let gone = try doctor()
        #expect(line(gone, "health-schedule", molt: user.name)?.hasPrefix("FAIL") == true, "\(gone)")
        #expect(gone.contains("runs the bash tool's script \(fleet.base)/.scripts/_molt/_health/../health-watch, which does not exist"), "\(gone)")

        try scheduled(fleet, user, job: "*/5 * * * * /usr/bin/true molt health-watch \(user.name) --base-dir \(fleet.base)")
        chown(home, 0, 0)
        chmod(home, 0o700)
        let locked = try doctor()
        #expect(line(locked, "health-schedule", molt: user.name)?.hasPrefix("FAIL") == true, "\(locked)")
        #expect(locked.contains("cannot enter its home \(home)"), "\(locked)")

        chown(home, user.uid, user.gid)
        let sound = try doctor()
        #expect(line(sound, "health-schedule", molt: user.name)?.hasPrefix("OK") == true, "\(sound)")
        #expect(line(sound, "health-alerts", molt: user.name)?.hasPrefix("WARN") == true, "\(sound)")
        #expect(sound.contains("no alert channel"), "\(sound)")

        try scheduled(fleet, user, job: "*/5 * * * * /usr/bin/true molt health-watch \(user.name) --base-dir \(fleet.base) --commander boss")
        let alerting = try doctor()
        #expect(line(alerting, "health-alerts", molt: user.name)?.hasPrefix("OK") == true, "\(alerting)")
    }

    /// Before: "OK health-recent last check 1 min ago: stopped".
    @Test("a recent check that found the molt stopped is a warning")
    func stoppedIsNotOK() throws {
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        let name = "clmnt-dr-stopped"
        try fleet.addMolt(name, port: 19001)
        let files = HealthStateFiles(directory: StateDirectory(molt: try fleet.molt(name)))
        try files.writeStatus(HealthRecord(timestamp: Date(), status: .stopped))
        let result = try runCapturing(clmnt, ["fleet", "doctor", "-d", fleet.base, "--backup-dir", fleet.base + "-none"])
        #expect(line(result.stdout, "health-recent", molt: name)?.hasPrefix("WARN") == true, "\(result.stdout)")
        #expect(line(result.stdout, "health-recent", molt: name)?.contains("stopped") == true)
        try files.writeStatus(HealthRecord(timestamp: Date(), status: .healthy))
        let healthy = try runCapturing(clmnt, ["fleet", "doctor", "-d", fleet.base, "--backup-dir", fleet.base + "-none"])
        #expect(line(healthy.stdout, "health-recent", molt: name)?.hasPrefix("OK") == true, "\(healthy.stdout)")
    }

    /// Before: "completeness unknown … run clmnt fleet verify X" stayed after that verify said OK.
    @Test("the verify advice for an archive without a status mark clears once fleet verify says OK, and returns when it changes")
    func verifyClearsTheAdvice() throws {
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        try fleet.addMolt("clmnt-dr-verified", port: 19001)
        let backups = fleet.base + "-backups"
        try FileManager.default.createDirectory(atPath: backups, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: backups) }
        let original = backups + "/original.tar.gz"
        let backup = try runCapturing(clmnt, ["fleet", "backup", "-d", fleet.base, "-o", original, "-q"])
        #expect(backup.status == 0, "\(backup.stderr)")
        // A copy that lost its xattrs (scp, another filesystem): like the bash tool's archives, no status mark.
        let copy = backups + "/fleet-copy.tar.gz"
        #expect(FileManager.default.createFile(atPath: copy, contents: try Data(contentsOf: URL(fileURLWithPath: original))))
        try FileManager.default.removeItem(atPath: original)
        func complete() throws -> String? {
            line(try runCapturing(clmnt, ["fleet", "doctor", "-d", fleet.base, "--backup-dir", backups]).stdout, "backup-complete")
        }
        #expect(try complete()?.hasPrefix("WARN") == true)
        #expect(try complete()?.contains("completeness unknown") == true)

        let verified = try runCapturing(clmnt, ["fleet", "verify", copy, "-v"])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        #expect(verified.stdout.contains("recorded the verification on \(copy)"), "\(verified.stdout)")
        let after = try complete()
        #expect(after?.hasPrefix("OK") == true, "\(after ?? "none")")
        #expect(after?.contains("read back intact and complete by clmnt fleet verify") == true, "\(after ?? "none")")

        // Changed since (here only its time, by a minute: within the day that keeps its date trusted): unverified again.
        var info = stat()
        #expect(stat(copy, &info) == 0)
        let moved = timespec(tv_sec: info.st_mtim.tv_sec + 60, tv_nsec: 0)
        var times = [moved, moved]
        #expect(utimensat(AT_FDCWD, copy, &times, 0) == 0)
        #expect(try complete()?.hasPrefix("WARN") == true)
        // Only root's namespace counts: a user. attribute of the same name is no mark.
        #expect(VerifiedMark.attributeName.hasPrefix("trusted."))
    }
}
