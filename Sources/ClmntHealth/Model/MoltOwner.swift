import ClmntCore
import Foundation

/// The uid and gid that own a molt: its Linux user when one exists, else the owner of its home.
public struct MoltOwner: Sendable, Equatable {
    public let uid: uid_t
    public let gid: gid_t

    public static func of(_ molt: Molt) -> MoltOwner? {
        if let user = UserAccounts.user(named: molt.name) { return MoltOwner(uid: user.uid, gid: user.gid) }
        var info = stat()
        guard stat(molt.home, &info) == 0 else { return nil }
        return MoltOwner(uid: info.st_uid, gid: info.st_gid)
    }
}
