import ArgumentParser

struct Fleet: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Back up, restore, list, verify and schedule whole-fleet archives.",
        subcommands: [Backup.self, Restore.self, ListBackups.self, Verify.self, Prune.self, Schedule.self, Doctor.self]
    )
}
