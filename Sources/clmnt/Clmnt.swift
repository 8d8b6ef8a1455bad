import ArgumentParser
import ClmntCore

@main
struct Clmnt: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clmnt",
        abstract: "Back up, restore and watch a fleet of OpenClaw molts.",
        discussion: """
        WHERE IT LOOKS
          Base dir (the fleet: molts.json, one home per molt):
            -d/--base-dir DIR, else $CLMNT_BASE_DIR, else the current directory.
          Backup dir (backup's default name, list-backups, doctor, prune):
            --backup-dir DIR, else $CLMNT_BACKUP_DIR, else the dir 'clmnt fleet
            schedule' recorded for the base dir in your crontab, else ./backups.
            list-backups, doctor and prune also find the bash tool's .backups (in
            the base dir or here) when ./backups does not exist, and say so.
          'clmnt fleet schedule --status -d DIR' shows a base dir's recorded dir;
          '-v' says which rule chose each directory.

        EXIT CODES
          0      done (verify: intact; doctor: nothing failed; health: healthy)
          1      the operation failed (doctor: a check failed)
          2      a check failed: a damaged archive, a molt not healthy
          3      backup written, but files vanished or were unreadable (named)
          64     a bad value on the command line
          75     the base dir is busy with a backup or restore (retry, or --wait)
          128+N  stopped by signal N (partial output removed)
          Details: docs/exit-codes.md; 'clmnt help <command>' for each command.
        """,
        version: ClmntVersion.current,
        subcommands: [FleetCommand.self, MoltCommand.self, Dashboard.self]
    )
}
