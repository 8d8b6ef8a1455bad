import ClmntTestSupport
import ClmntCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// ProgramRunner against real programs (sh scripts): a reader that quits early,
/// one that ignores SIGTERM, one that prints too much.
@Suite struct ProgramRunnerTests {
    func script(_ dir: TemporaryDirectory, _ name: String, _ body: String) throws -> String {
        let path = dir.path + "/" + name
        try ("#!/bin/sh\n" + body + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    /// Before: the write into a pipe nobody reads raised SIGPIPE and killed clmnt (and this test process).
    @Test func programThatExitsWithoutReadingItsInputDoesNotKillUs() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let quitter = try script(dir, "quitter", "exit 0")
        let big = Data(repeating: UInt8(ascii: "x"), count: 4 << 20)
        for _ in 0..<3 {
            let output = try ProgramRunner.capture(quitter, [], input: big, timeout: 20)
            #expect(output.status == 0)
        }
        // One that reads a little and then fails: its status is reported, not a signal of ours.
        let partial = try script(dir, "partial", "head -c 10 >/dev/null; echo nope >&2; exit 3")
        #expect(throws: ProgramError.failed(program: partial, status: 3, stderrTail: "nope")) {
            try ProgramRunner.run(partial, [], input: big, timeout: 20)
        }
    }

    /// Before: `terminate()` sent SIGTERM once and left a program that ignores it running.
    @Test func timeoutEndsAProgramThatIgnoresSIGTERMAndItsChildren() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let pidFile = dir.path + "/pids"
        // A program that never ends by itself (its sleeps are what it is, not waits of the test).
        let stubborn = try script(dir, "stubborn", """
        trap '' TERM
        sleep 1000 &
        echo "$$ $!" > \(pidFile)
        while :; do sleep 1; done
        """)
        let started = Date()
        #expect(throws: ProgramError.timedOut(program: stubborn, seconds: 0.5)) {
            try ProgramRunner.capture(stubborn, [], timeout: 0.5)
        }
        let elapsed = Date().timeIntervalSince(started)
        // Ended by the SIGKILL after the grace: left alone it runs forever, its child 1,000 s. The bound is
        // generous beside the 0.5 s timeout and 2 s grace, and far below anything but the kill.
        #expect(elapsed < 0.5 + ProgramRunner.terminationGrace + 30, "took \(elapsed) s")
        let pids = try String(contentsOfFile: pidFile, encoding: .utf8).split(separator: " ")
            .compactMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        #expect(pids.count == 2)
        for pid in pids {
            // Reaped (no zombie left) and its background child gone: kill(0) finds nothing (the child,
            // reparented, is reaped by init in its own time: waited for, up to a deadline load cannot reach).
            let gone = waitUntil { kill(pid, 0) != 0 && errno == ESRCH }
            #expect(gone, "pid \(pid) still exists")
        }
    }

    /// Before: output over the limit was cut silently and the run "succeeded".
    @Test func outputOverTheLimitIsAnError() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let chatty = try script(dir, "chatty", "yes x | head -c 3000000")
        #expect(throws: ProgramError.outputTooLarge(program: chatty, stream: "standard output", limit: 1 << 20)) {
            try ProgramRunner.capture(chatty, [], timeout: 20)
        }
        let loud = try script(dir, "loud", "head -c 200000 /dev/zero >&2")
        #expect(throws: ProgramError.outputTooLarge(program: loud, stream: "standard error", limit: 100_000)) {
            try ProgramRunner.capture(loud, [], timeout: 20, outputLimit: 100_000)
        }
        // Exactly at the limit is fine, and nothing is cut.
        let exact = try ProgramRunner.capture(chatty, [], timeout: 20, outputLimit: 3_000_000)
        #expect(exact.stdout.utf8.count == 3_000_000)
    }

    /// The signals ignored in a process (the `SigIgn` mask of /proc/<pid>/status) that are among HUP, INT, PIPE, TERM.
    static func ignoredOfInterest(_ status: String) -> [String] {
        let line = status.split(separator: "\n").first { $0.hasPrefix("SigIgn:") } ?? ""
        let mask = UInt64(line.dropFirst("SigIgn:".count).trimmingCharacters(in: .whitespaces), radix: 16) ?? 0
        return [(SIGHUP, "HUP"), (SIGINT, "INT"), (SIGPIPE, "PIPE"), (SIGTERM, "TERM")]
            .filter { mask & (1 << UInt64($0.0 - 1)) != 0 }.map(\.1)
    }

    /// Before: a child inherited clmnt's ignored SIGTERM, SIGINT and SIGHUP (SignalCleanup,
    /// a restore cancelling): a mailer or useradd that SIGTERM could not stop, a shell that could not trap it.
    /// The real binary runs with those four ignored (as a wrapping shell leaves them, and as
    /// clmnt sets them itself) and starts a real mailer that reports its own mask.
    @Test func childrenStartWithDefaultSignalDispositions() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        chmod(dir.path, 0o755)
        let base = dir.path + "/base"
        try FileManager.default.createDirectory(atPath: base + "/alpha/.openclaw", withIntermediateDirectories: true)
        try "MOLT_NAME=alpha\nMOLT_HOME=\(base)/alpha\nMOLT_PORT=19001\n"
            .write(toFile: base + "/alpha/.molt-info", atomically: true, encoding: .utf8)
        let report = dir.path + "/mailer-status"
        let mailer = try script(dir, "mailer", "cat > /dev/null\nexec cat /proc/self/status > \(report)")

        let parent = try ProgramRunner.capture("/bin/sh", ["-c", """
            trap '' HUP INT PIPE TERM
            grep SigIgn /proc/$$/status >&2
            exec "$0" "$@"
            """, clmntExecutable(), "molt", "health-watch", "alpha", "-d", base, "--alert-email", "ops@example.com",
            "--mailer", mailer, "--consecutive-failures", "1"], environment: ["PATH": "/usr/bin:/bin"], timeout: 60)
        #expect(parent.status == 2, "health-watch: the molt is not running (\(parent.stderr))")
        // The wrapper (and so clmnt) really ignored all four.
        #expect(Self.ignoredOfInterest(parent.stderr) == ["HUP", "INT", "PIPE", "TERM"], "\(parent.stderr)")
        let status = try #require(try? String(contentsOfFile: report, encoding: .utf8),
                                  "the mailer did not run: \(parent.stdout) \(parent.stderr)")
        #expect(Self.ignoredOfInterest(status) == [], "the mailer started with them ignored")
        #expect(status.contains("SigBlk:\t0000000000000000"), "\(status)")

        // In this process too (SIGPIPE is ignored here since the first program ran).
        let direct = try ProgramRunner.run("/bin/cat", ["/proc/self/status"])
        #expect(Self.ignoredOfInterest(direct.stdout) == [])
    }

    @Test func inputIsDeliveredWholeAndTheEnvironmentIsPassed() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let input = Data((0..<200_000).map { "line \($0)\n" }.joined().utf8)
        let output = try ProgramRunner.run("/bin/sh", ["-c", "wc -c; echo \"$CLMNT_PROBE\" >&2"], input: input,
                                           environment: ["CLMNT_PROBE": "seen", "PATH": "/usr/bin:/bin"], timeout: 20)
        #expect(output.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == String(input.count))
        #expect(output.stderr == "seen\n")
        #expect(throws: ProgramError.notFound(program: "/nonexistent/prog")) {
            try ProgramRunner.run("/nonexistent/prog", [])
        }
    }
}
