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

/// The control characters (other than newline) in `text`, as hex code points: what a test of
/// terminal escaping expects to be empty.
public func rawControlCharacters(_ text: String) -> [String] {
    text.unicodeScalars.filter { ($0.value < 0x20 && $0 != "\n") || (0x7F...0x9F).contains($0.value) }
        .map { String($0.value, radix: 16) }
}

/// Whether a line of `text` starts with `forged`: a value that broke out onto a line of its own.
public func hasForgedLine(_ text: String, _ forged: String = "clmnt: everything fine") -> Bool {
    text.split(separator: "\n").contains { $0.hasPrefix(forged) }
}

/// The built `clmnt` binary next to this test bundle (swift build puts both in the same dir).
public func clmntBinary() -> String? {
    guard let runner = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
    var dir = URL(fileURLWithPath: runner).deletingLastPathComponent()
    // On Linux the runner is <bin>/clmntPackageTests.xctest; elsewhere it may sit deeper in a bundle.
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("clmnt").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return nil
}
