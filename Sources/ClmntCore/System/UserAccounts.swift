import Foundation

/// A local user account, as the system's user database (NSS) reports it.
public struct UserAccount: Sendable, Equatable, Codable {
    public let name: String
    public let uid: UInt32
    public let gid: UInt32
    public let home: String
    public let shell: String
}

/// Failure to create or change an account.
public enum UserAccountError: Error, Equatable, CustomStringConvertible {
    case invalidName(String)
    case program(ProgramError)
    /// `useradd` reported success, yet the account cannot be looked up.
    case notVisible(String)

    public var description: String {
        switch self {
        case .invalidName(let name):
            return "invalid user name '\(name)' (lower-case letters, digits, '-' and '_', starting with a letter, at most 32)"
        case .program(let error): return "\(error)"
        case .notVisible(let name): return "user \(name) was created but cannot be looked up"
        }
    }
}

/// Looks up users and groups through the C library (so NSS sources count),
/// and creates molt users with `useradd`.
public enum UserAccounts {
    /// The user called `name`, or nil.
    public static func user(named name: String) -> UserAccount? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        guard getpwnam_r(name, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return UserAccount(name: String(cString: entry.pw_name), uid: entry.pw_uid, gid: entry.pw_gid,
                           home: String(cString: entry.pw_dir), shell: String(cString: entry.pw_shell))
    }

    /// The user whose uid is `uid`, or nil.
    public static func user(uid: UInt32) -> UserAccount? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return UserAccount(name: String(cString: entry.pw_name), uid: entry.pw_uid, gid: entry.pw_gid,
                           home: String(cString: entry.pw_dir), shell: String(cString: entry.pw_shell))
    }

    /// The gid of the group called `name`, or nil.
    public static func groupID(named name: String) -> UInt32? {
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 65_536)
        guard getgrnam_r(name, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return entry.gr_gid
    }

    /// The name of the user running this process (its uid when it has none): whose crontab,
    /// whose files.
    public static func invokingUserName() -> String {
        user(uid: geteuid())?.name ?? String(geteuid())
    }

    /// The name of the group whose gid is `gid`, or nil.
    public static func groupName(gid: UInt32) -> String? {
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 65_536)
        guard getgrgid_r(gid, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return String(cString: entry.gr_name)
    }

    /// The names of the groups `user` belongs to beyond its primary group.
    public static func supplementaryGroups(of user: UserAccount) -> [String] {
        groupIDs(of: user).filter { $0 != user.gid }.compactMap { groupName(gid: $0) }
    }

    /// Every group `user` belongs to, its primary group included (as `initgroups` would set them).
    public static func groupIDs(of user: UserAccount) -> [UInt32] {
        groupIDs(name: user.name, gid: user.gid)
    }

    /// Every group of the user `name` whose primary group is `gid`.
    public static func groupIDs(name: String, gid: UInt32) -> [UInt32] {
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(name, gid, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count))
            guard getgrouplist(name, gid, &groups, &count) >= 0 else { return [gid] }
        }
        return Array(groups.prefix(Int(count)))
    }

    /// The lowest uid of a regular (non-system) account: `UID_MIN` of
    /// /etc/login.defs, 1000 when it is not set.
    public static func minimumRegularUID(loginDefs: String = "/etc/login.defs") -> UInt32 {
        regularUIDs(loginDefs: loginDefs).lowerBound
    }

    /// The uids of regular accounts: `UID_MIN...UID_MAX` of /etc/login.defs
    /// (1000...60000 when unset). `nobody` (65534) lies above it.
    public static func regularUIDs(loginDefs: String = "/etc/login.defs") -> ClosedRange<UInt32> {
        var minimum: UInt32 = 1000
        var maximum: UInt32 = 60000
        if let text = try? String(contentsOfFile: loginDefs, encoding: .utf8) {
            for line in text.split(whereSeparator: \.isNewline) {
                let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard fields.count >= 2, let value = UInt32(fields[1]) else { continue }
                if fields[0] == "UID_MIN" { minimum = value }
                if fields[0] == "UID_MAX" { maximum = value }
            }
        }
        return minimum...max(minimum, maximum)
    }

    /// Groups a restore never adds a molt user to, whatever the archive says:
    /// each is a way to root or to other users' secrets.
    public static let privilegedGroups: Set<String> = [
        "root", "sudo", "wheel", "admin", "adm", "shadow", "disk", "kmem", "sys", "staff", "lxd", "libvirt", "systemd-journal",
    ]

    /// Whether `loginctl` can work here: installed, and systemd running (sd_booted's test,
    /// `/run/systemd/system`). Without systemd (a container, a sysvinit host) `loginctl`
    /// exists but fails for every user: lingering is then skipped quietly, not warned per user.
    /// Checked once per process.
    public static let hasLoginctl: Bool =
        ProgramRunner.locate("loginctl") != nil && FileManager.default.fileExists(atPath: "/run/systemd/system")

    /// Creates the molt user `name` with home `home` (not created: the
    /// restore puts it in place), shell `/bin/bash`, a primary group of the
    /// same name (the existing one if there is one), and membership of
    /// `supplementaryGroups` that exist (never a privileged one). Never adds sudo rights.
    @discardableResult
    public static func create(name: String, home: String, shell: String = "/bin/bash",
                              supplementaryGroups: [String] = []) throws(UserAccountError) -> UserAccount {
        guard MoltName.isValid(name) else { throw .invalidName(name) }
        var arguments = ["-M", "-d", home, "-s", shell]
        arguments += groupID(named: name) != nil ? ["-g", name] : ["-U"]
        let existing = supplementaryGroups.filter { groupID(named: $0) != nil && !privilegedGroups.contains($0) && $0 != name }
        if !existing.isEmpty { arguments += ["-G", existing.joined(separator: ",")] }
        arguments += ["--", name]
        try runRetryingOnLock("useradd", arguments)
        guard let account = user(named: name) else { throw .notVisible(name) }
        return account
    }

    /// Turns on systemd lingering for `name` (its user services run without a
    /// login). Returns false when `loginctl` cannot work here (see `hasLoginctl`).
    @discardableResult
    public static func enableLinger(name: String) throws(UserAccountError) -> Bool {
        guard hasLoginctl else { return false }
        do { try ProgramRunner.run("loginctl", ["enable-linger", name], timeout: 30) } catch { throw .program(error) }
        return true
    }

    /// Deletes the account `name` (never its home) and its same-named
    /// primary group if `userdel` left it behind.
    public static func delete(name: String) throws(UserAccountError) {
        guard MoltName.isValid(name) else { throw .invalidName(name) }
        if user(named: name) != nil { try runRetryingOnLock("userdel", ["--", name]) }
        if groupID(named: name) != nil { try runRetryingOnLock("groupdel", ["--", name]) }
    }

    /// The shadow tools fail at once when another one holds /etc/passwd's
    /// lock; a few tries over a second ride that out.
    private static func runRetryingOnLock(_ program: String, _ arguments: [String]) throws(UserAccountError) {
        var attempt = 0
        while true {
            attempt += 1
            do {
                try ProgramRunner.run(program, arguments)
                return
            } catch {
                if case .failed(_, _, let tail) = error, tail.contains("lock"), attempt < 5 {
                    usleep(250_000)
                    continue
                }
                throw .program(error)
            }
        }
    }
}
