import ClmntCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One user's crontab, read and written with the real `crontab` command.
public struct CronTab: Sendable {
    public let user: String
    /// `crontab`, or a path (tests, odd systems).
    public let program: String

    public init(user: String, program: String = "crontab") {
        self.user = user
        self.program = program
    }

    /// `-u user` when we are root; a user edits its own crontab without it.
    private var userArguments: [String] {
        geteuid() == 0 ? ["-u", user] : []
    }

    /// The crontab's text; empty when the user has none.
    public func read() throws(HealthError) -> String {
        guard ProgramRunner.locate(program) != nil else { throw .noCrontab }
        let output: ProgramOutput
        do { output = try ProgramRunner.capture(program, ["-l"] + userArguments, timeout: 30) } catch {
            throw .program(action: "read the crontab of \(user)", error: error)
        }
        if output.status == 0 { return output.stdout }
        if output.stderr.contains("no crontab for") { return "" }
        throw .program(action: "read the crontab of \(user)",
                       error: .failed(program: program, status: output.status, stderrTail: lastLines(output.stderr)))
    }

    /// Installs `text` as the whole crontab; an empty text removes the crontab.
    public func write(_ text: String) throws(HealthError) {
        guard ProgramRunner.locate(program) != nil else { throw .noCrontab }
        do throws(ProgramError) {
            if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                let output = try ProgramRunner.capture(program, ["-r"] + userArguments, timeout: 30)
                if output.status != 0 && !output.stderr.contains("no crontab for") {
                    throw .failed(program: program, status: output.status, stderrTail: lastLines(output.stderr))
                }
            } else {
                try ProgramRunner.run(program, userArguments + ["-"], input: Data(text.utf8), timeout: 30)
            }
        } catch {
            throw .program(action: "write the crontab of \(user)", error: error)
        }
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
        var lines = text.components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        var result: [String] = []
        var insertAt: Int?
        for line in lines {
            if isWatchLine(line, molt: molt) {
                if insertAt == nil { insertAt = result.count }
            } else {
                result.append(line)
            }
        }
        result.insert(contentsOf: entry, at: insertAt ?? result.count)
        return result.isEmpty ? "" : result.joined(separator: "\n") + "\n"
    }

    public static func entryLines(in text: String, molt: String) -> [String] {
        text.components(separatedBy: "\n").filter { isWatchLine($0, molt: molt) }
    }
}

func lastLines(_ text: String) -> String {
    String(text.split(whereSeparator: \.isNewline).suffix(3).joined(separator: " / ").prefix(500))
}
