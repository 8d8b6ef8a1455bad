import ClmntTestSupport
import Foundation
import Testing

/// `--help` of every command, compared with the text committed under
/// HelpSnapshots/. After an intended change, record anew with
/// `CLMNT_RECORD_HELP=1 swift test --filter HelpSnapshotTests` and review the diff.
@Suite("help output")
struct HelpSnapshotTests {
    static let commands: [[String]] = [
        [], ["fleet"], ["fleet", "backup"], ["fleet", "restore"], ["fleet", "list-backups"], ["fleet", "verify"],
        ["fleet", "prune"], ["fleet", "schedule"], ["fleet", "doctor"], ["molt"], ["molt", "health"], ["molt", "health", "check"], ["molt", "health", "setup"],
        ["molt", "health", "status"], ["molt", "health", "history"], ["molt", "health", "logs"], ["molt", "health-watch"],
        ["dashboard"], ["dashboard", "serve"], ["dashboard", "setup"],
    ]

    @Test("help text matches the snapshot", arguments: commands)
    func help(command: [String]) throws {
        let result = try runCapturing(clmntExecutable(), command + ["--help"], environment: ["COLUMNS": "80", "PATH": "/usr/bin:/bin"])
        #expect(result.status == 0, "\(result.stderr)")
        let snapshot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("HelpSnapshots/\((["clmnt"] + command).joined(separator: "-")).txt")
        if ProcessInfo.processInfo.environment["CLMNT_RECORD_HELP"] != nil {
            try Data(result.stdout.utf8).write(to: snapshot)
            return
        }
        let expected = try String(contentsOf: snapshot, encoding: .utf8)
        #expect(result.stdout == expected, "help of `clmnt \(command.joined(separator: " "))` changed; record anew if intended")
    }

    @Test("every option says what it does in a sentence", arguments: commands)
    func optionsHaveHelp(command: [String]) throws {
        let result = try runCapturing(clmntExecutable(), command + ["--help"], environment: ["COLUMNS": "200", "PATH": "/usr/bin:/bin"])
        // An option's block: its line, then lines indented further (long labels put the text below).
        var blocks: [String] = []
        for line in result.stdout.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("  -") { blocks.append(String(line)) }
            else if line.hasPrefix("      "), !blocks.isEmpty { blocks[blocks.count - 1] += " " + line.trimmingCharacters(in: .whitespaces) }
            else if !line.hasPrefix("  -") && !blocks.isEmpty && !(blocks.last?.hasSuffix("|") ?? false) { blocks.append("|") }
        }
        for block in blocks where block != "|" {
            let words = block.split(separator: " ")
            let description = words.drop { $0.hasPrefix("-") || $0.hasPrefix("<") || $0.hasSuffix(",") || $0.hasSuffix(">") }
            #expect(!description.isEmpty, "no help: \(block)")
            #expect(block.hasSuffix(".") || block.hasSuffix(")"), "help should end in a period: \(block)")
        }
    }
}
