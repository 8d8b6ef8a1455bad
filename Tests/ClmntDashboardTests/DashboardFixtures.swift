import ClmntTestSupport
import ClmntCore
import ClmntHealth
import Foundation
import HummingbirdTesting
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import ClmntDashboard

/// A fleet whose state files were written by the health module itself:
/// alpha healthy (60 checks), bravo failing (alert open), charlie stopped, delta never checked.
struct DashboardFleet: @unchecked Sendable {  // immutable after init; FleetFixture is not marked Sendable
    let fixture: FleetFixture
    let backupDir: TemporaryDirectory
    let fleet: ClmntCore.Fleet
    let now = Date()

    init() throws {
        fixture = try FleetFixture(molts: ["alpha", "bravo", "charlie", "delta"])
        backupDir = try TemporaryDirectory(prefix: "clmnt-dash-backups")
        fleet = try ClmntCore.Fleet.discover(baseDir: fixture.baseDir)
        let alpha = files("alpha")
        for index in 0..<60 {
            try alpha.record(HealthRecord(timestamp: now.addingTimeInterval(Double(index - 60) * 300 + 120), status: .healthy,
                                          pid: 4242, port: 19001, httpStatus: 200, responseTimeMs: 10 + Double(index % 7)))
        }
        let bravo = files("bravo")
        try bravo.record(HealthRecord(timestamp: now.addingTimeInterval(-900), status: .healthy, pid: 77, port: 19021,
                                      httpStatus: 200, responseTimeMs: 8.5))
        for minutes in [10.0, 5.0, 3.0] {
            try bravo.record(HealthRecord(timestamp: now.addingTimeInterval(-60 * minutes), status: .unhealthy, pid: 77, port: 19021,
                                          httpStatus: 503, responseTimeMs: 120.25, detail: "GET /health answered 503"))
        }
        var watch = WatchState()
        watch.timestamp = now.addingTimeInterval(-180)
        watch.status = .unhealthy
        watch.consecutiveFailures = 3
        watch.lastSuccess = now.addingTimeInterval(-900)
        watch.alertSent = true
        watch.threshold = 2
        try bravo.writeWatchState(watch)
        try files("charlie").record(HealthRecord(timestamp: now.addingTimeInterval(-240), status: .stopped, port: 19041,
                                                 detail: "no gateway process"))
    }

    func molt(_ name: String) -> ClmntCore.Molt { fleet.molts.first { $0.name == name }! }
    func files(_ name: String) -> HealthStateFiles { HealthStateFiles(directory: StateDirectory(molt: molt(name))) }
    func stateFile(_ name: String, _ file: String) -> String { molt(name).stateDir + "/" + file }

    /// A real archive of the fleet in the backup dir.
    func backUp(name: String = "fleet-2026-11-29.tar.gz", age: TimeInterval = 7200) throws -> BackupSummary {
        var options = BackupOptions(baseDir: fixture.baseDir)
        options.output = backupDir.path + "/" + name
        return try FleetBackup(options: options).run(now: now.addingTimeInterval(-age))
    }

    /// A newer archive marked as the backup helper marks one that missed files.
    func backUpIncomplete() throws -> BackupSummary {
        let summary = try backUp(name: "fleet-2026-11-29-120000.tar.gz", age: 3600)
        try run("/usr/bin/setfattr", ["-n", BackupStatusMark.attributeName, "-v",
                                      #"{"complete":false,"missed":3,"molts":{"alpha":3}}"#, summary.output])
        return summary
    }

    /// Root-only data outside every home for a molt user to point a symlink at: `<path>` holds a
    /// status record, `<path>l` a history line; both carry the marker `ROOT-ONLY-SECRET`.
    func rootOnlySecret() throws -> String {
        let secret = backupDir.path + "/secret.json"
        try #"{"timestamp":"2026-11-29T10:00:00Z","status":"healthy","pid":1,"port":1,"http_status":200,"response_time_ms":1,"detail":"ROOT-ONLY-SECRET"}"#
            .write(toFile: secret, atomically: true, encoding: .utf8)
        try "{\"timestamp\":\"2026-11-29T10:00:00Z\",\"status\":\"healthy\",\"detail\":\"ROOT-ONLY-SECRET\"}\n".write(toFile: secret + "l", atomically: true, encoding: .utf8)
        return secret
    }

    /// Without a token: `--no-auth` (on loopback), as the tests of everything but access want.
    /// Files are re-read on every change (no minimum interval), as the freshness tests want.
    func configuration(host: String = "127.0.0.1", token: String? = nil) -> DashboardConfiguration {
        var limits = DashboardLimits.default
        limits.minimumReparseInterval = .zero
        return DashboardConfiguration(baseDir: fixture.baseDir, backupDir: backupDir.path, host: host, port: 0, token: token,
                                      noAuth: token == nil && DashboardConfiguration.isLoopback(host),
                                      refreshInterval: .milliseconds(50), crontabFile: backupDir.path + "/no-crontab",
                                      limits: limits)
    }

    func remove() {
        fixture.remove()
        backupDir.remove()
    }
}

/// The old client's types (`.dashboard/client/src/types/index.ts`), decoded strictly:
/// a string where a number is expected (or the reverse) fails the test.
struct MoltStatus: Decodable { let name, port, home, status, pid, created, docker: String }
struct MoltSummary: Decodable { let total, running, stopped: Int }
struct MoltsResponse: Decodable { let molts: [MoltStatus]; let summary: MoltSummary; let error: String? }
struct HealthStatusBody: Decodable {
    let status: String
    let timestamp: String
    let pid, port, http_status: Int
    let response_time_ms: Double
}
struct HealthHistoryEntry: Decodable { let timestamp, status: String; let response_time_ms: Double; let http_status: Int }
struct HealthHistoryBody: Decodable { let entries: [HealthHistoryEntry]; let count: Int; let uptime_percent: Double }
struct HealthWatchStateBody: Decodable {
    let consecutive_failures: Int
    let last_success: String?
    let alert_sent: Bool
    let threshold: Int
}

func decode<T: Decodable>(_ type: T.Type, _ response: TestResponse) throws -> T {
    try JSONDecoder().decode(type, from: Data(buffer: response.body))
}

/// The body as a dictionary, to check that keys the old client reads are present (also when null).
func object(_ response: TestResponse) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
}

func text(_ response: TestResponse) -> String { String(buffer: response.body) }

/// Writes `size` bytes of `byte` into a new file (sparse-free, real bytes).
func writeBigFile(_ path: String, size: Int, byte: UInt8 = UInt8(ascii: "{")) throws {
    let chunk = Data(repeating: byte, count: 1 << 20)
    FileManager.default.createFile(atPath: path, contents: nil)
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    for _ in 0..<(size >> 20) { handle.write(chunk) }
    try handle.close()
}

/// Counts the reads of some files as the kernel reports them (inotify's IN_ACCESS: every successful
/// `read`/`pread`, whatever the mount's atime rules): whether a file was read at all, not how long that took.
final class ReadWatcher: @unchecked Sendable {  // used from one task at a time
    private let fd: Int32
    private var watches: [Int32: String] = [:]
    private var counts: [String: Int] = [:]

    init(_ paths: [String]) throws {
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        for path in paths {
            let watch = inotify_add_watch(fd, path, UInt32(IN_ACCESS))
            guard watch >= 0 else { close(fd); throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            watches[watch] = path
            counts[path] = 0
        }
    }

    deinit { close(fd) }

    /// The reads of `path` reported so far.
    func reads(of path: String) -> Int {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let count = read(fd, &buffer, buffer.count)
            guard count > 0 else { break }
            var offset = 0
            while offset + 16 <= count {
                let (watch, mask, length) = buffer.withUnsafeBytes { raw in
                    (raw.loadUnaligned(fromByteOffset: offset, as: Int32.self),
                     raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self),
                     raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                }
                if mask & UInt32(IN_ACCESS) != 0, let watched = watches[watch] { counts[watched, default: 0] += 1 }
                offset += 16 + Int(length)
            }
        }
        return counts[path] ?? 0
    }
}
