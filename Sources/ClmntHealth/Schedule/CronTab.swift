import ClmntCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The health module's side of `CronTab` (ClmntCore): reading and writing
/// with `HealthError`, and editing the health-watch entries.
extension CronTab {
    /// `read()`, failing as `HealthError` (same lines as before the move).
    func healthRead() throws(HealthError) -> String {
        do { return try read() } catch { throw HealthError(error) }
    }

    /// `write(_:)`, failing as `HealthError`.
    func healthWrite(_ text: String) throws(HealthError) {
        do { try write(text) } catch { throw HealthError(error) }
    }

    // MARK: - Editing (pure)

    /// Lines of the health-watch entry of `molt`: its marker comments (and the
    /// bash tool's, which named no molt) and any job running `health-watch <molt>`.
    static func isWatchLine(_ line: String, molt: String) -> Bool {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("#") {
            guard let range = trimmed.range(of: WatchSchedule.marker) else { return false }
            let next = trimmed[range.upperBound...].trimmingCharacters(in: .whitespaces)
                .split(whereSeparator: { $0 == " " || $0 == ":" }).first.map(String.init)
            // "# MOLT-HEALTH-WATCH <name>: ..." (ours) or "# MOLT-HEALTH-WATCH - Health check ..." (the bash tool's).
            return next == molt || next == nil || next == "-"
        }
        guard let range = trimmed.range(of: "health-watch " + molt) else { return false }
        let after = trimmed[range.upperBound...]
        return after.isEmpty || after.first == " " || after.first == "\t"
    }

    /// `text` without `molt`'s entry, and with `entry` in its place (or at the end); every other line kept as it was.
    public static func replacingEntry(in text: String, molt: String, with entry: [String]) -> String {
        replacingLines(in: text, selectedBy: { lines in Set(lines.indices.filter { isWatchLine(lines[$0], molt: molt) }) },
                       with: entry)
    }

    public static func entryLines(in text: String, molt: String) -> [String] {
        text.components(separatedBy: "\n").filter { isWatchLine($0, molt: molt) }
    }
}

extension HealthError {
    init(_ error: CronTabError) {
        switch error {
        case .notInstalled: self = .noCrontab
        case .program(let action, let error): self = .program(action: action, error: error)
        }
    }
}
