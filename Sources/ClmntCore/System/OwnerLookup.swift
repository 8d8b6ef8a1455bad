/// Names of users and groups for the manifest, looked up once each (through
/// `UserAccounts`' reentrant calls); the number when there is no name.
final class OwnerLookup {
    private var users: [UInt32: String] = [:]
    private var groups: [UInt32: String] = [:]

    func userName(_ uid: UInt32) -> String {
        if let name = users[uid] { return name }
        let name = UserAccounts.user(uid: uid)?.name ?? String(uid)
        users[uid] = name
        return name
    }

    func groupName(_ gid: UInt32) -> String {
        if let name = groups[gid] { return name }
        let name = UserAccounts.groupName(gid: gid) ?? String(gid)
        groups[gid] = name
        return name
    }
}
