import Foundation

/// Where a restore must never land, and what `--force` may replace.
enum SystemDirectories {
    /// Directories of the system itself: never a base dir (their molts would
    /// replace `/etc`, `/usr`, ...). `/` is the working directory of a systemd service.
    static let exact: Set<String> = [
        "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media", "/mnt",
        "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var",
        "/usr/local", "/var/lib", "/var/log", "/var/spool", "/var/cache", "/var/tmp", "/var/mail", "/var/backups",
        "/var/opt", "/var/www",
    ]
    /// Trees that belong to the system or the kernel as a whole: nothing below them either.
    static let trees = ["/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run", "/sbin",
                        "/sys", "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libexec",
                        "/usr/include", "/usr/share"]

    /// Why `baseDir` (absolute) cannot be a base dir, or nil. Judged by the
    /// path as given, by where its symlinks really lead, and by device and inode
    /// (a bind mount of `/` or `/etc` is the same directory under another name).
    static func refusal(_ baseDir: String) -> String? {
        for candidate in Set([normalized(baseDir), resolved(baseDir)]) {
            if exact.contains(candidate) {
                return "is a system directory (\(candidate)); molts are restored into a directory of their own, such as /srv/molts"
            }
            if let tree = trees.first(where: { candidate.hasPrefix($0 + "/") }) {
                return "lies in the system's \(tree); molts are restored into a directory of their own, such as /srv/molts"
            }
        }
        return refusalByIdentity(baseDir)
    }

    /// The same two rules by (device, inode): the base dir itself against `exact`, it and each
    /// existing ancestor against `trees`. A bind mount shares both with its source, so
    /// `/mnt/rootfs` (a bind of `/`), `/mnt/rootfs/etc` or `/srv/etc-copy/ssh` (below a bind of
    /// `/etc`) are caught although no path says so.
    private static func refusalByIdentity(_ baseDir: String) -> String? {
        var identities: [String: FileIdentity] = [:]
        for system in exact.union(trees) { identities[system] = identity(system) }
        func matching(_ id: FileIdentity, in names: some Sequence<String>) -> String? {
            names.sorted().first { identities[$0] == id }
        }
        var path = resolved(baseDir)
        var isBaseDir = true
        while true {
            if let id = identity(path) {
                if isBaseDir, let system = matching(id, in: exact) {
                    return "is the system directory \(system) under another name (a bind mount); molts are restored into a directory of their own, such as /srv/molts"
                }
                if let tree = matching(id, in: trees) {
                    let via = isBaseDir ? "is" : "lies in"
                    return "\(via) the system's \(tree) under another name (\(path), a bind mount); molts are restored into a directory of their own, such as /srv/molts"
                }
            }
            if path == "/" { return nil }
            path = normalized((path as NSString).deletingLastPathComponent)
            isBaseDir = false
        }
    }

    private struct FileIdentity: Equatable { let device: UInt64; let inode: UInt64 }

    /// (device, inode) of the directory `path` (symlinks followed), or nil.
    private static func identity(_ path: String) -> FileIdentity? {
        var status = stat()
        guard stat(path, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR else { return nil }
        return FileIdentity(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
    }

    /// `path` with `.`, `..` and `//` removed (lexically).
    static func normalized(_ path: String) -> String {
        var stack: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." { continue }
            if part == ".." { _ = stack.popLast(); continue }
            stack.append(part)
        }
        return "/" + stack.joined(separator: "/")
    }

    /// The real path of `path`'s nearest existing ancestor, with the rest appended.
    static func resolved(_ path: String) -> String {
        var head = normalized(path)
        var tail: [String] = []
        while head != "/" {
            if let real = realpath(head, nil) {
                defer { free(real) }
                return normalized(String(cString: real) + "/" + tail.reversed().joined(separator: "/"))
            }
            tail.append((head as NSString).lastPathComponent)
            head = (head as NSString).deletingLastPathComponent
        }
        return normalized("/" + tail.reversed().joined(separator: "/"))
    }

    /// Why the existing `<baseDir>/<name>` is not molt `name` (a directory, not
    /// a symlink, holding a `.molt-info` whose MOLT_NAME is `name`), or nil when it is.
    static func notThisMolt(baseDir: String, name: String) -> String? {
        let base: FileDescriptor
        do { base = try FileDescriptor.open(baseDir, O_RDONLY | O_DIRECTORY) } catch { return "cannot be examined (\(error.reason))" }
        let home: FileDescriptor
        do { home = try base.openDirectory(name) } catch {
            return error.code == ELOOP || error.code == ENOTDIR ? "is not a directory" : "cannot be opened"
        }
        guard let info = try? SafeFileSystem.readFile(at: home.rawValue, ".molt-info", displayPath: baseDir + "/" + name + "/.molt-info",
                                                       limit: 1 << 20) else {
            return "holds no .molt-info: it is not a molt"
        }
        let declared = MoltInfo(parsing: String(decoding: info.data, as: UTF8.self)).name
        guard declared == name else { return "holds a .molt-info of \(declared.map { "'\($0)'" } ?? "no molt name"), not of '\(name)'" }
        return nil
    }
}
