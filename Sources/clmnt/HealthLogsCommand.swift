import ArgumentParser
import ClmntCore
import ClmntHealth
import Foundation

extension MoltCommand.Health {
    struct Logs: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the end of a molt's .molt-state/cron.log, where its scheduled checks write."
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The molt whose log to show.", completion: moltNameCompletion)
        var name: String

        // --lines and --follow: the bash tool's spellings.
        @Option(name: [.short, .customLong("lines")], help: "How many lines to show.")
        var n = 20

        @Flag(name: [.short, .customLong("follow")], inversion: .prefixedNo, help: "Keep printing lines as they are appended (Ctrl-C stops).")
        var f = false

        func run() throws {
            try reportingErrors {
                guard n >= 0 else { throw HealthError.invalidCount(option: "-n", value: n) }
                let (_, molt) = try loadMolt(name, global)
                let state = StateDirectory(molt: molt)
                let path = state.cronLogPath
                global.detail("\(path):")
                do {
                    // cron.log is written by the molt user's job: every line escaped.
                    for line in try LogTail.lastLines(in: state, count: n) { printText(TerminalText.line(line)) }
                } catch HealthError.logMissing where f {
                    printError("clmnt: \(path) does not exist yet; waiting for it")
                }
                guard f else { return }
                fflush(nil)
                LogTail.follow(in: state, warning: { printError("clmnt: warning: \(TerminalText.line($0))") }) {
                    FileHandle.standardOutput.write(Data((TerminalText.line($0) + "\n").utf8))
                }
            }
        }
    }
}
