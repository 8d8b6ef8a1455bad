import ClmntTestSupport
import ClmntCore
import Foundation
import Testing

/// The off-host story through the real binary: age encryption interoperable with Debian's
/// `age`, streams through a pipe, and backups into a real S3 server (`rclone serve s3`) that
/// a fresh base dir restores from with only the bucket's credentials and the identity file.
@Suite(.serialized) struct OffHostStoryTests {
    /// A fixture fleet with a file large enough for several age chunks, a key pair from
    /// `age-keygen`, and a work directory.
    struct Scene {
        let fixture: FleetFixture
        let work: String
        let keyFile: String
        let recipient: String

        init() throws {
            fixture = try FleetFixture()
            work = fixture.root.path + "/work"
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            // Incompressible, so the archive spans several 64 KiB age chunks.
            var random = SystemRandomNumberGenerator()
            let blob = (0..<(400 << 10)).map { _ in UInt8.random(in: 0...255, using: &random) }
            try Data(blob).write(to: URL(fileURLWithPath: fixture.home("alpha") + "/.openclaw/workspace/blob.bin"))
            keyFile = work + "/key.txt"
            let made = try shell("age-keygen -o '\(keyFile)' 2>/dev/null && chmod 600 '\(keyFile)' && age-keygen -y '\(keyFile)'")
            #expect(made.status == 0, "\(made.output)")
            recipient = made.output.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        func remove() { fixture.remove() }
    }

    @Test("clmnt's encrypted archive opens with age -d, and an archive age -r encrypted restores")
    func ageInterop() throws {
        let scene = try Scene()
        defer { scene.remove() }
        let archive = scene.work + "/fleet.tar.zst.age"
        let backup = try clmnt(["fleet", "backup", "-d", scene.fixture.baseDir, "--compress", "zstd", "-o", archive,
                                "--encrypt-to", scene.recipient, "-q"])
        #expect(backup.status == 0, "\(backup.output)")
        var info = stat()
        #expect(stat(archive, &info) == 0 && info.st_mode & 0o777 == 0o600)
        let listed = try shell("age -d -i '\(scene.keyFile)' '\(archive)' | tar -t --zstd")
        #expect(listed.status == 0, "\(listed.output)")
        #expect(listed.output.hasPrefix("manifest.json\n"))
        #expect(listed.output.contains("alpha/.openclaw/workspace/blob.bin"))

        // The other way: a plain archive encrypted by age itself, to an ssh-ed25519 key too.
        let plain = scene.work + "/plain.tar.zst"
        #expect(try clmnt(["fleet", "backup", "-d", scene.fixture.baseDir, "--compress", "zstd", "-o", plain, "-q"]).status == 0)
        #expect(try shell("ssh-keygen -q -t ed25519 -N '' -f '\(scene.work)/id_ed25519'").status == 0)
        let byAge = scene.work + "/by-age.tar.zst.age"
        let encrypted = try shell("age -r '\(scene.recipient)' -R '\(scene.work)/id_ed25519.pub' -o '\(byAge)' '\(plain)'")
        #expect(encrypted.status == 0, "\(encrypted.output)")
        for identity in [scene.keyFile, scene.work + "/id_ed25519"] {
            let target = scene.work + "/restored-\(UUID().uuidString.prefix(8))"
            let restore = try clmnt(["fleet", "restore", "--from", byAge, "-d", target, "--skip-users", "--allow-outside-symlinks", "--yes", "-q",
                                     "--identity", identity])
            #expect(restore.status == 0, "\(restore.output)")
            #expect(sameBytes(scene.fixture.home("alpha") + "/.openclaw/workspace/blob.bin",
                              target + "/alpha/.openclaw/workspace/blob.bin"))
        }
    }

    @Test("wrong key, no key, a loose key file, a flipped byte, swapped chunks and a cut each fail clearly; restore writes nothing")
    func failures() throws {
        let scene = try Scene()
        defer { scene.remove() }
        let archive = scene.work + "/fleet.tar.zst.age"
        #expect(try clmnt(["fleet", "backup", "-d", scene.fixture.baseDir, "--compress", "zstd", "-o", archive,
                           "--encrypt-to", scene.recipient, "-q"]).status == 0)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: archive))
        let header = try #require(bytes.range(of: Data("\n---".utf8)))
        let payloadStart = try #require(bytes[header.upperBound...].firstIndex(of: UInt8(ascii: "\n"))) + 1 + 16
        let sealed = 65536 + 16
        #expect(bytes.count > payloadStart + 3 * sealed, "the archive spans several chunks")

        // No identity: refused (exit 1), listed as encrypted with its date and size.
        let none = try clmnt(["fleet", "verify", archive])
        #expect(none.status == 1 && none.output.contains("age-encrypted: give --identity"), "\(none.output)")
        let listed = try clmnt(["fleet", "list-backups", "--backup-dir", scene.work, "--json"])
        #expect(listed.output.contains("\"encrypted\": true"), "\(listed.output)")

        // A wrong key (also from age-keygen): exit 1, named as such.
        let otherKey = scene.work + "/other.txt"
        #expect(try shell("age-keygen -o '\(otherKey)' 2>/dev/null && chmod 600 '\(otherKey)'").status == 0)
        let wrong = try clmnt(["fleet", "verify", archive, "--identity", otherKey])
        #expect(wrong.status == 1 && wrong.output.contains("wrong key"), "\(wrong.output)")

        // A key file others can read: refused before use (exit 64).
        chmod(scene.keyFile, 0o644)
        let loose = try clmnt(["fleet", "verify", archive, "--identity", scene.keyFile])
        #expect(loose.status == 64 && loose.output.contains("chmod 600"), "\(loose.output)")
        chmod(scene.keyFile, 0o600)

        var flipped = bytes
        flipped[payloadStart + sealed + 100] ^= 0x01
        var swapped = bytes
        swapped.replaceSubrange(payloadStart..<(payloadStart + 2 * sealed),
                                with: bytes[(payloadStart + sealed)..<(payloadStart + 2 * sealed)] + bytes[payloadStart..<(payloadStart + sealed)])
        let cut = bytes.prefix(payloadStart + 2 * sealed)
        for (name, data, message) in [("flipped", flipped, "chunk 1 failed authentication"),
                                      ("swapped", swapped, "chunk 0 failed authentication"),
                                      ("cut", Data(cut), "age")] {
            let damaged = scene.work + "/\(name).tar.zst.age"
            try data.write(to: URL(fileURLWithPath: damaged))
            let verify = try clmnt(["fleet", "verify", damaged, "--identity", scene.keyFile])
            #expect(verify.status == 2, "\(name): \(verify.output)")
            #expect(verify.output.contains(message), "\(name): \(verify.output)")
            let target = scene.work + "/target-\(name)"
            let restore = try clmnt(["fleet", "restore", "--from", damaged, "-d", target, "--skip-users", "--allow-outside-symlinks", "--yes",
                                     "--identity", scene.keyFile])
            #expect(restore.status == 1, "\(name): \(restore.output)")
            let left = (try? FileManager.default.contentsOfDirectory(atPath: target)) ?? []
            #expect(left.isEmpty, "\(name): restore left \(left)")
        }
    }

    @Test("backup -o - | restore --from - --yes, encrypted, through a pipe; -o - to a terminal is refused")
    func streams() throws {
        let scene = try Scene()
        defer { scene.remove() }
        let binary = try #require(clmntBinary())
        let target = scene.work + "/piped"
        let piped = try shell("'\(binary)' fleet backup -d '\(scene.fixture.baseDir)' --compress zstd -o - --encrypt-to '\(scene.recipient)' -q"
                              + " | '\(binary)' fleet restore --from - -d '\(target)' --skip-users --allow-outside-symlinks --yes -q --identity '\(scene.keyFile)'")
        #expect(piped.status == 0, "\(piped.output)")
        #expect(sameBytes(scene.fixture.home("alpha") + "/.openclaw/workspace/blob.bin", target + "/alpha/.openclaw/workspace/blob.bin"))
        let verified = try shell("'\(binary)' fleet backup -d '\(scene.fixture.baseDir)' -o - -q | '\(binary)' fleet verify -")
        #expect(verified.status == 0 && verified.output.contains("-: OK"), "\(verified.output)")
        // `script` gives the backup a terminal as standard output.
        let tty = try shell("script -qec \"'\(binary)' fleet backup -d '\(scene.fixture.baseDir)' -o -\" /dev/null")
        #expect(tty.output.contains("refusing to write the archive to a terminal"), "\(tty.output)")
    }

    @Test("the whole story: encrypted nightly backups of two hosts go to the bucket, are listed, and a fresh base dir restores from it")
    func story() throws {
        let scene = try Scene()
        defer { scene.remove() }
        let server = try RcloneS3Server()
        defer { server.stop() }
        let environment = server.clientEnvironment
        let url = "s3://\(RcloneS3Server.bucket)/nightly"
        for host in ["host-a", "host-b"] {
            let backup = try clmnt(["fleet", "backup", "-d", scene.fixture.baseDir, "--compress", "zstd", "--to", url,
                                    "--host", host, "--recipients-file", scene.keyFile + ".pub", "--backup-dir", scene.work + "/state",
                                    "--json"], environment: environment, before: {
                try Data((scene.recipient + "\n").utf8).write(to: URL(fileURLWithPath: scene.keyFile + ".pub"))
            })
            #expect(backup.status == 0, "\(backup.output)")
            #expect(backup.output.contains("\"ok\": true"), "\(backup.output)")
        }
        // An independent client sees complete objects, and they decrypt to valid archives.
        let keys = try server.boto3("for o in s3.list_objects_v2(Bucket=bucket)['Contents']: print(o['Key'])")
        let today = keys.split(separator: "\n").map(String.init)
        #expect(today.count == 2 && today.allSatisfy { $0.hasSuffix(".tar.zst.age") }, "\(keys)")
        #expect(try server.boto3("print(len(s3.list_multipart_uploads(Bucket=bucket).get('Uploads', [])))") == "0")
        let downloaded = scene.work + "/downloaded.age"
        _ = try server.boto3("s3.download_file(bucket, '\(today[0])', '\(downloaded)')")
        #expect(try shell("age -d -i '\(scene.keyFile)' '\(downloaded)' | tar -t --zstd | sed -n 1p").output == "manifest.json\n")
        #expect(FileManager.default.fileExists(atPath: scene.work + "/state/.offhost-last-success.json"))

        // Listed from the bucket: both hosts without a key (encrypted, dated), with it, the manifests.
        let blind = try clmnt(["fleet", "list-backups", "--from", url], environment: environment)
        #expect(blind.status == 0 && blind.output.contains("host-a/") && blind.output.contains("host-b/")
                && blind.output.contains("encrypted (no --identity)"), "\(blind.output)")
        let seen = try clmnt(["fleet", "list-backups", "--from", url, "--host", "host-b", "--identity", scene.keyFile, "--json"],
                             environment: environment)
        #expect(seen.status == 0 && seen.output.contains("\"molt_count\": 2") && !seen.output.contains("host-a"), "\(seen.output)")

        // A fresh base dir on a "new host": only the bucket's credentials and the identity.
        let key = try #require(today.first { $0.contains("/host-a/") })
        let fresh = scene.work + "/fresh"
        let dryRun = try clmnt(["fleet", "restore", "--from", "s3://\(RcloneS3Server.bucket)/\(key)", "-d", fresh, "--dry-run",
                                "--identity", scene.keyFile], environment: environment)
        #expect(dryRun.status == 0 && dryRun.output.contains("alpha"), "\(dryRun.output)")
        let restore = try clmnt(["fleet", "restore", "--from", "s3://\(RcloneS3Server.bucket)/\(key)", "-d", fresh,
                                 "--skip-users", "--allow-outside-symlinks", "--yes", "-q", "--identity", scene.keyFile], environment: environment)
        #expect(restore.status == 0, "\(restore.output)")
        for name in scene.fixture.moltNames {
            let differences = treeDifferences(scene.fixture.home(name), fresh + "/" + name)
            #expect(differences.isEmpty, "\(name): \(differences)")
        }
        let verify = try clmnt(["fleet", "verify", "s3://\(RcloneS3Server.bucket)/\(key)", "--identity", scene.keyFile],
                               environment: environment)
        #expect(verify.status == 0, "\(verify.output)")

        // Remote retention: keep one per host.
        let prune = try clmnt(["fleet", "prune", "--from", url, "--host", "host-a", "--keep", "1", "--dry-run"], environment: environment)
        #expect(prune.status == 0 && prune.output.contains("keep"), "\(prune.output)")
    }

    @Test("a server that is gone: --to fails with nothing left behind, --copy-to keeps the local archive and exits 3")
    func serverGone() throws {
        let scene = try Scene()
        defer { scene.remove() }
        let server = try RcloneS3Server()
        defer { server.stop() }
        let environment = server.clientEnvironment
        server.crash()
        let url = "s3://\(RcloneS3Server.bucket)/nightly"
        let streamed = try clmnt(["fleet", "backup", "-d", scene.fixture.baseDir, "--to", url, "--backup-dir", scene.work + "/s"],
                                 environment: environment, timeout: 120)
        #expect(streamed.status == 1, "\(streamed.output)")
        let copied = try clmnt(["fleet", "backup", "-d", scene.fixture.baseDir, "--copy-to", url, "--backup-dir", scene.work + "/local",
                                "--json"], environment: environment, timeout: 120)
        #expect(copied.status == 3, "\(copied.output)")
        #expect(copied.output.contains("off-host copy FAILED") && copied.output.contains("\"ok\": false"), "\(copied.output)")
        let local = try FileManager.default.contentsOfDirectory(atPath: scene.work + "/local").filter { $0.hasSuffix(".tar.gz") }
        #expect(local.count == 1)
        #expect(!FileManager.default.fileExists(atPath: scene.work + "/local/.offhost-last-success.json"))
        // Back up again: the copy goes through, and the bucket holds only complete objects.
        try server.start()
        let again = try clmnt(["fleet", "backup", "-d", scene.fixture.baseDir, "--copy-to", url, "--backup-dir", scene.work + "/local",
                               "-q"], environment: environment, timeout: 120)
        #expect(again.status == 0, "\(again.output)")
        #expect(try server.boto3("print(len(s3.list_multipart_uploads(Bucket=bucket).get('Uploads', [])))") == "0")
    }
    @Test("fleet doctor: the last off-host copy (OK, then FAIL when old), and an identity file beside the only archives")
    func doctor() throws {
        let scene = try Scene()
        defer { scene.remove() }
        let server = try RcloneS3Server()
        defer { server.stop() }
        let backups = scene.work + "/backups"
        func check(_ output: String, _ name: String) -> String? {
            output.split(separator: "\n").map(String.init).first { $0.split(separator: " ").dropFirst().first == Substring(name) }
        }
        // No off-host copy yet, a key on the archives' disk: the doctor says so.
        #expect(try clmnt(["fleet", "backup", "-d", scene.fixture.baseDir, "--backup-dir", backups, "-q"]).status == 0)
        let before = try clmnt(["fleet", "doctor", "-d", scene.fixture.baseDir, "--backup-dir", backups],
                               environment: ["CLMNT_IDENTITY_FILE": scene.keyFile])
        #expect(check(before.output, "identity-file")?.hasPrefix("WARN") == true, "\(before.output)")
        #expect(check(before.output, "backup-offhost") == nil, "\(before.output)")

        let copied = try clmnt(["fleet", "backup", "-d", scene.fixture.baseDir, "--backup-dir", backups, "--copy-to",
                                "s3://\(RcloneS3Server.bucket)/p", "-q"], environment: server.clientEnvironment)
        #expect(copied.status == 0, "\(copied.output)")
        let after = try clmnt(["fleet", "doctor", "-d", scene.fixture.baseDir, "--backup-dir", backups],
                              environment: ["CLMNT_IDENTITY_FILE": scene.keyFile])
        #expect(check(after.output, "backup-offhost")?.hasPrefix("OK") == true, "\(after.output)")
        #expect(check(after.output, "identity-file") == nil, "a copy lives elsewhere now: \(after.output)")

        // Three days later (the record rewritten as root would have): FAIL.
        let record = backups + "/.offhost-last-success.json"
        let text = try String(contentsOfFile: record, encoding: .utf8)
        let old = Timestamp.format(Date().addingTimeInterval(-3 * 86_400))
        let rewritten = text.replacingOccurrences(of: #""completed": "[^"]*""#, with: "\"completed\": \"\(old)\"", options: .regularExpression)
        try rewritten.write(toFile: record, atomically: false, encoding: .utf8)
        let stale = try clmnt(["fleet", "doctor", "-d", scene.fixture.baseDir, "--backup-dir", backups])
        #expect(check(stale.output, "backup-offhost")?.hasPrefix("FAIL") == true, "\(stale.output)")
    }
}

extension RcloneS3Server {
    /// What the binary needs to reach this server, as an admin's environment would give it.
    var clientEnvironment: [String: String] {
        ["AWS_ACCESS_KEY_ID": Self.accessKey, "AWS_SECRET_ACCESS_KEY": Self.secretKey, "AWS_ENDPOINT_URL": endpoint,
         "AWS_REGION": "us-east-1"]
    }
}


/// Runs the binary; output is standard output and standard error together.
func clmnt(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 60,
                   before: () throws -> Void = {}) throws -> (status: Int32, output: String) {
    try before()
    let binary = try #require(clmntBinary(), "the clmnt binary is built beside the tests")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = arguments
    process.environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"].merging(environment) { $1 }
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("clmnt-out-\(UUID().uuidString)")
    FileManager.default.createFile(atPath: output.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: output) }
    let handle = try FileHandle(forWritingTo: output)
    process.standardOutput = handle
    process.standardError = handle
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    try handle.close()
    return (process.terminationStatus, (try? String(contentsOf: output, encoding: .utf8)) ?? "")
}

/// `sh -c` with output and errors together.
func shell(_ command: String) throws -> (status: Int32, output: String) {
    try RcloneS3Server.run("/bin/sh", ["-c", command])
}

private func sameBytes(_ a: String, _ b: String) -> Bool {
    guard let left = FileManager.default.contents(atPath: a), let right = FileManager.default.contents(atPath: b) else { return false }
    return left == right
}

/// Regular files of `source` (caches and the files a restore rewrites left out) whose bytes or
/// mode differ in `restored`, or are missing there.
private func treeDifferences(_ source: String, _ restored: String) -> [String] {
    var differences: [String] = []
    let items = (FileManager.default.enumerator(atPath: source)?.allObjects as? [String]) ?? []
    for item in items {
        if item.hasPrefix(".cache") || item.contains("node_modules") || item.hasPrefix(".bun") { continue }
        if item == ".molt-info" || item.hasSuffix("openclaw.json") { continue }
        // Left out by the backup's default rules.
        if [".tmp", ".pid", ".lock", "-journal"].contains(where: { item.hasSuffix($0) }) { continue }
        var a = stat(), b = stat()
        guard lstat(source + "/" + item, &a) == 0, a.st_mode & S_IFMT == S_IFREG else { continue }
        guard lstat(restored + "/" + item, &b) == 0 else { differences.append("\(item) missing"); continue }
        // --skip-users: every file is root's on the new host; the mode stays.
        if a.st_mode != b.st_mode { differences.append("\(item) mode") }
        if !sameBytes(source + "/" + item, restored + "/" + item) { differences.append("\(item) bytes") }
    }
    return differences
}
