import ClmntTestSupport
import ClmntCore
import Foundation
import Testing

/// Issue 9.2 and 9.3 through the real binary: backup and restore exclude each
/// other, a backup that missed files says so (exit 3, report, verify, list,
/// dry run), killed backups leave nothing that piles up, a name taken at commit
/// time is not fatal.
@Suite("backups that miss files, locks, leftovers", .serialized)
struct BackupCompletenessTests {
    let clmnt = clmntExecutable()

    private func files(in directory: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: directory))?.sorted() ?? []
    }

    private func partials(in directory: String) -> [String] { files(in: directory).filter { $0.contains(".partial-") } }

    @Test("a second backup and a restore of a base dir being backed up exit 75; --wait waits; a killed holder never blocks")
    func backupLock() throws {
        let fixture = try FleetFixture(molts: ["alpha"])
        let other = try FleetFixture(molts: ["bravo"])
        defer { fixture.remove(); other.remove() }
        let out = fixture.root.path + "/out"
        let first = try StoppedRun(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "--backup-dir", out, "-q"], at: "after-scan")
        defer { first.kill() }

        let second = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "-o", out + "/second.tar.gz"])
        #expect(second.status == 75, "\(second.stderr)")
        #expect(second.stderr.contains("another backup of \(fixture.baseDir) is running"), "\(second.stderr)")
        #expect(second.stderr.split(separator: "\n").count == 1)
        // The same base dir by another path (a symlink) meets the same lock.
        symlink(fixture.baseDir, fixture.root.path + "/alias")
        let aliased = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.root.path + "/alias", "-o", out + "/alias.tar.gz"])
        #expect(aliased.status == 75, "\(aliased.stderr)")
        // Another base dir is not held up.
        let elsewhere = try runCapturing(clmnt, ["fleet", "backup", "-d", other.baseDir, "-o", out + "/other.tar.gz", "-q"])
        #expect(elsewhere.status == 0, "\(elsewhere.stderr)")

        // A restore into the base dir being backed up is refused before it changes anything.
        let archive = out + "/other.tar.gz"
        let restore = try runCapturing(clmnt, ["fleet", "restore", "--from", archive, "-d", fixture.baseDir, "--yes",
                                               "--skip-users", "--allow-outside-symlinks", "--reassign-ports", "--json"])
        #expect(restore.status == 75, "\(restore.stderr)")
        #expect(!FileManager.default.fileExists(atPath: fixture.baseDir + "/bravo"))

        // --wait: the second backup runs once the first is done.
        let waiting = Process()
        waiting.executableURL = URL(fileURLWithPath: clmnt)
        waiting.arguments = ["fleet", "backup", "-d", fixture.baseDir, "-o", out + "/waited.tar.gz", "-q", "--wait", "30"]
        try waiting.run()
        // Once it holds the backup lock's file open, it has reached the lock the first backup holds;
        // still running then, it is waiting there (without --wait it would have given up at once, 75).
        var baseInfo = stat()
        #expect(stat(fixture.baseDir, &baseInfo) == 0)
        let lockFile = BaseDirLock.directory + "/\(UInt64(baseInfo.st_dev))-\(UInt64(baseInfo.st_ino)).backup.lock"
        #expect(waitUntil { openPaths(of: waiting.processIdentifier).contains(lockFile) || !waiting.isRunning },
                "the waiting backup never reached the lock")
        #expect(waiting.isRunning, "--wait must wait while the first backup holds the lock")
        first.resume()
        #expect(first.wait() == 0)
        waiting.waitUntilExit()
        #expect(waiting.terminationStatus == 0)

        // A backup killed while holding the lock does not block the next one.
        let killed = try StoppedRun(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "-o", out + "/killed.tar.gz"], at: "after-scan")
        killed.kill()
        let after = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "-o", out + "/after.tar.gz", "-q"])
        #expect(after.status == 0, "\(after.stderr)")
    }

    /// Before: the lock was only closed. A child that another thread forked meanwhile shares the
    /// lock's open file description until its exec, so the lock outlived the run, and the next
    /// backup of that base dir was refused as "another backup is running" (the flake seen in
    /// BackupScheduleTests' --status and PruneCommandTests: in-process backups, one after the
    /// other, while other tests spawn programs). A `dup` is exactly that other reference.
    @Test("a released base-dir lock is free at once, even while another reference to its files lives on")
    func releasedLockIsFreeDespiteAnotherReference() throws {
        let fixture = try FleetFixture(molts: ["alpha"])
        defer { fixture.remove() }
        let base = open(fixture.baseDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { close(base) }
        var info = stat()
        #expect(fstat(base, &info) == 0)
        let prefix = BaseDirLock.directory + "/\(UInt64(info.st_dev))-\(UInt64(info.st_ino))."
        var lock: BaseDirLock? = try BaseDirLock(baseDir: fixture.baseDir, mode: .backup)
        withExtendedLifetime(lock) {}
        let descriptors = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { entry in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + entry))?.hasPrefix(prefix) == true
                ? Int32(entry) : nil
        }
        #expect(descriptors.count == 2, "the backup's two lock files")
        let others = descriptors.map { dup($0) }
        defer { others.forEach { close($0) } }
        lock = nil
        let again = try BaseDirLock(baseDir: fixture.baseDir, mode: .backup)
        withExtendedLifetime(again) {}
        _ = consume again
        let binary = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "-o", fixture.root.path + "/after.tar.gz", "-q"])
        #expect(binary.status == 0, "\(binary.stderr)")
    }

    @Test("a restore in progress holds the base dir: a backup of it exits 75")
    func restoreLock() throws {
        let fixture = try FleetFixture(molts: ["alpha"])
        defer { fixture.remove() }
        let archive = fixture.root.path + "/fleet.tar.gz"
        #expect(try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "-o", archive, "-q"]).status == 0)
        let target = fixture.root.path + "/restored"
        let restore = try StoppedRun(clmnt, ["fleet", "restore", "--from", archive, "-d", target, "--yes", "--skip-users",
                                             "--allow-outside-symlinks"], at: "before-swap-1")
        defer { restore.kill() }
        try FileManager.default.createDirectory(atPath: target + "/zulu", withIntermediateDirectories: true)
        try Data("MOLT_NAME=zulu\n".utf8).write(to: URL(fileURLWithPath: target + "/zulu/.molt-info"))
        let backup = try runCapturing(clmnt, ["fleet", "backup", "-d", target, "-o", fixture.root.path + "/during.tar.gz"])
        #expect(backup.status == 75, "\(backup.stderr)")
        #expect(backup.stderr.contains("a restore of \(target) is running"), "\(backup.stderr)")
        restore.resume()
        #expect(restore.wait() == 0)
        let now = try runCapturing(clmnt, ["fleet", "backup", "-d", target, "-o", fixture.root.path + "/after.tar.gz", "-q"])
        #expect(now.status == 0, "\(now.stderr)")
    }

    @Test("files that vanish or cannot be read: exit 3, named, in the report; verify, list-backups and the dry run say incomplete")
    func incompleteBackup() throws {
        let fixture = try FleetFixture(molts: ["alpha", "bravo"])
        defer { fixture.remove() }
        let out = fixture.root.path + "/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        // A write lease held by another process makes a non-blocking open fail (EWOULDBLOCK),
        // even for root: a file a molt user can make unreadable to the backup at will.
        let leased = fixture.home("alpha") + "/.openclaw/workspace/SOUL.md"
        let holder = try LeaseHolder(path: leased)
        defer { holder.stop() }

        // bravo loses a file and a whole directory between the scan and their turn.
        let run = try StoppedRun(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "-o", out + "/fleet.tar.gz"], at: "after-scan")
        defer { run.kill() }
        try FileManager.default.removeItem(atPath: fixture.home("bravo") + "/.openclaw/workspace/USER.md")
        try FileManager.default.removeItem(atPath: fixture.home("bravo") + "/.openclaw/agents")
        run.resume()
        #expect(run.wait() == 3, "\(run.stderr)")
        #expect(run.stderr.contains("\(leased): unreadable") || run.stderr.contains("\(leased): Resource temporarily unavailable"), "\(run.stderr)")
        #expect(run.stderr.contains("bravo/.openclaw/workspace/USER.md"), "\(run.stderr)")
        #expect(run.stderr.contains("incomplete: 3 files of alpha, bravo"), "\(run.stderr)")

        // backup-report.json names them.
        let report = try readEntry(out + "/fleet.tar.gz", "backup-report.json")
        let missed = try #require(JSONSerialization.jsonObject(with: report) as? [String: Any])["missed"] as? [[String: Any]]
        let byPath = Dictionary(uniqueKeysWithValues: (missed ?? []).map { ($0["path"] as? String ?? "", $0) })
        #expect(byPath[leased]?["problem"] as? String == "unreadable")
        #expect(byPath[leased]?["molt"] as? String == "alpha")
        #expect(byPath[fixture.home("bravo") + "/.openclaw/workspace/USER.md"]?["problem"] as? String == "vanished")
        #expect(byPath[fixture.home("bravo") + "/.openclaw/agents"]?["problem"] as? String == "vanished")
        #expect(byPath.count == 3, "\(byPath.keys.sorted())")

        // verify: intact but incomplete, exit 3, the files named.
        let verify = try runCapturing(clmnt, ["fleet", "verify", out + "/fleet.tar.gz"])
        #expect(verify.status == 3, "\(verify.stdout)\(verify.stderr)")
        #expect(verify.stdout.contains("INCOMPLETE (the backup missed 3 files)") && !verify.stdout.contains(": OK:"), "\(verify.stdout)")
        #expect(verify.stdout.contains("MISSED: \(leased): unreadable"), "\(verify.stdout)")

        // A complete backup for comparison.
        holder.stop()
        #expect(try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "-o", out + "/full.tar.gz", "-q"]).status == 0)
        #expect(try runCapturing(clmnt, ["fleet", "verify", out + "/full.tar.gz"]).status == 0)

        let list = try runCapturing(clmnt, ["fleet", "list-backups", "--backup-dir", out])
        let rows = list.stdout.split(separator: "\n").map(String.init)
        #expect(rows.first { $0.hasPrefix("fleet.tar.gz") }?.contains("INCOMPLETE (3 missed)") == true, "\(list.stdout)")
        #expect(rows.first { $0.hasPrefix("full.tar.gz") }?.contains("complete") == true, "\(list.stdout)")
        let listJSON = try runCapturing(clmnt, ["fleet", "list-backups", "--backup-dir", out, "--json"])
        let listed = try #require(JSONSerialization.jsonObject(with: Data(listJSON.stdout.utf8)) as? [[String: Any]])
        #expect(listed.first { ($0["file"] as? String)?.hasSuffix("/fleet.tar.gz") == true }?["complete"] as? Bool == false)

        // The dry run shows, per molt, that it is incomplete.
        let dry = try runCapturing(clmnt, ["fleet", "restore", "--from", out + "/fleet.tar.gz", "-d", fixture.root.path + "/new", "--dry-run"])
        #expect(dry.status == 0, "\(dry.stderr)")
        let alphaRow = dry.stdout.split(separator: "\n").first { $0.contains(" alpha ") }.map(String.init) ?? ""
        let bravoRow = dry.stdout.split(separator: "\n").first { $0.contains(" bravo ") }.map(String.init) ?? ""
        #expect(alphaRow.contains("INCOMPLETE (1 missed)"), "\(dry.stdout)")
        #expect(bravoRow.contains("INCOMPLETE (2 missed)"), "\(dry.stdout)")
        let fullDry = try runCapturing(clmnt, ["fleet", "restore", "--from", out + "/full.tar.gz", "-d", fixture.root.path + "/new", "--dry-run"])
        #expect(fullDry.stdout.contains("complete") && !fullDry.stdout.contains("INCOMPLETE"), "\(fullDry.stdout)")
    }

    @Test("SIGKILLed backups at random points leave partial files that the next backup removes; list-backups counts them")
    func killedBackupsLeaveNothing() throws {
        let fixture = try FleetFixture(molts: ["alpha"])
        let other = try FleetFixture(molts: ["bravo"])
        defer { fixture.remove(); other.remove() }
        var random = [UInt8](repeating: 0, count: 16 << 20)
        random.withUnsafeMutableBytes { raw in
            var generator = SystemRandomNumberGenerator()
            for index in raw.bindMemory(to: UInt64.self).indices { raw.bindMemory(to: UInt64.self)[index] = generator.next() }
        }
        try Data(random).write(to: URL(fileURLWithPath: fixture.home("alpha") + "/big.bin"))
        let out = fixture.root.path + "/out"
        let arguments = ["fleet", "backup", "-d", fixture.baseDir, "--backup-dir", out, "--threads", "1", "-q"]
        var leftAfterKill: [Int] = []
        for _ in 0..<12 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: clmnt)
            process.arguments = arguments
            process.standardError = FileHandle.nullDevice
            try process.run()
            // A random point of the backup to kill it at: the delay is the test's input, not a wait.
            usleep(UInt32.random(in: 20_000...900_000))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            leftAfterKill.append(partials(in: out).count)
        }
        // A partial file of a live writer (another fleet's backup into the same directory) must stay.
        let live = try StoppedRun(clmnt, ["fleet", "backup", "-d", other.baseDir, "-o", out + "/live.tar.gz"],
                                  at: "before-commit")
        defer { live.kill() }
        let livePartial = try #require(partials(in: out).first { $0.hasPrefix(".live.tar.gz.partial-") })
        // And one killed at the last instant, with the whole archive written: a partial is certainly left.
        let last = try StoppedRun(clmnt, arguments, at: "before-commit")
        last.kill()
        let left = partials(in: out).filter { $0 != livePartial }
        #expect(!left.isEmpty, "a killed backup leaves its partial file")
        let listed = try runCapturing(clmnt, ["fleet", "list-backups", "--backup-dir", out])
        #expect(listed.stdout.contains("\(left.count) file\(left.count == 1 ? "" : "s") left by killed backups") && listed.stdout.contains("the next backup"), "\(listed.stdout)")

        // A symlink and someone else's file with the pattern stay too.
        symlink("/etc/passwd", out + "/.fleet-x.tar.gz.partial-999999-1")
        FileManager.default.createFile(atPath: out + "/.fleet-y.tar.gz.partial-999998-2", contents: Data("x".utf8))
        chown(out + "/.fleet-y.tar.gz.partial-999998-2", 65534, 65534)
        // The scratch copy of a large database a killed backup was snapshotting goes too.
        FileManager.default.createFile(atPath: out + "/.clmnt-sqlite-999996-5.db", contents: Data("x".utf8))
        // Root's own file whose final name is no archive's: not clmnt's naming.
        FileManager.default.createFile(atPath: out + "/.notes.txt.partial-999997-3", contents: Data("x".utf8))

        let normal = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "--backup-dir", out, "--threads", "1"])
        #expect(normal.status == 0, "\(normal.stderr)")
        #expect(normal.stdout.contains("left by a killed backup"), "\(normal.stdout)")
        // Only the live writer's, the symlink and the foreign file remain.
        #expect(partials(in: out) == [".fleet-x.tar.gz.partial-999999-1", ".fleet-y.tar.gz.partial-999998-2",
                                      ".notes.txt.partial-999997-3", livePartial].sorted(),
                "\(files(in: out))")
        #expect(!FileManager.default.fileExists(atPath: out + "/.clmnt-sqlite-999996-5.db"))
        #expect(FileManager.default.fileExists(atPath: "/etc/passwd"))
        live.resume()
        #expect(live.wait() == 0, "the live writer commits its archive: \(live.stderr)")
        print("killed backups: partial files after each kill \(leftAfterKill), \(left.count) before the normal backup, \(partials(in: out).count - 3) after")
    }

    @Test("a file whose name is not UTF-8 is archived under its bytes: exit 0, verify OK, GNU tar lists it")
    func nonUTF8NameIsArchived() throws {
        let fixture = try FleetFixture(molts: ["alpha"])
        defer { fixture.remove() }
        let name: [UInt8] = Array("\(fixture.baseDir)/alpha/caf".utf8) + [0xE9] + Array(".txt".utf8) + [0]
        let fd = name.withUnsafeBufferPointer { open(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), O_CREAT | O_WRONLY, 0o600) }
        #expect(fd >= 0)
        close(fd)
        let archive = fixture.root.path + "/odd.tar.gz"
        let backup = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "-o", archive, "-q"])
        #expect(backup.status == 0, "\(backup.stderr)")
        #expect(try runCapturing(clmnt, ["fleet", "verify", archive]).status == 0)
        let listing = try runCapturing("/usr/bin/env", ["LC_ALL=C", "tar", "--quoting-style=escape", "-tzf", archive])
        #expect(listing.stdout.contains("alpha/caf\\351.txt"), "\(listing.stdout)")
    }

    @Test("a default name taken by another fleet's backup at commit time: the next free name, not a failure")
    func nameTakenAtCommit() throws {
        let first = try FleetFixture(molts: ["alpha"])
        let second = try FleetFixture(molts: ["bravo"])
        defer { first.remove(); second.remove() }
        let out = first.root.path + "/shared"
        let slow = try StoppedRun(clmnt, ["fleet", "backup", "-d", first.baseDir, "--backup-dir", out, "--json"], at: "before-commit")
        defer { slow.kill() }
        let fast = try runCapturing(clmnt, ["fleet", "backup", "-d", second.baseDir, "--backup-dir", out, "--json"])
        #expect(fast.status == 0, "\(fast.stderr)")
        let taken = try #require(JSONSerialization.jsonObject(with: Data(fast.stdout.utf8)) as? [String: Any])["output"] as? String
        slow.resume()
        #expect(slow.wait() == 0, "\(slow.stderr)")
        let summary = try #require(JSONSerialization.jsonObject(with: Data(slow.stdout.utf8)) as? [String: Any])
        let output = try #require(summary["output"] as? String)
        #expect(output != taken)
        #expect((output as NSString).lastPathComponent.hasPrefix("fleet-") && FileManager.default.fileExists(atPath: output))
        #expect(files(in: out).count == 2 && partials(in: out).isEmpty, "\(files(in: out))")
        #expect(try runCapturing(clmnt, ["fleet", "verify", output]).status == 0)
        #expect(try runCapturing(clmnt, ["fleet", "verify", taken ?? ""]).status == 0)
    }

    /// The bytes of one entry of an archive, read with bsdtar.
    private func readEntry(_ archive: String, _ entry: String) throws -> Data {
        let result = try runCapturing("/usr/bin/env", ["bsdtar", "-xOf", archive, entry])
        return Data(result.stdout.utf8)
    }
}

/// The binary started with `CLMNT_TEST_STOP_AT=<point>`, stopped there (SIGSTOP) until `resume()`.
final class StoppedRun {
    let process = Process()
    private let outPath: String
    private let errPath: String

    init(_ program: String, _ arguments: [String], at point: String) throws {
        let directory = FileManager.default.temporaryDirectory.path
        let tag = UUID().uuidString
        outPath = directory + "/clmnt-stopped-\(tag).out"
        errPath = directory + "/clmnt-stopped-\(tag).err"
        FileManager.default.createFile(atPath: outPath, contents: nil)
        FileManager.default.createFile(atPath: errPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["CLMNT_TEST_STOP_AT"] = point
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle(forWritingAtPath: outPath)
        process.standardError = FileHandle(forWritingAtPath: errPath)
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while !isStopped, process.isRunning, Date() < deadline { usleep(10_000) }
        guard isStopped else { throw POSIXError(.ETIMEDOUT) }
    }

    /// State `T` in /proc/<pid>/stat.
    var isStopped: Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8),
              let close = stat.range(of: ") ", options: .backwards) else { return false }
        return stat[close.upperBound...].hasPrefix("T")
    }

    func resume() { Glibc.kill(process.processIdentifier, SIGCONT) }

    func kill() {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func wait() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }

    var stdout: String { (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "" }

    deinit {
        kill()
        unlink(outPath)
        unlink(errPath)
    }
}

/// A process holding a write lease on a file (python3's fcntl): any other
/// non-blocking open of the file fails with EWOULDBLOCK while it lives.
final class LeaseHolder {
    private let process = Process()

    init(path: String) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", """
            import fcntl, os, signal, sys, time
            signal.signal(signal.SIGIO, signal.SIG_IGN)
            fd = os.open(sys.argv[1], os.O_RDONLY)
            fcntl.fcntl(fd, 1024, fcntl.F_WRLCK)  # F_SETLEASE
            print("leased", flush=True)
            time.sleep(120)  # holds the lease until stop() kills it: the holder's life, not a wait
            """, path]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let line = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        guard line.hasPrefix("leased") else { throw POSIXError(.EAGAIN) }
    }

    func stop() {
        guard process.isRunning else { return }
        // SIGKILL: a SIGTERM ignored by the test runner stays ignored in its children.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}
