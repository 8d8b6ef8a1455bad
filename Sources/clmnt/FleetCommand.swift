import ArgumentParser

struct Fleet: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Back up, restore, list and verify whole-fleet archives.",
        subcommands: [Backup.self, Restore.self, ListBackups.self, Verify.self]
    )
}
