import ClmntTestSupport
import Foundation
import Testing
@testable import ClmntCore

/// Root and the molt's SQLite databases: snapshots run with the owner's
/// credentials, leave the home as it was, stay consistent while a real writer
/// (python3's sqlite3, run as the unprivileged user `nobody`, who owns the
/// fixture's homes) works, and survive an owner racing the real binary.
@Suite("fleet backup: SQLite as the database owner")
struct BackupPrivilegeTests {
    let clmnt = clmntExecutable()
    static let owner = "65534"  // nobody:nogroup, the owner of every FleetFixture home

    // MARK: - the home is left as it was

    @Test("a backup leaves a home with WAL-mode databases exactly as it was (names, owners, modes, sizes, mtimes)")
    func walDatabasesLeaveNoTrace() throws {
        let fixture = try Self.fleet()
        defer { fixture.remove() }
        let data = fixture.home("alpha") + "/data"
        try Self.asOwner("""
            import os, sqlite3, sys
            os.makedirs(sys.argv[1], exist_ok=True)
            clean = sqlite3.connect(sys.argv[1] + '/clean.db')
            clean.execute('pragma journal_mode=wal')
            clean.execute('create table t (x)')
            clean.executemany('insert into t values (?)', [(i,) for i in range(40)])
            clean.commit(); clean.close()            # the last connection: -wal and -shm are removed
            crashed = sqlite3.connect(sys.argv[1] + '/crashed.db')
            crashed.execute('pragma journal_mode=wal'); crashed.execute('pragma wal_autocheckpoint=0')
            crashed.execute('create table t (x)')
            crashed.executemany('insert into t values (?)', [(i,) for i in range(50)])
            crashed.commit()
            os._exit(0)                              # a gateway killed: its rows live only in -wal
            """, [data])
        #expect(FileManager.default.fileExists(atPath: data + "/crashed.db-wal"))
        #expect(!FileManager.default.fileExists(atPath: data + "/clean.db-wal"))
        // Nothing else to warn about: a clean run must verify although snapshots differ in size from their files.
        for name in ["fake.sqlite", "shadow-link", "latest.tar.gz"] { unlink(fixture.home("alpha") + "/.openclaw/workspace/" + name) }
        let before = try Self.listing(fixture.home("alpha"))

        let archive = fixture.root.path + "/fleet.tar"
        let result = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "--compress", "none", "-o", archive, "-q", "--verify"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.isEmpty, "\(result.stderr)")
        #expect(try Self.listing(fixture.home("alpha")) == before, "the backup changed the home")

        let extracted = try Self.extract(archive, into: fixture.root.path + "/x")
        #expect(try Self.query(extracted + "/alpha/data/clean.db", "select count(*) from t") == "40")
        #expect(try Self.query(extracted + "/alpha/data/crashed.db", "select count(*) from t") == "50", "the -wal's rows are in the snapshot")
        #expect(try Self.query(extracted + "/alpha/data/crashed.db", "pragma integrity_check") == "ok")
        let paths = try entryPaths(archive)
        #expect(!paths.contains { $0.hasPrefix("alpha/data/") && ($0.hasSuffix("-wal") || $0.hasSuffix("-shm")) })
    }

    // MARK: - live writers

    @Test("a writer holding a write transaction open: the snapshot holds the committed rows, at once",
          arguments: ["wal", "delete"])
    func openWriteTransaction(journalMode: String) throws {
        let fixture = try Self.fleet()
        defer { fixture.remove() }
        let database = fixture.home("alpha") + "/.openclaw/state/live.db"
        let writer = try BackgroundProcess.asOwner("""
            import sqlite3, sys, time
            db = sqlite3.connect(sys.argv[1], isolation_level=None)
            db.execute('pragma journal_mode=' + sys.argv[2])
            db.execute('create table t (x)')
            db.execute('begin'); db.executemany('insert into t values (?)', [(i,) for i in range(100)]); db.execute('commit')
            db.execute('begin immediate')
            db.executemany('insert into t values (?)', [(i,) for i in range(1000)])
            print('ready', flush=True)
            time.sleep(60)  # keeps the transaction open for the whole test: the writer's life, not a wait
            """, [database, journalMode])
        defer { writer.stop() }
        try writer.waitForReady()

        let archive = fixture.root.path + "/fleet.tar"
        let started = Date()
        let result = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "--compress", "none", "-o", archive])
        #expect(result.status == 0, "\(result.stderr)")
        // A reader held up by the writer would wait out the whole busy timeout (the writer holds on for
        // 60 s) and then leave live.db out: the two checks around this one. This one says it did not
        // even wait for most of it, a margin no load on the machine makes up.
        let busyTimeout = BackupOptions(baseDir: fixture.baseDir).sqliteBusyTimeout.components.seconds
        #expect(Date().timeIntervalSince(started) < Double(busyTimeout), "a reader does not wait for a RESERVED lock or a WAL writer")
        #expect(!result.stderr.contains("live.db"), "\(result.stderr)")
        let extracted = try Self.extract(archive, into: fixture.root.path + "/x")
        let copy = extracted + "/alpha/.openclaw/state/live.db"
        #expect(try Self.query(copy, "select count(*) from t") == "100", "only committed rows")
        #expect(try Self.query(copy, "pragma integrity_check") == "ok")
    }

    @Test("a WAL-mode database whose gateway keeps writing is snapshotted consistently, and nothing root-owned appears")
    func busyGateway() throws {
        let fixture = try Self.fleet()
        defer { fixture.remove() }
        let home = fixture.home("alpha")
        let database = home + "/.openclaw/state/ledger.db"
        // Ten accounts of 100; every transaction moves money between two and logs it: the sum stays 1000.
        let writer = try BackgroundProcess.asOwner("""
            import random, sqlite3, sys, time
            db = sqlite3.connect(sys.argv[1], isolation_level=None)
            db.execute('pragma journal_mode=wal')
            db.execute('create table account (id integer primary key, balance integer)')
            db.execute('create table log (id integer primary key, amount integer, note text)')
            db.executemany('insert into account values (?, 100)', [(i,) for i in range(10)])
            end = time.time() + 60
            ready = False
            while time.time() < end:
                a, b, amount = random.randrange(10), random.randrange(10), random.randrange(1, 50)
                db.execute('begin immediate')
                db.execute('update account set balance = balance - ? where id = ?', (amount, a))
                db.execute('update account set balance = balance + ? where id = ?', (amount, b))
                db.execute('insert into log (amount, note) values (?, ?)', (amount, 'x' * random.randrange(2000)))
                db.execute('commit')
                if not ready:                        # writing: a transfer is committed, more are coming
                    print('ready', flush=True)
                    ready = True
            """, [database])
        defer { writer.stop() }
        try writer.waitForReady()
        let rootOwnedBefore = try Self.rootOwned(home)

        for round in 0..<3 {
            let archive = fixture.root.path + "/fleet-\(round).tar"
            let result = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "--compress", "none", "-o", archive])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(!result.stderr.contains("ledger.db"), "\(result.stderr)")
            let extracted = try Self.extract(archive, into: fixture.root.path + "/x\(round)")
            let copy = extracted + "/alpha/.openclaw/state/ledger.db"
            #expect(try Self.query(copy, "pragma integrity_check") == "ok")
            #expect(try Self.query(copy, "select sum(balance) from account") == "1000")
            #expect(Int(try Self.query(copy, "select count(*) from log")) ?? 0 > 0)
            #expect(try Self.rootOwned(home) == rootOwnedBefore, "root created or chowned files in the home")
        }
        #expect(writer.isRunning, "the writer was writing all along")
    }

    @Test("a database that stays locked is left out and named; one unlocked within the retry time is snapshotted")
    func lockedDatabase() throws {
        let fixture = try Self.fleet()
        defer { fixture.remove() }
        let state = fixture.home("alpha") + "/.openclaw/state"
        // An exclusive lock in rollback mode: no reader gets in until it ends.
        let script = """
            import sqlite3, sys, time
            db = sqlite3.connect(sys.argv[1], isolation_level=None)
            db.execute('create table t (x)')
            db.execute('insert into t values (1)')
            db.execute('begin exclusive')
            db.execute('insert into t values (2)')
            print('ready', flush=True)
            time.sleep(float(sys.argv[2]))   # how long the lock is held: the input under test, not a wait
            db.execute('commit')
            db.close()
            time.sleep(60)                   # stays until stop(): the writer's life, not a wait
            """
        let forever = try BackgroundProcess.asOwner(script, [state + "/locked.db", "60"])
        defer { forever.stop() }
        let briefly = try BackgroundProcess.asOwner(script, [state + "/briefly.db", "1.5"])
        defer { briefly.stop() }
        try forever.waitForReady()
        try briefly.waitForReady()

        var options = BackupOptions(baseDir: fixture.baseDir)
        options.output = fixture.root.path + "/fleet.tar"
        options.compression = .none
        options.sqliteBusyTimeout = .seconds(4)
        let summary = try FleetBackup(options: options).run()
        let missed = summary.warnings.filter { $0.contains("locked.db:") }
        #expect(missed.count == 1 && missed[0].contains("NOT ARCHIVED") && missed[0].contains("locked"), "\(summary.warnings)")
        #expect(summary.missed.map(\.problem) == [.locked], "a missed file: the command exits 3")
        #expect(summary.missed.first?.path.hasSuffix("/alpha/.openclaw/state/locked.db") == true)
        let paths = try entryPaths(summary.output)
        #expect(!paths.contains("alpha/.openclaw/state/locked.db"))
        #expect(paths.contains("alpha/.openclaw/state/briefly.db"))
        #expect(!summary.warnings.contains { $0.contains("briefly.db:") }, "\(summary.warnings)")

        let extracted = try Self.extract(summary.output, into: fixture.root.path + "/x")
        #expect(try Self.query(extracted + "/alpha/.openclaw/state/briefly.db", "select count(*) from t") == "2",
                "snapshotted after the writer committed")
        let report = try String(contentsOfFile: extracted + "/backup-report.json", encoding: .utf8)
        #expect(report.contains("locked.db: NOT ARCHIVED"), "the report names the missed database")
        #expect(report.contains("\"problem\": \"locked\""), "\(report)")
    }

    // MARK: - an owner racing root

    @Test("an owner who swaps the database's directory for a link while root waits on its lock gains nothing")
    func swapWhileWaitingOnLock() throws {
        let fixture = try Self.fleet()
        defer { fixture.remove() }
        let home = fixture.home("alpha")
        // A root-owned directory outside the home, holding a root-owned WAL database under the same name.
        let target = fixture.root.path + "/root-only"
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        try run("/usr/bin/python3", ["-c", """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1]); db.execute('pragma journal_mode=wal')
            db.execute('create table secret (x)'); db.execute("insert into secret values ('root only')"); db.commit(); db.close()
            """, target + "/app.db"])
        let targetBefore = try Self.listing(target)

        let attacker = try BackgroundProcess.asOwner("""
            import os, sqlite3, sys, time
            home, target = sys.argv[1], sys.argv[2]
            os.makedirs(home + '/data')
            db = sqlite3.connect(home + '/data/app.db', isolation_level=None)
            db.execute('pragma journal_mode=wal')
            db.execute('create table t (x)'); db.execute('insert into t values (1)')
            db.execute('pragma locking_mode=exclusive'); db.execute('begin exclusive'); db.execute('insert into t values (2)')
            print('ready', flush=True)
            sys.stdin.readline()                     # the test says root is waiting on the lock
            os.rename(home + '/data', home + '/data.real')
            os.symlink(target, home + '/data')
            db.execute('commit'); db.close()         # let root go on
            reader = sqlite3.connect(home + '/data.real/app.db', isolation_level=None)
            reader.execute('begin'); reader.execute('select count(*) from t').fetchone()
            time.sleep(60)                           # and keep a read lock: no checkpoint can clean up (until stop())
            """, [home, target])
        defer { attacker.stop() }
        try attacker.waitForReady()

        let archive = fixture.root.path + "/fleet.tar"
        let backup = try BackgroundProcess(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "--compress", "none", "-o", archive])
        defer { backup.stop() }
        // Root waits on the lock once the thread reading the database with its owner's credentials
        // sleeps between tries (SQLite's busy handler and the snapshot's retries do; nothing else the
        // backup does as the owner sleeps).
        let waitingOnTheLock = waitUntil(seconds: 60) {
            !backup.isRunning || threads(of: backup.pid).contains {
                $0.euid == uid_t(Self.owner) && isInSleepCall(pid: backup.pid, tid: $0.tid)
            }
        }
        #expect(waitingOnTheLock && backup.isRunning, "root never waited on the database's lock")
        attacker.send("go")
        let result = backup.finish()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try Self.listing(target) == targetBefore, "root created or changed files outside the home")
        #expect(try Self.rootOwned(home) == [".openclaw/gateway.log.1"], "root created files in the home")
        let archived = try Data(contentsOf: URL(fileURLWithPath: archive))
        #expect(archived.range(of: Data("root only".utf8)) == nil, "the root-only database leaked into the archive")
        let extracted = try Self.extract(archive, into: fixture.root.path + "/x")
        #expect(try Self.query(extracted + "/alpha/data/app.db", "select count(*) from t") == "2")
    }

    // MARK: - helpers

    /// A one-molt fleet whose base dir the molt user can reach, as on a real host.
    static func fleet() throws -> FleetFixture {
        let fixture = try FleetFixture(molts: ["alpha"])
        chmod(fixture.root.path, 0o711)
        chmod(fixture.baseDir, 0o711)
        return fixture
    }

    /// `find`'s view of every entry below `directory`: name, type, owner, group and mode, plus size
    /// and mtime for files. Not for directories (their mtime changes whenever SQLite creates and
    /// removes a -wal, as for any reader) nor for `-shm` files (the first reader to map one resets
    /// and rebuilds it, the gateway's readers too).
    static func listing(_ directory: String) throws -> [String] {
        try run("/usr/bin/find", [directory, "-mindepth", "1", "-printf", "%P\\t%y\\t%u\\t%g\\t%m\\t%s\\t%T@\\n"])
            .split(separator: "\n").map { line in
                let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
                let isFile = fields.count == 7 && fields[1] == "f"
                return (isFile && !fields[0].hasSuffix("-shm") ? fields : Array(fields.prefix(5))).joined(separator: "\t")
            }.sorted()
    }

    /// Paths below `directory` owned by root.
    static func rootOwned(_ directory: String) throws -> [String] {
        try run("/usr/bin/find", [directory, "-mindepth", "1", "-uid", "0", "-printf", "%P\\n"])
            .split(separator: "\n").map(String.init).sorted()
    }

    static func extract(_ archive: String, into directory: String) throws -> String {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try run("/bin/tar", ["-xf", archive, "-C", directory])
        return directory
    }

    static func query(_ database: String, _ sql: String) throws -> String {
        try run("/usr/bin/python3", ["-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])",
                                     database, sql]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs a python3 script as the homes' owner and waits for it.
    static func asOwner(_ script: String, _ arguments: [String]) throws {
        try run("/usr/bin/setpriv", ["--reuid=\(owner)", "--regid=\(owner)", "--clear-groups", "/usr/bin/python3", "-c", script] + arguments)
    }
}

/// A python3 script running as the homes' owner beside the test, printing `ready` when set up
/// (or any program: `finish()` then waits for it and gives what it printed).
final class BackgroundProcess {
    private let process = Process()
    private let output = Pipe()
    private let errors = Pipe()
    private let input = Pipe()

    static func asOwner(_ script: String, _ arguments: [String]) throws -> BackgroundProcess {
        try BackgroundProcess("/usr/bin/setpriv", ["--reuid=\(BackupPrivilegeTests.owner)", "--regid=\(BackupPrivilegeTests.owner)",
                                                   "--clear-groups", "/usr/bin/python3", "-c", script] + arguments)
    }

    init(_ executable: String, _ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = input
        try process.run()
    }

    var isRunning: Bool { process.isRunning }
    var pid: pid_t { process.processIdentifier }

    /// Writes `line` to its standard input.
    func send(_ line: String) {
        input.fileHandleForWriting.write(Data((line + "\n").utf8))
    }

    /// Waits for it to end; its status and everything it printed.
    func finish() -> (status: Int32, stdout: String, stderr: String) {
        try? input.fileHandleForWriting.close()
        // Both pipes drained at once, so neither fills up while the other is read.
        let errorData = PipeDrain(errors.fileHandleForReading)
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        let stderr = errorData.wait()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: outputData, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    /// Waits for the `ready` line; throws with the script's stderr if it ends first.
    func waitForReady(seconds: Double = 20) throws {
        let handle = output.fileHandleForReading
        var seen = Data()
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let chunk = handle.availableData
            if chunk.isEmpty { break }  // end of file: the script ended
            seen += chunk
            if String(decoding: seen, as: UTF8.self).contains("ready") { return }
        }
        stop()
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        throw TestFailure("the background script never got ready: \(stderr)")
    }

    /// SIGKILL: the test process ignores SIGTERM (clmnt's signal cleanup), and children inherit that.
    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// Reads a pipe to its end on a thread of its own.
final class PipeDrain: @unchecked Sendable {  // `data` is written before `done` is signalled, read after
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            data = handle.readDataToEndOfFile()
            done.signal()
        }
    }

    func wait() -> Data {
        done.wait()
        return data
    }
}

@Suite("fleet discovery reads a molt's files without following its links")
struct FleetDiscoveryPrivilegeTests {
    let clmnt = clmntExecutable()

    @Test("a FIFO as openclaw.json cannot hang a backup; a .molt-info linked to a root-only file is not read")
    func plantedFifoAndLink() throws {
        let fixture = try FleetFixture(molts: ["alpha", "bravo-2"])
        defer { fixture.remove() }
        // alpha: no port in .molt-info, so discovery looks into openclaw.json, now a FIFO nobody writes.
        let alpha = fixture.home("alpha")
        try Data("MOLT_NAME=alpha\n".utf8).write(to: URL(fileURLWithPath: alpha + "/.molt-info"))
        unlink(alpha + "/.openclaw/openclaw.json")
        #expect(mkfifo(alpha + "/.openclaw/openclaw.json", 0o644) == 0)
        // bravo-2: .molt-info is a link to a root-only file whose MOLT_PORT must not end up in the manifest.
        let secret = fixture.root.path + "/root-only.env"
        try Data("MOLT_PORT=4242\nCREATED=1999-01-01T00:00:00Z\n".utf8).write(to: URL(fileURLWithPath: secret))
        chmod(secret, 0o600)
        unlink(fixture.home("bravo-2") + "/.molt-info")
        symlink(secret, fixture.home("bravo-2") + "/.molt-info")

        let archive = fixture.root.path + "/fleet.tar"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: clmnt)
        process.arguments = ["fleet", "backup", "-d", fixture.baseDir, "--compress", "none", "-o", archive, "-q"]
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        let hung = process.isRunning
        if hung { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        #expect(!hung, "the backup blocked opening a FIFO in a molt's home")
        let manifest = try BackupCatalog.readManifest(path: archive)
        #expect(manifest.molts.map(\.name) == ["alpha", "bravo-2"], "both are still molts, and backed up")
        let bravo = try #require(manifest.molts.first { $0.name == "bravo-2" })
        #expect(bravo.port != 4242 && bravo.created != "1999-01-01T00:00:00Z", "read through the link: \(bravo)")
    }
}
