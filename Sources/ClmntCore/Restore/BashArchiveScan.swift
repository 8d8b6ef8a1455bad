import Foundation

extension RestorePlan {
    /// The plan of a bash-tool archive, completed by one pass over the whole archive:
    /// its manifest can sit anywhere and it carries no report or checksums, so only
    /// reading it tells a listed molt whose directory is missing (renamed after the
    /// backup) or a directory the manifest does not list. The dry run then refuses what
    /// the restore would refuse, judged for the selected molts as the restore judges them.
    /// clmnt's archives are planned from their manifest alone (its first entry).
    public mutating func scanBashArchive() throws(BackupError) {
        guard format == .bash else { return }
        let report = try ArchiveVerifier.verify(path: archive, selection: Set(molts.map(\.name)))
        refusals += report.problems
        notes += report.notes.filter { !$0.hasPrefix("written by the bash tool") }
    }
}

/// The bash tool copied homes with `cp -r`, which lost their modes: its archives hold
/// each home and its `.openclaw` at 0755, so a restore would leave a molt's secrets
/// (`.openclaw/.env`, its token in `openclaw.json`) in directories every user can list.
/// `fleet restore --fix-modes` tightens them afterwards, as the molt's own setup made them.
public enum BashArchiveModes {
    /// The plan's note for a bash-tool archive.
    public static func note(fixing: Bool) -> String {
        "the bash tool's archives hold homes and .openclaw at 0755 (its cp -r lost 0750/0700)"
            + (fixing ? ": --fix-modes tightens them to 0750 and 0700 after the restore"
                      : "; --fix-modes tightens them to 0750 and 0700 after the restore")
    }

    /// Takes group-write and every "other" bit off each restored home and group and
    /// "other" bits off its `.openclaw`, never adding one. Through `O_NOFOLLOW` descriptors
    /// from the base dir: a symlink the molt planted is left alone. Returns a line per change.
    public static func tighten(baseDir: String, molts: [String]) throws(RestoreError) -> [String] {
        try RestoreError.step { () throws(SystemError) in
            let base = try FileDescriptor.openDirectory(baseDir)
            var changes: [String] = []
            for name in molts {
                let home = try base.openDirectory(name)
                if let change = try tighten(home, removing: 0o027) { changes.append(change) }
                guard let config = try home.openIfPresent(".openclaw", O_RDONLY | O_DIRECTORY) else { continue }
                if let change = try tighten(config, removing: 0o077) { changes.append(change) }
            }
            return changes
        }
    }

    private static func tighten(_ directory: borrowing FileDescriptor, removing bits: mode_t) throws(SystemError) -> String? {
        let mode = try directory.status().st_mode & 0o7777
        let tightened = mode & ~bits
        guard tightened != mode else { return nil }
        guard fchmod(directory.rawValue, tightened) == 0 else { throw SystemError(path: directory.path) }
        return "\(directory.path): mode 0\(String(mode, radix: 8)) → 0\(String(tightened, radix: 8))"
    }
}
