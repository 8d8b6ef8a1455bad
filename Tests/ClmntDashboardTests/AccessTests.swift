import ClmntTestSupport
import ClmntCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import ClmntDashboard

/// Who may read the dashboard: the token file's checks and the Unix socket, through the real binary.
@Suite(.serialized) struct AccessTests {
    /// Before: the token file was read by path (links followed, no size bound) and a
    /// world-readable one was accepted. Now each of these is refused with one line.
    @Test func tokenFileMustBePrivateToRoot() throws {
        let dir = try TemporaryDirectory(prefix: "clmnt-dash-token")
        defer { dir.remove() }
        let good = dir.path + "/token"
        try "0123456789abcdef0123\n".write(toFile: good, atomically: false, encoding: .utf8)
        chmod(good, 0o600)
        #expect(try DashboardToken.read(path: good) == "0123456789abcdef0123")

        func refusal(_ path: String) -> String {
            do { _ = try DashboardToken.read(path: path); return "accepted" } catch { return error.description }
        }
        let worldReadable = dir.path + "/world"
        try "0123456789abcdef0123\n".write(toFile: worldReadable, atomically: false, encoding: .utf8)
        chmod(worldReadable, 0o644)
        #expect(refusal(worldReadable) == "refusing --token-file \(worldReadable): mode 644 lets group or others at it (chmod 600 \(worldReadable))")
        chmod(worldReadable, 0o640)
        #expect(refusal(worldReadable).contains("mode 640 lets group or others at it"))

        let link = dir.path + "/link"
        symlink(good, link)
        #expect(refusal(link) == "refusing --token-file \(link): it is a symbolic link")

        let foreign = dir.path + "/foreign"
        try "0123456789abcdef0123\n".write(toFile: foreign, atomically: false, encoding: .utf8)
        chmod(foreign, 0o600)
        chown(foreign, 65534, 65534)
        #expect(refusal(foreign) == "refusing --token-file \(foreign): owned by uid 65534, not by root")

        let second = dir.path + "/hardlink"
        Glibc.link(good, second)
        #expect(refusal(second).contains("it has 2 hard links"))
        unlink(second)

        let big = dir.path + "/big"
        try String(repeating: "a", count: 5000).write(toFile: big, atomically: false, encoding: .utf8)
        chmod(big, 0o600)
        #expect(refusal(big).contains("5000 bytes, more than a token"))

        let fifo = dir.path + "/fifo"
        mkfifo(fifo, 0o600)
        #expect(refusal(fifo).contains("not a regular file"))

        let short = dir.path + "/short"
        try "abc\n".write(toFile: short, atomically: false, encoding: .utf8)
        chmod(short, 0o600)
        #expect(refusal(short).contains("shorter than 16 characters"))

        // Through the binary: exit 64 and that one line.
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        chmod(worldReadable, 0o644)
        let run = try runCapturing(clmntExecutable(), ["dashboard", "serve", "-d", fleet.fixture.baseDir, "--port", "0",
                                                       "--token-file", worldReadable])
        #expect(run.status == 64)
        #expect(run.stderr == "clmnt: refusing --token-file \(worldReadable): mode 644 lets group or others at it (chmod 600 \(worldReadable))\n")
    }

    /// `--unix-socket`: mode 0660, the group named by `--socket-group`; a user in that group
    /// reads the fleet, the same user without the group cannot connect.
    @Test func unixSocketIsOpenToItsGroupOnly() throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        let dir = try TemporaryDirectory(prefix: "clmnt-dash-sock")
        defer { dir.remove() }
        chmod(dir.path, 0o755)
        let socket = dir.path + "/dashboard.sock"
        let nogroup = try #require(UserAccounts.groupID(named: "nogroup"))
        // A stale socket from an earlier run is replaced.
        let stale = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in socket.utf8.enumerated() { raw[index] = byte }
        }
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(stale, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        close(stale)

        let server = Process()
        server.executableURL = URL(fileURLWithPath: clmntExecutable())
        server.arguments = ["dashboard", "serve", "-d", fleet.fixture.baseDir, "--backup-dir", fleet.backupDir.path,
                            "--unix-socket", socket, "--socket-group", "nogroup"]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer { server.terminate(); server.waitUntilExit() }

        func curl(as identity: [String]) -> String {
            let result = try? runCapturing(identity.isEmpty ? "/usr/bin/curl" : "/usr/bin/setpriv",
                                           identity + (identity.isEmpty ? [] : ["/usr/bin/curl"])
                                           + ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", socket,
                                              "http://localhost/api/molts"])
            return result?.stdout ?? "?"
        }
        let deadline = Date().addingTimeInterval(30)
        while curl(as: []) != "200" && Date() < deadline { usleep(100_000) }
        var info = stat()
        #expect(lstat(socket, &info) == 0)
        #expect(info.st_mode & S_IFMT == S_IFSOCK)
        #expect(info.st_mode & 0o7777 == 0o660, "mode \(String(info.st_mode & 0o7777, radix: 8))")
        #expect(info.st_gid == nogroup)
        #expect(curl(as: []) == "200")
        #expect(curl(as: ["--reuid=65534", "--regid=\(nogroup)", "--clear-groups"]) == "200")
        #expect(curl(as: ["--reuid=65534", "--regid=1", "--clear-groups"]) == "000")
    }
}
