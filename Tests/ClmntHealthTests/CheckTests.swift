import ClmntTestSupport
import ClmntCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import ClmntHealth

/// The check against real processes and a real HTTP stand-in on 127.0.0.1.
@Suite struct CheckTests {
    /// A finder that looks for lock files only in `dir` (not the machine's /tmp).
    func finder(_ dir: String) -> GatewayProcessFinder { GatewayProcessFinder(tempDirs: [dir]) }

    func checkOne(mode: StubMode, ready: Bool = false, readyMode: StubMode? = nil, timeout: Double = 2) throws -> HealthRecord {
        let stub = try HTTPStub(mode)
        defer { stub.stop() }
        if let readyMode { stub.setMode(readyMode, path: "/readyz") }
        return try checkOne(stub: stub, ready: ready, timeout: timeout)
    }

    /// One molt whose gateway is `stub`, with a live PID, checked once.
    func checkOne(stub: HTTPStub, ready: Bool = false, timeout: Double = 2) throws -> HealthRecord {
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        let child = try ChildProcess()
        defer { child.kill() }
        try fleet.addMolt("alpha", port: stub.port)
        try fleet.setPIDFile("alpha", child.pid)
        let record = HealthChecker.check(try fleet.molt("alpha"),
                                         options: CheckOptions(timeout: timeout, ready: ready, finder: finder(fleet.base)))
        #expect(record.pid == Int(child.pid))
        #expect(record.port == stub.port)
        return record
    }

    @Test func healthyJSONAnswerIsHealthy() throws {
        let record = try checkOne(mode: .healthy)
        #expect(record.status == .healthy)
        #expect(record.httpStatus == 200)
        #expect(record.responseTimeMs != nil)
        #expect(record.responseTimeMs! >= 0 && record.responseTimeMs! < 2000)
    }

    @Test func htmlFromOlderControlUIIsHealthy() throws {
        let record = try checkOne(mode: .respond(status: 200, body: "<!doctype html><html>OpenClaw</html>", contentType: "text/html"))
        #expect(record.status == .healthy)
    }

    @Test func jsonSayingOkFalseIsUnhealthy() throws {
        let record = try checkOne(mode: .respond(status: 200, body: #"{"ok":false,"status":"starting"}"#, contentType: "application/json"))
        #expect(record.status == .unhealthy)
        #expect(record.httpStatus == 200)
        #expect(record.detail?.contains("\"ok\": false") == true)
    }

    @Test func serverErrorIsUnhealthy() throws {
        let record = try checkOne(mode: .respond(status: 500, body: "boom", contentType: "text/plain"))
        #expect(record.status == .unhealthy)
        #expect(record.httpStatus == 500)
        #expect(record.responseTimeMs != nil)
    }

    @Test func gatewayThatNeverAnswersTimesOut() throws {
        let hung = try HTTPStub(.hang)
        defer { hung.stop() }
        let timeout = 0.4
        let start = monotonicNow()
        let record = try checkOne(stub: hung, timeout: timeout)
        let elapsed = monotonicNow() - start
        #expect(record.status == .unhealthy)
        #expect(record.httpStatus == nil)
        #expect(record.responseTimeMs == nil)
        #expect(record.detail?.contains("no answer within 0.4 s") == true)
        // It waited for its timeout (never less, however idle the machine)...
        #expect(elapsed >= timeout)
        // ...in one attempt, which it then gave up on by itself: the stub never answers nor closes,
        // so the check closing its connection is what ended the wait (the stub counts that close).
        #expect(hung.requests.count == 1)
        #expect(waitUntil { hung.hungClosedByClient == 1 }, "the check never closed its connection to the hung gateway")
        // And not after some longer wait of its own: 0.4 s asked for, not the default timeout (5 s),
        // a margin no load on the machine makes up.
        #expect(elapsed < CheckOptions().timeout, "took \(elapsed) s")
    }

    @Test func refusedConnectionIsUnhealthy() throws {
        // A port that refuses, held for the whole test: one found free and released could be taken meanwhile.
        let closed = try RefusingPort()
        defer { closed.release() }
        let port = closed.port
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        let child = try ChildProcess()
        defer { child.kill() }
        try fleet.addMolt("alpha", port: port)
        try fleet.setPIDFile("alpha", child.pid)
        let record = HealthChecker.check(try fleet.molt("alpha"), options: CheckOptions(timeout: 1, finder: finder(fleet.base)))
        #expect(record.status == .unhealthy)
        #expect(record.detail?.contains("connection refused") == true)
    }

    @Test func liveButNotReadyIsDegradedOnlyWithReady() throws {
        let notReady = StubMode.respond(status: 503, body: #"{"ready":false,"failing":["channels"]}"#, contentType: "application/json")
        let degraded = try checkOne(mode: .healthy, ready: true, readyMode: notReady)
        #expect(degraded.status == .degraded)
        #expect(degraded.httpStatus == 200)
        #expect(degraded.detail?.contains("503") == true)
        #expect(degraded.detail?.contains("channels") == true)
        let plain = try checkOne(mode: .healthy, ready: false, readyMode: notReady)
        #expect(plain.status == .healthy)
        let ready = try checkOne(mode: .healthy, ready: true, readyMode: .respond(status: 200, body: "{}", contentType: "application/json"))
        #expect(ready.status == .healthy)
    }

    @Test func pidFileOfKilledProcessIsDead() throws {
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        let child = try ChildProcess()
        let pid = child.pid
        child.kill()
        try fleet.addMolt("alpha", port: 19001)
        try fleet.setPIDFile("alpha", pid)
        let record = HealthChecker.check(try fleet.molt("alpha"), options: CheckOptions(timeout: 1, finder: finder(fleet.base)))
        #expect(record.status == .dead)
        #expect(record.pid == Int(pid))
        #expect(record.detail?.contains("gateway.pid") == true)
    }

    @Test func noProcessAtAllIsStopped() throws {
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        try fleet.addMolt("alpha", port: 19001)
        let record = HealthChecker.check(try fleet.molt("alpha"), options: CheckOptions(timeout: 1, finder: finder(fleet.base)))
        #expect(record.status == .stopped)
        #expect(record.pid == nil)
        #expect(record.httpStatus == nil)
    }

    @Test func livePIDWithoutPortIsUnknown() throws {
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        let child = try ChildProcess()
        defer { child.kill() }
        try fleet.addMolt("alpha", port: nil)
        try fleet.setPIDFile("alpha", child.pid)
        let record = HealthChecker.check(try fleet.molt("alpha"), options: CheckOptions(timeout: 1, finder: finder(fleet.base)))
        #expect(record.status == .unknown)
        #expect(record.port == nil)
        #expect(record.pid == Int(child.pid))
    }

    @Test func portComesFromOpenClawConfigWithoutMoltPort() throws {
        let stub = try HTTPStub()
        defer { stub.stop() }
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        let child = try ChildProcess()
        defer { child.kill() }
        try fleet.addMolt("alpha", port: nil, configPort: stub.port)
        try fleet.setPIDFile("alpha", child.pid)
        let record = HealthChecker.check(try fleet.molt("alpha"), options: CheckOptions(timeout: 1, finder: finder(fleet.base)))
        #expect(record.port == stub.port)
        #expect(record.status == .healthy)
    }

    /// Current OpenClaw writes no gateway.pid, only `<tmp>/openclaw-<uid>/gateway.<hash>.lock`.
    @Test func lockFileNamesTheGateway() throws {
        let stub = try HTTPStub()
        defer { stub.stop() }
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        let tmp = try TemporaryDirectory(prefix: "clmnt-locks")
        defer { tmp.remove() }
        let home = try fleet.addMolt("alpha", port: stub.port)
        var info = stat()
        stat(home, &info)
        let lockDir = tmp.path + "/openclaw-\(info.st_uid)"
        try FileManager.default.createDirectory(atPath: lockDir, withIntermediateDirectories: true)
        let child = try ChildProcess()
        try #"{"pid": \#(child.pid), "createdAt": "2026-11-28T10:00:00Z", "configPath": "\#(home)/.openclaw/openclaw.json"}"#
            .write(toFile: lockDir + "/gateway.0a1b2c3d.lock", atomically: true, encoding: .utf8)
        let options = CheckOptions(timeout: 1, finder: finder(tmp.path))
        let live = HealthChecker.check(try fleet.molt("alpha"), options: options)
        #expect(live.status == .healthy)
        #expect(live.pid == Int(child.pid))

        child.kill()
        let crashed = HealthChecker.check(try fleet.molt("alpha"), options: options)
        #expect(crashed.status == .dead)
        #expect(crashed.detail?.contains("gateway.0a1b2c3d.lock") == true)
    }

    /// `<tmp>/openclaw-<uid>` is the molt user's: a symlink there, a symlinked lock file, or a
    /// directory someone else planted for the user is never followed or believed (root reads it).
    @Test func plantedLockDirectoriesAreNotFollowed() throws {
        let user = try TestUser()
        defer { user.remove() }
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        let home = try fleet.addMolt(user.name, port: 1)
        chown(home, user.uid, user.gid)
        let tmp = try TemporaryDirectory(prefix: "clmnt-locks")
        defer { tmp.remove() }
        let live = try ChildProcess()
        defer { live.kill() }
        let lockText = #"{"pid": \#(live.pid), "configPath": "\#(home)/.openclaw/openclaw.json"}"#
        let secret = tmp.path + "/root-only"
        mkdir(secret, 0o700)
        try lockText.write(toFile: secret + "/gateway.aaaa.lock", atomically: true, encoding: .utf8)
        let lockDir = tmp.path + "/openclaw-\(user.uid)"
        var notes: [String] = []

        // The directory is a symlink to root's.
        symlink(secret, lockDir)
        #expect(finder(tmp.path).lockFiles(uid: user.uid, notes: &notes).isEmpty)
        #expect(notes.contains { $0.contains("not followed") }, "\(notes)")
        var state = finder(tmp.path).find(molt: try fleet.molt(user.name), uid: user.uid, notes: &notes)
        if case .running = state { Issue.record("a symlinked lock directory was followed: \(state)") }
        unlink(lockDir)

        // The user's own directory, with a lock file that is a symlink to root's.
        mkdir(lockDir, 0o700)
        chown(lockDir, user.uid, user.gid)
        symlink(secret + "/gateway.aaaa.lock", lockDir + "/gateway.bbbb.lock")
        notes = []
        #expect(finder(tmp.path).lockFiles(uid: user.uid, notes: &notes).isEmpty)
        #expect(notes.count == 1 && notes.first?.contains("gateway.bbbb.lock") == true, "\(notes)")

        // A real lock file there is read (so the checks above can fail).
        unlink(lockDir + "/gateway.bbbb.lock")
        try lockText.write(toFile: lockDir + "/gateway.cccc.lock", atomically: true, encoding: .utf8)
        notes = []
        #expect(finder(tmp.path).lockFiles(uid: user.uid, notes: &notes).map(\.path) == [lockDir + "/gateway.cccc.lock"])
        state = finder(tmp.path).find(molt: try fleet.molt(user.name), uid: user.uid, notes: &notes)
        guard case .running(let pid, .lockFile) = state else { Issue.record("the user's lock file was not read: \(state)"); return }
        #expect(pid == Int(live.pid))

        // The same directory owned by someone else (root here) is not believed.
        chown(lockDir, 0, 0)
        notes = []
        #expect(finder(tmp.path).lockFiles(uid: user.uid, notes: &notes).isEmpty)
        #expect(notes.contains { $0.contains("not the molt's user") }, "\(notes)")
    }

    /// A stale gateway.pid loses to a live gateway found by its lock file.
    @Test func stalePIDFileDoesNotHideALiveGateway() throws {
        let stub = try HTTPStub()
        defer { stub.stop() }
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        let home = try fleet.addMolt("alpha", port: stub.port)
        let old = try ChildProcess()
        let oldPID = old.pid
        old.kill()
        try fleet.setPIDFile("alpha", oldPID)
        var info = stat()
        stat(home, &info)
        let lockDir = fleet.base + "/openclaw-\(info.st_uid)"
        try FileManager.default.createDirectory(atPath: lockDir, withIntermediateDirectories: true)
        let live = try ChildProcess()
        defer { live.kill() }
        try #"{"pid": \#(live.pid)}"#.write(toFile: lockDir + "/gateway.deadbeef.lock", atomically: true, encoding: .utf8)
        let record = HealthChecker.check(try fleet.molt("alpha"), options: CheckOptions(timeout: 1, finder: finder(fleet.base)))
        #expect(record.status == .healthy)
        #expect(record.pid == Int(live.pid))
    }

    /// Neither PID file nor lock file: a gateway process of the molt's user, found in /proc.
    @Test func gatewayProcessOfTheMoltUserIsFoundInProc() throws {
        let user = try TestUser()
        defer { user.remove() }
        let stub = try HTTPStub()
        defer { stub.stop() }
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        let home = try fleet.addMolt(user.name, port: stub.port)
        chown(home, user.uid, user.gid)
        // A program whose command line reads like OpenClaw's gateway, run as the molt's user.
        let bin = try TemporaryDirectory(prefix: "clmnt-gw-bin")
        defer { bin.remove() }
        chmod(bin.path, 0o755)
        let fake = bin.path + "/openclaw-gateway"
        // A symlink, not a copy: a copy still open for writing in a child some other test forks meanwhile
        // would make the exec fail with ETXTBSY. argv[0] keeps the link's name either way.
        try FileManager.default.createSymbolicLink(atPath: fake, withDestinationPath: "/bin/sleep")
        let child = try ChildProcess("/usr/bin/setpriv", ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--clear-groups", fake, "60"])
        defer { child.kill() }
        // setpriv execs in place: same PID, a gateway only once the exec happened. Until then the PID is
        // setpriv, run by root, whose command line also holds "openclaw-gateway" (the path of `fake`), so
        // wait for argv[0] to be `fake`: by then the process runs as the user too.
        try #require(child.waitForExec(argv0: fake), "setpriv never exec'd \(fake): \(child.commandLine ?? [])")

        let record = HealthChecker.check(try fleet.molt(user.name), options: CheckOptions(timeout: 1, finder: finder(bin.path)))
        #expect(record.status == .healthy)
        #expect(record.pid == Int(child.pid))

        // The same process does not count for a molt of another user.
        try fleet.addMolt("beta", port: stub.port)
        let foreign = HealthChecker.check(try fleet.molt("beta"), options: CheckOptions(timeout: 1, finder: finder(bin.path)))
        #expect(foreign.status == .stopped)
    }

    @Test func gatewayCommandLines() {
        #expect(GatewayProcessFinder.isGatewayCommand(["openclaw-gateway"]))
        #expect(GatewayProcessFinder.isGatewayCommand(["/usr/bin/openclaw-gateway", "--port", "19001"]))
        #expect(GatewayProcessFinder.isGatewayCommand(["node", "/usr/lib/node_modules/openclaw/openclaw.mjs", "gateway", "--port", "19001"]))
        #expect(GatewayProcessFinder.isGatewayCommand(["/home/x/.bun/bin/openclaw", "gateway"]))
        #expect(!GatewayProcessFinder.isGatewayCommand(["tail", "-f", "/srv/molts/a/.openclaw/gateway.log"]))
        #expect(!GatewayProcessFinder.isGatewayCommand(["openclaw", "status"]))
        #expect(!GatewayProcessFinder.isGatewayCommand([]))
    }

    /// 40 molts, 5 of whose gateways never answer: their checks wait at the same time (one
    /// timeout, not five one after another).
    @Test func checkAllRunsConcurrently() throws {
        let good = try HTTPStub()
        defer { good.stop() }
        let hung = try HTTPStub(.hang)
        defer { hung.stop() }
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        let me = getpid() // a PID that is surely alive
        for index in 0..<40 {
            let name = String(format: "molt-%02d", index)
            try fleet.addMolt(name, port: index % 8 == 3 ? hung.port : good.port)
            try fleet.setPIDFile(name, me)
        }
        // Long enough for all 40 checks to start on a loaded machine; checked one after another, the
        // five hung ones would take five times that.
        let timeout = 2.0
        let outcomes = HealthChecker.checkAndRecord(try fleet.fleet().molts,
                                                    options: CheckOptions(timeout: timeout, finder: finder(fleet.base)))
        #expect(outcomes.count == 40)
        #expect(outcomes.filter { $0.record.status == .healthy }.count == 35)
        #expect(outcomes.filter { $0.record.status == .unhealthy }.count == 5)
        #expect(outcomes.allSatisfy { $0.warnings.isEmpty })
        // The order of events, not the time: all five hung gateways held a waiting check at once.
        // One after another, each check would give up (and close) before the next one connected.
        #expect(hung.mostHungAtOnce == 5, "at most \(hung.mostHungAtOnce) of the 5 hung gateways were waited on at once")
        // Each result was recorded in its molt's state.
        #expect(fleet.read("molt-03", "health-status.json")?.contains("\"unhealthy\"") == true)
        #expect(fleet.read("molt-04", "health-status.json")?.contains("\"healthy\"") == true)
    }

    @Test func timeoutMustBeSane() {
        #expect(throws: HealthError.invalidTimeout(0)) { try CheckOptions(timeout: 0).validate() }
        #expect(throws: HealthError.invalidTimeout(-1)) { try CheckOptions(timeout: -1).validate() }
        #expect(throws: Never.self) { try CheckOptions(timeout: 0.5).validate() }
    }
}
