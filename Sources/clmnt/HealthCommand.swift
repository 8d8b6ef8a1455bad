import ArgumentParser
import ClmntCore
import ClmntHealth
import Foundation

extension MoltCommand {
    struct Health: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a molt's gateway, schedule its monitoring, and read its health records.",
            subcommands: [Check.self, Setup.self, Status.self, History.self, Logs.self]
        )
    }
}

/// The fleet under the base dir and the named molt in it (unknown names list the fleet).
func loadMolt(_ name: String, _ global: GlobalOptions) throws -> (Fleet, Molt) {
    try MoltName.validate(name)
    let fleet = try Fleet.discover(baseDir: global.resolvedBaseDir)
    return (fleet, try fleet.molt(named: name))
}

func printWarnings(_ warnings: [String]) {
    for warning in warnings { printError("clmnt: warning: \(TerminalText.line(warning))") }
}

/// The absolute path this clmnt was started as, for crontab lines and units:
/// argv[0] when it holds a `/`, else its place on PATH, else /proc/self/exe.
func currentExecutablePath() -> String {
    let arg0 = CommandLine.arguments.first ?? "clmnt"
    if arg0.contains("/") { return absolutePath(arg0) }
    let path = ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").map(String.init) ?? []
    for dir in path where dir.hasPrefix("/") && access(dir + "/" + arg0, X_OK) == 0 {
        return dir + "/" + arg0
    }
    return (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? arg0
}
