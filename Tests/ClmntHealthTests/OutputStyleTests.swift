import ClmntTestSupport
import ClmntCore
@testable import ClmntHealth
import Foundation
import Testing

/// README "Output": `-q`/`-v` on every command, one JSON style for every `--json`, ISO-8601 log lines.
/// Everything through the real binary.
@Suite("output: -q, -v, --json, log lines", .serialized)
struct OutputStyleTests {
    let clmnt = clmntExecutable()

    /// Every command's help, as HelpSnapshotTests records it: `clmnt-fleet-backup` -> ["fleet", "backup"].
    static func snapshots() throws -> [(command: [String], help: String)] {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("ClmntCoreTests/HelpSnapshots")
        return try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted().compactMap { file in
            guard file.hasSuffix(".txt") else { return nil }
            return (commandWords(String(file.dropLast(4))), try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8))
        }
    }

    /// `clmnt-fleet-list-backups` -> `["fleet", "list-backups"]`: the command names that hold a dash rejoined.
    static func commandWords(_ stem: String) -> [String] {
        let dashed = ["list-backups", "health-watch"]
        var text = String(stem.dropFirst("clmnt".count))
        for name in dashed { text = text.replacingOccurrences(of: name, with: name.replacingOccurrences(of: "-", with: "_")) }
        return text.split(separator: "-").map { $0.replacingOccurrences(of: "_", with: "-") }
    }

    /// A fleet of two molts, alpha answering on a stub gateway, beta with no gateway.
    struct Scene {
        let fleet: FleetFixture
        let stub: HTTPStub
        let backups: String
        init() throws {
            fleet = try FleetFixture.bare()
            stub = try HTTPStub()
            backups = fleet.base + "-backups"
            try fleet.addMolt("alpha", port: stub.port)
            try fleet.setPIDFile("alpha", getpid())
            try fleet.addMolt("beta", port: 19021)
            try "notes\n".write(toFile: fleet.base + "/alpha/notes.txt", atomically: true, encoding: .utf8)
        }
        func remove() {
            stub.stop()
            fleet.remove()
            try? FileManager.default.removeItem(atPath: backups)
        }
    }

    @Test("-q and -v are on every command; together they are a usage error (64)")
    func everyCommandTakesQuietAndVerbose() throws {
        let leaves = try Self.snapshots().filter { !$0.help.contains("SUBCOMMANDS:") }
        #expect(leaves.count >= 13)
        for (command, help) in leaves {
            #expect(help.contains("-q, --quiet"), "clmnt \(command.joined(separator: " ")) lacks -q")
            #expect(help.contains("-v, --verbose"), "clmnt \(command.joined(separator: " ")) lacks -v")
        }
        let scene = try Scene()
        defer { scene.remove() }
        let base = scene.fleet.base
        for arguments in [["fleet", "backup", "-d", base], ["fleet", "list-backups", "-d", base], ["fleet", "verify", "/nonexistent"],
                          ["fleet", "doctor", "-d", base], ["fleet", "restore", "--from", "/nonexistent", "-d", base],
                          ["molt", "health", "check", "alpha", "-d", base], ["molt", "health-watch", "alpha", "-d", base],
                          ["molt", "health", "logs", "alpha", "-d", base], ["dashboard", "serve", "-d", base]] {
            let run = try runCapturing(clmnt, arguments + ["-q", "-v"])
            #expect(run.status == 64, "\(arguments): \(run.stderr)")
            #expect(run.stderr.contains("give -q/--quiet or -v/--verbose, not both"), "\(arguments): \(run.stderr)")
            #expect(run.stdout.isEmpty)
        }
        // Nothing ran: no archive, no state.
        #expect(!FileManager.default.fileExists(atPath: scene.backups))
        #expect(!FileManager.default.fileExists(atPath: base + "/alpha/.molt-state"))
    }

    @Test("a quiet run that succeeds prints nothing on stdout; -v prints more than a plain run; exit codes unchanged")
    func quietAndVerbose() throws {
        let scene = try Scene()
        defer { scene.remove() }
        let base = scene.fleet.base
        func lines(_ text: String) -> Int { text.split(separator: "\n").count }

        // fleet backup
        let quietBackup = try runCapturing(clmnt, ["fleet", "backup", "-d", base, "--backup-dir", scene.backups, "-q"])
        #expect(quietBackup.status == 0 && quietBackup.stdout.isEmpty && quietBackup.stderr.isEmpty, "\(quietBackup.stdout)\(quietBackup.stderr)")
        let plainBackup = try runCapturing(clmnt, ["fleet", "backup", "-d", base, "-o", scene.backups + "/plain.tar.gz"])
        let verboseBackup = try runCapturing(clmnt, ["fleet", "backup", "-d", base, "--backup-dir", scene.backups, "-v"])
        #expect(plainBackup.status == 0 && verboseBackup.status == 0)
        #expect(lines(verboseBackup.stdout) > lines(plainBackup.stdout), "\(verboseBackup.stdout)")
        #expect(verboseBackup.stdout.contains("backup dir \(scene.backups) (from --backup-dir)"), "\(verboseBackup.stdout)")
        // Per molt: counts and the time it took.
        #expect(verboseBackup.stdout.split(separator: "\n").contains { $0.hasPrefix("  alpha: ") && $0.hasSuffix(" s") },
                "\(verboseBackup.stdout)")
        let archive = scene.backups + "/plain.tar.gz"

        // fleet verify
        let quietVerify = try runCapturing(clmnt, ["fleet", "verify", archive, "-q"])
        #expect(quietVerify.status == 0 && quietVerify.stdout.isEmpty, "\(quietVerify.stdout)")
        let plainVerify = try runCapturing(clmnt, ["fleet", "verify", archive])
        let verboseVerify = try runCapturing(clmnt, ["fleet", "verify", archive, "--verbose"])
        #expect(verboseVerify.status == 0 && lines(verboseVerify.stdout) > lines(plainVerify.stdout), "\(verboseVerify.stdout)")
        try Data("not an archive".utf8).write(to: URL(fileURLWithPath: scene.backups + "/broken.tar.gz"))
        let quietBroken = try runCapturing(clmnt, ["fleet", "verify", scene.backups + "/broken.tar.gz", "-q"])
        #expect(quietBroken.status != 0 && !(quietBroken.stdout + quietBroken.stderr).isEmpty, "a failure is never silent")

        // fleet list-backups: -q lists bare paths, for scripts.
        let quietList = try runCapturing(clmnt, ["fleet", "list-backups", "-d", base, "--backup-dir", scene.backups, "-q"])
        #expect(quietList.status == 0)
        #expect(quietList.stdout.split(separator: "\n").allSatisfy { $0.hasPrefix(scene.backups + "/") }, "\(quietList.stdout)")
        #expect(quietList.stdout.contains(archive))
        let plainList = try runCapturing(clmnt, ["fleet", "list-backups", "-d", base, "--backup-dir", scene.backups])
        let verboseList = try runCapturing(clmnt, ["fleet", "list-backups", "-d", base, "--backup-dir", scene.backups, "-v"])
        #expect(lines(verboseList.stdout) > lines(plainList.stdout))

        // molt health check: -q answers with the exit status alone when healthy, names only what is not.
        let quietCheck = try runCapturing(clmnt, ["molt", "health", "check", "alpha", "-d", base, "-q"])
        #expect(quietCheck.status == 0 && quietCheck.stdout.isEmpty, "\(quietCheck.stdout)\(quietCheck.stderr)")
        let quietAll = try runCapturing(clmnt, ["molt", "health", "check", "--all", "-d", base, "-q"])
        #expect(quietAll.status == 2)
        #expect(quietAll.stdout.split(separator: "\n").map { String($0.prefix(6)) } == ["beta: "], "\(quietAll.stdout)")
        let plainCheck = try runCapturing(clmnt, ["molt", "health", "check", "alpha", "-d", base])
        let verboseCheck = try runCapturing(clmnt, ["molt", "health", "check", "alpha", "-d", base, "-v"])
        #expect(verboseCheck.status == 0 && lines(verboseCheck.stdout) > lines(plainCheck.stdout))
        #expect(verboseCheck.stdout.contains(base + "/alpha/.molt-state/health-status.json"))

        // molt health-watch (cron.log): a healthy quiet run writes nothing; a failing one still says so.
        let quietWatch = try runCapturing(clmnt, ["molt", "health-watch", "alpha", "-d", base, "-q"])
        #expect(quietWatch.status == 0 && quietWatch.stdout.isEmpty, "\(quietWatch.stdout)")
        let quietFailing = try runCapturing(clmnt, ["molt", "health-watch", "beta", "-d", base, "-q"])
        #expect(quietFailing.status == 2 && quietFailing.stdout.contains("health: stopped"), "\(quietFailing.stdout)")
        let plainWatch = try runCapturing(clmnt, ["molt", "health-watch", "alpha", "-d", base])
        let verboseWatch = try runCapturing(clmnt, ["molt", "health-watch", "alpha", "-d", base, "-v"])
        #expect(lines(verboseWatch.stdout) > lines(plainWatch.stdout))

        // molt health status: -q is `systemctl is-active -q`.
        let quietStatus = try runCapturing(clmnt, ["molt", "health", "status", "alpha", "-d", base, "-q"])
        #expect(quietStatus.status == 0 && quietStatus.stdout.isEmpty)
        #expect(try runCapturing(clmnt, ["molt", "health", "status", "beta", "-d", base, "-q"]).status == 2)
        let plainStatus = try runCapturing(clmnt, ["molt", "health", "status", "alpha", "-d", base])
        let verboseStatus = try runCapturing(clmnt, ["molt", "health", "status", "alpha", "-d", base, "-v"])
        #expect(lines(verboseStatus.stdout) > lines(plainStatus.stdout))

        // fleet doctor: -q keeps only WARN and FAIL lines; the exit status is the same.
        let plainDoctor = try runCapturing(clmnt, ["fleet", "doctor", "-d", base, "--backup-dir", scene.backups])
        let quietDoctor = try runCapturing(clmnt, ["fleet", "doctor", "-d", base, "--backup-dir", scene.backups, "-q"])
        let verboseDoctor = try runCapturing(clmnt, ["fleet", "doctor", "-d", base, "--backup-dir", scene.backups, "-v"])
        #expect(quietDoctor.status == plainDoctor.status && verboseDoctor.status == plainDoctor.status)
        #expect(plainDoctor.stdout.contains("OK  "))
        #expect(!quietDoctor.stdout.isEmpty && quietDoctor.stdout.split(separator: "\n").allSatisfy { $0.hasPrefix("WARN") || $0.hasPrefix("FAIL") },
                "\(quietDoctor.stdout)")
        #expect(lines(verboseDoctor.stdout) > lines(plainDoctor.stdout))

        // fleet restore --yes: nothing on stdout with -q, the plan and summary without.
        let target = base + "-restored"
        defer { try? FileManager.default.removeItem(atPath: target) }
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        let quietRestore = try runCapturing(clmnt, ["fleet", "restore", "--from", archive, "-d", target, "--skip-users", "--yes", "-q"])
        #expect(quietRestore.status == 0 && quietRestore.stdout.isEmpty, "\(quietRestore.stdout)\(quietRestore.stderr)")
        #expect(FileManager.default.fileExists(atPath: target + "/alpha/notes.txt"))
    }

    /// A key clmnt chose: snake_case. Map keys that are data (molt names) are not keys clmnt chose.
    static func isSnakeCase(_ key: String) -> Bool {
        key.range(of: "^[a-z][a-z0-9]*(_[a-z0-9]+)*$", options: .regularExpression) != nil
    }

    /// Every key at every depth, and every string that starts like a date.
    static func walk(_ value: Any, path: String, keys: inout [(String, String)], dates: inout [(String, String)]) {
        if let object = value as? [String: Any] {
            for (key, member) in object {
                keys.append((path, key))
                walk(member, path: path + "." + key, keys: &keys, dates: &dates)
            }
        } else if let array = value as? [Any] {
            for (index, item) in array.enumerated() { walk(item, path: path + "[\(index)]", keys: &keys, dates: &dates) }
        } else if let text = value as? String, text.range(of: "^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ]", options: .regularExpression) != nil {
            dates.append((path, text))
        }
    }

    /// The layout of the one style: two-space indentation, `"key": value`, keys sorted in each object, a final newline.
    static func layoutProblems(_ text: String) -> [String] {
        var problems: [String] = []
        if !text.hasSuffix("}\n") && !text.hasSuffix("]\n") { problems.append("no final newline after the document") }
        var lastKey: [String?] = [nil]   // per open container
        for line in text.split(separator: "\n") {
            let indent = line.prefix { $0 == " " }.count
            let body = line.dropFirst(indent)
            if indent % 2 != 0 { problems.append("odd indentation: \(line)") }
            if body.hasPrefix("}") || body.hasPrefix("]") { lastKey.removeLast() }
            if body.hasPrefix("\""), let close = body.dropFirst().firstIndex(of: "\""),
               body[body.index(after: close)...].hasPrefix(":") {
                let key = String(body[body.index(after: body.startIndex)..<close])
                if !body[body.index(after: close)...].hasPrefix(": ") { problems.append("not `\"key\": value`: \(line)") }
                if let previous = lastKey[lastKey.count - 1], previous >= key { problems.append("key \(key) after \(previous)") }
                if !lastKey.isEmpty { lastKey[lastKey.count - 1] = key }
            }
            if body.hasSuffix("{") || body.hasSuffix("[") { lastKey.append(nil) }
        }
        return problems
    }

    @Test("every --json: snake_case keys at every depth, ISO-8601 UTC dates, one layout (sorted keys, 2 spaces, \"key\": value)")
    func everyJSONOutput() throws {
        let scene = try Scene()
        defer { scene.remove() }
        let base = scene.fleet.base
        let target = base + "-restored"
        defer { try? FileManager.default.removeItem(atPath: target) }
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        // A history, an alert state and a watch state for the health commands to show.
        _ = try runCapturing(clmnt, ["molt", "health-watch", "beta", "-d", base, "--consecutive-failures", "1"])
        _ = try runCapturing(clmnt, ["molt", "health-watch", "alpha", "-d", base])
        try FileManager.default.createDirectory(atPath: scene.backups, withIntermediateDirectories: true)
        let archive = scene.backups + "/fleet.tar.gz"
        // The runs, in order (the backup first: the others read its archive).
        let runs: [(command: [String], arguments: [String])] = [
            (["fleet", "backup"], ["-d", base, "-o", archive]),
            (["fleet", "list-backups"], ["-d", base, "--backup-dir", scene.backups]),
            (["fleet", "backup"], ["-d", base, "--backup-dir", scene.backups, "--dry-run"]),
            (["fleet", "prune"], ["-d", base, "--backup-dir", scene.backups, "--keep", "1", "--dry-run"]),
            (["fleet", "verify"], [archive]),
            (["fleet", "doctor"], ["-d", base, "--backup-dir", scene.backups]),
            (["fleet", "restore"], ["--from", archive, "-d", target, "--dry-run"]),
            (["fleet", "restore"], ["--from", archive, "-d", target, "--skip-users", "--yes"]),
            (["molt", "health", "check"], ["alpha", "-d", base]),
            (["molt", "health", "check"], ["--all", "-d", base]),
            (["molt", "health", "status"], ["beta", "-d", base]),
            (["molt", "health", "history"], ["beta", "-d", base]),
        ]
        // Every command whose help offers --json is run here.
        let offering = Set(try Self.snapshots().filter { snapshot in
            snapshot.help.split(separator: "\n").contains { $0.trimmingCharacters(in: .whitespaces).hasPrefix("--json") }
        }.map { $0.command.joined(separator: " ") })
        let covered = Set(runs.map { $0.command.joined(separator: " ") })
        #expect(offering == covered, "add the new --json command to this test: \(offering.subtracting(covered))")

        let moltNames: Set<String> = ["alpha", "beta"]
        for (command, arguments) in runs {
            let label = (command + arguments.prefix(1)).joined(separator: " ")
            let run = try runCapturing(clmnt, command + arguments + ["--json"])
            #expect([0, 1, 2].contains(run.status), "\(label): \(run.stderr)")
            guard let value = try? JSONSerialization.jsonObject(with: Data(run.stdout.utf8), options: [.fragmentsAllowed]) else {
                Issue.record("\(label): not JSON: \(run.stdout)\(run.stderr)")
                continue
            }
            var keys: [(String, String)] = [], dates: [(String, String)] = []
            Self.walk(value, path: label, keys: &keys, dates: &dates)
            #expect(!keys.isEmpty, "\(label): \(run.stdout)")
            for (path, key) in keys where !Self.isSnakeCase(key) && !moltNames.contains(key) {
                Issue.record("\(path): key \"\(key)\" is not snake_case")
            }
            for (path, date) in dates {
                #expect(date.hasSuffix("Z") && Timestamp.parse(date) != nil && ISO8601DateFormatter().date(from: date) != nil,
                        "\(path): \(date) is not ISO-8601 UTC")
            }
            for problem in Self.layoutProblems(run.stdout) { Issue.record("\(label): \(problem)") }
        }
        // A document with dates in it was among them (the history's checks, the manifest's timestamp).
        let history = try runCapturing(clmnt, ["molt", "health", "history", "beta", "-d", base, "--json"])
        #expect(history.stdout.contains("Z\""))
    }

    @Test("health-watch lines start with an ISO-8601 UTC timestamp; health logs shows the bash tool's lines and the new ones")
    func healthLogLines() throws {
        let scene = try Scene()
        defer { scene.remove() }
        let base = scene.fleet.base
        let before = Date(timeIntervalSinceNow: -1)
        let watch = try runCapturing(clmnt, ["molt", "health-watch", "alpha", "-d", base])
        #expect(watch.status == 0)
        let line = try #require(watch.stdout.split(separator: "\n").first.map(String.init))
        let stamp = try #require(line.split(separator: " ").first.map(String.init))
        let date = try #require(ISO8601DateFormatter().date(from: stamp), "\(line)")
        #expect(stamp.hasSuffix("Z") && date >= before.addingTimeInterval(-1) && date <= Date().addingTimeInterval(1))
        #expect(line.hasPrefix(stamp + " health: healthy ("))
        // An error goes to cron.log too (2>&1), stamped the same way.
        let unknown = try runCapturing(clmnt, ["molt", "health-watch", "gamma", "-d", base])
        #expect(unknown.status == 1)
        let errorStamp = try #require(unknown.stderr.split(separator: " ").first.map(String.init))
        #expect(ISO8601DateFormatter().date(from: errorStamp) != nil && unknown.stderr.contains(" clmnt: unknown molt 'gamma'"),
                "\(unknown.stderr)")

        // A cron.log the bash tool started and clmnt continued.
        let log = scene.fleet.stateFile("alpha", "cron.log")
        let old = ["[2026-11-28 10:05:00] health: healthy (pid 4242, port 19001, HTTP 200, 3.1 ms)",
                   "[2026-11-28 10:10:00] mail: checked 2 accounts"]
        // health-watch prints; cron's `>>` appends to the log (nothing there yet).
        try (old.joined(separator: "\n") + "\n" + line + "\n").write(toFile: log, atomically: true, encoding: .utf8)
        let logs = try runCapturing(clmnt, ["molt", "health", "logs", "alpha", "-d", base, "-n", "3"])
        #expect(logs.status == 0)
        #expect(logs.stdout == (old + [line]).joined(separator: "\n") + "\n", "\(logs.stdout)")
        let verbose = try runCapturing(clmnt, ["molt", "health", "logs", "alpha", "-d", base, "-n", "3", "-v"])
        #expect(verbose.stdout.hasPrefix(log + ":\n"))
    }
}
