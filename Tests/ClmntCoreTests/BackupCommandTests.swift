import ClmntTestSupport
import ClmntCore
import Foundation
import Testing

/// The `clmnt` binary itself: exit codes, one-line errors, nothing left behind.
@Suite("clmnt fleet backup command")
struct BackupCommandTests {
    let clmnt = clmntExecutable()

    private func files(in directory: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: directory))?.sorted() ?? []
    }

    @Test("bad input: one line on stderr, non-zero exit, nothing written")
    func badInput() throws {
        let fixture = try FleetFixture(molts: ["alpha"])
        defer { fixture.remove() }
        let out = fixture.root.path + "/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let empty = fixture.root.path + "/empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let existing = out + "/existing.tar.gz"
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: existing))

        let cases: [([String], String, Int32)] = [
            (["-d", fixture.root.path + "/missing", "-o", out + "/a.tar.gz"], "does not exist", 1),
            (["-d", empty, "-o", out + "/a.tar.gz"], "no molts found", 1),
            (["-d", fixture.baseDir, "--select", "zulu", "-o", out + "/a.tar.gz"], "unknown molt 'zulu' (molts here: alpha)", 1),
            (["-d", fixture.baseDir, "-o", existing], "already exists", 1),
            (["-d", fixture.baseDir, "-o", fixture.root.path + "/nodir/a.tar.gz"], "no such directory", 1),
            (["-d", fixture.baseDir, "-o", fixture.baseDir + "/alpha/a.tar.gz"], "inside the home of molt alpha", 1),
            (["-d", fixture.baseDir, "--compress", "lz4", "-o", out + "/a.tar"], "lz4", 64),
            (["-d", fixture.baseDir, "--compress", "zstd", "--level", "40", "-o", out + "/a.tar.zst"], "out of range", 64),
            (["-d", fixture.baseDir, "--select", "../etc", "-o", out + "/a.tar.gz"], "'../etc' is invalid for '--select", 64),
        ]
        for (arguments, message, status) in cases {
            let result = try runCapturing(clmnt, ["fleet", "backup"] + arguments)
            #expect(result.status == status, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
            if !arguments.contains("lz4") && !arguments.contains("../etc") {  // the parser's own errors come with the usage
                #expect(result.stderr.split(separator: "\n").count == 1, "one line: \(result.stderr)")
            }
        }
        #expect(files(in: out) == ["existing.tar.gz"], "no partial files")
        #expect(try String(contentsOfFile: existing, encoding: .utf8) == "keep me")
        #expect(!FileManager.default.fileExists(atPath: fixture.baseDir + "/alpha/a.tar.gz"))
    }

    @Test("the default name is ./backups/fleet-DATE, and a second run the same day does not overwrite it")
    func defaultOutput() throws {
        let fixture = try FleetFixture(molts: ["alpha"])
        defer { fixture.remove() }
        let first = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "--json"], currentDirectory: fixture.root.path)
        #expect(first.status == 0, "\(first.stderr)")
        let second = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "-q", "--compress", "gzip"], currentDirectory: fixture.root.path)
        #expect(second.status == 0, "\(second.stderr)")
        let names = files(in: fixture.root.path + "/backups")
        #expect(names.count == 2, "\(names)")
        #expect(names.allSatisfy { $0.hasPrefix("fleet-") && $0.hasSuffix(".tar.gz") })
        let summary = try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any]
        #expect((summary?["molts"] as? [String]) == ["alpha"])
        #expect((summary?["archive_bytes"] as? Int ?? 0) > 0)

        let listed = try runCapturing(clmnt, ["fleet", "list-backups"], currentDirectory: fixture.root.path)
        #expect(listed.status == 0)
        #expect(listed.stdout.split(separator: "\n").count == 3, "\(listed.stdout)")
        let verified = try runCapturing(clmnt, ["fleet", "verify", fixture.root.path + "/backups/" + names[0]])
        #expect(verified.status == 0, "\(verified.stdout)")
        #expect(verified.stdout.contains(": OK:"))
    }

    /// Before: `-o .../fleet-YYYY-MM-DD.tar.gz` wrote that name literally and failed the next night.
    @Test("date placeholders in -o's file name become the local date")
    func outputDatePlaceholders() throws {
        let fixture = try FleetFixture(molts: ["alpha"])
        defer { fixture.remove() }
        let out = fixture.root.path + "/YYYY-out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let run = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "-q", "-o", out + "/fleet-YYYY-MM-DD.tar.gz"])
        #expect(run.status == 0, "\(run.stderr)")
        let names = files(in: out)
        #expect(names.count == 1 && names[0].range(of: #"^fleet-\d{4}-\d{2}-\d{2}\.tar\.gz$"#, options: .regularExpression) != nil, "\(names)")

        let noon = Date(timeIntervalSince1970: 1_796_000_000)
        let expanded = Timestamp.expandingDatePlaceholders(in: "fleet-YYYY-MM-DD-HHMMSS.tar.gz", noon)
        #expect(expanded.range(of: #"^fleet-20\d\d-\d\d-\d\d-\d{6}\.tar\.gz$"#, options: .regularExpression) != nil, "\(expanded)")
        #expect(Timestamp.expandingDatePlaceholders(in: "ADDRESS-MMM.tar", noon) == "ADDRESS-MMM.tar")
    }

    @Test("verify exits 2 on a damaged archive")
    func verifyExitCode() throws {
        let fixture = try FleetFixture(molts: ["alpha"])
        defer { fixture.remove() }
        let archive = fixture.root.path + "/a.tar.gz"
        #expect(try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "-o", archive, "-q"]).status == 0)
        let data = try Data(contentsOf: URL(fileURLWithPath: archive))
        try data.prefix(data.count - 200).write(to: URL(fileURLWithPath: archive + ".cut.tar.gz"))
        let result = try runCapturing(clmnt, ["fleet", "verify", archive + ".cut.tar.gz"])
        #expect(result.status == 2, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("DAMAGED"))
        let missing = try runCapturing(clmnt, ["fleet", "verify", fixture.root.path + "/nope.tar.gz"])
        #expect(missing.status == 1 && missing.stderr.contains("No such file"))
    }

    @Test("SIGTERM or SIGINT mid-backup removes the partial archive", arguments: [SIGTERM, SIGINT])
    func interrupted(signalNumber: Int32) throws {
        let fixture = try FleetFixture(molts: ["alpha"])
        defer { fixture.remove() }
        // Incompressible data at xz -9 keeps the backup busy for seconds.
        var random = [UInt8](repeating: 0, count: 24 << 20)
        random.withUnsafeMutableBytes { raw in
            var generator = SystemRandomNumberGenerator()
            let words = raw.bindMemory(to: UInt64.self)
            for index in words.indices { words[index] = generator.next() }
        }
        try Data(random).write(to: URL(fileURLWithPath: fixture.baseDir + "/alpha/big.bin"))
        let out = fixture.root.path + "/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: clmnt)
        process.arguments = ["fleet", "backup", "-d", fixture.baseDir, "--compress", "xz", "--level", "9", "--threads", "1",
                             "-o", out + "/fleet.tar.xz", "-q"]
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Interrupt it mid-backup: once archive bytes reach the partial file (so it is created and
        // registered for removal, which happens before its first write), while big.bin keeps it busy.
        let writing = waitUntil {
            let partial = files(in: out).first.map { out + "/" + $0 }
            var info = stat()
            return partial.map { stat($0, &info) == 0 && info.st_size > 0 } == true || !process.isRunning
        }
        #expect(writing, "no archive bytes written")
        #expect(process.isRunning, "the backup must still be running when interrupted")
        kill(process.processIdentifier, signalNumber)
        process.waitUntilExit()
        #expect(process.terminationStatus == 128 + signalNumber)
        #expect(files(in: out).isEmpty, "left behind: \(files(in: out))")
    }

    @Test("reading a home does not touch access times (O_NOATIME through the CLinux shim)")
    func accessTimesUntouched() throws {
        let fixture = try FleetFixture(molts: ["alpha"])
        defer { fixture.remove() }
        // An access time older than the modification time: relatime would update it on any read.
        let soul = fixture.home("alpha") + "/.openclaw/workspace/SOUL.md"
        try run("/usr/bin/touch", ["-a", "-d", "2001-01-01T00:00:00Z", soul])
        var before = stat()
        stat(soul, &before)
        let archive = fixture.root.path + "/a.tar"
        let result = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "--compress", "none", "-o", archive, "-q"])
        #expect(result.status == 0, "\(result.stderr)")
        var after = stat()
        stat(soul, &after)
        #expect(after.st_atim.tv_sec == before.st_atim.tv_sec, "the backup read SOUL.md without O_NOATIME")
        #expect(try entryPaths(archive).contains("alpha/.openclaw/workspace/SOUL.md"))
    }
}
