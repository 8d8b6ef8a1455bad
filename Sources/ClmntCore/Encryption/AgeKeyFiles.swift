import Foundation

/// Reads the files that hold keys, as paths on the command line (a key never appears in an
/// argument list, a crontab line or a unit): an identity file must be a regular file of the
/// invoking user, with one link and no group or other bits (0600 or 0400), read through
/// `O_NOFOLLOW`; anything else is refused before a byte of it is used.
public enum AgeKeyFiles {
    /// The environment variable naming identity files (colon-separated), as `--identity`.
    public static let identityVariable = "CLMNT_IDENTITY_FILE"

    public static func identities(paths: [String]) throws(AgeKeyFileError) -> [AgeIdentity] {
        var identities: [AgeIdentity] = []
        for path in paths {
            let text = try read(path, secret: true)
            do { identities += try AgeIdentity.parseFile(text) } catch { throw .invalid(path: path, error) }
        }
        return identities
    }

    /// `--identity` paths, else those of `CLMNT_IDENTITY_FILE`.
    public static func identityPaths(flags: [String], environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        if !flags.isEmpty { return flags }
        guard let value = environment[identityVariable], !value.isEmpty else { return [] }
        return value.split(separator: ":").map(String.init)
    }

    /// `--encrypt-to` values and the lines of `--recipients-file` files.
    public static func recipients(values: [String], files: [String]) throws(AgeKeyFileError) -> [AgeRecipient] {
        var recipients: [AgeRecipient] = []
        for value in values {
            do { recipients.append(try AgeRecipient(parsing: value)) } catch { throw .invalid(path: "--encrypt-to", error) }
        }
        for path in files {
            let text = try read(path, secret: false)
            do { recipients += try AgeRecipient.parseFile(text) } catch { throw .invalid(path: path, error) }
        }
        return recipients
    }

    /// Why `path` may not hold an identity (nil: it may). Also used by `fleet doctor`.
    public static func identityFileProblem(_ path: String) -> String? {
        do { _ = try read(path, secret: true); return nil } catch { return error.reason }
    }

    private static func read(_ path: String, secret: Bool) throws(AgeKeyFileError) -> String {
        let file: FileDescriptor
        do { file = try FileDescriptor.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK) } catch {
            throw .refused(path: path, reason: error.code == ELOOP ? "is a symlink" : error.reason)
        }
        guard let info = try? file.status(), info.st_mode & S_IFMT == S_IFREG else { throw .refused(path: path, reason: "is not a regular file") }
        guard info.st_size <= 64 << 10 else { throw .refused(path: path, reason: "is larger than 64 KiB") }
        if secret {
            guard info.st_uid == geteuid() else {
                throw .refused(path: path, reason: "belongs to uid \(info.st_uid), not to the invoking user (uid \(geteuid()))")
            }
            guard info.st_mode & 0o077 == 0 else {
                throw .refused(path: path, reason: String(format: "has mode %04o: group or others can read it (chmod 600)", info.st_mode & 0o7777))
            }
            guard info.st_nlink == 1 else { throw .refused(path: path, reason: "has \(info.st_nlink) links") }
        }
        do { return String(decoding: try file.readAll(limit: 64 << 10), as: UTF8.self) } catch {
            throw .refused(path: path, reason: error.reason)
        }
    }
}

/// A key file refused or not understood; one line naming the file.
public enum AgeKeyFileError: Error, CustomStringConvertible {
    case refused(path: String, reason: String)
    case invalid(path: String, AgeError)

    public var reason: String {
        switch self {
        case .refused(_, let reason): return reason
        case .invalid(_, let error): return error.description
        }
    }

    public var description: String {
        switch self {
        case .refused(let path, let reason): return "refusing key file \(path): \(reason)"
        case .invalid(let path, let error): return "\(path): \(error)"
        }
    }
}
