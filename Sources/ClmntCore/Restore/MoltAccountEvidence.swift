import Foundation

/// Whether an existing account is a molt's own user, judged only by what this
/// host holds. The archive's word (its manifest's `home`, its `.molt-info`) is
/// never evidence: every home is readable in `/etc/passwd`, so an archive can
/// always name an existing person's account and home.
enum MoltAccountEvidence {
    /// What on this host says `account` is molt `name`'s user, or nil when nothing does.
    /// `target` is `<base-dir>/<name>`; `registered` the molts listed by the base dir's
    /// trusted `molts.json` (`trustedRegistryNames`).
    static func evidence(account: UserAccount, name: String, target: String, registered: Set<String>) -> String? {
        // The host's own passwd gives it this very home in the base dir the admin named.
        if account.home == target { return "its home is \(target)" }
        if registered.contains(name) { return "molts.json of the base dir lists \(name)" }
        if homeHoldsMoltInfo(account: account, name: name) { return "its home \(account.home) holds the .molt-info of \(name)" }
        return nil
    }

    /// Whether the account's real home (from passwd) holds a `.molt-info` naming `name`
    /// that the account or root wrote: the home opened `O_NOFOLLOW`, owned by the
    /// account or root and writable by no one else; the file opened `O_NOFOLLOW`,
    /// regular, one link, owned by the account or root.
    static func homeHoldsMoltInfo(account: UserAccount, name: String) -> Bool {
        guard account.home.hasPrefix("/") else { return false }
        guard let home = try? FileDescriptor.openDirectory(account.home), let status = try? home.status(),
              isTrusted(owner: status.st_uid, account: account), status.st_mode & (S_IWGRP | S_IWOTH) == 0 else { return false }
        guard let info = try? SafeFileSystem.readFile(at: home.rawValue, ".molt-info", displayPath: account.home + "/.molt-info",
                                                       limit: 1 << 20),
              info.status.st_nlink == 1, isTrusted(owner: info.status.st_uid, account: account) else { return false }
        return MoltInfo(parsing: String(decoding: info.data, as: UTF8.self)).name == name
    }

    /// The molts listed in `<baseDir>/molts.json` when root wrote it: the base dir owned by
    /// the running user and writable by no one else, the file opened `O_NOFOLLOW` from it,
    /// regular, one link, owned by the running user. Anything else: none (no evidence).
    static func trustedRegistryNames(baseDir: String) -> Set<String> {
        guard let base = try? FileDescriptor.open(baseDir, O_RDONLY | O_DIRECTORY), let status = try? base.status(),
              status.st_uid == geteuid(), status.st_mode & (S_IWGRP | S_IWOTH) == 0,
              let registry = try? SafeFileSystem.readFile(at: base.rawValue, "molts.json", displayPath: baseDir + "/molts.json"),
              registry.status.st_nlink == 1, registry.status.st_uid == geteuid(),
              let object = try? JSONSerialization.jsonObject(with: registry.data) as? [String: Any],
              let molts = object["molts"] as? [String: Any] else { return [] }
        return Set(molts.keys)
    }

    private static func isTrusted(owner: uid_t, account: UserAccount) -> Bool {
        owner == account.uid || owner == 0
    }
}
