import ArgumentParser

struct MoltCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "molt",
        abstract: "Work on single molts: health checks and monitoring.",
        subcommands: [Health.self, HealthWatch.self]
    )
}
