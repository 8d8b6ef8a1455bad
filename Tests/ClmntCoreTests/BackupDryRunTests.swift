import ClmntTestSupport
@testable import ClmntCore
import Foundation
import Testing

/// `fleet backup --dry-run` through the real binary: it writes nothing, and what it
/// announces is what the real backup then records in its manifest.
@Suite("fleet backup --dry-run")
struct BackupDryRunTests {
    let clmnt = clmntExecutable()

    /// Every entry of `directory` with its bytes, mode, owner and mtime: "unchanged" means all of it.
    static func snapshot(_ directory: String) -> [String: String] {
        var result: [String: String] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            let path = directory + "/" + name
            var info = stat()
            lstat(path, &info)
            let data = (try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data()
            result[name] = "\(info.st_mode) \(info.st_uid) \(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec) "
                + "\(info.st_ino) " + data.base64EncodedString()
        }
        return result
    }

    /// This base dir's lock files in the lock directory (`<dev>-<inode>.lock`, `.backup.lock`).
    static func lockFiles(of baseDir: String) -> [String] {
        var info = stat()
        stat(baseDir, &info)
        let prefix = "\(UInt64(info.st_dev))-\(UInt64(info.st_ino))."
        return ((try? FileManager.default.contentsOfDirectory(atPath: BaseDirLock.directory)) ?? [])
            .filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }.sorted()
    }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not JSON: \(text)")
    }

    @Test("writes nothing (archive, partial file, report, leftover cleanup) and equals what the real backup archives, per molt",
          arguments: [[String](), ["--select", "alpha", "--exclude", "*.md", "--include-caches", "--exclude-logs",
                                   "--exclude", ".openclaw/agents/"]])
    func matchesRealBackup(_ flags: [String]) throws {
        let fleet = try FleetFixture(molts: ["alpha", "bravo-2"])
        let other = try FleetFixture(molts: ["zulu"])
        defer { fleet.remove(); other.remove() }
        let out = fleet.root.path + "/backups"
        // The backup dir holds another fleet's archive and a killed backup's partial file, which a
        // real backup would remove first: the dry run must not.
        #expect(try runCapturing(clmnt, ["fleet", "backup", "-d", other.baseDir, "--backup-dir", out, "-q"]).status == 0)
        FileManager.default.createFile(atPath: out + "/.fleet-x.tar.gz.partial-999999-1", contents: Data("partial".utf8))
        let before = Self.snapshot(out)
        // Lock files are never removed, and a recycled inode may have left some: only new ones count.
        let locksBefore = Set(Self.lockFiles(of: fleet.baseDir))

        let dry = try runCapturing(clmnt, ["fleet", "backup", "-d", fleet.baseDir, "--backup-dir", out, "--dry-run", "--json"] + flags)
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(Self.snapshot(out) == before, "the backup dir is unchanged byte for byte")
        let newLocks = Set(Self.lockFiles(of: fleet.baseDir)).subtracting(locksBefore)
        #expect(newLocks.isSubset(of: ["lock"]), "only the shared base-dir lock, no backup lock: \(newLocks)")
        let plan = try Self.json(dry.stdout)
        #expect(plan["dry_run"] as? Bool == true)
        #expect((plan["output"] as? String)?.hasPrefix(out + "/fleet-") == true, "\(plan["output"] ?? "")")
        let molts = try #require(plan["molts"] as? [[String: Any]])

        let archive = fleet.root.path + "/real.tar.gz"
        let real = try runCapturing(clmnt, ["fleet", "backup", "-d", fleet.baseDir, "-o", archive, "--json"] + flags)
        #expect(real.status == 0, "\(real.stderr)")
        let manifest = try BackupCatalog.readManifest(path: archive)
        #expect(molts.map { $0["name"] as? String } == manifest.molts.map(\.name))
        for (planned, recorded) in zip(molts, manifest.molts) {
            #expect(planned["files"] as? Int == recorded.fileCount, "\(recorded.name) files")
            #expect((planned["bytes"] as? NSNumber)?.int64Value == recorded.backupSizeBytes, "\(recorded.name) bytes")
            #expect(planned["entries"] as? Int == recorded.entryCount, "\(recorded.name) entries")
        }
        let summary = try Self.json(real.stdout)
        #expect(plan["files"] as? Int == summary["files"] as? Int, "the summary's file count")
        #expect((plan["bytes"] as? NSNumber)?.int64Value
                == manifest.totalSizeBytes + (manifest.global?.backupSizeBytes ?? 0))
        #expect(plan["excludes"] as? [String] == manifest.excludes)

        let alpha = try #require(molts.first)
        let excluded = try #require(alpha["excluded"] as? [[String: Any]])
        let byPath = Dictionary(uniqueKeysWithValues: excluded.map { ($0["path"] as? String ?? "", $0) })
        #expect(byPath[".openclaw/gateway.pid"]?["rule"] as? String == "*.pid")
        #expect(byPath[".openclaw/workspace/draft.tmp"]?["rule"] as? String == "*.tmp")
        let databases = try #require(alpha["databases"] as? [[String: Any]])
        let database = databases.first { $0["path"] as? String == ".openclaw/state/openclaw.sqlite" }
        #expect(database?["snapshot"] as? Bool == true, "\(databases)")
        if flags.isEmpty {
            #expect(byPath[".cache"]?["rule"] as? String == ".cache/")
            #expect(byPath[".cache"]?["files"] as? Int == 1 && byPath[".cache"]?["bytes"] as? Int == 4096)
            #expect(byPath[".openclaw/workspace/node_modules"]?["rule"] as? String == "node_modules/")
            #expect(byPath[".openclaw/gateway.log"] == nil)
            #expect(alpha["excluded_files"] as? Int == excluded.reduce(0) { $0 + ($1["files"] as? Int ?? 0) })
        } else {
            #expect(molts.count == 1, "--select alpha")
            #expect(byPath[".cache"] == nil, "--include-caches")
            #expect(byPath[".openclaw/workspace/SOUL.md"]?["rule"] as? String == "*.md")
            #expect(byPath[".openclaw/gateway.log"]?["rule"] as? String == "*.log")
            #expect(byPath[".openclaw/gateway.log.1"]?["rule"] as? String == "*.log.[0-9]*")
            #expect(byPath[".openclaw/agents"]?["rule"] as? String == ".openclaw/agents/")
            #expect((byPath[".openclaw/agents"]?["files"] as? Int ?? 0) >= 1)
        }
    }

    @Test("human table; a missing backup dir stays missing; a file the backup would miss is named and exits 3")
    func tableMissingDirAndMissedFile() throws {
        let fleet = try FleetFixture(molts: ["alpha"])
        defer { fleet.remove() }
        let out = fleet.root.path + "/not-yet"
        let table = try runCapturing(clmnt, ["fleet", "backup", "-d", fleet.baseDir, "--backup-dir", out, "--dry-run"])
        #expect(table.status == 0, "\(table.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out), "no backup dir is created")
        #expect(table.stdout.hasPrefix("dry run, nothing written: the backup would write \(out)/fleet-"), "\(table.stdout)")
        #expect(table.stdout.contains("MOLT") && table.stdout.contains("\nalpha ") && table.stdout.contains("\ntotal "), "\(table.stdout)")
        #expect(table.stdout.contains("alpha: SQLite snapshot: .openclaw/state/openclaw.sqlite"), "\(table.stdout)")
        #expect(table.stdout.contains("alpha: excluded by .cache/: 1 path, 1 file, 4.0 KiB"), "\(table.stdout)")
        let verbose = try runCapturing(clmnt, ["fleet", "backup", "-d", fleet.baseDir, "--backup-dir", out, "--dry-run", "-v"])
        #expect(verbose.stdout.contains("\n  .cache/: 1 file, 4.0 KiB"), "-v lists each path: \(verbose.stdout)")
        let quiet = try runCapturing(clmnt, ["fleet", "backup", "-d", fleet.baseDir, "--backup-dir", out, "--dry-run", "-q"])
        #expect(quiet.status == 0 && quiet.stdout.hasPrefix("dry run, nothing written"), "a report, even with -q: \(quiet.stdout)")

        // A file another process holds a write lease on: the real backup misses it (exit 3); the dry run says so first.
        let leased = fleet.baseDir + "/alpha/leased.txt"
        try Data("held".utf8).write(to: URL(fileURLWithPath: leased))
        let holder = try LeaseHolder(path: leased)
        defer { holder.stop() }
        let missing = try runCapturing(clmnt, ["fleet", "backup", "-d", fleet.baseDir, "--backup-dir", out, "--dry-run", "--json"])
        #expect(missing.status == 3, "\(missing.stderr)")
        #expect(missing.stderr.contains(leased) && missing.stderr.contains("would miss 1 file of alpha"), "\(missing.stderr)")
        let plan = try Self.json(missing.stdout)
        #expect(plan["complete"] as? Bool == false)
        let missed = (plan["molts"] as? [[String: Any]])?.first?["missed"] as? [[String: Any]]
        #expect(missed?.count == 1 && missed?.first?["problem"] as? String == "unreadable", "\(missed ?? [])")
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test("--dry-run with --verify or a retention flag is refused: one line, exit 64, nothing written")
    func contradictions() throws {
        let fleet = try FleetFixture(molts: ["alpha"])
        defer { fleet.remove() }
        let out = fleet.root.path + "/bk"
        for extra in [["--verify"], ["--keep", "3"], ["--keep-daily", "7"], ["--keep-weekly=-1"]] {
            let result = try runCapturing(clmnt, ["fleet", "backup", "-d", fleet.baseDir, "--backup-dir", out, "--dry-run"] + extra)
            #expect(result.status == 64, "\(extra): \(result.stderr)")
            #expect(result.stderr.hasPrefix("clmnt: ") && result.stderr.split(separator: "\n").count == 1, "\(extra): \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: out))
    }
}
