import ClmntCore
import Foundation

/// Builds a small fleet at run time with everything git cannot keep: owners,
/// hardlinks, xattrs, sparse files, a live SQLite database, caches to skip.
public struct FleetFixture {
    public let root: TemporaryDirectory
    public var baseDir: String { root.path + "/fleet" }
    public let moltNames: [String]

    public init(molts: [String] = ["alpha", "bravo-2"]) throws {
        root = try TemporaryDirectory(prefix: "clmnt-fleet")
        moltNames = molts
        let fm = FileManager.default
        try fm.createDirectory(atPath: baseDir, withIntermediateDirectories: true)
        try populate(molts)
    }

    /// An empty base dir, open to every user (0755: health commands run as the molts' users),
    /// without `molts.json`, for molts added one by one with `addMolt` as make-fleet and
    /// OpenClaw lay them out (no rich tree: the health tests need only `.molt-info` and the config).
    public static func bare() throws -> FleetFixture {
        let fixture = try FleetFixture(root: TemporaryDirectory(prefix: "clmnt-health"))
        chmod(fixture.root.path, 0o755)
        try FileManager.default.createDirectory(atPath: fixture.baseDir, withIntermediateDirectories: true)
        chmod(fixture.baseDir, 0o755)
        return fixture
    }

    private init(root: TemporaryDirectory) {
        self.root = root
        moltNames = []
    }

    private func populate(_ molts: [String]) throws {
        var registry: [String] = []
        for (index, name) in molts.enumerated() {
            let port = 19001 + 20 * index
            let home = baseDir + "/" + name
            try makeMolt(name: name, home: home, port: port)
            registry.append("\"\(name)\":{\"name\":\"\(name)\",\"port\":\(port),\"home\":\"\(home)\",\"created\":\"2026-07-0\(index + 1)T10:00:00Z\"}")
        }
        try write(baseDir + "/molts.json", "{\"version\":\"1\",\"updated\":\"2026-11-28T00:00:00Z\",\"molts\":{\(registry.joined(separator: ","))}}\n")
    }

    public func remove() { root.remove() }

    // MARK: - Bare molts (health tests)

    /// The base dir (`baseDir`), as the health tests name it.
    public var base: String { baseDir }

    /// Writes `<base>/<name>/.molt-info` (with MOLT_PORT when `port` is given) and `openclaw.json`.
    @discardableResult
    public func addMolt(_ name: String, port: Int?, config: String? = nil, configPort: Int? = nil) throws -> String {
        let home = base + "/" + name
        try FileManager.default.createDirectory(atPath: home + "/.openclaw", withIntermediateDirectories: true)
        var info = "MOLT_NAME=\(name)\nMOLT_HOME=\(home)\nCREATED=2026-07-19T07:45:24Z\n"
        if let port { info += "MOLT_PORT=\(port)\n" }
        try info.write(toFile: home + "/.molt-info", atomically: true, encoding: .utf8)
        let json = config ?? "{ gateway: { port: \(configPort.map(String.init) ?? "null") } }"
        try json.write(toFile: home + "/.openclaw/openclaw.json", atomically: true, encoding: .utf8)
        return home
    }

    public func setPIDFile(_ name: String, _ pid: Int32) throws {
        try "\(pid)\n".write(toFile: base + "/\(name)/.openclaw/gateway.pid", atomically: true, encoding: .utf8)
    }

    public func fleet() throws -> Fleet { try Fleet.discover(baseDir: base) }

    public func molt(_ name: String) throws -> Molt { try fleet().molt(named: name) }

    public func stateFile(_ name: String, _ file: String) -> String { base + "/\(name)/.molt-state/\(file)" }

    public func read(_ name: String, _ file: String) -> String? {
        try? String(contentsOfFile: stateFile(name, file), encoding: .utf8)
    }

    public func home(_ name: String) -> String { baseDir + "/" + name }

    private func makeMolt(name: String, home: String, port: Int) throws {
        let fm = FileManager.default
        for dir in [".openclaw/workspace/memory", ".openclaw/workspace/notes", ".openclaw/workspace/canvas",
                    ".openclaw/agents/main/sessions", ".openclaw/credentials/whatsapp/default", ".openclaw/state",
                    ".openclaw/skills/web/scripts", ".molt-state", "Maildir/work/cur", "Maildir/work/new", "Maildir/work/tmp",
                    ".cache/huge", ".openclaw/workspace/node_modules/left-pad", ".bun/install/cache", ".local/bin"] {
            try fm.createDirectory(atPath: home + "/" + dir, withIntermediateDirectories: true)
        }
        try write(home + "/.molt-info", "MOLT_NAME=\(name)\nMOLT_PORT=\(port)\nMOLT_HOME=\(home)\nCREATED=2026-07-01T10:00:00Z\n")
        try write(home + "/.openclaw/openclaw.json", "// JSON5\n{ gateway: { port: \(port), auth: { token: 'synthetic-\(name)' } },\n  agents: { defaults: { workspace: '\(home)/.openclaw/workspace' } }, }\n")
        try write(home + "/.openclaw/.env", "OPENAI_API_KEY=synthetic-\(name)\n", mode: 0o600)
        try write(home + "/.openclaw/credentials/whatsapp/default/creds.json", "{\"synthetic\":true}\n", mode: 0o600)
        try write(home + "/.openclaw/workspace/SOUL.md", "# Soul of \(name)\n")
        try write(home + "/.openclaw/workspace/USER.md", "# The user of \(name)\n")
        try write(home + "/.openclaw/workspace/memory/.gitkeep", "")
        try write(home + "/.openclaw/workspace/notes/Réunion à Zürich – notes 🗓.md", "unicode name\n")
        try write(home + "/.openclaw/workspace/todo.md", "- [ ] back up\n")
        link(home + "/.openclaw/workspace/todo.md", home + "/.openclaw/workspace/notes/todo.md")
        try write(home + "/.openclaw/agents/main/sessions/s1.jsonl", String(repeating: "{\"role\":\"user\",\"text\":\"hello\"}\n", count: 200))
        try write(home + "/.openclaw/skills/web/scripts/fetch", "#!/bin/sh\necho hi\n", mode: 0o755)
        try write(home + "/.openclaw/gateway.log", "log line\n")
        try write(home + "/.openclaw/gateway.log.1", "old log line\n")
        try write(home + "/.openclaw/gateway.pid", "12345\n")
        try write(home + "/.molt-state/maintenance.lock", "")
        try write(home + "/.openclaw/workspace/draft.tmp", "temp\n")
        try write(home + "/Maildir/work/cur/1700000000.M1P1.host,S=20:2,S", "Subject: hi\n\nbody\n")
        try write(home + "/.cache/huge/blob", String(repeating: "x", count: 4096))
        try write(home + "/.openclaw/workspace/node_modules/left-pad/index.js", "module.exports = 1\n")
        try write(home + "/.bun/install/cache/pkg.tgz", "cache")
        try write(home + "/gogcli-target", "#!/bin/sh\n", mode: 0o755)
        symlink("../../gogcli-target", home + "/.local/bin/gog")
        symlink("/nonexistent/dangling", home + "/.openclaw/workspace/latest.tar.gz")
        symlink("/etc/shadow", home + "/.openclaw/workspace/shadow-link")
        // Random bytes: incompressible content checks the data path, not just headers.
        var random = [UInt8](repeating: 0, count: 300_000)
        for index in random.indices { random[index] = UInt8.random(in: 0...255) }
        try Data(random).write(to: URL(fileURLWithPath: home + "/.openclaw/workspace/attachment.bin"))
        // A sparse file: 8 MiB apparent, two small data regions.
        let sparsePath = home + "/.openclaw/workspace/disk.img"
        let fd = open(sparsePath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        _ = "head".withCString { pwrite(fd, $0, 4, 0) }
        _ = "tail".withCString { pwrite(fd, $0, 4, 6 * 1024 * 1024) }
        ftruncate(fd, 8 * 1024 * 1024)
        close(fd)
        // A file that only looks like SQLite.
        try Data(Array("SQLite format 3".utf8) + [0] + [UInt8](repeating: 7, count: 200))
            .write(to: URL(fileURLWithPath: home + "/.openclaw/workspace/fake.sqlite"))
        // A real database with a leftover journal beside it: empty, as journal_mode=TRUNCATE leaves it.
        try run("/usr/bin/env", ["python3", "-c", """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            db.execute('create table kv (k text primary key, v text)')
            db.executemany('insert into kv values (?, ?)', [(f'k{i}', 'v' * 100) for i in range(500)])
            db.commit(); db.close()
            """, home + "/.openclaw/state/openclaw.sqlite"])
        try write(home + "/.openclaw/state/openclaw.sqlite-journal", "")
        try run("/usr/bin/setfattr", ["-n", "user.comment", "-v", "synthetic soul", home + "/.openclaw/workspace/SOUL.md"])
        try run("/usr/bin/setfacl", ["-m", "u:65534:rw,g:0:r", home + "/.openclaw/workspace/USER.md"])
        // Mixed ownership: most of the tree belongs to "nobody", one log stays root's.
        try run("/bin/chown", ["-R", "-h", "65534:65534", home])
        try run("/bin/chown", ["0:0", home + "/.openclaw/gateway.log.1"])
        chmod(home, 0o700)
        // Fixed mtimes (after chown, which leaves them alone) so comparisons are exact.
        try run("/usr/bin/touch", ["-h", "-d", "2026-11-01T12:00:00Z", home + "/.openclaw/workspace/SOUL.md"])
    }

    private func write(_ path: String, _ text: String, mode: Int = 0o644) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, mode_t(mode))
    }
}

/// Runs a program and throws with its stderr unless it exits 0.
@discardableResult
public func run(_ program: String, _ arguments: [String], currentDirectory: String? = nil) throws -> String {
    let result = try runCapturing(program, arguments, currentDirectory: currentDirectory)
    guard result.status == 0 else {
        throw TestFailure("\(program) \(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr)")
    }
    return result.stdout
}

public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public struct RunResult {
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

public func runCapturing(_ program: String, _ arguments: [String], currentDirectory: String? = nil,
                         environment: [String: String]? = nil) throws -> RunResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program)
    process.arguments = arguments
    if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
    if let environment { process.environment = environment }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return RunResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                     stderr: String(decoding: errData, as: UTF8.self))
}

/// The `clmnt` executable built beside the test binary.
public func clmntExecutable() -> String {
    // Lets a test run against another build (to show it fails on an older main).
    if let override = ProcessInfo.processInfo.environment["CLMNT_TEST_BINARY"], !override.isEmpty { return override }
    let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var directory = testBinary.deletingLastPathComponent()
    for _ in 0..<5 {
        let candidate = directory.appendingPathComponent("clmnt").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    return "/work/main/.build/debug/clmnt"
}
