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
        let base = try SafeFileSystem.openDirectory(baseDir)
        defer { close(base) }
        var changes: [String] = []
        for name in molts {
            let home = SafeFileSystem.openDirectory(at: base, name)
            guard home >= 0 else { throw SafeFileSystem.failure(baseDir + "/" + name) }
            defer { close(home) }
            let path = baseDir + "/" + name
            if let change = try tighten(home, path: path, removing: 0o027) { changes.append(change) }
            let config = SafeFileSystem.openDirectory(at: home, ".openclaw")
            if config < 0 {
                if errno == ENOENT { continue }
                throw SafeFileSystem.failure(path + "/.openclaw")
            }
            defer { close(config) }
            if let change = try tighten(config, path: path + "/.openclaw", removing: 0o077) { changes.append(change) }
        }
        return changes
    }

    private static func tighten(_ fd: Int32, path: String, removing bits: mode_t) throws(RestoreError) -> String? {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw SafeFileSystem.failure(path) }
        let mode = info.st_mode & 0o7777
        let tightened = mode & ~bits
        guard tightened != mode else { return nil }
        guard fchmod(fd, tightened) == 0 else { throw SafeFileSystem.failure(path) }
        return "\(path): mode 0\(String(mode, radix: 8)) → 0\(String(tightened, radix: 8))"
    }
}
