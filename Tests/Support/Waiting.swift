import Foundation
#if canImport(Glibc)
import Glibc
#endif

// Waiting for a condition rather than for a fixed time: what the tests wait for is checked
// itself, every few milliseconds. The deadline only ends a wait that would otherwise never end
// (the test then fails on what it expected), so it can be generous: a loaded machine only makes
// the wait longer, never the test wrong.

/// Polls `condition` every `interval` seconds until it holds (true) or `seconds` have passed (false).
@discardableResult
public func waitUntil(seconds: Double = 30, interval: Double = 0.01, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while true {
        if try condition() { return true }
        if Date() >= deadline { return false }
        usleep(useconds_t(interval * 1_000_000))
    }
}

/// `path` as the kernel names it in `/proc/<pid>/fd`: its directory's symlinks resolved.
public func kernelPath(_ path: String) -> String {
    let url = URL(fileURLWithPath: path)
    guard let directory = realpath(url.deletingLastPathComponent().path, nil) else { return path }
    defer { free(directory) }
    return String(cString: directory) + "/" + url.lastPathComponent
}

/// The files process `pid` has open (the targets of `/proc/<pid>/fd`); empty once it is gone.
public func openPaths(of pid: pid_t) -> [String] {
    let directory = "/proc/\(pid)/fd"
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
    return entries.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: directory + "/" + $0) }
}

/// Whether any process has `path` open (root sees every process's descriptors).
public func isOpenByAnyProcess(_ path: String) -> Bool {
    let target = kernelPath(path)
    let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid_t($0) }
    return pids.contains { openPaths(of: $0).contains(target) }
}

/// The command line of process `pid` (`/proc/<pid>/cmdline`, split at the NULs); nil once it is gone.
public func commandLine(of pid: pid_t) -> [String]? {
    guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
    return String(decoding: data, as: UTF8.self).split(separator: "\0", omittingEmptySubsequences: false).dropLast().map(String.init)
}

/// Whether the thread `tid` of process `pid` is asleep in `nanosleep` or `clock_nanosleep` (what `usleep`
/// and `Thread.sleep` call): `/proc/<pid>/task/<tid>/syscall` names the system call a blocked thread is in.
public func isInSleepCall(pid: pid_t, tid: pid_t) -> Bool {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/syscall", encoding: .utf8),
          let number = text.split(separator: " ").first.flatMap({ Int($0) }) else { return false }
    #if arch(x86_64)
    return number == 35 || number == 230
    #elseif arch(arm64)
    return number == 101 || number == 115
    #else
    return false
    #endif
}

/// The threads of process `pid`: their ids, names (`comm`, at most 15 bytes; a new thread keeps its
/// creator's unless it sets one) and effective uids (a thread may hold other credentials than its process).
public func threads(of pid: pid_t) -> [(tid: pid_t, name: String, euid: uid_t?)] {
    let directory = "/proc/\(pid)/task"
    let tids = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).compactMap { pid_t($0) }
    return tids.map { tid in
        let name = (try? String(contentsOfFile: "\(directory)/\(tid)/comm", encoding: .utf8)) ?? ""
        let status = (try? String(contentsOfFile: "\(directory)/\(tid)/status", encoding: .utf8)) ?? ""
        // "Uid:\treal\teffective\tsaved\tfilesystem"
        let uids = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }?.split(whereSeparator: \.isWhitespace)
        let euid = uids.flatMap { $0.count > 2 ? uid_t($0[2]) : nil }
        return (tid, name.trimmingCharacters(in: .whitespacesAndNewlines), euid)
    }
}

/// A TCP port on 127.0.0.1 that refuses connections and that no one else can take while this
/// lives: a socket bound to it that never listens. Linux answers a connection to such a port
/// with a reset (ECONNREFUSED), and keeps the port for the socket (no SO_REUSEADDR), whereas a
/// port found free and then released may be taken by anything in the meantime.
public final class RefusingPort: @unchecked Sendable {
    public let port: Int
    private var fd: Int32

    public init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = in_addr_t(UInt32(0x7F00_0001).bigEndian)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { close(fd); throw POSIXError(.EADDRINUSE) }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// Gives the port back.
    public func release() {
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
    }

    deinit { release() }
}

/// The CPU time process `pid` has used so far (user plus system, from `/proc/<pid>/stat`), in seconds;
/// nil once it is gone. Work done, which a loaded machine hardly changes, where wall time doubles.
public func cpuSeconds(of pid: pid_t) -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")") else { return nil }
    let fields = text[text.index(after: close)...].split(separator: " ")
    // After the command: state is field 3, so utime (14) and stime (15) are at offsets 11 and 12.
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}
