import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Failure to run an external program (useradd, crontab, msmtp, ...).
public enum ProgramError: Error, Equatable, CustomStringConvertible {
    /// The program could not be started at all.
    case notFound(program: String)
    case couldNotRun(program: String, reason: String)
    /// It ran and exited non-zero (or was killed: 128 + the signal).
    case failed(program: String, status: Int32, stderrTail: String)
    /// It ran longer than allowed and was stopped (SIGTERM, then SIGKILL) and reaped.
    case timedOut(program: String, seconds: Double)
    /// It printed more than the limit on `stream`; it was stopped and nothing it printed is used.
    case outputTooLarge(program: String, stream: String, limit: Int)

    public var description: String {
        switch self {
        case .notFound(let program): return "\(program) is not installed"
        case .couldNotRun(let program, let reason): return "cannot run \(program): \(reason)"
        case .failed(let program, let status, let tail):
            let detail = tail.isEmpty ? "" : ": \(tail)"
            return "\(program) failed with status \(status)\(detail)"
        case .timedOut(let program, let seconds): return "\(program) did not finish within \(seconds) s (stopped)"
        case .outputTooLarge(let program, let stream, let limit):
            return "\(program) printed more than \(limit) bytes on \(stream); its output is not used"
        }
    }
}

/// What a finished program printed.
public struct ProgramOutput: Sendable {
    /// The exit status, or 128 + the signal that ended it.
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

/// Runs programs by absolute path with an argument array: never through a shell.
///
/// Rules (docs/architecture.md, "Running other programs"):
/// - SIGPIPE is ignored in clmnt, so a program that exits without reading its
///   input makes our write fail with EPIPE instead of killing clmnt; the child
///   starts with every signal at its default disposition and none blocked.
/// - The child runs in its own process group; on timeout the group gets
///   SIGTERM, then SIGKILL after `terminationGrace` seconds, and the child is reaped.
/// - Output over `outputLimit` on either stream is an error, never a silent cut.
public enum ProgramRunner {
    /// Standard places to look for system tools; cron's PATH is minimal, so we do not rely on it.
    public static let searchPath = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]

    /// Seconds between SIGTERM and SIGKILL when a program overstays its timeout.
    public static let terminationGrace = 2.0

    /// The absolute path of `name` (returned as is when it already contains a `/`), or nil.
    public static func locate(_ name: String) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        let envPath = ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").map(String.init) ?? []
        for dir in searchPath + envPath where access(dir + "/" + name, X_OK) == 0 {
            return dir + "/" + name
        }
        return nil
    }

    /// Set once per process, before the first program starts.
    private static let sigpipeIgnored: Bool = {
        signal(SIGPIPE, SIG_IGN)
        return true
    }()

    /// Runs `program` and returns its output whatever the exit status.
    /// Throws `.outputTooLarge` when either stream exceeds `outputLimit` bytes.
    public static func capture(_ program: String, _ arguments: [String], input: Data? = nil,
                               environment: [String: String]? = nil, timeout: Double = 60,
                               outputLimit: Int = 1 << 20) throws(ProgramError) -> ProgramOutput {
        guard let path = locate(program) else { throw .notFound(program: program) }
        _ = sigpipeIgnored
        var child: SpawnedChild
        do { child = try SpawnedChild(path: path, arguments: arguments, environment: environment, hasInput: input != nil) } catch {
            throw .couldNotRun(program: program, reason: String(cString: strerror(error.code)))
        }
        switch child.exchange(input: input ?? Data(), timeout: timeout, outputLimit: outputLimit) {
        case .finished(let status, let out, let err):
            return ProgramOutput(status: status, stdout: String(decoding: out, as: UTF8.self),
                                 stderr: String(decoding: err, as: UTF8.self))
        case .timedOut:
            throw .timedOut(program: program, seconds: timeout)
        case .tooMuchOutput(let stream):
            throw .outputTooLarge(program: program, stream: stream, limit: outputLimit)
        }
    }

    /// Runs `program` and throws `.failed` (with stderr's tail) unless it exits 0.
    @discardableResult
    public static func run(_ program: String, _ arguments: [String], input: Data? = nil,
                           environment: [String: String]? = nil, timeout: Double = 60,
                           outputLimit: Int = 1 << 20) throws(ProgramError) -> ProgramOutput {
        let output = try capture(program, arguments, input: input, environment: environment, timeout: timeout,
                                 outputLimit: outputLimit)
        guard output.status == 0 else {
            let tail = output.stderr.split(whereSeparator: \.isNewline).suffix(3).joined(separator: " / ")
            throw .failed(program: program, status: output.status, stderrTail: String(tail.prefix(500)))
        }
        return output
    }
}

/// An errno from spawning.
private struct SpawnFailure: Error { let code: Int32 }

/// One child started with posix_spawn: its pid and our ends of its pipes.
/// Owns the descriptors; `exchange` always reaps the child.
private struct SpawnedChild: ~Copyable {
    enum Outcome {
        case finished(status: Int32, stdout: Data, stderr: Data)
        case timedOut
        case tooMuchOutput(stream: String)
    }

    /// The names of the output streams, in the order of `outputFDs`.
    private static let streamNames = ["standard output", "standard error"]

    let pid: pid_t
    private var stdinFD: Int32
    /// Our read ends of the child's stdout and stderr; -1 once closed.
    private var outputFDs: [Int32]

    init(path: String, arguments: [String], environment: [String: String]?, hasInput: Bool) throws(SpawnFailure) {
        var pipes: [Int32] = Array(repeating: -1, count: 6)
        func closeAll() { for fd in pipes where fd >= 0 { close(fd) } }
        for index in stride(from: 0, to: 6, by: 2) where index > 0 || hasInput {
            var pair: [Int32] = [-1, -1]
            // pipe2 needs _GNU_SOURCE; close-on-exec right after is enough here (the spawn's dup2 clears it on 0-2).
            guard pipe(&pair) == 0 else { let code = errno; closeAll(); throw SpawnFailure(code: code) }
            for fd in pair { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            pipes[index] = pair[0]
            pipes[index + 1] = pair[1]
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if hasInput {
            posix_spawn_file_actions_adddup2(&actions, pipes[0], 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, pipes[3], 1)
        posix_spawn_file_actions_adddup2(&actions, pipes[5], 2)
        // Nothing else of ours: a descriptor opened without close-on-exec (by Foundation, say,
        // while another thread spawns) would otherwise live on in a mailer that forks away.
        _ = LinuxCalls.spawnClosesFrom(&actions, 3)

        // Own process group (so a timeout stops its children too); every signal at its
        // default and none blocked. An ignored signal stays ignored across exec, and clmnt
        // ignores SIGPIPE (above) and, while it cleans up on a signal, SIGTERM, SIGINT and
        // SIGHUP (SignalCleanup): without the reset a mailer or useradd
        // could not be stopped by SIGTERM, and a shell child could not even trap it.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigfillset(&defaults)
        var noMask = sigset_t()
        sigemptyset(&noMask)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &noMask)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let envp: [UnsafeMutablePointer<CChar>?]? = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer { for pointer in envp ?? [] { free(pointer) } }
        var pid: pid_t = 0
        var result: Int32 = 0
        // A program is "busy" (ETXTBSY) while any process holds it open for writing: a program being
        // installed, or one just written while a child forked elsewhere in this process still held the
        // descriptor until its exec. That lasts moments: try again for up to a second.
        for attempt in 1...50 {
            if let envp {
                result = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
            } else {
                result = posix_spawn(&pid, path, &actions, &attributes, argv, environ)
            }
            guard result == ETXTBSY, attempt < 50 else { break }
            usleep(20_000)
        }
        // The child's ends are its own now (or nobody's).
        for index in [0, 3, 5] where pipes[index] >= 0 { close(pipes[index]) }
        guard result == 0 else {
            for index in [1, 2, 4] where pipes[index] >= 0 { close(pipes[index]) }
            throw SpawnFailure(code: result)
        }
        self.pid = pid
        stdinFD = pipes[1]
        outputFDs = [pipes[2], pipes[4]]
        for fd in [stdinFD] + outputFDs where fd >= 0 {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
    }

    deinit {
        for fd in [stdinFD] + outputFDs where fd >= 0 { close(fd) }
    }

    /// Feeds `input`, collects both streams, and reaps the child, within `timeout` seconds.
    mutating func exchange(input: Data, timeout: Double, outputLimit: Int) -> Outcome {
        let deadline = Self.now() + timeout
        var written = 0
        var collected = [Data(), Data()]
        var buffer = [UInt8](repeating: 0, count: 65536)
        if input.isEmpty { closeStdin() }
        while true {
            var fds: [pollfd] = []
            if stdinFD >= 0 { fds.append(pollfd(fd: stdinFD, events: Int16(POLLOUT), revents: 0)) }
            for fd in outputFDs where fd >= 0 { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            let remaining = deadline - Self.now()
            if remaining <= 0 {
                stop()
                return .timedOut
            }
            if !fds.isEmpty {
                // Wake up now and then to notice a child that exited while a grandchild holds its pipes.
                _ = poll(&fds, nfds_t(fds.count), Int32(min(remaining, 0.05) * 1000) + 1)
            }
            if stdinFD >= 0 {
                let count = input.withUnsafeBytes { raw in
                    write(stdinFD, raw.baseAddress! + written, raw.count - written)
                }
                if count > 0 { written += count }
                if written == input.count || (count < 0 && errno != EAGAIN && errno != EINTR) {
                    // Done, or the reader is gone (EPIPE): it got what it wanted.
                    closeStdin()
                }
            }
            if let stream = readAvailable(into: &collected, limit: outputLimit, buffer: &buffer) {
                stop()
                return .tooMuchOutput(stream: stream)
            }
            guard let status = reap(blocking: false) else {
                if stdinFD < 0 && !outputFDs.contains(where: { $0 >= 0 }) {
                    usleep(2000) // Pipes closed, child still running: wait for it, within the deadline.
                }
                continue
            }
            // Exited: what is in the pipes now is all it wrote; a grandchild keeping them open is not waited for.
            closeStdin()
            let overflow = readAvailable(into: &collected, limit: outputLimit, buffer: &buffer)
            for index in outputFDs.indices where outputFDs[index] >= 0 {
                close(outputFDs[index])
                outputFDs[index] = -1
            }
            if let stream = overflow { return .tooMuchOutput(stream: stream) }
            return .finished(status: status, stdout: collected[0], stderr: collected[1])
        }
    }

    /// Reads what each open output stream holds now (until it would block) into `collected`,
    /// closing a stream at its end. Returns the name of a stream that passed `limit`, if any.
    private mutating func readAvailable(into collected: inout [Data], limit: Int, buffer: inout [UInt8]) -> String? {
        for index in outputFDs.indices where outputFDs[index] >= 0 {
            while true {
                let count = read(outputFDs[index], &buffer, buffer.count)
                if count > 0 {
                    collected[index].append(contentsOf: buffer[0..<count])
                    if collected[index].count > limit { return Self.streamNames[index] }
                    continue
                }
                if count < 0 && errno == EINTR { continue }
                if count == 0 || errno != EAGAIN {
                    close(outputFDs[index])
                    outputFDs[index] = -1
                }
                break
            }
        }
        return nil
    }

    private mutating func closeStdin() {
        if stdinFD >= 0 { close(stdinFD); stdinFD = -1 }
    }

    /// The exit status (128 + signal when killed) once the child has ended; nil while it runs.
    private func reap(blocking: Bool) -> Int32? {
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, blocking ? 0 : WNOHANG)
            if result < 0 && errno == EINTR { continue }
            if result == 0 { return nil }
            if result < 0 { return -1 } // Reaped elsewhere: nothing more to learn.
            let signal = status & 0x7f
            return signal == 0 ? (status >> 8) & 0xff : 128 + signal
        }
    }

    /// SIGTERM to the child's group, SIGKILL after the grace period, then reap.
    private mutating func stop() {
        closeStdin()
        kill(-pid, SIGTERM)
        let killAt = Self.now() + ProgramRunner.terminationGrace
        while Self.now() < killAt {
            if reap(blocking: false) != nil {
                kill(-pid, SIGKILL) // Whatever it left running in its group.
                return
            }
            usleep(5000)
        }
        kill(-pid, SIGKILL)
        _ = reap(blocking: true)
    }

    private static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}
