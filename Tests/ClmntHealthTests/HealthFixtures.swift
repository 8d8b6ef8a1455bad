import ClmntTestSupport
import ClmntCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import ClmntHealth

// Real parts for the health tests: an HTTP stand-in for the gateway and the
// webhook receiver, a fleet on disk, real processes, real users, a real SMTP sink.

/// What the stand-in server answers.
enum StubMode: Sendable {
    case respond(status: Int, body: String, contentType: String)
    /// Accepts the connection and never answers.
    case hang

    static let healthy = StubMode.respond(status: 200, body: #"{"ok":true,"status":"live"}"#, contentType: "application/json")
}

/// One request the stand-in received.
struct ReceivedRequest: Sendable {
    let method: String
    let path: String
    /// Lower-cased names.
    let headers: [String: String]
    let body: Data
}

/// An HTTP/1.1 server on 127.0.0.1 and an ephemeral port, one thread per connection.
final class HTTPStub: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let lock = NSLock()
    private var modes: [String: StubMode] = [:]
    private var defaultMode: StubMode
    private var received: [ReceivedRequest] = []
    private var held: [Int32] = []
    private var stopped = false
    private var hungNow = 0
    private var hungAtOnce = 0
    private var hungClosed = 0

    init(_ mode: StubMode = .healthy) throws {
        defaultMode = mode
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = in_addr_t(UInt32(0x7F00_0001).bigEndian)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 128) == 0 else { close(fd); throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    func setMode(_ mode: StubMode, path: String? = nil) {
        lock.lock(); defer { lock.unlock() }
        if let path { modes[path] = mode } else { defaultMode = mode }
    }

    var requests: [ReceivedRequest] {
        lock.lock(); defer { lock.unlock() }
        return received
    }

    /// The most connections left unanswered (`.hang`) at the same time.
    var mostHungAtOnce: Int {
        lock.lock(); defer { lock.unlock() }
        return hungAtOnce
    }

    /// Unanswered connections the client itself closed (it gave up waiting); `stop()` closing them does not count.
    var hungClosedByClient: Int {
        lock.lock(); defer { lock.unlock() }
        return hungClosed
    }

    /// Closes the listener, and the unanswered connections: their threads see the end and close them
    /// (shut down here under the lock, closed there under it, so no descriptor is touched after its close).
    func stop() {
        lock.lock()
        stopped = true
        for fd in held { shutdown(fd, Int32(SHUT_RDWR)) }
        held = []
        lock.unlock()
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func acceptLoop() {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EINTR { continue }
                return
            }
            Thread { [self] in serve(fd) }.start()
        }
    }

    private func serve(_ fd: Int32) {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 8192)
        var request: ReceivedRequest?
        while request == nil {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { close(fd); return }
            data.append(contentsOf: buffer[0..<count])
            request = Self.parse(data)
        }
        guard let request else { return }
        lock.lock()
        received.append(request)
        let mode = modes[request.path] ?? defaultMode
        let isStopped = stopped
        if case .hang = mode, !isStopped {
            held.append(fd)
            hungNow += 1
            hungAtOnce = max(hungAtOnce, hungNow)
        }
        lock.unlock()
        switch mode {
        case .hang:
            if isStopped { close(fd); return }
            // Never answered: held until the client gives up and closes it, or `stop()` shuts it.
            var byte: UInt8 = 0
            while true {
                let count = recv(fd, &byte, 1, 0)
                if count > 0 || (count < 0 && errno == EINTR) { continue }
                break
            }
            lock.lock()
            if let index = held.firstIndex(of: fd) {
                held.remove(at: index)
                hungNow -= 1
                hungClosed += 1
            }
            close(fd)
            lock.unlock()
        case .respond(let status, let body, let contentType):
            let bytes = Array(body.utf8)
            let head = "HTTP/1.1 \(status) Stub\r\nContent-Type: \(contentType)\r\nContent-Length: \(bytes.count)\r\nConnection: close\r\n\r\n"
            let response = Array(head.utf8) + bytes
            _ = response.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            close(fd)
        }
    }

    private static func parse(_ data: Data) -> ReceivedRequest? {
        guard let end = data.firstRange(of: Data("\r\n\r\n".utf8)) else { return nil }
        let head = String(decoding: data[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let first = head[0].split(separator: " ")
        guard first.count >= 2 else { return nil }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let length = headers["content-length"].flatMap { Int($0) } ?? 0
        let body = data[end.upperBound...]
        guard body.count >= length else { return nil }
        return ReceivedRequest(method: String(first[0]), path: String(first[1]), headers: headers, body: Data(body.prefix(length)))
    }
}

/// A real child process (`sleep`), for PID checks. Spawned and reaped with
/// posix_spawn/waitpid: Foundation's `Process.waitUntilExit` can hang under
/// Swift Testing's executor.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    private var reaped = false

    init(_ executable: String = "/bin/sleep", _ arguments: [String] = ["60"]) throws {
        pid = try spawn(executable, arguments)
    }

    /// Its command line as the kernel shows it (`/proc/<pid>/cmdline`, split at the NULs); nil once it is gone.
    var commandLine: [String]? {
        guard let text = readSmallFile("/proc/\(pid)/cmdline") else { return nil }
        return text.split(separator: "\0", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    /// Waits until a wrapper that execs in place (setpriv, env, ...) has exec'd the program it was given,
    /// seen as `argv0` in the first argument of the command line; false after `seconds` (a deadline that
    /// only ends a failed wait). The PID stays the same.
    /// Only argv[0] tells: the wrapper's own command line names the program too, as one of its arguments.
    func waitForExec(argv0: String, seconds: Double = 30) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while commandLine?.first != argv0 {
            guard Date() < deadline else { return false }
            usleep(5_000)
        }
        return true
    }

    /// Kills it and reaps it: its PID is then gone.
    func kill() {
        guard !reaped else { return }
        reaped = true
        Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    deinit { kill() }
}

/// posix_spawn with stdout and stderr to /dev/null.
func spawn(_ executable: String, _ arguments: [String]) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid: pid_t = 0
    let result = posix_spawn(&pid, executable, &actions, nil, argv, environ)
    guard result == 0 else { throw POSIXError(POSIXErrorCode(rawValue: result) ?? .EIO) }
    return pid
}

/// A real Linux user with a unique name, deleted by `remove()`.
struct TestUser {
    let name: String
    let uid: uid_t
    let gid: gid_t

    init(prefix: String = "clmnt-t") throws {
        let suffix = String(UInt32.random(in: 0..<UInt32.max), radix: 36)
        name = "\(prefix)-\(suffix)"
        try ProgramRunner.run("useradd", ["-M", "-U", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", name])
        guard let user = UserAccounts.user(named: name) else { throw POSIXError(.ENOENT) }
        uid = user.uid
        gid = user.gid
    }

    func remove() {
        _ = try? ProgramRunner.capture("crontab", ["-r", "-u", name])
        _ = try? ProgramRunner.capture("userdel", [name])
    }
}

/// A TCP listener on 127.0.0.1:`port` run by python3 as `user` (through setpriv): it prints
/// `accepted` for each connection and then the request head it received, into `output`
/// (opened by root's shell, so the user needs no writable directory), and answers 200.
final class PortListener {
    let output: String
    private let child: ChildProcess

    init(port: Int, user: TestUser, output: String, dir: String) throws {
        self.output = output
        let script = dir + "/port-listener-\(port).py"
        try """
        import socket, sys
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(sys.argv[1])))
        s.listen(16)
        while True:
            c, _ = s.accept()
            print("accepted", flush=True)
            c.settimeout(3)
            data = b""
            try:
                while b"\\r\\n\\r\\n" not in data:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            sys.stdout.write(data.decode("latin-1"))
            sys.stdout.flush()
            if data:
                c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok")
            c.close()

        """.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o644)
        child = try ChildProcess("/bin/sh", ["-c", "exec /usr/bin/setpriv --reuid=\(user.uid) --regid=\(user.gid) --clear-groups "
                                                 + "/usr/bin/python3 \(script) \(port) > \(output) 2>&1"])
        let deadline = Date().addingTimeInterval(10)
        while !LoopbackSocketOwner.listeners(port: port).contains(user.uid) && Date() < deadline { usleep(20_000) }
    }

    /// What it printed, once it holds `text` (or at the deadline, which only ends a wait that failed).
    func waitFor(_ text: String, seconds: Double = 30) -> String {
        let deadline = Date().addingTimeInterval(seconds)
        var current = ""
        repeat {
            current = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            if current.contains(text) { break }
            usleep(50_000)
        } while Date() < deadline
        return current
    }

    func stop() { child.kill() }
}

/// Debian's aiosmtpd as an SMTP sink on 127.0.0.1, storing mail in a Maildir.
final class SMTPSink {
    let port: Int
    let maildir: String
    private let child: ChildProcess

    init(dir: String) throws {
        maildir = dir + "/sink-maildir"
        // aiosmtpd needs a port number: take a free one from the kernel, then hand it over.
        let probe = try HTTPStub(.hang)
        let port = probe.port
        probe.stop()
        self.port = port
        child = try ChildProcess("/usr/bin/python3", ["-m", "aiosmtpd", "-n", "-l", "127.0.0.1:\(port)",
                                                       "-c", "aiosmtpd.handlers.Mailbox", maildir])
        // Ready once it accepts connections (it greets with "220", which is no HTTP: any answer but "refused" will do).
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline,
              case .failure(.refused) = LoopbackHTTP.request(method: "QUIT", port: port, path: "/", timeout: 0.3) {
            usleep(50_000)
        }
    }

    /// The messages received so far, as raw text.
    func messages() -> [String] {
        var found: [String] = []
        for sub in ["new", "cur"] {
            let dir = maildir + "/" + sub
            for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
                if let text = try? String(contentsOfFile: dir + "/" + name, encoding: .utf8) { found.append(text) }
            }
        }
        return found
    }

    /// Waits for `count` messages (delivery into the Maildir is asynchronous); the deadline only ends a wait that failed.
    func waitForMessages(_ count: Int, seconds: Double = 30) -> [String] {
        let deadline = Date().addingTimeInterval(seconds)
        var current = messages()
        while current.count < count && Date() < deadline {
            usleep(50_000)
            current = messages()
        }
        return current
    }

    func stop() { child.kill() }
}

/// A msmtp configuration pointing at the sink; msmtp insists on mode 0600.
func msmtpConfig(in dir: String, port: Int) throws -> String {
    let path = dir + "/msmtprc"
    try """
    defaults
    auth off
    tls off
    account default
    host 127.0.0.1
    port \(port)
    from clmnt-health@test.invalid

    """.write(toFile: path, atomically: true, encoding: .utf8)
    chmod(path, 0o600)
    return path
}

func monotonicNow() -> Double { LoopbackHTTP.monotonicSeconds() }
