import ArgumentParser
import ClmntCore

@main
struct Clmnt: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clmnt",
        abstract: "Back up, restore and watch a fleet of OpenClaw molts.",
        version: ClmntVersion.current,
        subcommands: [Fleet.self, Molt.self, Dashboard.self]
    )
}
