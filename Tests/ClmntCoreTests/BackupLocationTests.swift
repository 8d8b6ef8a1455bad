import ClmntTestSupport
@testable import ClmntCore
import Foundation
import Testing

/// One place for backups: `--backup-dir`, `$CLMNT_BACKUP_DIR`, the base dir's scheduled backup dir, `./backups`.
extension BackupScheduleTests {
    private var environment: [String: String] { ProcessInfo.processInfo.environment.filter { $0.key != "CLMNT_BACKUP_DIR" } }

    @Test("resolution order: --backup-dir, then $CLMNT_BACKUP_DIR, then the scheduled entry's dir, then ./backups")
    func backupDirResolution() throws {
        let user = try CronUser()
        let fleet = try FleetFixture(molts: ["alpha"])
        defer { user.remove(); fleet.remove() }
        let nightly = fleet.root.path + "/nightly"
        let none = BackupLocation.resolve(flag: nil, environment: [:], baseDir: fleet.baseDir, crontab: user.crontab)
        #expect(none == BackupLocation(directory: FileManager.default.currentDirectoryPath + "/backups", source: .fallback))

        _ = try BackupSchedule.install(try BackupJob(baseDir: fleet.baseDir, executable: clmnt, backupDir: nightly),
                                       crontab: user.crontab)
        let scheduled = BackupLocation.resolve(flag: nil, environment: [:], baseDir: fleet.baseDir, crontab: user.crontab)
        #expect(scheduled == BackupLocation(directory: nightly, source: .schedule))
        // Another base dir's entry is not this one's.
        let other = BackupLocation.resolve(flag: nil, environment: [:], baseDir: fleet.root.path, crontab: user.crontab)
        #expect(other.source == .fallback)
        let fromEnvironment = BackupLocation.resolve(flag: nil, environment: ["CLMNT_BACKUP_DIR": "/srv/b"],
                                                     baseDir: fleet.baseDir, crontab: user.crontab)
        #expect(fromEnvironment == BackupLocation(directory: "/srv/b", source: .environment))
        let fromFlag = BackupLocation.resolve(flag: "/srv/a", environment: ["CLMNT_BACKUP_DIR": "/srv/b"],
                                              baseDir: fleet.baseDir, crontab: user.crontab)
        #expect(fromFlag == BackupLocation(directory: "/srv/a", source: .flag))
        // No crontab command: the fallback.
        let noCron = BackupLocation.resolve(flag: nil, environment: [:], baseDir: fleet.baseDir,
                                            crontab: CronTab(user: user.name, program: "/nonexistent/crontab"))
        #expect(noCron.source == .fallback)
    }

    @Test("fleet backup and list-backups share $CLMNT_BACKUP_DIR; a missing backup dir is 'no backups in DIR', exit 0")
    func commandsShareTheBackupDir() throws {
        let fleet = try FleetFixture(molts: ["alpha"])
        defer { fleet.remove() }
        let shared = fleet.root.path + "/shared-backups"
        var env = environment
        env["CLMNT_BACKUP_DIR"] = shared
        let missing = try runCapturing(clmnt, ["fleet", "list-backups", "-d", fleet.baseDir], environment: env)
        #expect(missing.status == 0, "\(missing.stderr)")
        #expect(missing.stdout == "no backups in \(shared) (from $CLMNT_BACKUP_DIR; give --backup-dir DIR for another)\n", "\(missing.stdout)")
        #expect(missing.stderr.isEmpty, "\(missing.stderr)")
        let json = try runCapturing(clmnt, ["fleet", "list-backups", "--backup-dir", fleet.root.path + "/nothing", "--json"])
        #expect(json.status == 0 && json.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[\n\n]"
                || json.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[]", "\(json.stdout)")

        let backup = try runCapturing(clmnt, ["fleet", "backup", "-d", fleet.baseDir, "-q"],
                                      currentDirectory: fleet.root.path, environment: env)
        #expect(backup.status == 0, "\(backup.stderr)")
        let written = (try? FileManager.default.contentsOfDirectory(atPath: shared)) ?? []
        #expect(written.contains { $0.hasPrefix("fleet-") && $0.hasSuffix(".tar.gz") }, "\(written)")
        #expect(!FileManager.default.fileExists(atPath: fleet.root.path + "/backups"), "not ./backups")
        let listed = try runCapturing(clmnt, ["fleet", "list-backups", "-d", fleet.baseDir, "-v"], environment: env)
        #expect(listed.status == 0, "\(listed.stderr)")
        #expect(listed.stdout.contains("backup dir \(shared) (from $CLMNT_BACKUP_DIR)"), "\(listed.stdout)")
        #expect(listed.stdout.contains("fleet-"), "\(listed.stdout)")
    }

    @Test("--timestamps starts every line with an ISO-8601 time, warnings and errors included")
    func timestampedOutput() throws {
        let fleet = try FleetFixture(molts: ["alpha"])
        defer { fleet.remove() }
        let result = try runCapturing(clmnt, ["fleet", "backup", "-d", fleet.baseDir, "--timestamps",
                                              "-o", fleet.root.path + "/a.tar.gz"])
        #expect(result.status == 0, "\(result.stderr)")
        let failed = try runCapturing(clmnt, ["fleet", "backup", "-d", fleet.baseDir, "--timestamps",
                                              "-o", fleet.root.path + "/a.tar.gz"])
        #expect(failed.status == 1 && failed.stderr.contains("already exists"), "\(failed.stderr)")
        let lines = (result.stdout + result.stderr + failed.stderr).split(separator: "\n")
        #expect(!lines.isEmpty)
        for line in lines {
            #expect(Timestamp.parse(String(line.prefix(20))) != nil && line.dropFirst(20).first == " ", "\(line)")
        }
    }

    @Test("the bash tool's spellings: --compress gz and bz2, --no-json, --no-verify, --no-exclude-maildir")
    func bashToolSpellings() throws {
        let fleet = try FleetFixture(molts: ["alpha"])
        defer { fleet.remove() }
        for (spelling, ending) in [("gz", "tar.gz"), ("bz2", "tar.bz2"), ("zst", "tar.zst")] {
            let output = fleet.root.path + "/s-\(spelling).\(ending)"
            let result = try runCapturing(clmnt, ["fleet", "backup", "-d", fleet.baseDir, "--compress", spelling, "-q",
                                                  "--no-json", "--no-verify", "--no-exclude-maildir", "-o", output])
            #expect(result.status == 0, "\(spelling): \(result.stderr)")
            #expect(try ArchiveVerifier.verify(path: output).compression == Compression(spelling: spelling)?.rawValue)
        }
        let listed = try runCapturing(clmnt, ["fleet", "list-backups", "--backup-dir", fleet.root.path, "--json", "--no-json"])
        #expect(listed.status == 0 && listed.stdout.hasPrefix("FILE"), "the last of --json/--no-json wins: \(listed.stdout)")
    }

    @Test("manifest.json: the bash tool's list-backups (grep -o '\"name\":', '\"hostname\":\"...\"') counts every molt")
    func manifestReadableByTheBashTool() throws {
        let fleet = try FleetFixture(molts: ["alpha", "bravo-2", "charlie"])
        defer { fleet.remove() }
        let archive = fleet.root.path + "/fleet.tar.gz"
        let backup = try runCapturing(clmnt, ["fleet", "backup", "-d", fleet.baseDir, "-q", "-o", archive])
        #expect(backup.status == 0, "\(backup.stderr)")
        // The bash tool's own lines (.scripts/_fleet/list-backups), run by bash with GNU tar.
        let script = """
        MANIFEST=$(tar -xf "$1" -O manifest.json 2>/dev/null)
        echo "$MANIFEST" | grep -o '"name":' | wc -l | tr -d ' '
        echo "$MANIFEST" | grep -o '"hostname":"[^"]*"' | cut -d'"' -f4
        """
        let result = try runCapturing("/bin/bash", ["-c", script, "bash", archive])
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "3", "\(result.stdout)")
        let hostname = try BackupCatalog.readManifest(path: archive).hostname
        #expect(lines.count == 2 && lines[1] == hostname && !hostname.isEmpty, "\(result.stdout)")
    }
}
