import ClmntTestSupport
import ClmntCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import ClmntHealth

/// Issue 9.4 through the real binary: a history ending in a cut line, a line over the
/// rotation cap, a run killed while the mailer delivers.
@Suite struct StateEdgeTests {
    /// Before: the next record was appended onto the cut line and both were lost.
    @Test func recordAfterACutLineStartsANewLine() throws {
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        try fleet.addMolt("alpha", port: 19001)
        try FileManager.default.createDirectory(atPath: fleet.base + "/alpha/.molt-state", withIntermediateDirectories: true)
        let cut = #"{"timestamp":"2026-11-28T10:00:00Z","status":"healthy","pid":1,"port":19001,"http_status":200,"response_time_ms":1.5}"#
            + "\n" + #"{"timestamp":"2026-11-28T10:05:00Z","sta"#
        try cut.write(toFile: fleet.stateFile("alpha", "health-history.jsonl"), atomically: true, encoding: .utf8)
        let check = try runClmnt(["molt", "health", "check", "alpha", "-d", fleet.base])
        #expect(check.status == 2)
        let lines = try #require(fleet.read("alpha", "health-history.jsonl")).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 4) // the good line, the cut one, the new record, and the final empty piece
        #expect(lines[1] == #"{"timestamp":"2026-11-28T10:05:00Z","sta"#)
        #expect(lines[2].hasPrefix(#"{"timestamp":"#) && lines[2].contains(#""status":"stopped""#))
        let loaded = HealthStateFiles(molt: try fleet.molt("alpha")).history.load()
        #expect(loaded.records.map(\.status) == [.healthy, .stopped])
        #expect(loaded.warnings == ["skipped 1 corrupt line in \(fleet.stateFile("alpha", "health-history.jsonl")) (first at line 2)"])
    }

    /// Before: a 5 MiB line was renamed to `.1` whole and kept, past the documented 2 MiB a file.
    @Test func lineOverTheRotationCapIsNotKept() throws {
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        try fleet.addMolt("alpha", port: 19001)
        try FileManager.default.createDirectory(atPath: fleet.base + "/alpha/.molt-state", withIntermediateDirectories: true)
        let huge = Data(repeating: UInt8(ascii: "x"), count: 5 << 20) + Data("\n".utf8)
        FileManager.default.createFile(atPath: fleet.stateFile("alpha", "health-history.jsonl"), contents: huge)
        for _ in 0..<2 { _ = try runClmnt(["molt", "health", "check", "alpha", "-d", fleet.base]) }
        let cap = HistoryPolicy().maxBytes
        for name in ["health-history.jsonl", "health-history.jsonl.1"] {
            var info = stat()
            if stat(fleet.stateFile("alpha", name), &info) == 0 {
                #expect(Int(info.st_size) <= cap, "\(name) holds \(info.st_size) bytes")
            }
        }
        let loaded = HealthStateFiles(molt: try fleet.molt("alpha")).history.load()
        #expect(loaded.records.map(\.status) == [.stopped, .stopped])
    }

    /// Before: the state said "not sent" while the mailer ran; killed there, the next run mailed the alert again.
    @Test func killedWhileTheMailerDeliversDoesNotMailAgain() throws {
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        try fleet.addMolt("alpha", port: 19001)
        let calls = fleet.base + "/mailer-calls"
        let mailer = fleet.base + "/mailer"
        try """
        #!/bin/sh
        cat > /dev/null
        echo "$$" >> \(calls)
        # The first delivery hangs (health-watch is killed meanwhile); later ones are quick.
        if [ "$(wc -l < \(calls))" -eq 1 ]; then exec sleep 30; fi
        exit 0
        """.write(toFile: mailer, atomically: true, encoding: .utf8)
        chmod(mailer, 0o755)
        let arguments = ["molt", "health-watch", "alpha", "-d", fleet.base, "--alert-email", "ops@example.com",
                         "--mailer", mailer, "--consecutive-failures", "1"]
        let binary = try #require(clmntBinary())
        let first = try spawn(binary, arguments)
        // Killed while the mailer delivers: once the mailer has written its PID (a whole line) and
        // hangs in its delivery (exec'd `sleep`), health-watch is waiting on it.
        let delivering = waitUntil {
            guard let text = try? String(contentsOfFile: calls, encoding: .utf8), text.hasSuffix("\n"),
                  let pid = pid_t(text.split(separator: "\n").first ?? "") else { return false }
            return commandLine(of: pid)?.first == "sleep"
        }
        #expect(delivering, "the mailer never got to its hanging delivery")
        kill(first, SIGKILL)
        var status: Int32 = 0
        waitpid(first, &status, 0)
        let mailerPIDs = try String(contentsOfFile: calls, encoding: .utf8).split(separator: "\n").compactMap { pid_t($0) }
        #expect(mailerPIDs.count == 1)
        defer { for pid in mailerPIDs { kill(pid, SIGKILL) } }

        let second = try runClmnt(arguments)
        #expect(second.stdout.contains("counted as delivered, mail not sent again (at most once)"), "\(second.stdout)")
        _ = try runClmnt(arguments)
        #expect(try String(contentsOfFile: calls, encoding: .utf8).split(separator: "\n").count == 1, "the alert was mailed again")
        let state = try #require(fleet.read("alpha", "health-watch-state.json"))
        #expect(state.contains(#""alert_sent": true"#))
        #expect(state.contains(#""delivering": null"#))
    }

    /// Before: `logs -f` held an unterminated line whole: a molt writing no newline grew
    /// root's process without bound. Now a line is printed in 64 KiB pieces, each marked.
    @Test func followCutsALineWithoutANewline() throws {
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        try fleet.addMolt("alpha", port: 19001)
        try FileManager.default.createDirectory(atPath: fleet.base + "/alpha/.molt-state", withIntermediateDirectories: true)
        let log = fleet.stateFile("alpha", "cron.log")
        try "start\n".write(toFile: log, atomically: true, encoding: .utf8)
        let output = fleet.base + "/follow.out"
        let binary = try #require(clmntBinary())
        let follower = try ChildProcess("/bin/sh", ["-c", "exec \(binary) molt health logs alpha -f -n 1 -d \(fleet.base) > \(output) 2>&1"])
        defer { follower.kill() }
        func printed() -> String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }
        let started = Date().addingTimeInterval(20)
        while !printed().contains("start") && Date() < started { usleep(20_000) }

        func peakKiB() -> Int {
            let status = (try? String(contentsOfFile: "/proc/\(follower.pid)/status", encoding: .utf8)) ?? ""
            return status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }?
                .split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? Int.max
        }
        let baseline = peakKiB()
        // 32 MiB with no newline, written the way a molt appends to its log.
        let writer = try #require(FileHandle(forWritingAtPath: log))
        writer.seekToEndOfFile()
        let piece = Data(repeating: UInt8(ascii: "x"), count: 1 << 20)
        for _ in 0..<32 { writer.write(piece) }
        try writer.close()
        let deadline = Date().addingTimeInterval(60)
        while printed().components(separatedBy: LogTail.cutMarker).count - 1 < 512 && Date() < deadline { usleep(50_000) }

        let lines = printed().split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.first == "start")
        let pieces = lines.dropFirst()
        #expect(pieces.count == 512, "\(pieces.count) pieces of a 32 MiB line")
        #expect(pieces.allSatisfy { $0 == String(repeating: "x", count: LogTail.longestLine) + LogTail.cutMarker })
        // Nothing like the line's 32 MiB stayed in the process: its peak grew by a few pieces at most.
        let peak = peakKiB()
        #expect(peak - baseline < 8 * 1024, "peak RSS \(baseline) KiB before, \(peak) KiB after")
    }
}
