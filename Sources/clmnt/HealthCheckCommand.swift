import ArgumentParser
import ClmntCore
import ClmntHealth

extension MoltCommand.Health {
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a molt's gateway once, record the result, and print it.",
            discussion: "Exit status: 0 when healthy (every molt with --all), 2 when not, 1 on errors."
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The molt to check.", completion: moltNameCompletion)
        var name: String?

        @Flag(help: "Check every molt of the fleet at once and print a table.")
        var all = false

        @Flag(inversion: .prefixedNo, help: "Print the result as JSON.")
        var json = false

        @Option(help: "Seconds to wait for the gateway's answer.")
        var timeout: Double = 5

        @Flag(help: "Also ask /readyz: live but not ready counts as degraded.")
        var ready = false

        func validate() throws {
            if all && name != nil { throw ValidationError("give a molt name or --all, not both") }
            if !all && name == nil { throw ValidationError("give a molt name, or --all for the whole fleet") }
        }

        func run() throws {
            try reportingErrors {
                let options = CheckOptions(timeout: timeout, ready: ready)
                try options.validate()
                let molts: [Molt]
                if let name {
                    molts = [try loadMolt(name, global).1]
                } else {
                    molts = try Fleet.discoverNonEmpty(baseDir: global.resolvedBaseDir).molts
                }
                let outcomes = HealthChecker.checkAndRecord(molts, options: options)
                for molt in molts {
                    global.detail("\(molt.name): recorded in \(StateDirectory(molt: molt).statusPath)", json: json)
                }
                for outcome in outcomes { printWarnings(outcome.warnings.map { "\(outcome.molt): \($0)" }) }
                if json {
                    let items = outcomes.map { $0.record.json(molt: $0.molt) }
                    try printJSON(all ? JSONOutput.array(items) : items[0])
                } else if global.quiet {
                    // -q: only the molts that are not healthy (the exit status says the rest).
                    for outcome in outcomes where !outcome.record.status.isHealthy {
                        printText("\(outcome.molt): \(HealthRendering.summary(outcome.record))")
                    }
                } else if all {
                    printText(HealthRendering.table(
                        ["MOLT", "STATUS", "PID", "PORT", "HTTP", "TIME(ms)", "DETAIL"],
                        outcomes.map { outcome in
                            let record = outcome.record
                            return [outcome.molt, record.status.rawValue, HealthRendering.optional(record.pid),
                                    HealthRendering.optional(record.port), HealthRendering.optional(record.httpStatus),
                                    HealthRendering.number(record.responseTimeMs), record.detail ?? ""]
                        }))
                } else {
                    printText("\(outcomes[0].molt): \(HealthRendering.summary(outcomes[0].record))")
                }
                if !outcomes.allSatisfy(\.record.status.isHealthy) { throw ExitCode(ExitStatus.checkFailed) }
            }
        }
    }
}
