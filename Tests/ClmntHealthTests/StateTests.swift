import ClmntTestSupport
import ClmntCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import ClmntHealth

/// The state files: typed writes, the bash tool's loose format, corruption, ownership, rotation.
@Suite struct StateTests {
    func jsonObject(_ text: String?) throws -> [String: Any] {
        let data = try #require(text.map { Data($0.utf8) })
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    @Test func statusFileHasNumbersAndRealNulls() throws {
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        try fleet.addMolt("alpha", port: 19001)
        let files = HealthStateFiles(directory: StateDirectory(molt: try fleet.molt("alpha")))
        let now = Date(timeIntervalSince1970: 1_795_000_000)
        try files.record(HealthRecord(timestamp: now, status: .dead, pid: 4242, port: 19001, detail: "PID 4242 is gone"))
        let object = try jsonObject(fleet.read("alpha", "health-status.json"))
        #expect(object["timestamp"] as? String == Timestamp.format(now))
        #expect(object["status"] as? String == "dead")
        #expect(object["pid"] as? Int == 4242)
        #expect(object["port"] as? Int == 19001)
        #expect(object["http_status"] is NSNull)
        #expect(object["response_time_ms"] is NSNull)
        #expect(!(fleet.read("alpha", "health-status.json") ?? "").contains("\"null\""))
        // One history line per check, appended.
        try files.record(HealthRecord(timestamp: now.addingTimeInterval(300), status: .healthy, pid: 4243, port: 19001,
                                      httpStatus: 200, responseTimeMs: 3.5))
        let lines = try #require(fleet.read("alpha", "health-history.jsonl")).split(separator: "\n")
        #expect(lines.count == 2)
        let second = try jsonObject(String(lines[1]))
        #expect(second["http_status"] as? Int == 200)
        #expect(second["response_time_ms"] as? Double == 3.5)
        // No temp files left behind by the atomic writes.
        let names = try FileManager.default.contentsOfDirectory(atPath: fleet.base + "/alpha/.molt-state")
        #expect(Set(names) == ["health-status.json", "health-history.jsonl", ".health.lock"])
    }

    /// The bash tool wrote numbers as strings and missing values as "null".
    @Test func readsTheBashToolsFormatAndConvertsOnWrite() throws {
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        try fleet.addMolt("alpha", port: 19001)
        let state = fleet.base + "/alpha/.molt-state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try """
        {
          "timestamp": "2026-11-27T01:00:00Z",
          "status": "dead",
          "pid": "58148",
          "port": "19001",
          "http_status": "000",
          "response_time_ms": "null"
        }
        """.write(toFile: state + "/health-status.json", atomically: true, encoding: .utf8)
        try """
        {
          "timestamp": "2026-11-27T01:00:00Z",
          "status": "dead",
          "consecutive_failures": "3",
          "last_success": "2026-11-27T00:45:00Z",
          "alert_sent": 1,
          "threshold": 2
        }
        """.write(toFile: state + "/health-watch-state.json", atomically: true, encoding: .utf8)
        let files = HealthStateFiles(directory: StateDirectory(molt: try fleet.molt("alpha")))
        var warnings: [String] = []
        let status = try #require(files.readStatus(warnings: &warnings))
        #expect(status.status == .dead)
        #expect(status.pid == 58148)
        #expect(status.port == 19001)
        #expect(status.httpStatus == nil)
        #expect(status.responseTimeMs == nil)
        let watch = try #require(files.readWatchState(warnings: &warnings))
        #expect(watch.consecutiveFailures == 3)
        #expect(watch.alertSent)
        #expect(watch.threshold == 2)
        #expect(watch.lastSuccess == Timestamp.parse("2026-11-27T00:45:00Z"))
        #expect(warnings.isEmpty)

        try files.writeStatus(status)
        let rewritten = try jsonObject(fleet.read("alpha", "health-status.json"))
        #expect(rewritten["pid"] as? Int == 58148)
        #expect(rewritten["port"] is NSNumber)
        #expect(rewritten["http_status"] is NSNull)
        try files.writeWatchState(watch)
        let watchObject = try jsonObject(fleet.read("alpha", "health-watch-state.json"))
        #expect(watchObject["alert_sent"] as? Bool == true)
        #expect(watchObject["consecutive_failures"] as? Int == 3)
    }

    /// The state make-fleet writes (the bash tool's format) reads without a warning.
    @Test func readsTheStateMakeFleetWrites() throws {
        let tool = try #require(makeFleetPath(), "make-fleet not found beside the repository (../shared/tools/make-fleet)")
        let dir = try TemporaryDirectory(prefix: "clmnt-mf")
        defer { dir.remove() }
        try ProgramRunner.run("/usr/bin/python3", [tool, "--out", dir.path + "/fleet", "--scale", "small", "--molts", "1"], timeout: 120)
        let fleet = try Fleet.discover(baseDir: dir.path + "/fleet")
        let molt = try #require(fleet.molts.first)
        let status = HealthMonitor.status(of: molt)
        #expect(status.warnings.isEmpty)
        #expect(status.last?.status == .healthy)
        #expect(status.last?.pid != nil)
        #expect(status.last?.httpStatus == 200)
        #expect(status.watch?.threshold == 2)
        #expect(status.watch?.alertSent == false)
        let history = HealthMonitor.history(of: molt, now: Timestamp.parse("2026-12-01T00:00:00Z")!)
        #expect(history.warnings.isEmpty)
        let all = try #require(history.windows.last)
        #expect(all.checks > 1000)
        #expect(all.healthy < all.checks, "make-fleet writes a few outages")
        #expect(!history.incidents.isEmpty)
        #expect(history.incidents.allSatisfy { $0.end != nil && $0.duration > 0 })
    }

    @Test func corruptStateFilesWarnAndReset() throws {
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        try fleet.addMolt("alpha", port: 19001)
        let state = fleet.base + "/alpha/.molt-state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try "{\"timestamp\": \"2026-11-27T01:00:00Z\", \"stat".write(toFile: state + "/health-status.json", atomically: true, encoding: .utf8)
        try "".write(toFile: state + "/health-watch-state.json", atomically: true, encoding: .utf8)
        let files = HealthStateFiles(directory: StateDirectory(molt: try fleet.molt("alpha")))
        var warnings: [String] = []
        #expect(files.readStatus(warnings: &warnings) == nil)
        #expect(files.readWatchState(warnings: &warnings) == nil)
        #expect(warnings.count == 2)
        #expect(warnings[0].contains("health-status.json"))
        #expect(warnings[1].contains("empty"))

        // health-watch starts from a clean state and rewrites both files.
        let report = HealthWatch.run(molt: try fleet.molt("alpha"), fleet: try fleet.fleet(),
                                     options: WatchOptions(check: CheckOptions(timeout: 0.5, finder: GatewayProcessFinder(tempDirs: [fleet.base]))))
        // The unusable watch state is rebuilt from the history (empty here: a clean state).
        #expect(report.warnings.count == 2)
        #expect(report.warnings.last?.contains("alert state rebuilt from the history: 0 failed checks") == true)
        #expect(report.errors.isEmpty)
        #expect(report.state.consecutiveFailures == 1)
        var after: [String] = []
        #expect(files.readStatus(warnings: &after)?.status == .stopped)
        #expect(files.readWatchState(warnings: &after)?.consecutiveFailures == 1)
        #expect(after.isEmpty)
    }

    @Test func corruptHistoryLinesAreSkipped() throws {
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        try fleet.addMolt("alpha", port: 19001)
        let state = fleet.base + "/alpha/.molt-state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try """
        {"timestamp":"2026-11-27T01:00:00Z","status":"healthy","http_status":"200","response_time_ms":12,"pid":"58148"}
        garbage that is not json
        {"timestamp":"not a time","status":"healthy"}

        {"timestamp":"2026-11-27T01:05:00Z","status":"dead","http_status":"000","response_time_ms":null,"pid":"58148"}
        {"timestamp":"2026-11-27T01:10:00Z","status":"heal
        """.write(toFile: state + "/health-history.jsonl", atomically: true, encoding: .utf8)
        let loaded = HealthStateFiles(directory: StateDirectory(molt: try fleet.molt("alpha"))).history.load()
        #expect(loaded.records.map(\.status) == [.healthy, .dead])
        #expect(loaded.warnings.count == 1)
        #expect(loaded.warnings.first?.contains("skipped 3 corrupt lines") == true)
        #expect(loaded.warnings.first?.contains("line 2") == true)
    }

    /// Written as root, the files belong to the molt's user.
    @Test func stateFilesBelongToTheMoltUser() throws {
        let user = try TestUser()
        defer { user.remove() }
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        let home = try fleet.addMolt(user.name, port: 19001)
        chown(home, user.uid, user.gid)
        let files = HealthStateFiles(directory: StateDirectory(molt: try fleet.molt(user.name)))
        try files.record(HealthRecord(timestamp: Date(), status: .stopped, port: 19001))
        try files.writeWatchState(WatchState())
        for name in ["", "/health-status.json", "/health-history.jsonl", "/health-watch-state.json"] {
            var info = stat()
            #expect(stat(home + "/.molt-state" + name, &info) == 0)
            #expect(info.st_uid == user.uid, "owner of .molt-state\(name)")
            #expect(info.st_gid == user.gid)
        }
    }

    @Test func historyRotatesAndKeepsAllTimeCounts() throws {
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        try fleet.addMolt("alpha", port: 19001)
        let policy = HistoryPolicy(maxBytes: 4096)
        let files = HealthStateFiles(directory: StateDirectory(molt: try fleet.molt("alpha")), historyPolicy: policy)
        let start = Date(timeIntervalSince1970: 1_790_000_000)
        var healthyWritten = 0
        for index in 0..<200 {
            let healthy = index % 10 != 0
            if healthy { healthyWritten += 1 }
            try files.record(HealthRecord(timestamp: start.addingTimeInterval(Double(index) * 300), status: healthy ? .healthy : .unhealthy,
                                          pid: 100, port: 19001, httpStatus: healthy ? 200 : 500, responseTimeMs: 10))
        }
        let live = try #require(FileManager.default.attributesOfItem(atPath: files.history.path)[.size] as? Int)
        let rotated = try #require(FileManager.default.attributesOfItem(atPath: files.history.rotatedPath)[.size] as? Int)
        // Neither file passes the cap; the rotated one holds all but the last line's worth of it.
        #expect(live <= policy.maxBytes)
        #expect(rotated <= policy.maxBytes && rotated >= policy.maxBytes - 200)
        #expect(FileManager.default.fileExists(atPath: files.history.totalsPath))

        let loaded = files.history.load()
        #expect(loaded.warnings.isEmpty)
        // Retained: at least maxBytes less one line, at most twice maxBytes.
        let lineBytes = (fleet.read("alpha", "health-history.jsonl")?.count ?? 0) + rotated
        #expect(lineBytes >= policy.maxBytes - 200 && lineBytes <= 2 * policy.maxBytes)
        let archived = try #require(loaded.archived)
        #expect(archived.checks + loaded.records.count == 200)
        let report = HistoryReport(history: loaded, now: start.addingTimeInterval(200 * 300))
        let all = try #require(report.windows.last)
        #expect(all.checks == 200)
        #expect(all.healthy == healthyWritten)
        #expect(report.firstCheck == start)
    }
}

/// Timestamps as the state files and mails write them: pure values.
@Suite(.tags(.fast)) struct TimestampTests {
    @Test func timestamps() {
        let date = Timestamp.parse("2026-11-28T10:05:00Z")
        #expect(date == Date(timeIntervalSince1970: 1_795_860_300))
        #expect(Timestamp.parse("2026-11-28T11:05:00+01:00") == date)
        #expect(Timestamp.parse("2026-11-28T10:05:00.250Z") == date?.addingTimeInterval(0.25))
        #expect(Timestamp.parse("2026-11-28 10:05:00") == date)
        #expect(Timestamp.parse("2026-13-28T10:05:00Z") == nil)
        #expect(Timestamp.parse("null") == nil)
        #expect(Timestamp.parse("2026-11-28T10:05:00Zjunk") == nil)
        #expect(Timestamp.format(date!) == "2026-11-28T10:05:00Z")
        #expect(Timestamp.rfc5322(date!) == "Sat, 28 Nov 2026 10:05:00 +0000")
        #expect(Timestamp.duration(3900) == "1h 05m")
        #expect(Timestamp.duration(200) == "3m 20s")
        #expect(Timestamp.duration(2 * 86400 + 7200) == "2d 2h")
    }
}

/// make-fleet beside the repository, as CI lays it out (`../shared/tools`), or in /work/shared.
func makeFleetPath() -> String? {
    let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let candidates = [repo.deletingLastPathComponent().path + "/shared/tools/make-fleet", "/work/shared/tools/make-fleet"]
    return candidates.first { FileManager.default.isReadableFile(atPath: $0) }
}
