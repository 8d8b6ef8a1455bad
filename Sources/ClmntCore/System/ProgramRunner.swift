import Foundation

/// Failure to run an external program (useradd, crontab, msmtp, ...).
public enum ProgramError: Error, Equatable, CustomStringConvertible {
    /// The program could not be started at all.
    case notFound(program: String)
    case couldNotRun(program: String, reason: String)
    /// It ran and exited non-zero (or was killed).
    case failed(program: String, status: Int32, stderrTail: String)
    case timedOut(program: String, seconds: Double)

    public var description: String {
        switch self {
        case .notFound(let program): return "\(program) is not installed"
        case .couldNotRun(let program, let reason): return "cannot run \(program): \(reason)"
        case .failed(let program, let status, let tail):
            let detail = tail.isEmpty ? "" : ": \(tail)"
            return "\(program) failed with status \(status)\(detail)"
        case .timedOut(let program, let seconds): return "\(program) did not finish within \(seconds) s"
        }
    }
}

/// What a finished program printed.
public struct ProgramOutput: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

/// Runs programs by absolute path with an argument array: never through a shell.
public enum ProgramRunner {
    /// Standard places to look for system tools; cron's PATH is minimal, so we do not rely on it.
    public static let searchPath = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]

    /// The absolute path of `name` (returned as is when it already contains a `/`), or nil.
    public static func locate(_ name: String) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        let envPath = ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").map(String.init) ?? []
        for dir in searchPath + envPath where access(dir + "/" + name, X_OK) == 0 {
            return dir + "/" + name
        }
        return nil
    }

    /// Runs `program` and returns its output whatever the exit status.
    /// Collects at most `outputLimit` bytes of each stream.
    public static func capture(_ program: String, _ arguments: [String], input: Data? = nil,
                               environment: [String: String]? = nil, timeout: Double = 60,
                               outputLimit: Int = 1 << 20) throws(ProgramError) -> ProgramOutput {
        guard let path = locate(program) else { throw .notFound(program: program) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let stdoutPipe = Pipe(), stderrPipe = Pipe(), stdinPipe = Pipe()
        process.standardOutput = stdoutPipe
        process.standardError = stderrPipe
        process.standardInput = input == nil ? FileHandle.nullDevice : stdinPipe
        do { try process.run() } catch {
            throw .couldNotRun(program: program, reason: describeFileError(error))
        }
        let collected = CollectedOutput()
        let group = DispatchGroup()
        for (pipe, isStdout) in [(stdoutPipe, true), (stderrPipe, false)] {
            group.enter()
            DispatchQueue.global().async {
                let data = readLimited(pipe.fileHandleForReading, limit: outputLimit)
                collected.store(data, isStdout: isStdout)
                group.leave()
            }
        }
        if let input {
            try? stdinPipe.fileHandleForWriting.write(contentsOf: input)
            try? stdinPipe.fileHandleForWriting.close()
        }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline {
                process.terminate()
                throw .timedOut(program: program, seconds: timeout)
            }
            usleep(2000)
        }
        group.wait()
        return ProgramOutput(status: process.terminationStatus,
                             stdout: String(decoding: collected.stdout, as: UTF8.self),
                             stderr: String(decoding: collected.stderr, as: UTF8.self))
    }

    /// Runs `program` and throws `.failed` (with stderr's tail) unless it exits 0.
    @discardableResult
    public static func run(_ program: String, _ arguments: [String], input: Data? = nil,
                           environment: [String: String]? = nil, timeout: Double = 60) throws(ProgramError) -> ProgramOutput {
        let output = try capture(program, arguments, input: input, environment: environment, timeout: timeout)
        guard output.status == 0 else {
            let tail = output.stderr.split(whereSeparator: \.isNewline).suffix(3).joined(separator: " / ")
            throw .failed(program: program, status: output.status, stderrTail: String(tail.prefix(500)))
        }
        return output
    }

    private static func readLimited(_ handle: FileHandle, limit: Int) -> Data {
        var result = Data()
        while let chunk = try? handle.read(upToCount: 65536), !chunk.isEmpty {
            if result.count < limit { result.append(chunk.prefix(limit - result.count)) }
        }
        return result
    }
}

private final class CollectedOutput: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var stdout = Data()
    private(set) var stderr = Data()

    func store(_ data: Data, isStdout: Bool) {
        lock.lock(); defer { lock.unlock() }
        if isStdout { stdout = data } else { stderr = data }
    }
}
