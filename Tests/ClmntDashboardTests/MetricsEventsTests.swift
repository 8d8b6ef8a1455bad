import ClmntTestSupport
import ClmntCore
import ClmntHealth
import Foundation
import HummingbirdTesting
import Testing
@testable import ClmntDashboard

@Suite(.serialized) struct MetricsEventsTests {
    /// `/metrics` as the Prometheus client's own parser reads it (Debian's python3-prometheus-client).
    @Test func metricsParseWithPrometheusOwnParser() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        let summary = try fleet.backUp()
        _ = try fleet.backUpIncomplete() // newer, but not a success
        try await buildApplication(fleet.configuration()).test(.router) { client in
            let response = try await client.execute(uri: "/metrics", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "text/plain; version=0.0.4; charset=utf-8")
            let script = """
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            out = {}
            for family in text_string_to_metric_families(sys.stdin.read()):
                out[family.name] = {"type": family.type, "samples": [[s.labels.get("molt", ""), s.value] for s in family.samples]}
            print(json.dumps(out))
            """
            let parsed = try runPython(script, input: text(response))
            let families = try #require(try JSONSerialization.jsonObject(with: Data(parsed.utf8)) as? [String: [String: Any]])
            func samples(_ name: String) -> [String: Double] {
                let list = (families[name]?["samples"] as? [[Any]]) ?? []
                return Dictionary(uniqueKeysWithValues: list.map { ($0[0] as! String, ($0[1] as! NSNumber).doubleValue) })
            }
            for name in ["clmnt_molt_up", "clmnt_molt_response_seconds", "clmnt_molt_consecutive_failures",
                         "clmnt_molt_last_check_timestamp_seconds", "clmnt_backup_last_success_timestamp_seconds",
                         "clmnt_backup_last_size_bytes"] {
                #expect(families[name]?["type"] as? String == "gauge", "\(name)")
            }
            #expect(samples("clmnt_molt_up") == ["alpha": 1, "bravo": 0, "charlie": 0, "delta": 0])
            #expect(samples("clmnt_molt_response_seconds") == ["alpha": (10 + Double(59 % 7)) / 1000, "bravo": 0.12025])
            #expect(samples("clmnt_molt_consecutive_failures")["bravo"] == 3)
            let lastCheck = try #require(samples("clmnt_molt_last_check_timestamp_seconds")["charlie"])
            #expect(abs(lastCheck - fleet.now.addingTimeInterval(-240).timeIntervalSince1970) < 1)
            #expect(samples("clmnt_molt_last_check_timestamp_seconds")["delta"] == nil)
            let size = try FileManager.default.attributesOfItem(atPath: summary.output)[.size] as? NSNumber
            #expect(samples("clmnt_backup_last_size_bytes")[""] == size?.doubleValue)
            let backupTime = try #require(samples("clmnt_backup_last_success_timestamp_seconds")[""])
            #expect(abs(backupTime - fleet.now.addingTimeInterval(-7200).timeIntervalSince1970) < 2)
        }
    }

    /// The event stream: every molt first, then only the molt whose state file changed.
    @Test func eventsFollowStateFileChanges() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        let store = FleetStateStore(configuration: fleet.configuration())
        var events = FleetEvents(store: store, interval: .milliseconds(50)).makeAsyncIterator()
        #expect(await events.next().map { String(buffer: $0) } == "retry: 3000\n\n")
        let first = try #require(await events.next().map { String(buffer: $0) })
        #expect(first.components(separatedBy: "event: molt\n").count - 1 == 4)
        #expect(first.contains("\"name\":\"bravo\",\"health_status\":\"unhealthy\",\"status\":\"unhealthy\",\"badge\":\"red\""))

        try fleet.files("charlie").record(HealthRecord(timestamp: Date(), status: .healthy, pid: 5, port: 19041,
                                                        httpStatus: 200, responseTimeMs: 4))
        let clock = ContinuousClock()
        let started = clock.now
        // The change's event; keep-alives (due after 15 s of silence) may come first when the whole
        // suite keeps both cores busy, so they are skipped, within a bound that still catches a lost change.
        var change = ""
        while change.isEmpty, clock.now - started < .seconds(120) {
            let next = try #require(await events.next().map { String(buffer: $0) })
            if next.contains("event: molt\n") { change = next }
        }
        #expect(change.components(separatedBy: "event: molt\n").count - 1 == 1)
        let data = try #require(change.split(separator: "\n").first { $0.hasPrefix("data: ") }).dropFirst(6)
        let event = try #require(try JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any])
        #expect(event["name"] as? String == "charlie" && event["badge"] as? String == "green")
        #expect((event["card_html"] as? String)?.contains(">Healthy</span>") == true)
        #expect((event["summary_html"] as? String)?.contains("<b>2</b> healthy") == true)
    }

    @Test func systemdUnitIsHardenedAndSetupIsIdempotent() throws {
        let units = try TemporaryDirectory(prefix: "clmnt-dash-units")
        defer { units.remove() }
        let secrets = try TemporaryDirectory(prefix: "clmnt-dash-token")
        defer { secrets.remove() }
        let tokenFile = secrets.path + "/etc-clmnt/dashboard-token"
        let service = DashboardService(unitDir: units.path)
        let settings = DashboardService.Settings(executable: "/usr/local/bin/clmnt", baseDir: "/srv/molts",
                                                 backupDir: "/var/backups/clmnt", tokenFile: tokenFile)
        let unit = DashboardService.unit(settings)
        let exec = "/usr/local/bin/clmnt dashboard serve -d /srv/molts --host 127.0.0.1 --port 19000 --backup-dir /var/backups/clmnt --token-file \(tokenFile)"
        for line in ["NoNewPrivileges=yes", "ProtectSystem=strict", "ReadOnlyPaths=/srv/molts",
                     "CapabilityBoundingSet=CAP_DAC_READ_SEARCH", "ExecStart=" + exec,
                     "LimitNOFILE=8192", "TasksMax=512", "MemoryMax=512M"] {
            #expect(unit.contains("\n" + line + "\n"), "\(line)")
        }
        #expect(service.status().first?.hasPrefix("no dashboard service installed") == true)
        // The first setup makes a random token, private to root; the second keeps it.
        let first = try service.install(settings)
        #expect(first.contains { $0.hasPrefix("wrote a new token to \(tokenFile) (mode 0600): open http://127.0.0.1:19000/?token=") }, "\(first)")
        let token = try DashboardToken.read(path: tokenFile)
        #expect(token.count == 64 && token.allSatisfy(\.isHexDigit))
        var info = stat()
        #expect(stat(tokenFile, &info) == 0 && info.st_mode & 0o777 == 0o600 && info.st_uid == 0)
        let second = try service.install(settings)
        #expect(second.contains { $0.hasPrefix("kept the token in \(tokenFile)") }, "\(second)")
        #expect(try DashboardToken.read(path: tokenFile) == token)
        #expect(try String(contentsOfFile: service.unitPath, encoding: .utf8) == unit)
        #expect(try FileManager.default.contentsOfDirectory(atPath: units.path) == [DashboardService.unitName])
        #expect(service.status().contains("runs: " + exec))
        #expect(try service.remove().contains("removed \(service.unitPath)"))
        #expect(try service.remove().isEmpty)

        // No token file named: the default one. --no-auth only on loopback, and says so in the unit.
        #expect(DashboardService.Settings(executable: "/c", baseDir: "/b").resolvingTokenFile.tokenFile == DashboardToken.defaultPath)
        var noAuth = settings
        noAuth.tokenFile = nil
        noAuth.noAuth = true
        #expect(DashboardService.unit(noAuth).contains("--port 19000 --backup-dir /var/backups/clmnt --no-auth\n"))
        _ = try service.install(noAuth)
        var open = settings
        open.host = "0.0.0.0"
        open.tokenFile = nil
        open.noAuth = true
        #expect(throws: DashboardError.self) { _ = try service.install(open) }
        open.tokenFile = tokenFile
        open.noAuth = false
        _ = try service.install(open)
        // A Unix socket: no token by default, the socket's directory writable for the service.
        let socket = DashboardService.Settings(executable: "/c", baseDir: "/srv/molts", unixSocket: "/run/clmnt/dashboard.sock",
                                               socketGroup: "adm")
        #expect(socket.resolvingTokenFile.tokenFile == nil)
        let socketUnit = DashboardService.unit(socket)
        #expect(socketUnit.contains("ExecStart=/c dashboard serve -d /srv/molts --unix-socket /run/clmnt/dashboard.sock --socket-group adm\n"))
        #expect(socketUnit.contains("\nReadWritePaths=/run/clmnt\n"))
        var unsafe = settings
        unsafe.baseDir = "/srv/my molts"
        #expect(throws: DashboardError.self) { _ = try service.install(unsafe) }
        unsafe.baseDir = "relative"
        #expect(throws: DashboardError.self) { _ = try service.install(unsafe) }
    }
}

/// Runs `script` with Debian's python3 (its packages, not a PATH-first one's), `input` on stdin; the test fails with stderr when it does.
func runPython(_ script: String, input: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    process.arguments = ["-c", script]
    let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
    process.standardInput = stdin
    process.standardOutput = stdout
    process.standardError = stderr
    try process.run()
    stdin.fileHandleForWriting.write(Data(input.utf8))
    try stdin.fileHandleForWriting.close()
    let output = stdout.fileHandleForReading.readDataToEndOfFile()
    let errors = stderr.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        Issue.record("python3 failed: \(String(decoding: errors, as: UTF8.self))")
        throw POSIXError(.EIO)
    }
    return String(decoding: output, as: UTF8.self)
}

/// The HTTP status of `GET /api/molts` sent by curl to 127.0.0.1:`port` with `Host: host` (nil: no Host header).
func curlStatus(port: Int, host: String?) throws -> Int {
    let output = try run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host:" + (host.map { " " + $0 } ?? ""),
                                           "http://127.0.0.1:\(port)/api/molts"])
    return Int(output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
}
