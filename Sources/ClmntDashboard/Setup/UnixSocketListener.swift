import ClmntCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `dashboard serve --unix-socket PATH`: who may connect is who may open the socket file,
/// mode 0660 with the group the admin names (root's group otherwise).
enum UnixSocketListener {
    /// Before the bind: a socket left by an earlier run is removed (anything else at the path
    /// is refused), and the umask makes the new socket 0600 until ``share(_:group:)`` opens it
    /// to the group, so no one connects in between. The server writes no other file.
    static func prepare(_ path: String) throws(DashboardError) {
        var info = stat()
        if lstat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFSOCK else {
                throw .invalidOption("--unix-socket \(path) exists and is not a socket")
            }
            guard unlink(path) == 0 else {
                throw .invalidOption("cannot remove the old socket \(path): \(String(cString: strerror(errno)))")
            }
        }
        umask(0o177)
    }

    /// After the bind: group and mode 0660. A failure leaves it 0600 (root only) and says so.
    static func share(_ path: String, group: String?) {
        let gid = group.flatMap { UserAccounts.groupID(named: $0) } ?? getgid()
        // By path, right after our own bind, in a directory the admin chose (docs/api.md: one only root
        // writes): only when the path is still a socket of ours.
        var info = stat()
        let ours = lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFSOCK && info.st_uid == getuid()
        if !ours || lchown(path, getuid(), gid) != 0 || chmod(path, 0o660) != 0 {
            FileHandle.standardError.write(Data("clmnt: warning: cannot give \(path) to group \(gid) with mode 0660: \(String(cString: strerror(errno))); it stays root-only\n".utf8))
        }
    }
}
