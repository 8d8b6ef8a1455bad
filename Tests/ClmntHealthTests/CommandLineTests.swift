import ClmntTestSupport
import ClmntCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import ClmntHealth


/// The commands as an admin types them: exit codes, one-line errors, output formats.
@Suite struct CommandLineTests {
    struct Run {
        let status: Int32
        let stdout: String
        let stderr: String
        var stderrLines: [Substring] { stderr.split(separator: "\n") }
    }

    func clmnt(_ arguments: [String], binary: String? = nil) throws -> Run {
        let binary = try binary ?? #require(clmntBinary(), "the clmnt binary is built beside the tests")
        let output = try ProgramRunner.capture(binary, arguments, environment: ["PATH": "/usr/bin:/bin", "HOME": "/root"], timeout: 60)
        return Run(status: output.status, stdout: output.stdout, stderr: output.stderr)
    }

    @Test func badInputIsOneLineAndNonZero() throws {
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        try fleet.addMolt("alpha", port: 19001)
        try fleet.addMolt("beta", port: 19021)

        let unknown = try clmnt(["molt", "health", "check", "nope", "-d", fleet.base])
        #expect(unknown.status == 1)
        #expect(unknown.stderrLines == ["clmnt: unknown molt 'nope' (molts here: alpha, beta)"])
        #expect(unknown.stdout.isEmpty)

        let invalid = try clmnt(["molt", "health", "status", "Alpha;rm", "-d", fleet.base])
        #expect(invalid.status == 64)
        #expect(invalid.stderrLines.count == 1)
        #expect(invalid.stderr.hasPrefix("clmnt: invalid molt name 'Alpha;rm'"))

        let interval = try clmnt(["molt", "health", "setup", "alpha", "-d", fleet.base, "--interval", "61"])
        #expect(interval.status == 64)
        #expect(interval.stderrLines == ["clmnt: invalid interval 61: give minutes from 1 to 59, or whole hours in minutes (60, 120, ... 1440)"])

        let offset = try clmnt(["molt", "health", "setup", "alpha", "-d", fleet.base, "--interval", "10", "--offset", "10"])
        #expect(offset.status == 64)
        #expect(offset.stderrLines == ["clmnt: invalid offset 10: give minutes from 0 to 9 (less than the interval 10)"])

        let mailer = try clmnt(["molt", "health", "setup", "alpha", "-d", fleet.base, "--alert-email", "ops@example.com",
                                "--mailer", "/nonexistent/msmtp"])
        #expect(mailer.status == 1)
        #expect(mailer.stderrLines.count == 1)
        #expect(mailer.stderr.contains("/nonexistent/msmtp is not installed"))

        let email = try clmnt(["molt", "health-watch", "alpha", "-d", fleet.base, "--alert-email", "not-an-address"])
        #expect(email.status == 64)
        #expect(email.stderrLines.count == 1)

        let missingBase = try clmnt(["molt", "health", "check", "--all", "-d", fleet.base + "/nowhere"])
        #expect(missingBase.status == 1)
        #expect(missingBase.stderrLines.count == 1)
        #expect(missingBase.stderr.contains("does not exist"))

        // Nothing was written for any of it.
        #expect(!FileManager.default.fileExists(atPath: fleet.base + "/alpha/.molt-state"))
    }

    @Test func checkStatusHistoryAndLogs() throws {
        let stub = try HTTPStub()
        defer { stub.stop() }
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        try fleet.addMolt("alpha", port: stub.port)
        try fleet.addMolt("beta", port: 19021)
        try fleet.setPIDFile("alpha", getpid())

        let check = try clmnt(["molt", "health", "check", "alpha", "-d", fleet.base])
        #expect(check.status == 0)
        #expect(check.stdout.hasPrefix("alpha: healthy (pid \(getpid()), port \(stub.port), HTTP 200, "))

        let json = try clmnt(["molt", "health", "check", "beta", "-d", fleet.base, "--json"])
        #expect(json.status == 2)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["molt"] as? String == "beta")
        #expect(object["status"] as? String == "stopped")
        #expect(object["pid"] is NSNull)

        let all = try clmnt(["molt", "health", "check", "--all", "-d", fleet.base])
        #expect(all.status == 2)
        let rows = all.stdout.split(separator: "\n")
        #expect(rows.count == 3)
        #expect(rows[0].hasPrefix("MOLT"))
        #expect(rows[1].hasPrefix("alpha") && rows[1].contains("healthy"))
        #expect(rows[2].hasPrefix("beta") && rows[2].contains("stopped"))

        let watch = try clmnt(["molt", "health-watch", "beta", "-d", fleet.base, "--consecutive-failures", "1"])
        #expect(watch.status == 2)
        let lines = watch.stdout.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines[0].contains("Z health: stopped (no process, port 19021, no HTTP answer)"))
        #expect(Timestamp.parse(String(lines[0].prefix(20))) != nil, "ISO-8601 first: \(lines[0])")
        #expect(lines[1].contains("alert due but no channel configured"))

        let status = try clmnt(["molt", "health", "status", "beta", "-d", fleet.base, "--json"])
        #expect(status.status == 2)
        let statusObject = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        let watchState = try #require(statusObject["watch"] as? [String: Any])
        #expect(watchState["consecutive_failures"] as? Int == 1)
        #expect(watchState["alert_sent"] as? Bool == true)
        let healthy = try clmnt(["molt", "health", "status", "alpha", "-d", fleet.base])
        #expect(healthy.status == 0)
        #expect(healthy.stdout.contains("healthy, checked"))

        let history = try clmnt(["molt", "health", "history", "alpha", "-d", fleet.base, "--json", "--limit", "1"])
        #expect(history.status == 0)
        let historyObject = try #require(try JSONSerialization.jsonObject(with: Data(history.stdout.utf8)) as? [String: Any])
        let windows = try #require(historyObject["windows"] as? [[String: Any]])
        #expect(windows.map { $0["window"] as? String } == ["24h", "7d", "30d", "all"])
        #expect(windows[0]["checks"] as? Int == 2)
        #expect(windows[0]["uptime_percent"] as? Double == 100)
        #expect((historyObject["recent"] as? [Any])?.count == 1)

        let noLog = try clmnt(["molt", "health", "logs", "alpha", "-d", fleet.base])
        #expect(noLog.status == 1)
        #expect(noLog.stderr.contains("no health log yet"))
        try "[1] one\n[2] two\n[3] three\n".write(toFile: fleet.base + "/alpha/.molt-state/cron.log", atomically: true, encoding: .utf8)
        let logs = try clmnt(["molt", "health", "logs", "alpha", "-d", fleet.base, "-n", "2"])
        #expect(logs.status == 0)
        #expect(logs.stdout == "[2] two\n[3] three\n")
    }

    /// The installed crontab line, run the way cron runs it: as the molt user, by
    /// /bin/sh, with an empty environment.
    @Test func cronLineRunsInCronsBareEnvironment() throws {
        // The line names the binary that ran setup, which the molt user must be able to run: a copy in a
        // directory every user can reach, wherever the build dir is (it may be closed to other users).
        // Copied by cp, so no descriptor open for writing on it can leak into a child another test forks.
        let built = try #require(clmntBinary(), "the clmnt binary is built beside the tests")
        let bin = try TemporaryDirectory(prefix: "clmnt-cron-bin")
        defer { bin.remove() }
        chmod(bin.path, 0o755)
        let binary = bin.path + "/clmnt"
        try ProgramRunner.run("/bin/cp", [built, binary], timeout: 120)
        chmod(binary, 0o755)
        let user = try TestUser()
        defer { user.remove() }
        let stub = try HTTPStub()
        defer { stub.stop() }
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        let home = try fleet.addMolt(user.name, port: stub.port)
        chown(home, user.uid, user.gid)
        chmod(home, 0o700)
        try fleet.setPIDFile(user.name, getpid())
        // make-fleet leaves a root-owned cron.log: setup must hand it to the molt user.
        try FileManager.default.createDirectory(atPath: home + "/.molt-state", withIntermediateDirectories: true)
        try "[old] root-owned line\n".write(toFile: home + "/.molt-state/cron.log", atomically: true, encoding: .utf8)

        let setup = try clmnt(["molt", "health", "setup", user.name, "-d", fleet.base, "--interval", "5"], binary: binary)
        #expect(setup.status == 0, "\(setup.stderr)")
        let crontab = try ProgramRunner.run("crontab", ["-l", "-u", user.name]).stdout
        let job = try #require(crontab.split(separator: "\n").first { $0.contains(" molt health-watch ") })
        let command = job.split(separator: " ", maxSplits: 5).last.map(String.init) ?? ""
        #expect(command.hasPrefix("/"))
        #expect(command.hasPrefix(binary + " "), "the line runs the copy: \(command)")
        let run = try ProgramRunner.capture("/usr/bin/setpriv", ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups",
                                                                 "/usr/bin/env", "-i", "/bin/sh", "-c", command], timeout: 60)
        #expect(run.status == 0, "\(run.stderr)")
        let log = try String(contentsOfFile: home + "/.molt-state/cron.log", encoding: .utf8)
        #expect(log.hasPrefix("[old] root-owned line\n"))
        #expect(log.contains("Z health: healthy (pid \(getpid()), port \(stub.port), HTTP 200"))
        var info = stat()
        #expect(stat(home + "/.molt-state/health-watch-state.json", &info) == 0)
        #expect(info.st_uid == user.uid)
    }
}
