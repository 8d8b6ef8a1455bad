import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Failures of reading or writing a crontab; each prints as one line.
public enum CronTabError: Error, Equatable, CustomStringConvertible {
    /// No `crontab` command on this host.
    case notInstalled(program: String)
    /// `crontab` could not run, or ran and failed.
    case program(action: String, error: ProgramError)

    public var description: String {
        switch self {
        case .notInstalled: return "crontab is not installed (Debian: apt-get install cron)"
        case .program(let action, let error): return "cannot \(action): \(error)"
        }
    }
}

/// One user's crontab, read and written with the real `crontab` command.
/// Editing the text is the caller's business (health-watch entries, the
/// nightly fleet backup); this only moves the whole text in and out.
public struct CronTab: Sendable {
    public let user: String
    /// `crontab`, or a path (tests, odd systems).
    public let program: String

    public init(user: String, program: String = "crontab") {
        self.user = user
        self.program = program
    }

    /// Whether the `crontab` command can be found.
    public var isInstalled: Bool { ProgramRunner.locate(program) != nil }

    /// `-u user` when we are root; a user edits its own crontab without it.
    private var userArguments: [String] {
        geteuid() == 0 ? ["-u", user] : []
    }

    /// The crontab's text; empty when the user has none.
    public func read() throws(CronTabError) -> String {
        guard isInstalled else { throw .notInstalled(program: program) }
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
    public func write(_ text: String) throws(CronTabError) {
        guard isInstalled else { throw .notInstalled(program: program) }
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

    private func lastLines(_ text: String) -> String {
        String(text.split(whereSeparator: \.isNewline).suffix(3).joined(separator: " / ").prefix(500))
    }
}

extension CronTab {
    /// Characters a word of a job line may hold unquoted: no `%` (cron's newline),
    /// whitespace, quotes or shell metacharacters.
    public static let safeCharacters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/+,:@-"

    /// The first character of `word` outside `safeCharacters + extra`, named for an
    /// error message ("a space", "'%'"), or nil when the word is safe.
    public static func unsafeCharacter(in word: String, allowing extra: String = "") -> String? {
        let allowed = Set((safeCharacters + extra).unicodeScalars)
        guard let bad = word.unicodeScalars.first(where: { !allowed.contains($0) }) else { return nil }
        switch bad {
        case "\n": return "a newline"
        case "\t": return "a tab"
        case " ": return "a space"
        default: return bad.value < 0x20 || bad.value == 0x7F ? "a control character" : "'\(bad)'"
        }
    }

    // MARK: - Editing (pure)

    /// The lines of a crontab's text (without the empty one after the final newline).
    public static func lines(of text: String) -> [String] {
        var lines = text.components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    /// `text` without the lines `select` picks (by index), `entry` in the first one's place (or
    /// at the end); every other line kept byte for byte. The one way clmnt edits a crontab.
    public static func replacingLines(in text: String, selectedBy select: ([String]) -> Set<Int>,
                                      with entry: [String]) -> String {
        let lines = lines(of: text)
        let drop = select(lines)
        var result: [String] = []
        var insertAt: Int?
        for (index, line) in lines.enumerated() {
            if drop.contains(index) {
                if insertAt == nil { insertAt = result.count }
            } else {
                result.append(line)
            }
        }
        result.insert(contentsOf: entry, at: insertAt ?? result.count)
        return result.isEmpty ? "" : result.joined(separator: "\n") + "\n"
    }
}
