import ArgumentParser

struct Molt: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Work on single molts: health checks and monitoring.",
        subcommands: [Health.self, HealthWatch.self]
    )
}
