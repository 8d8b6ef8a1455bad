import ClmntCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The dashboard's bearer token file: read through a descriptor and believed only when
/// it is private to root (or the user running clmnt), and written that way by setup.
public enum DashboardToken {
    /// Where `dashboard setup --systemd` keeps the token unless told otherwise.
    public static let defaultPath = "/etc/clmnt/dashboard-token"
    /// A token file is one line; anything bigger is not one.
    public static let maximumBytes = 4096
    public static let minimumLength = 16

    /// The first line of `path`: opened `O_NOFOLLOW` (a link is refused, not followed), a
    /// regular file with one link, owned by root or the invoking user, with no permission
    /// for group or others, at most ``maximumBytes``.
    public static func read(path: String) throws(DashboardError) -> String {
        func refuse(_ reason: String) -> DashboardError { .invalidOption("refusing --token-file \(path): \(reason)") }
        let file: FileDescriptor
        do { file = try FileDescriptor.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK) } catch {
            throw error.code == ELOOP ? refuse("it is a symbolic link") : refuse(error.reason)
        }
        let info: stat
        do { info = try file.status() } catch { throw refuse(error.reason) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw refuse("not a regular file") }
        guard info.st_uid == 0 || info.st_uid == getuid() else {
            throw refuse("owned by uid \(info.st_uid), not by root" + (getuid() == 0 ? "" : " or uid \(getuid())"))
        }
        guard info.st_nlink == 1 else { throw refuse("it has \(info.st_nlink) hard links") }
        guard info.st_mode & 0o077 == 0 else {
            throw refuse("mode \(String(info.st_mode & 0o7777, radix: 8)) lets group or others at it (chmod 600 \(path))")
        }
        guard info.st_size <= maximumBytes else { throw refuse("\(info.st_size) bytes, more than a token (\(maximumBytes))") }
        let bytes: [UInt8]
        do { bytes = try file.read(upTo: maximumBytes + 1) } catch { throw refuse(error.reason) }
        let length = bytes.count
        guard length <= maximumBytes else { throw refuse("it grew past \(maximumBytes) bytes while read") }
        let token = String(decoding: bytes, as: UTF8.self)
            .split(whereSeparator: \.isNewline).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        guard token.count >= minimumLength else { throw refuse("the token is shorter than \(minimumLength) characters") }
        guard token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { throw refuse("the token holds spaces or control characters") }
        return token
    }

    /// Writes a new random token (64 hex digits) to `path`, mode 0600, creating its directory
    /// (0700) when missing; an existing file is kept (rerunning setup does not change the token)
    /// once it reads as a token. Returns true when it wrote one.
    public static func ensure(path: String) throws(DashboardError) -> Bool {
        var info = stat()
        if lstat(path, &info) == 0 {
            _ = try read(path: path)
            return false
        }
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty, lstat(directory, &info) != 0 {
            guard mkdir(directory, 0o700) == 0 else {
                throw .setupFailed("cannot create \(directory): \(String(cString: strerror(errno)))")
            }
        }
        var generator = SystemRandomNumberGenerator()
        let token = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        let file: FileDescriptor
        do { file = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0o600) } catch {
            throw .setupFailed("cannot create \(error)")
        }
        do throws(SystemError) {
            try file.writeAll(Array((token + "\n").utf8))
            try file.close()
        } catch {
            unlink(path)
            throw .setupFailed("cannot write \(error)")
        }
        return true
    }
}
