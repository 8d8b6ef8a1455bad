import ClmntTestSupport
@testable import ClmntCore
import Foundation

/// One path of a tree, as the comparison sees it.
struct PathRecord: Equatable, CustomStringConvertible {
    var type: UInt32
    var mode: UInt32
    var uid: UInt32
    var gid: UInt32
    var mtime: Int
    var size: Int64
    var content: Data?
    var linkTarget: String?

    var description: String {
        "type \(String(type, radix: 8)) mode \(String(mode, radix: 8)) owner \(uid):\(gid) mtime \(mtime) size \(size) link \(linkTarget ?? "-")"
    }
}

/// Every path under `root` (relative, in `PathBytes`' escaped form, so names
/// that are not UTF-8 are kept byte for byte), except those for which `skip`
/// is true. Walks with directory descriptors, so any depth works.
func snapshotTree(_ root: String, skip: (String) -> Bool = { _ in false }) throws -> [String: PathRecord] {
    var records: [String: PathRecord] = [:]
    let rootFd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard rootFd >= 0 else { throw TestFailure("cannot open \(root)") }
    defer { close(rootFd) }
    func walk(_ fd: Int32, _ prefix: PathBytes) throws {
        for name in try directoryEntryNames(fd) {
            let relative = prefix.appending(name)
            let key = relative.description
            var status = stat()
            guard name.withCString({ fstatat(fd, $0, &status, AT_SYMLINK_NOFOLLOW) }) == 0 else {
                throw TestFailure("lstat \(root)/\(key) failed")
            }
            let type = UInt32(status.st_mode) & 0o170000
            if type == 0o040000 {
                let child = name.withCString { openat(fd, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
                guard child >= 0 else { throw TestFailure("cannot open \(root)/\(key)") }
                defer { close(child) }
                try walk(child, relative)
            }
            if skip(key) { continue }
            var record = PathRecord(type: type, mode: UInt32(status.st_mode) & 0o7777, uid: status.st_uid, gid: status.st_gid,
                                    mtime: status.st_mtim.tv_sec, size: type == 0o100000 ? Int64(status.st_size) : 0)
            if type == 0o100000 {
                let file = name.withCString { openat(fd, $0, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) }
                guard file >= 0 else { throw TestFailure("cannot read \(root)/\(key)") }
                record.content = FileHandle(fileDescriptor: file, closeOnDealloc: true).readDataToEndOfFile()
            }
            if type == 0o120000 {
                var buffer = [UInt8](repeating: 0, count: 65536)
                let length = name.withCString { n in buffer.withUnsafeMutableBufferPointer { b in
                    b.withMemoryRebound(to: CChar.self) { readlinkat(fd, n, $0.baseAddress!, $0.count) } } }
                guard length >= 0 else { throw TestFailure("readlink \(root)/\(key) failed") }
                record.linkTarget = PathBytes(bytes: buffer[0..<length]).description
            }
            // A directory's mtime changes when tar creates entries in it; compare files and links only.
            if type == 0o040000 { record.mtime = 0 }
            records[key] = record
        }
    }
    try walk(rootFd, PathBytes([]))
    return records
}

/// Human-readable differences between two snapshots (empty when equal).
func differences(_ expected: [String: PathRecord], _ actual: [String: PathRecord]) -> [String] {
    var lines: [String] = []
    for path in Set(expected.keys).union(actual.keys).sorted() {
        switch (expected[path], actual[path]) {
        case (nil, _?): lines.append("unexpected \(path)")
        case (_?, nil): lines.append("missing \(path)")
        case let (want?, got?) where want != got:
            let contentNote = want.content != got.content ? " (content differs)" : ""
            lines.append("\(path): want \(want), got \(got)\(contentNote)")
        default: break
        }
    }
    return lines
}

/// Paths a default backup leaves out of a fixture molt (relative to the base dir).
func isSkippedByDefault(_ relative: String) -> Bool {
    let parts = relative.split(separator: "/").map(String.init)
    guard parts.count >= 2 else { return false }
    let inMolt = parts.dropFirst().joined(separator: "/")
    let name = parts.last!
    if inMolt == ".cache" || inMolt.hasPrefix(".cache/") || inMolt.hasPrefix(".bun/install/cache") { return true }
    if parts.contains("node_modules") { return true }
    if name.hasSuffix(".pid") || name.hasSuffix(".lock") || name.hasSuffix(".tmp") { return true }
    if name == "openclaw.sqlite-journal" { return true }
    return false
}

func xattr(_ path: String, _ name: String) throws -> String? {
    let result = try runCapturing("/usr/bin/getfattr", ["--only-values", "-n", name, "--absolute-names", path])
    return result.status == 0 ? result.stdout : nil
}
