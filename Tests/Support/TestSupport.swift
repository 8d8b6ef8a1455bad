import Foundation

/// A fresh temporary directory, removed by `remove()`.
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init(prefix: String = "clmnt-test") throws {
        let template = FileManager.default.temporaryDirectory.path + "/\(prefix).XXXXXX"
        var bytes = Array(template.utf8CString)
        guard let made = mkdtemp(&bytes) else { throw POSIXError(.EIO) }
        path = String(cString: made)
    }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}
