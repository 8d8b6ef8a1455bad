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
    /// path as given and by where its symlinks really lead.
    static func refusal(_ baseDir: String) -> String? {
        for candidate in Set([normalized(baseDir), resolved(baseDir)]) {
            if exact.contains(candidate) {
                return "is a system directory (\(candidate)); molts are restored into a directory of their own, such as /srv/molts"
            }
            if let tree = trees.first(where: { candidate.hasPrefix($0 + "/") }) {
                return "lies in the system's \(tree); molts are restored into a directory of their own, such as /srv/molts"
            }
        }
        return nil
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
        let base = open(baseDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard base >= 0 else { return "cannot be examined (\(String(cString: strerror(errno))))" }
        defer { close(base) }
        let home = SafeFileSystem.openDirectory(at: base, name)
        guard home >= 0 else { return errno == ELOOP || errno == ENOTDIR ? "is not a directory" : "cannot be opened" }
        defer { close(home) }
        guard let info = try? SafeFileSystem.readFile(at: home, ".molt-info", displayPath: baseDir + "/" + name + "/.molt-info",
                                                       limit: 1 << 20) else {
            return "holds no .molt-info: it is not a molt"
        }
        let declared = MoltInfo(parsing: String(decoding: info.data, as: UTF8.self)).name
        guard declared == name else { return "holds a .molt-info of \(declared.map { "'\($0)'" } ?? "no molt name"), not of '\(name)'" }
        return nil
    }
}
