import ClmntTestSupport
import ClmntCore
import ClmntHealth
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import ClmntDashboard

/// Every endpoint through the real router, over a fleet the health module wrote.
@Suite(.serialized) struct RouterTests {
    @Test func healthEndpointAnswersOkWithTimestamp() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        try await buildApplication(fleet.configuration()).test(.router) { client in
            let response = try await client.execute(uri: "/api/health", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/json; charset=utf-8")
            let body = try object(response)
            #expect(body["status"] as? String == "ok")
            #expect(Timestamp.parse(try #require(body["timestamp"] as? String)) != nil)
        }
    }

    @Test func moltListHasTheOldShapeAndTheHealthExtras() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        try await buildApplication(fleet.configuration()).test(.router) { client in
            let response = try await client.execute(uri: "/api/molts", method: .get)
            #expect(response.status == .ok)
            let list = try decode(MoltsResponse.self, response)
            #expect(list.molts.map(\.name) == ["alpha", "bravo", "charlie", "delta"])
            #expect(list.molts.map(\.status) == ["running", "running", "stopped", "unknown"])
            #expect(list.molts[0].port == "19001" && list.molts[0].pid == "4242")
            #expect(list.molts[0].home == fleet.fixture.home("alpha"))
            #expect(list.molts[3].pid == "")
            #expect(list.summary.total == 4 && list.summary.running == 2 && list.summary.stopped == 2)
            #expect(list.error == nil)
            let molts = try #require(try object(response)["molts"] as? [[String: Any]])
            #expect(molts[0]["health_status"] as? String == "healthy")
            #expect(molts[1]["health_status"] as? String == "unhealthy")
            #expect(molts[1]["consecutive_failures"] as? Int == 3)
            #expect(molts[3]["health_status"] is NSNull && molts[3]["last_check"] is NSNull && molts[3]["uptime_24h"] is NSNull)
            #expect(molts[0]["uptime_24h"] as? Double == 100)
            #expect(Timestamp.parse(try #require(molts[0]["last_check"] as? String)) != nil)
            // bravo: 1 healthy, 3 unhealthy in the last 24 h.
            #expect(molts[1]["uptime_24h"] as? Double == 25)
            let summary = try #require(try object(response)["summary"] as? [String: Any])
            #expect(summary["healthy"] as? Int == 1 && summary["failing"] as? Int == 1 && summary["unknown"] as? Int == 2)
        }
    }

    @Test func healthMapsStatusesToTheOldClientsFourWords() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        try await buildApplication(fleet.configuration()).test(.router) { client in
            let alpha = try await client.execute(uri: "/api/molts/alpha/health", method: .get)
            #expect(alpha.status == .ok)
            let healthy = try decode(HealthStatusBody.self, alpha)
            #expect(healthy.status == "healthy" && healthy.pid == 4242 && healthy.port == 19001 && healthy.http_status == 200)
            #expect(healthy.response_time_ms == 10 + Double(59 % 7))
            let bravo = try decode(HealthStatusBody.self, try await client.execute(uri: "/api/molts/bravo/health", method: .get))
            #expect(bravo.status == "unhealthy" && bravo.http_status == 503 && bravo.response_time_ms == 120.25)
            let charlieResponse = try await client.execute(uri: "/api/molts/charlie/health", method: .get)
            let charlie = try decode(HealthStatusBody.self, charlieResponse)
            // stopped: no process, and none expected → the old client's "unknown"; numbers are 0, not null.
            #expect(charlie.status == "unknown" && charlie.pid == 0 && charlie.http_status == 0 && charlie.response_time_ms == 0)
            #expect(try object(charlieResponse)["clmnt_status"] as? String == "stopped")
            let delta = try await client.execute(uri: "/api/molts/delta/health", method: .get)
            #expect(delta.status == .notFound)
            let body = try object(delta)
            #expect(body["status"] as? String == "unknown")
            #expect((body["error"] as? String)?.contains("no health check recorded for 'delta'") == true)
        }
    }

    @Test func historyKeepsTheOldShapeWithLimitAndUptimeWindows() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        try await buildApplication(fleet.configuration()).test(.router) { client in
            let response = try await client.execute(uri: "/api/molts/alpha/history", method: .get)
            #expect(response.status == .ok)
            let history = try decode(HealthHistoryBody.self, response)
            #expect(history.entries.count == 50)
            #expect(history.count == 60 && history.uptime_percent == 100)
            #expect(history.entries.allSatisfy { $0.status == "healthy" && $0.http_status == 200 })
            let body = try object(response)
            let windows = try #require(body["windows"] as? [[String: Any]])
            #expect(windows.map { $0["window"] as? String } == ["24h", "7d", "30d", "all"])
            #expect(windows[0]["p95_ms"] as? Double == 16)
            #expect(body["incidents"] is [Any])

            let five = try decode(HealthHistoryBody.self, try await client.execute(uri: "/api/molts/alpha/history?limit=5", method: .get))
            #expect(five.entries.count == 5)
            let bravo = try decode(HealthHistoryBody.self, try await client.execute(uri: "/api/molts/bravo/history", method: .get))
            #expect(bravo.count == 4 && bravo.uptime_percent == 25)
            #expect(bravo.entries.last?.status == "unhealthy" && bravo.entries.last?.http_status == 503)
            let incidents = try #require(try object(try await client.execute(uri: "/api/molts/bravo/history", method: .get))["incidents"] as? [[String: Any]])
            #expect(incidents.count == 1 && incidents[0]["end"] is NSNull && incidents[0]["checks"] as? Int == 3)
            let none = try decode(HealthHistoryBody.self, try await client.execute(uri: "/api/molts/delta/history", method: .get))
            #expect(none.entries.isEmpty && none.count == 0 && none.uptime_percent == 0)

            for bad in ["0", "-1", "abc", "1001", "5.5"] {
                let response = try await client.execute(uri: "/api/molts/alpha/history?limit=\(bad)", method: .get)
                #expect(response.status == .badRequest, "limit=\(bad)")
                #expect((try object(response)["error"] as? String)?.contains("invalid limit") == true)
            }
        }
    }

    @Test func watchStateIsTheFileOrItsDefaults() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        try await buildApplication(fleet.configuration()).test(.router) { client in
            let response = try await client.execute(uri: "/api/molts/bravo/watch-state", method: .get)
            let bravo = try decode(HealthWatchStateBody.self, response)
            #expect(bravo.consecutive_failures == 3 && bravo.alert_sent && bravo.threshold == 2)
            #expect(bravo.last_success.flatMap(Timestamp.parse) != nil)
            #expect(try object(response)["recorded"] as? Bool == true)
            let alphaResponse = try await client.execute(uri: "/api/molts/alpha/watch-state", method: .get)
            let alpha = try decode(HealthWatchStateBody.self, alphaResponse)
            #expect(alpha.consecutive_failures == 0 && !alpha.alert_sent && alpha.threshold == 2)
            let body = try object(alphaResponse)
            // The old type is `string | null`: the key is there, and null.
            #expect(body.keys.contains("last_success") && body["last_success"] is NSNull)
            #expect(body["recorded"] as? Bool == false)
        }
    }

    @Test func badAndUnknownNamesAreRefusedBeforeAnyFileIsTouched() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        try await buildApplication(fleet.configuration()).test(.router) { client in
            // 400 for every one, never 404: Hummingbird's trie router matches the raw path, split at `/`
            // without percent-decoding or folding `..` (HummingbirdCore's `URI.path`, `Trie.resolve`), so each
            // of these reaches `:name/<endpoint>` as the `name` parameter, and `MoltsController.molt(_:)`
            // refuses it (`MoltName.isValid`, `DashboardError.invalidMoltName` → 400) before it looks for a molt.
            for path in ["..", "Alpha", "a%2F..%2F..%2Fetc", "-x", String(repeating: "a", count: 33), "al%00pha"] {
                for endpoint in ["health", "history", "watch-state"] {
                    let response = try await client.execute(uri: "/api/molts/\(path)/\(endpoint)", method: .get)
                    #expect(response.status == .badRequest, "\(path)/\(endpoint)")
                    #expect((try object(response)["error"] as? String)?.contains("invalid molt name") == true, "\(path)/\(endpoint)")
                }
            }
            let invalid = try await client.execute(uri: "/api/molts/Alpha/health", method: .get)
            #expect(invalid.status == .badRequest)
            let unknown = try await client.execute(uri: "/api/molts/zulu/health", method: .get)
            #expect(unknown.status == .notFound)
            #expect(try object(unknown)["error"] as? String == "no molt named 'zulu' in this fleet")
        }
    }

    @Test func backupsListTheCatalogRowsAndTheSchedule() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        let summary = try fleet.backUp()
        FileManager.default.createFile(atPath: fleet.backupDir.path + "/broken.tar.gz", contents: Data("not an archive".utf8))
        let crontab = fleet.backupDir.path + "/crontab"
        try "# CLMNT-FLEET-BACKUP \(fleet.fixture.baseDir)\n15 3 * * * /usr/local/bin/clmnt fleet backup -d \(fleet.fixture.baseDir) --backup-dir \(fleet.backupDir.path) --keep 7\n"
            .write(toFile: crontab, atomically: true, encoding: .utf8)
        var configuration = fleet.configuration()
        configuration.crontabFile = crontab
        try await buildApplication(configuration).test(.router) { client in
            let response = try await client.execute(uri: "/api/backups", method: .get)
            #expect(response.status == .ok)
            let body = try object(response)
            #expect(body["backup_dir"] as? String == fleet.backupDir.path)
            let rows = try #require(body["backups"] as? [[String: Any]])
            let expected = try JSONSerialization.jsonObject(with: {
                let encoder = JSONEncoder()
                return try encoder.encode(try BackupCatalog.list(directory: fleet.backupDir.path))
            }()) as? [[String: Any]]
            #expect(rows.count == 2 && rows.count == expected?.count)
            #expect(Set(rows[0].keys) == Set(try #require(expected?[0].keys)))
            #expect(rows[0]["file"] as? String == summary.output)
            #expect(rows[0]["molts"] as? [String] == ["alpha", "bravo", "charlie", "delta"])
            #expect(rows[0]["size_bytes"] as? Int == Int(try #require(try FileManager.default.attributesOfItem(atPath: summary.output)[.size] as? NSNumber).intValue))
            #expect(rows[0]["complete"] as? Bool == true)
            #expect(rows[1]["unreadable"] is String)
            let schedule = try #require(body["schedule"] as? [String: Any])
            #expect(schedule["scheduled"] as? Bool == true && schedule["time"] as? String == "15 3 * * *")
            #expect((schedule["entry"] as? [String])?.count == 2)
        }
    }

    @Test func pageIsCompleteWithoutScriptAndShowsBadgesWithWords() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        _ = try fleet.backUp()
        _ = try fleet.backUpIncomplete()
        try await buildApplication(fleet.configuration()).test(.router) { client in
            let response = try await client.execute(uri: "/", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "text/html; charset=utf-8")
            #expect(response.headers[.contentSecurityPolicy]?.contains("script-src 'self'") == true)
            let html = text(response)
            #expect(html.contains("<span class=\"badge badge-green\"><span class=\"dot\" aria-hidden=\"true\"></span>Healthy</span>"))
            #expect(html.contains("badge badge-red\"><span class=\"dot\" aria-hidden=\"true\"></span>Unhealthy</span>"))
            #expect(html.contains("badge badge-grey\"><span class=\"dot\" aria-hidden=\"true\"></span>Stopped</span>"))
            #expect(html.contains("badge badge-grey\"><span class=\"dot\" aria-hidden=\"true\"></span>Not checked</span>"))
            #expect(html.contains("checked 3 min ago"))
            #expect(html.contains("<b>1</b> healthy") && html.contains("<b>1</b> failing") && html.contains("<b>2</b> stopped or unknown"))
            #expect(html.contains("<svg class=\"spark\"") && html.contains("<polyline points="))
            #expect(html.contains("fleet-2026-11-29.tar.gz") && html.contains("tag-green\">complete"))
            // Newest first: the incomplete one, with its count of missed files.
            let incomplete = try #require(html.range(of: "tag-amber\">incomplete</span> <span class=\"reason\">3 files missed"))
            #expect(incomplete.lowerBound < html.range(of: "tag-green\">complete")!.lowerBound)
            #expect(!html.contains("<script>"))
            for asset in ["/assets/dashboard.css", "/assets/dashboard.js"] {
                let response = try await client.execute(uri: asset, method: .get)
                #expect(response.status == .ok && !text(response).isEmpty)
            }
            #expect(text(try await client.execute(uri: "/assets/dashboard.css", method: .get)).contains("prefers-color-scheme: dark"))
        }
    }

    @Test func aTokenGuardsEveryRouteButApiHealth() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        let token = "s3cret-token-0123456789"
        try await buildApplication(fleet.configuration(host: "0.0.0.0", token: token)).test(.router) { client in
            #expect(try await client.execute(uri: "/api/health", method: .get).status == .ok)
            for uri in ["/", "/api/molts", "/api/molts/alpha/health", "/api/backups", "/metrics", "/api/events", "/assets/dashboard.js"] {
                let none = try await client.execute(uri: uri, method: .get)
                #expect(none.status == .unauthorized, "\(uri)")
                #expect(none.headers[.wwwAuthenticate] == "Bearer")
                for wrong in ["Bearer wrong", "Bearer \(token)x", "Bearer \(token.dropLast())", "Basic \(token)", token] {
                    let response = try await client.execute(uri: uri, method: .get, headers: [.authorization: wrong])
                    #expect(response.status == .unauthorized, "\(uri) with \(wrong)")
                }
            }
            let good = try await client.execute(uri: "/api/molts", method: .get, headers: [.authorization: "Bearer \(token)"])
            #expect(good.status == .ok)
            #expect(try decode(MoltsResponse.self, good).molts.count == 4)
        }
    }

    /// Over a real socket: the router test client always says `localhost`.
    @Test func withoutATokenOnlyLoopbackHostNamesAreServed() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        try await buildApplication(fleet.configuration()).test(.live) { client in
            let port = try #require(client.port)
            for host in ["127.0.0.1:\(port)", "localhost:\(port)", "[::1]:\(port)", "localhost", "127.0.0.2"] {
                #expect(try curlStatus(port: port, host: host) == 200, "\(host)")
            }
            for host in ["evil.example:\(port)", "127.0.0.1.evil.example", "localhost.evil", "[::2]",
                         // Odd forms a loose parser let through.
                         "[::1].evil", "localhost:evil", "127.0.0.1:80@evil.example", "localhost.", "127.0.0.1:",
                         "127.0.0.1:99999", "[::1]x", "127.0.0.256", "localhost:80:80"] {
                #expect(try curlStatus(port: port, host: host) == 403, "\(host)")
            }
            // No Host at all (curl's -H "Host:" drops it), and two Host headers: 400.
            #expect(try curlStatus(port: port, host: nil) == 400)
            let twice = LoopbackHTTP.request(method: "GET", port: port, path: "/api/molts",
                                             headers: [("Host", "evil.example")], timeout: 10)
            #expect(twice.map(\.status) == .success(400), "\(twice)")
        }
    }

    /// The page in token mode: `?token=` once, traded for an HttpOnly, SameSite=Strict cookie and a
    /// redirect that drops the token from the address; the cookie then opens the page, the API and
    /// the event stream. A wrong token or cookie opens nothing.
    @Test func aTokenInTheAddressIsTradedForACookie() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        let token = "s3cret-token-0123456789"
        try await buildApplication(fleet.configuration(host: "0.0.0.0", token: token)).test(.router) { client in
            let traded = try await client.execute(uri: "/?token=\(token)&view=all", method: .get)
            #expect(traded.status == .seeOther)
            #expect(traded.headers[.location] == "/?view=all")
            let cookie = try #require(traded.headers[.setCookie])
            #expect(cookie.hasSuffix("; Path=/; HttpOnly; SameSite=Strict"), "\(cookie)")
            #expect(!cookie.contains(token), "the cookie holds the token itself")
            let session = String(try #require(cookie.split(separator: ";").first))
            for uri in ["/", "/api/molts", "/assets/dashboard.js", "/metrics"] {
                let response = try await client.execute(uri: uri, method: .get, headers: [.cookie: "theme=dark; " + session])
                #expect(response.status == .ok, "\(uri)")
            }
            #expect(try await client.execute(uri: "/api/molts", method: .get, headers: [.cookie: session + "x"]).status == .unauthorized)
            #expect(try await client.execute(uri: "/api/molts", method: .get, headers: [.cookie: "clmnt_dashboard=\(token)"]).status == .unauthorized)
            #expect(try await client.execute(uri: "/?token=wrong-token-0123456789", method: .get).status == .unauthorized)
            #expect(try await client.execute(uri: "/api/molts?token=\(token)", method: .post).status == .unauthorized)
        }
    }

    /// A loopback TCP bind without a token serves only when told so (`--no-auth`); a token and
    /// `--no-auth` together, or `--no-auth` on a public address, are usage mistakes.
    @Test func loopbackWithoutATokenNeedsNoAuth() throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        var configuration = fleet.configuration()
        configuration.noAuth = false
        #expect(throws: DashboardError.self) { try configuration.validate() }
        configuration.noAuth = true
        try configuration.validate()
        configuration.token = "0123456789abcdef"
        #expect(throws: DashboardError.self) { try configuration.validate() }
        configuration.token = nil
        configuration.host = "0.0.0.0"
        #expect(throws: DashboardError.self) { try configuration.validate() }
        // Through the binary: one line, exit 64, nothing served.
        let run = try runCapturing(clmntExecutable(), ["dashboard", "serve", "-d", fleet.fixture.baseDir, "--port", "0"])
        #expect(run.status == 64)
        #expect(run.stderr.split(separator: "\n").count == 1, "\(run.stderr)")
        #expect(run.stderr.contains("serving 127.0.0.1 needs a token (--token-file FILE or CLMNT_DASHBOARD_TOKEN"), "\(run.stderr)")
        #expect(run.stderr.contains("or --no-auth"))
    }

    @Test func aNonLoopbackBindWithoutTokenIsRefused() throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        #expect(throws: DashboardError.self) { try fleet.configuration(host: "0.0.0.0").validate() }
        #expect(throws: DashboardError.self) { try fleet.configuration(host: "192.168.1.5", token: "").validate() }
        try fleet.configuration(host: "127.0.0.1").validate()
        try fleet.configuration(host: "0.0.0.0", token: "0123456789abcdef").validate()
    }

    @Test func symlinkedStateFilesAreNotFollowed() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        // A molt user points its state files at root-only data elsewhere.
        let secret = try fleet.rootOnlySecret()
        for (file, target) in [("health-status.json", secret), ("health-history.jsonl", secret + "l"), ("health-watch-state.json", secret)] {
            let path = fleet.stateFile("charlie", file)
            unlink(path)
            #expect(symlink(target, path) == 0)
        }
        try await buildApplication(fleet.configuration()).test(.router) { client in
            let health = try await client.execute(uri: "/api/molts/charlie/health", method: .get)
            #expect(health.status == .notFound)
            for uri in ["/api/molts", "/api/molts/charlie/history", "/api/molts/charlie/watch-state", "/", "/metrics"] {
                let response = try await client.execute(uri: uri, method: .get)
                #expect(response.status == .ok, "\(uri)")
                #expect(!text(response).contains("ROOT-ONLY-SECRET"), "\(uri)")
            }
            let history = try object(try await client.execute(uri: "/api/molts/charlie/history", method: .get))
            #expect((history["warnings"] as? [String])?.contains { $0.contains("symbolic link") } == true)
        }
    }

    @Test func aFiftyMegabyteStateFileNeitherStallsNorIsRead() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        for file in ["health-status.json", "health-history.jsonl", "health-watch-state.json"] {
            let path = fleet.stateFile("alpha", file)
            unlink(path)
            try writeBigFile(path, size: 50 << 20)
        }
        let status = fleet.stateFile("alpha", "health-status.json"), watchState = fleet.stateFile("alpha", "health-watch-state.json")
        let history = fleet.stateFile("alpha", "health-history.jsonl")
        let reads = try ReadWatcher([status, watchState, history])
        try await buildApplication(fleet.configuration()).test(.router) { client in
            let list = try await client.execute(uri: "/api/molts", method: .get)
            #expect(list.status == .ok)
            for uri in ["/api/molts/alpha/history", "/api/molts/alpha/watch-state", "/", "/metrics", "/api/molts/bravo/health"] {
                #expect(try await client.execute(uri: uri, method: .get).status == .ok, "\(uri)")
            }
            // Refused after one fstat each: not one byte of the 50 MB status and watch-state files was
            // read (what would take time), whatever the machine's load; the history only its newest
            // lines (its warning below), and that read shows the watch sees reads at all.
            #expect(reads.reads(of: status) == 0, "health-status.json was read")
            #expect(reads.reads(of: watchState) == 0, "health-watch-state.json was read")
            #expect(reads.reads(of: history) > 0)
            #expect(try await client.execute(uri: "/api/molts/alpha/health", method: .get).status == .notFound)
            let history = try object(try await client.execute(uri: "/api/molts/alpha/history", method: .get))
            #expect((history["warnings"] as? [String])?.isEmpty == false)
        }
    }
}
