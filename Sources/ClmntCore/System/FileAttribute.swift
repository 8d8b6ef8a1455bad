import CLinux
import Foundation

/// Extended attributes of an open file (`fsetxattr`/`fgetxattr`): never by path,
/// so a link cannot redirect them.
enum FileAttribute {
    /// Sets `name` on `fd`; the errno on failure.
    static func set(_ fd: Int32, name: String, value: [UInt8]) -> Int32? {
        let result = value.withUnsafeBytes { fsetxattr(fd, name, $0.baseAddress, $0.count, 0) }
        return result == 0 ? nil : errno
    }

    /// The value of `name` on `fd`, or nil when it has none (or it is over `limit` bytes).
    static func get(_ fd: Int32, name: String, limit: Int = 64 << 10) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: limit)
        let length = buffer.withUnsafeMutableBytes { fgetxattr(fd, name, $0.baseAddress, $0.count) }
        guard length >= 0 else { return nil }
        return Array(buffer.prefix(length))
    }
}
