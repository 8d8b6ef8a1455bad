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

/// Runs blocking socket work on a Dispatch thread. The in-process server (`.live`) answers on
/// Swift's cooperative pool, one thread per core (two here): a test that blocks one of them
/// while another suite blocks the other starves the very server it waits for.
func offThePool<Value: Sendable>(_ body: @escaping @Sendable () -> Value) async -> Value {
    await withCheckedContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(returning: body()) }
    }
}

/// What a local user can make the dashboard hold: idle connections are closed, event streams
/// are capped overall and per client address, and under a flood the API still answers.
@Suite(.serialized) struct LimitsTests {
    /// Before: a connection that never sent a request stayed open for good.
    @Test func aConnectionThatSendsNothingIsClosed() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        var configuration = fleet.configuration()
        configuration.limits.idleTimeout = .seconds(1)
        try await buildApplication(configuration).test(.live) { client in
            let port = try #require(client.port)
            let fd = try #require(LoopbackClient.connect(port: port))
            defer { close(fd) }
            let started = monotonicNow()
            // Closed by the 1 s timer: never before it; after it as soon as a loaded machine gets to it
            // (seen at 9.8 s with the whole suite running), and long before "never".
            #expect(await offThePool { LoopbackClient.waitForClose(fd, seconds: 60) }, "still open after 60 s")
            #expect(monotonicNow() - started >= 0.9)
        }
    }

    /// Before: every `/api/events` stream lived until a write failed, as many as anyone opened.
    @Test func eventStreamsAreCappedOverallAndPerAddress() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        var configuration = fleet.configuration()
        configuration.limits.maxEventStreams = 6
        configuration.limits.maxEventStreamsPerAddress = 4
        try await buildApplication(configuration).test(.live) { client in
            let port = try #require(client.port)
            var open: [Int32] = []
            defer { for fd in open { close(fd) } }
            func stream(from source: String) async throws -> (fd: Int32, status: String) {
                let opened = await offThePool { () -> (Int32, String)? in
                    guard let fd = LoopbackClient.connect(port: port, from: source) else { return nil }
                    LoopbackClient.send(fd, "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\r\n")
                    return (fd, LoopbackClient.statusLine(fd, seconds: 60))
                }
                let (fd, status) = try #require(opened)
                return (fd, status)
            }
            for _ in 0..<4 {
                let opened = try await stream(from: "127.0.0.1")
                open.append(opened.fd)
                #expect(opened.status.hasPrefix("HTTP/1.1 200"), "\(opened.status)")
            }
            let fifth = try await stream(from: "127.0.0.1")
            open.append(fifth.fd)
            #expect(fifth.status.hasPrefix("HTTP/1.1 503"), "\(fifth.status)")
            for _ in 0..<2 {
                let other = try await stream(from: "127.0.0.2")
                open.append(other.fd)
                #expect(other.status.hasPrefix("HTTP/1.1 200"), "\(other.status)")
            }
            let overall = try await stream(from: "127.0.0.3")
            open.append(overall.fd)
            #expect(overall.status.hasPrefix("HTTP/1.1 503"), "\(overall.status)")
            // The API still answers.
            #expect(await offThePool { try? curlStatus(port: port, host: "127.0.0.1") } == 200)
        }
    }

    /// The issue's flood against the real binary: 1,100 idle connections and 2,000 event
    /// streams open (from 40 loopback addresses, 50 each: under both caps); `/api/molts` must
    /// answer while all of them stand (the issue's target: under 50 ms, median of 20, printed;
    /// asserted: under 1 s, which no starved API makes) and the server's RSS stay under 200 MiB.
    /// Then the idle connections are closed by the idle timeout (15 s).
    @Test func underAFloodTheApiStillAnswers() throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        // Room for the flood's 3,100 client sockets here, and (inherited) for the server, as the unit's LimitNOFILE gives it.
        let limits = try run("/usr/bin/prlimit", ["--pid", String(getpid()), "--nofile", "--raw", "--noheadings", "--output", "SOFT,HARD"])
        let old = limits.split(whereSeparator: \.isWhitespace).map { Int($0) ?? Int.max }
        if old.count == 2, old[0] < 16_384 {
            try run("/usr/bin/prlimit", ["--pid", String(getpid()), "--nofile=16384:\(max(old[1], 16_384))"])
        }
        defer { if old.count == 2, old[0] < 16_384 { _ = try? run("/usr/bin/prlimit", ["--pid", String(getpid()), "--nofile=\(old[0]):\(old[1])"]) } }

        let probe = try #require(LoopbackClient.freePort())
        let server = Process()
        server.executableURL = URL(fileURLWithPath: clmntExecutable())
        server.arguments = ["dashboard", "serve", "-d", fleet.fixture.baseDir, "--backup-dir", fleet.backupDir.path,
                            "--no-auth", "--port", String(probe)]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer { server.terminate(); server.waitUntilExit() }
        let ready = Date().addingTimeInterval(30)
        while (try? curlStatus(port: probe, host: "127.0.0.1")) != 200 && Date() < ready { usleep(100_000) }
        let baseline = residentMiB(server.processIdentifier)

        var sockets: [Int32] = []
        defer { for fd in sockets { close(fd) } }
        var streams: [Int32] = []
        for address in 0..<40 {
            for _ in 0..<50 {
                guard let fd = LoopbackClient.connect(port: probe, from: "127.0.0.\(address + 2)") else { continue }
                LoopbackClient.send(fd, "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:\(probe)\r\n\r\n")
                streams.append(fd)
            }
        }
        sockets += streams
        #expect(streams.count == 2_000)
        var answered = 0
        var refused = 0
        for fd in streams {
            let status = LoopbackClient.statusLine(fd, seconds: 30)
            if status.hasPrefix("HTTP/1.1 200") { answered += 1 } else { refused += 1 }
        }
        #expect(answered == 2_000, "\(answered) streams open, \(refused) not")
        // The idle ones last, so that all are still open (idle timeout 15 s) when the API is measured.
        let idleStart = monotonicNow()
        var idle: [Int32] = []
        for _ in 0..<1_100 {
            guard let fd = LoopbackClient.connect(port: probe) else { break }
            idle.append(fd)
        }
        sockets += idle
        #expect(idle.count == 1_100)

        var times: [Double] = []
        for _ in 0..<20 {
            let start = monotonicNow()
            let result = LoopbackHTTP.request(method: "GET", port: probe, path: "/api/molts", timeout: 10)
            times.append((monotonicNow() - start) * 1000)
            #expect(result.map(\.status) == .success(200))
        }
        let sorted = times.sorted()
        let median = sorted[sorted.count / 2]
        let rss = residentMiB(server.processIdentifier)
        let openedFor = monotonicNow() - idleStart
        // The flood was whole while the API answered: not one idle connection had been closed yet by
        // the idle timeout (which would free a slot). That, not how long opening them took, is what counts.
        let stillIdle = idle.filter { LoopbackClient.isOpen($0) }.count
        print("flood: \(answered) streams + \(idle.count) idle connections (open \(String(format: "%.1f", openedFor)) s); /api/molts median "
              + "\(String(format: "%.1f", median)) ms, max \(String(format: "%.1f", sorted.last ?? 0)) ms; RSS \(rss) MiB (idle server \(baseline) MiB)")
        #expect(stillIdle == idle.count, "\(idle.count - stillIdle) idle connections were closed before the API was measured")
        // Answered through the flood, not once it eased: an API starved behind it waits seconds, up to
        // the idle timeout (15 s). The issue's 50 ms is the number printed above; the bound is loose
        // enough that a loaded 2-core machine running the whole suite does not reach it.
        #expect(median < 1000, "median \(median) ms: \(sorted)")
        #expect(rss < 200, "RSS \(rss) MiB")

        // The idle ones are closed by the server's idle timeout; the streams stay.
        let closedBy = Date().addingTimeInterval(40)
        var closed = 0
        for fd in idle where LoopbackClient.waitForClose(fd, seconds: max(0.01, closedBy.timeIntervalSinceNow)) { closed += 1 }
        #expect(closed == idle.count, "\(closed) of \(idle.count) idle connections closed")
    }
}

/// The server's resident set in MiB (VmRSS of /proc/<pid>/status).
func residentMiB(_ pid: Int32) -> Int {
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    let kiB = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }?
        .split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? -1
    return kiB < 0 ? -1 : kiB / 1024
}

func monotonicNow() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// Raw TCP clients on loopback, for floods (blocking sockets, short waits).
enum LoopbackClient {
    /// Connected to 127.0.0.1:`port`, from `source` (another loopback address) when given.
    static func connect(port: Int, from source: String? = nil) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            inet_pton(AF_INET, source, &local.sin_addr)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else { close(fd); return nil }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = in_addr_t(UInt32(0x7F00_0001).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { close(fd); return nil }
        return fd
    }

    static func send(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// The first line the server sent, waiting up to `seconds`.
    static func statusLine(_ fd: Int32, seconds: Double = 10) -> String {
        var received: [UInt8] = []
        let deadline = monotonicNow() + seconds
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !received.contains(10) {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let remaining = deadline - monotonicNow()
            guard remaining > 0, poll(&poller, 1, Int32(remaining * 1000)) > 0 else { break }
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { break }
            received += buffer[0..<count]
        }
        return String(decoding: received.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
    }

    /// Still open right now: the peer has not closed it (nothing to read, or data but no end of stream).
    static func isOpen(_ fd: Int32) -> Bool {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, 0) > 0 else { return true }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) > 0
    }

    /// True once the peer closed (reads return 0 or fail), within `seconds`.
    static func waitForClose(_ fd: Int32, seconds: Double) -> Bool {
        let deadline = monotonicNow() + seconds
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let remaining = deadline - monotonicNow()
            guard remaining > 0, poll(&poller, 1, Int32(remaining * 1000)) > 0 else { return false }
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { return true }
        }
    }

    /// A port free right now (bound to 0, read, released).
    static func freePort() -> Int? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = in_addr_t(UInt32(0x7F00_0001).bigEndian)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        return bound ? Int(UInt16(bigEndian: address.sin_port)) : nil
    }
}
