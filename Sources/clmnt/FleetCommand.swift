import ArgumentParser

struct FleetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "Back up, restore, list, verify and schedule whole-fleet archives.",
        subcommands: [Backup.self, Restore.self, ListBackups.self, Verify.self, Prune.self, Schedule.self, Doctor.self]
    )
}
