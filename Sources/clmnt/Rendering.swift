import ClmntCore
import Foundation

/// Every `--json` goes through here, in the one JSON style (`JSONStyle`, README "Output").
func printJSON<Value: Encodable>(_ value: Value) throws {
    FileHandle.standardOutput.write(Data(try JSONStyle.encode(value).utf8))
}

/// Human-readable text on standard output. Control characters other than the newlines
/// and tabs clmnt lays out with are escaped (`TerminalText`): values that may carry a
/// newline of their own (an archive's, a state file's) are escaped with
/// `TerminalText.line` where they are rendered.
func printText(_ text: String) {
    print(TerminalText.lines(text))
}

/// A one-line progress bar on stderr, redrawn at most ten times a second.
final class ProgressBar: @unchecked Sendable {
    private let enabled: Bool
    private let started = Date()
    private var drawn = false

    init(enabled: Bool) { self.enabled = enabled }

    func update(done: Int64, total: Int64, label: String) {
        guard enabled else { return }
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 0
        let width = 30
        let filled = Int(fraction * Double(width))
        let elapsed = Date().timeIntervalSince(started)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let line = String(format: "\r[%@] %3.0f%% %@ of %@, %@/s, ETA %.0fs  %@", bar, fraction * 100,
                          formatBytes(done), formatBytes(total), formatBytes(Int64(rate)), eta, TerminalText.line(label))
        FileHandle.standardError.write(Data((line + "\u{1B}[K").utf8))
        drawn = true
    }

    func clear() {
        guard enabled, drawn else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
        drawn = false
    }
}
