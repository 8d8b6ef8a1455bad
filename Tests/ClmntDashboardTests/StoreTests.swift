import ClmntTestSupport
import ClmntCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import ClmntDashboard

/// The store and the CLI find the backup dir the same way (`BackupLocation`).
@Suite struct StoreTests {
    /// Before: a store given no backup dir ignored `$CLMNT_BACKUP_DIR` and fell back to
    /// /var/backups/clmnt, where `fleet backup` and `list-backups` use `./backups`.
    @Test func theBackupDirIsResolvedAsTheCommandsResolveIt() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        var configuration = fleet.configuration()
        configuration.backupDir = nil
        configuration.environment = ["CLMNT_BACKUP_DIR": fleet.backupDir.path]
        #expect(await FleetStateStore(configuration: configuration).backups().backupDir == fleet.backupDir.path)
        configuration.environment = [:]
        let fallback = BackupLocation.resolve(flag: nil, environment: [:], baseDir: nil, crontab: nil).directory
        #expect(fallback == absolutePath("backups"))
        #expect(await FleetStateStore(configuration: configuration).backups().backupDir == fallback)
    }

    /// Before: every refresh (twice a second) re-parsed a changed history (up to 4 MiB), and
    /// every discovery re-read `.molt-info` and `openclaw.json`. Now, while a molt keeps
    /// touching them, they are parsed at most once per `minimumReparseInterval` (5 s).
    /// The store's reads go by the `now` each refresh is given (3 s of them here); discovery's by
    /// the machine's uptime, so the loop runs without pausing: well inside 5 s even on a loaded
    /// machine, where 30 pauses of 100 ms plus the work could pass the interval and see a parse.
    @Test func aMoltTouchingItsFilesIsParsedAtMostOncePerInterval() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        let alpha = fleet.molt("alpha")
        let files = [alpha.infoPath, alpha.openClawConfigPath, fleet.stateFile("alpha", "health-status.json"),
                     fleet.stateFile("alpha", "health-history.jsonl")]
        func touchAll(_ step: Int) {
            var times = [timespec(tv_sec: 1_700_000_000 + step, tv_nsec: 0), timespec(tv_sec: 1_700_000_000 + step, tv_nsec: 0)]
            for file in files { utimensat(AT_FDCWD, file, &times, AT_SYMLINK_NOFOLLOW) }
        }
        var limited = fleet.configuration()
        limited.limits.minimumReparseInterval = .seconds(5)
        var unlimited = fleet.configuration()
        unlimited.limits.minimumReparseInterval = .zero
        var reads: [Int] = []
        var discoveries: [Int] = []
        for configuration in [unlimited, limited] {
            let store = FleetStateStore(configuration: configuration)
            let start = Date()
            _ = await store.readFleet(now: start, agedHistories: 0)
            let before = (await store.stateReads, store.discovery.parses)
            // 3 s (by the store's clock) of a molt touching its files 10 times a second, the store refreshing as often.
            for step in 1...30 {
                touchAll(step)
                _ = await store.readFleet(now: start.addingTimeInterval(Double(step) / 10), agedHistories: 0)
            }
            reads.append(await store.stateReads - before.0)
            discoveries.append(store.discovery.parses - before.1)
        }
        #expect(reads[0] == 30 && discoveries[0] == 30, "without the limit: \(reads[0]) state reads, \(discoveries[0]) discoveries")
        #expect(reads[1] == 0 && discoveries[1] == 0, "with it: \(reads[1]) state reads, \(discoveries[1]) discoveries in 3 s")
    }

    /// The measurement: the real server while one molt touches its 1 MiB history, status,
    /// `.molt-info` and `openclaw.json` 100 times a second for 10 s. CPU time of the server
    /// (utime + stime), not wall time: a loaded machine does not change it much.
    @Test func aMoltTouchingItsFilesCostsTheServerLittleCPU() throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        let alpha = fleet.molt("alpha")
        let history = fleet.stateFile("alpha", "health-history.jsonl")
        var lines = ""
        let line = #"{"timestamp":"2026-11-29T10:00:00Z","status":"healthy","pid":4242,"port":19001,"http_status":200,"response_time_ms":12.5}"#
        while lines.utf8.count < 1 << 20 { lines += line + "\n" }
        try lines.write(toFile: history, atomically: false, encoding: .utf8)
        let files = [alpha.infoPath, alpha.openClawConfigPath, fleet.stateFile("alpha", "health-status.json"), history]

        let port = try #require(LoopbackClient.freePort())
        let server = Process()
        server.executableURL = URL(fileURLWithPath: clmntExecutable())
        server.arguments = ["dashboard", "serve", "-d", fleet.fixture.baseDir, "--backup-dir", fleet.backupDir.path,
                            "--no-auth", "--port", String(port)]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer { server.terminate(); server.waitUntilExit() }
        let ready = Date().addingTimeInterval(30)
        while (try? curlStatus(port: port, host: "127.0.0.1")) != 200 && Date() < ready { usleep(100_000) }
        // Its start-up work done (the answer above read the fleet): idle once half a second passes
        // with at most one clock tick (10 ms) of CPU.
        #expect(waitUntil(seconds: 60, interval: 0) {
            let before = cpuSeconds(server.processIdentifier)
            usleep(500_000)
            return cpuSeconds(server.processIdentifier) - before < 0.015
        }, "the server never went idle")

        // The quiet baseline printed beside the result: what 5 s of an idle server cost. A measurement
        // over a span of time, not a wait for something.
        let quietStart = cpuSeconds(server.processIdentifier)
        sleep(5)
        let quiet = cpuSeconds(server.processIdentifier) - quietStart
        let start = cpuSeconds(server.processIdentifier)
        // The load measured: 10 s of touches, 100 a second (the pause is the pace, not a wait).
        let until = Date().addingTimeInterval(10)
        var touches = 0
        while Date() < until {
            var now = [timespec(tv_sec: 0, tv_nsec: (1 << 30) - 1), timespec(tv_sec: 0, tv_nsec: (1 << 30) - 1)]  // UTIME_NOW
            for file in files { utimensat(AT_FDCWD, file, &now, AT_SYMLINK_NOFOLLOW) }
            touches += 1
            usleep(10_000)
        }
        let busy = cpuSeconds(server.processIdentifier) - start
        print("store: server CPU \(String(format: "%.2f", busy)) s in 10 s of \(touches) touches "
              + "(\(String(format: "%.2f", quiet)) s in 5 quiet seconds)")
        #expect(busy < 2, "the server used \(busy) s of CPU in 10 s")
    }
}


/// User plus system CPU time of a process, in seconds (/proc/<pid>/stat, fields 14 and 15).
func cpuSeconds(_ pid: Int32) -> Double {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")") else { return 0 }
    let fields = text[text.index(after: close)...].split(separator: " ")
    // After the command: state is field 3, so utime (14) and stime (15) are at offsets 11 and 12.
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}
