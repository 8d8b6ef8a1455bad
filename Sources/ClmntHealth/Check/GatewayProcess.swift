import ClmntCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where a gateway PID came from.
public enum PIDSource: String, Sendable {
    case pidFile = "gateway.pid"
    case lockFile = "lock file"
    case processList = "process list"
}

/// What the PID search found.
public enum GatewayProcessState: Sendable, Equatable {
    /// A live gateway process.
    case running(pid: Int, source: PIDSource)
    /// A PID or lock file names a process that is gone (crashed, killed -9).
    case gone(pid: Int, source: PIDSource, path: String)
    /// Nothing says a gateway runs or ran.
    case none
}

/// Finds a molt's gateway process, in this order: `.openclaw/gateway.pid`
/// (older launchers), the single-instance lock file
/// `<tmp>/openclaw-<uid>/gateway.<hash>.lock` (current OpenClaw), and finally
/// `/proc` for a gateway process owned by the molt's user. The first live one
/// wins; a stale PID or lock file, with nothing live elsewhere, means the
/// gateway died.
public struct GatewayProcessFinder: Sendable {
    /// Temp dirs holding `openclaw-<uid>/`: the molt user's `$TMPDIR` is not
    /// knowable from outside, so `$TMPDIR` of this process, then `/tmp`.
    public var tempDirs: [String]
    public var procRoot: String

    public static var defaultTempDirs: [String] {
        var dirs: [String] = []
        if let tmp = ProcessInfo.processInfo.environment["TMPDIR"], tmp.hasPrefix("/") {
            dirs.append(absolutePath(tmp))
        }
        if !dirs.contains("/tmp") { dirs.append("/tmp") }
        return dirs
    }

    public init(tempDirs: [String] = GatewayProcessFinder.defaultTempDirs, procRoot: String = "/proc") {
        self.tempDirs = tempDirs
        self.procRoot = procRoot
    }

    /// `notes` collects what was odd on the way (an unreadable PID file, a corrupt lock file).
    public func find(molt: Molt, uid: uid_t?, notes: inout [String]) -> GatewayProcessState {
        var stale: GatewayProcessState = .none

        let pidFile = molt.home + "/.openclaw/gateway.pid"
        var pidText: String?
        do { pidText = try readInHome(molt.home, ".openclaw/gateway.pid", limit: 64 * 1024).map { String(decoding: $0, as: UTF8.self) } } catch {
            notes.append(error.description)
        }
        if let text = pidText {
            if let pid = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0 {
                if isAlive(pid) { return .running(pid: pid, source: .pidFile) }
                stale = .gone(pid: pid, source: .pidFile, path: pidFile)
            } else {
                notes.append("\(pidFile) holds no PID")
            }
        }

        if let uid {
            for (lock, data) in lockFiles(uid: uid, notes: &notes) {
                guard let object = LenientObject(data: data), let pid = object.int("pid"), pid > 0 else {
                    notes.append("\(lock) holds no PID")
                    continue
                }
                if let configPath = object.string("configPath"), !configPath.hasPrefix(molt.home + "/") {
                    continue // another instance of the same user, with another config
                }
                if isAlive(pid) { return .running(pid: pid, source: .lockFile) }
                if case .none = stale { stale = .gone(pid: pid, source: .lockFile, path: lock) }
            }
            // A root-owned "molt" would make every root gateway-looking process its own.
            if uid != 0, let pid = scanProcesses(uid: uid) { return .running(pid: pid, source: .processList) }
        }
        return stale
    }

    /// `gateway.*.lock` files under `openclaw-<uid>/` in each temp dir, with their bytes. That
    /// directory is the molt user's: it is read through descriptors and only when it belongs
    /// to `uid` (`Molt.readOwnedFiles`); what is refused becomes a note.
    func lockFiles(uid: uid_t, notes: inout [String]) -> [(path: String, data: Data)] {
        var found: [(path: String, data: Data)] = []
        for dir in tempDirs {
            do {
                let files = try Molt.readOwnedFiles(in: dir + "/openclaw-\(uid)", owner: uid, limit: 64 * 1024) {
                    $0.hasPrefix("gateway.") && $0.hasSuffix(".lock")
                }
                for file in files {
                    switch file.data {
                    case .success(let data): found.append((file.path, data))
                    case .failure(let error): notes.append(error.description)
                    }
                }
            } catch {
                notes.append(error.description)
            }
        }
        return found
    }

    /// A process whose real user is `uid` and whose command line is an OpenClaw
    /// gateway: `openclaw-gateway` (the process title OpenClaw sets) or
    /// `openclaw … gateway` (the CLI, possibly run by node or bun).
    func scanProcesses(uid: uid_t) -> Int? {
        guard let entries = try? directoryNames(atPath: procRoot) else { return nil }
        let me = Int(getpid())
        for entry in entries {
            guard let pid = Int(entry), pid != me else { continue }
            guard realUser(of: entry) == uid else { continue }
            guard let data = FileManager.default.contents(atPath: procRoot + "/\(entry)/cmdline"), !data.isEmpty else { continue }
            let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if Self.isGatewayCommand(arguments), isAlive(pid) { return pid }
        }
        return nil
    }

    /// The real uid from `/proc/<pid>/status` ("Uid:\treal\teffective\t..."): the
    /// directory's owner is the effective uid, or root for a non-dumpable process.
    private func realUser(of pid: String) -> uid_t? {
        guard let status = readSmallFile(procRoot + "/\(pid)/status") else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("Uid:") {
            return line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.flatMap { uid_t($0) }
        }
        return nil
    }

    static func isGatewayCommand(_ arguments: [String]) -> Bool {
        guard let first = arguments.first else { return false }
        // A process title replaces the whole command line, sometimes with trailing spaces.
        let title = first.split(separator: " ").first.map(String.init) ?? first
        if basename(title) == "openclaw-gateway" { return true }
        for (index, argument) in arguments.enumerated() {
            let name = basename(argument)
            if name == "openclaw" || name == "openclaw.mjs" || name == "openclaw.js" {
                return arguments[(index + 1)...].contains("gateway")
            }
        }
        return false
    }

    private static func basename(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }

    /// Alive and not a zombie (a killed child its parent has not reaped yet is gone for our purpose).
    public func isAlive(_ pid: Int) -> Bool {
        guard pid > 0, pid <= Int(Int32.max) else { return false }
        if let stat = readSmallFile(procRoot + "/\(pid)/stat") {
            guard let close = stat.lastIndex(of: ")") else { return true }
            let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
            return state != "Z" && state != "X"
        }
        // No /proc/<pid> on a system with /proc: gone. Without /proc at all, ask the kernel.
        if FileManager.default.fileExists(atPath: procRoot + "/self") { return false }
        return kill(pid_t(pid), 0) == 0 || errno == EPERM
    }
}

