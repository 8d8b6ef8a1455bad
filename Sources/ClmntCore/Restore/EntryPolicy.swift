/// Which tool wrote an archive.
public enum ArchiveFormat: String, Sendable, Codable {
    /// `clmnt fleet backup`: manifest first, report, `SHA256SUMS` last, owners by name.
    case clmnt
    /// The bash tool of the plan (`.scripts/_fleet/backup`): `tar -czf` of a
    /// temp dir, names prefixed `./`, manifest anywhere, no checksums, every
    /// file owned by whoever ran the backup.
    case bash
}

/// Where an archive entry belongs.
enum EntryPlace: Equatable {
    case manifest, report, checksums
    /// The `./` entry of the bash tool's archives.
    case archiveRoot
    /// Below `global/` (`""` for the directory itself).
    case global(String)
    /// Below `<name>/` (`""` for the home directory entry itself).
    case molt(name: String, relative: String)
}

/// The rules that make an entry hostile. Any hostile entry refuses the whole archive.
enum EntryPolicy {
    /// The entry's path split into components, after dropping the bash tool's
    /// `./` prefix and a directory's trailing `/`; throws for absolute paths,
    /// `..`, `.` and empty components.
    static func components(of raw: String, format: ArchiveFormat) throws(RestoreError) -> [Substring] {
        var path = Substring(raw)
        if path.isEmpty { throw .hostileEntry(path: raw, reason: "has an empty name") }
        if path.hasPrefix("/") { throw .hostileEntry(path: raw, reason: "is an absolute path") }
        if format == .bash {
            if path == "." || path == "./" { return [] }
            if path.hasPrefix("./") { path = path.dropFirst(2) }
        }
        if path.hasSuffix("/") { path = path.dropLast() }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        for part in parts {
            if part == ".." { throw .hostileEntry(path: raw, reason: "contains a '..' component") }
            if part == "." { throw .hostileEntry(path: raw, reason: "contains a '.' component") }
            if part.isEmpty { throw .hostileEntry(path: raw, reason: "has an empty path component") }
        }
        return parts
    }

    /// Where `raw` belongs, given the molts the manifest lists.
    static func place(of raw: String, format: ArchiveFormat, molts: Set<String>) throws(RestoreError) -> EntryPlace {
        let parts = try components(of: raw, format: format)
        guard let first = parts.first else { return .archiveRoot }
        let rest = parts.dropFirst().joined(separator: "/")
        if parts.count == 1 {
            switch first {
            case Substring(ArchiveLayout.manifestPath): return .manifest
            case Substring(ArchiveLayout.reportPath) where format == .clmnt: return .report
            case Substring(ArchiveLayout.checksumsPath) where format == .clmnt: return .checksums
            default: break
            }
        }
        if first == Substring(ArchiveLayout.globalDir) { return .global(rest) }
        let name = String(first)
        if molts.contains(name) { return .molt(name: name, relative: rest) }
        if parts.count > 1 || raw.hasSuffix("/"), MoltName.isValid(name) {
            throw .hostileEntry(path: raw, reason: "belongs to a molt '\(name)' that the manifest does not list")
        }
        if parts.count > 1 || raw.hasSuffix("/") {
            throw .hostileEntry(path: raw, reason: "is under '\(name)', which is not a valid molt name")
        }
        throw .hostileEntry(path: raw, reason: "is outside <molt>/ and global/")
    }

    /// Whether a symlink at `linkPath` (relative to its molt's home) pointing
    /// at `target` stays inside the molt's tree. Absolute targets count as
    /// inside when they lie under one of `homes` (the molt's home on the
    /// host that made the backup).
    static func symlinkStaysInside(linkPath: String, target: String, homes: [String]) -> Bool {
        guard !target.isEmpty else { return false }
        if target.hasPrefix("/") {
            let parts = target.split(separator: "/")
            if parts.contains("..") { return false }
            let normalized = "/" + parts.filter { $0 != "." }.joined(separator: "/")
            return homes.contains { home in normalized == home || normalized.hasPrefix(home + "/") }
        }
        var stack = linkPath.split(separator: "/").dropLast().map(String.init)
        for part in target.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." {
                if stack.isEmpty { return false }
                stack.removeLast()
            } else {
                stack.append(String(part))
            }
        }
        return true
    }

    /// The reason an entry's type or mode makes it hostile, or nil.
    static func typeProblem(kind: EntryKind, mode: UInt32) -> String? {
        switch kind {
        case .other(let fileType):
            switch fileType & FileType.mask {
            case 0o020000: return "is a character device"
            case 0o060000: return "is a block device"
            case 0o010000: return "is a FIFO"
            case FileType.socket: return "is a socket"
            default: return "has an unsupported file type"
            }
        case .regular:
            if mode & 0o4000 != 0 { return "is a setuid file" }
            if mode & 0o2000 != 0 { return "is a setgid file" }
            return nil
        default:
            return nil
        }
    }
}

/// The symlinks of one molt seen so far, and where a link really leads: its
/// target resolved as the kernel would, from the link's directory in the
/// molt's tree, following the molt's links already known, with `.`, `..` and
/// `//` normalised. Absolute targets are judged against the molt's home on
/// this host (`targetHome`), never against a path the archive claims.
final class MoltLinks {
    private let home: [Substring]
    private(set) var all: [String: String] = [:]
    /// Linux's MAXSYMLINKS: a deeper chain fails with ELOOP, so it is refused as leaving.
    private static let maximumDepth = 40

    init(targetHome: String) { home = targetHome.split(separator: "/") }

    func add(path: String, target: String) { all[path] = target }

    /// `target` with a leading `old` home (by components, so `//old/./home` counts)
    /// replaced by this host's home; nil when it does not start with `old`.
    func moving(_ target: String, from old: String) -> String? {
        guard target.hasPrefix("/") else { return nil }
        let parts = target.split(separator: "/").filter { $0 != "." }
        let oldParts = old.split(separator: "/").filter { $0 != "." }
        guard !oldParts.isEmpty, parts.count >= oldParts.count, !oldParts.contains(".."),
              Array(parts.prefix(oldParts.count)) == oldParts else { return nil }
        return "/" + (home + parts.dropFirst(oldParts.count)).joined(separator: "/")
    }

    /// Whether the link at `linkPath` (relative to the home) pointing at `target` stays in the molt.
    func staysInside(linkPath: String, target: String) -> Bool {
        guard !target.isEmpty else { return false }
        var depth = 0
        let directory = linkPath.split(separator: "/").dropLast().map(String.init)
        return resolve(from: directory, target, depth: &depth) != nil
    }

    /// The components (below the home) `target` leads to from `directory`; nil when it leaves.
    private func resolve(from directory: [String], _ target: String, depth: inout Int) -> [String]? {
        var stack: [String]
        var parts = target.split(separator: "/")[...]
        if target.hasPrefix("/") {
            // An absolute target must name the home itself on its way in: nothing
            // outside it can be judged (any `..` or link there is the host's own).
            for component in home {
                while parts.first == "." { parts = parts.dropFirst() }
                guard let next = parts.first, next == component else { return nil }
                parts = parts.dropFirst()
            }
            stack = []
        } else {
            stack = directory
        }
        for part in parts {
            if part == "." { continue }
            if part == ".." {
                guard !stack.isEmpty else { return nil }
                stack.removeLast()
                continue
            }
            stack.append(String(part))
            if let next = all[stack.joined(separator: "/")] {
                depth += 1
                guard depth <= Self.maximumDepth,
                      let resolved = resolve(from: Array(stack.dropLast()), next, depth: &depth) else { return nil }
                stack = resolved
            }
        }
        return stack
    }
}
