import ClmntTestSupport
import ClmntCore
import ClmntHealth
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import ClmntDashboard

/// Answers come from a snapshot and bodies rendered once per snapshot; these tests hold the
/// bound on how old they may be: a change to a state file is in every answer given once
/// `refreshInterval` (50 ms here) has passed, whether or not the refresh loop got to it.
@Suite(.serialized) struct FreshnessTests {
    static func molt(_ name: String, in response: TestResponse) throws -> [String: Any] {
        let molts = try #require(try object(response)["molts"] as? [[String: Any]])
        return try #require(molts.first { $0["name"] as? String == name })
    }

    /// Longer than the refresh interval of `DashboardFleet.configuration()`. Sleeping it is what these
    /// tests check (answers once that much time has passed), not a wait for something to happen: a
    /// loaded machine only makes the pause longer, which changes nothing.
    static let pastTheInterval = Duration.milliseconds(80)

    @Test func aStateChangeIsServedOnceTheRefreshIntervalHasPassed() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        try await buildApplication(fleet.configuration()).test(.router) { client in
            let before = try await client.execute(uri: "/api/molts", method: .get)
            #expect(try Self.molt("charlie", in: before)["health_status"] as? String == "stopped")
            let tag = try #require(before.headers[.eTag])
            #expect(before.headers[.cacheControl] == "no-cache")
            // Nothing changed: the same bytes, so the same tag, and a client holding them gets 304.
            let again = try await client.execute(uri: "/api/molts", method: .get, headers: [.ifNoneMatch: tag])
            #expect(again.status == .notModified && again.body.readableBytes == 0 && again.headers[.eTag] == tag)
            #expect(text(try await client.execute(uri: "/", method: .get)).contains("data-molt=\"charlie\" data-badge=\"grey\""))

            try fleet.files("charlie").record(HealthRecord(timestamp: Date(), status: .healthy, pid: 5, port: 19041,
                                                            httpStatus: 200, responseTimeMs: 4))
            try await Task.sleep(for: Self.pastTheInterval)
            let after = try await client.execute(uri: "/api/molts", method: .get, headers: [.ifNoneMatch: tag])
            #expect(after.status == .ok)
            #expect(after.headers[.eTag] != tag)
            let charlie = try Self.molt("charlie", in: after)
            #expect(charlie["health_status"] as? String == "healthy" && charlie["status"] as? String == "running")
            #expect(try decode(MoltsResponse.self, after).summary.running == 3)
            let page = text(try await client.execute(uri: "/", method: .get))
            #expect(page.contains("data-molt=\"charlie\" data-badge=\"green\""))
            #expect(page.contains("<b>2</b> healthy"))
            let metrics = text(try await client.execute(uri: "/metrics", method: .get))
            #expect(metrics.contains("clmnt_molt_up{molt=\"charlie\"} 1"))
            let health = try decode(HealthStatusBody.self, try await client.execute(uri: "/api/molts/charlie/health", method: .get))
            #expect(health.status == "healthy" && health.pid == 5)
        }
    }

    @Test func aStateFileSwappedForASymlinkAfterCachingIsStillNotFollowed() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        let secret = try fleet.rootOnlySecret()
        try await buildApplication(fleet.configuration()).test(.router) { client in
            #expect(try Self.molt("bravo", in: try await client.execute(uri: "/api/molts", method: .get))["health_status"] as? String == "unhealthy")
            let path = fleet.stateFile("bravo", "health-status.json")
            unlink(path)
            #expect(symlink(secret, path) == 0)
            try await Task.sleep(for: Self.pastTheInterval)
            let list = try await client.execute(uri: "/api/molts", method: .get)
            // Re-read through the same readers: refused, so bravo has no last check now; nothing of the target leaks.
            #expect(try Self.molt("bravo", in: list)["health_status"] is NSNull)
            for uri in ["/api/molts", "/", "/metrics", "/api/molts/bravo/history"] {
                #expect(!text(try await client.execute(uri: uri, method: .get)).contains("ROOT-ONLY-SECRET"), "\(uri)")
            }
        }
    }

    @Test func theRefreshLoopPublishesChangesWithoutARequest() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        let store = FleetStateStore(configuration: fleet.configuration())
        let loop = Task { try await store.run() }
        defer { loop.cancel() }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(30)
        while store.publishedFleet()?.molts.first(where: { $0.molt.name == "charlie" })?.last?.status != .stopped {
            #expect(clock.now < deadline)
            if clock.now >= deadline { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        try fleet.files("charlie").record(HealthRecord(timestamp: Date(), status: .healthy, pid: 5, port: 19041,
                                                        httpStatus: 200, responseTimeMs: 4))
        // No request reads the files: the loop alone brings the change in.
        while store.publishedFleet()?.molts.first(where: { $0.molt.name == "charlie" })?.last?.status != .healthy {
            #expect(clock.now < deadline)
            if clock.now >= deadline { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        // And goes on: newer snapshots keep coming with nothing changed and no request.
        let seen = try #require(store.publishedFleet()).takenAt
        while try #require(store.publishedFleet()).takenAt == seen {
            #expect(clock.now < deadline)
            if clock.now >= deadline { return }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    @Test func anUnchangedHistoryIsReadAgainForItsWindowsByTheLoopOnlyAFewPerPass() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        let store = FleetStateStore(configuration: fleet.configuration())
        func uptime(_ snapshot: FleetSnapshot, _ name: String) -> Double? {
            snapshot.molts.first { $0.molt.name == name }?.uptime24h
        }
        let start = Date()
        let first = await store.readFleet(now: start, agedHistories: 0)
        #expect(uptime(first, "alpha") == 100 && uptime(first, "bravo") == 25)
        // A day later every check has left the 24 h window, but no file changed.
        let later = start.addingTimeInterval(86_400 + 3600)
        // What a request does when it must refresh: changed files only, so it never waits for a big history.
        let request = await store.readFleet(now: later, agedHistories: 0)
        #expect(uptime(request, "alpha") == 100 && uptime(request, "bravo") == 25)
        // The loop: aged histories a few at a time, in name order.
        let pass = await store.readFleet(now: later, agedHistories: 1)
        #expect(uptime(pass, "alpha") == nil && uptime(pass, "bravo") == 25)
        let next = await store.readFleet(now: later, agedHistories: 1)
        #expect(uptime(next, "alpha") == nil && uptime(next, "bravo") == nil)
    }

    @Test func requestsBetweenTwoRefreshesShareOneRenderedBody() {
        let bodies = RenderedBodies<Date>()
        let key = Date()
        var renders = 0
        let first = bodies.body(for: key) { renders += 1; return "{\"a\":1}" }
        let second = bodies.body(for: key) { renders += 1; return "{\"a\":2}" }
        #expect(renders == 1 && first.etag == second.etag && String(buffer: second.bytes) == "{\"a\":1}")
        let next = bodies.body(for: key.addingTimeInterval(1)) { renders += 1; return "{\"a\":2}" }
        #expect(renders == 2 && next.etag != first.etag && String(buffer: next.bytes) == "{\"a\":2}")
        #expect(RenderedBody.matches("\"x\", \(first.etag)", first.etag) && RenderedBody.matches("W/\(first.etag)", first.etag))
        #expect(RenderedBody.matches("*", first.etag) && !RenderedBody.matches("\"other\"", first.etag))
    }

    @Test func tenthsPrintsOneDecimalLikePercentDotOneF() {
        #expect(PageRenderer.tenths(12.34) == "12.3" && PageRenderer.tenths(100) == "100.0" && PageRenderer.tenths(0.06) == "0.1")
        #expect(PageRenderer.tenths(-2.56) == "-2.6" && PageRenderer.tenths(0) == "0.0" && PageRenderer.tenths(159.96) == "160.0")
    }
}
