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
    /// Below `global/` (empty for the directory itself).
    case global(PathBytes)
    /// Below `<name>/` (empty for the home directory entry itself).
    case molt(name: String, relative: PathBytes)
}

/// The rules that make an entry hostile. Any hostile entry refuses the whole
/// archive. Paths are bytes: a name need not be UTF-8.
enum EntryPolicy {
    /// The entry's path split into components, after dropping the bash tool's
    /// `./` prefix and a directory's trailing `/`; throws for absolute paths,
    /// `..`, `.` and empty components.
    static func components(of raw: PathBytes, format: ArchiveFormat) throws(RestoreError) -> [PathBytes] {
        var path = raw
        if path.isEmpty { throw .hostileEntry(path: raw.description, reason: "has an empty name") }
        if path.hasPrefix("/") { throw .hostileEntry(path: raw.description, reason: "is an absolute path") }
        if format == .bash {
            if path == "." || path == "./" { return [] }
            if path.hasPrefix("./") { path = PathBytes(bytes: path.bytes.dropFirst(2)) }
        }
        if path.hasSuffix("/") { path = PathBytes(bytes: path.bytes.dropLast()) }
        let parts = path.components
        for part in parts {
            if part == ".." { throw .hostileEntry(path: raw.description, reason: "contains a '..' component") }
            if part == "." { throw .hostileEntry(path: raw.description, reason: "contains a '.' component") }
            if part.isEmpty { throw .hostileEntry(path: raw.description, reason: "has an empty path component") }
        }
        return parts
    }

    /// Where `raw` belongs, given the molts the manifest lists.
    static func place(of raw: PathBytes, format: ArchiveFormat, molts: Set<String>) throws(RestoreError) -> EntryPlace {
        let parts = try components(of: raw, format: format)
        guard let first = parts.first else { return .archiveRoot }
        let rest = PathBytes(Array(parts.dropFirst().map(\.bytes).joined(separator: [UInt8(ascii: "/")])))
        if parts.count == 1 {
            switch first {
            case PathBytes(ArchiveLayout.manifestPath): return .manifest
            case PathBytes(ArchiveLayout.reportPath) where format == .clmnt: return .report
            case PathBytes(ArchiveLayout.checksumsPath) where format == .clmnt: return .checksums
            default: break
            }
        }
        if first == PathBytes(ArchiveLayout.globalDir) { return .global(rest) }
        let isTree = parts.count > 1 || raw.hasSuffix("/")
        // Molt names are UTF-8 (MoltName's rules): a first component that is not cannot name one.
        guard let name = first.string else {
            throw .hostileEntry(path: raw.description, reason: isTree ? "is under '\(first)', which is not a valid molt name" : "is outside <molt>/ and global/")
        }
        if molts.contains(name) { return .molt(name: name, relative: rest) }
        if isTree, MoltName.isValid(name) {
            throw .hostileEntry(path: raw.description, reason: "belongs to a molt '\(name)' that the manifest does not list")
        }
        if isTree {
            throw .hostileEntry(path: raw.description, reason: "is under '\(first)', which is not a valid molt name")
        }
        throw .hostileEntry(path: raw.description, reason: "is outside <molt>/ and global/")
    }

    /// Whether a symlink at `linkPath` (relative to its molt's home) pointing
    /// at `target` stays inside the molt's tree. Absolute targets count as
    /// inside when they lie under one of `homes` (the molt's home on the
    /// host that made the backup).
    static func symlinkStaysInside(linkPath: PathBytes, target: PathBytes, homes: [PathBytes]) -> Bool {
        guard !target.isEmpty else { return false }
        let parts = target.components.filter { !$0.isEmpty }
        if target.hasPrefix("/") {
            if parts.contains("..") { return false }
            let normalized = PathBytes("/") + PathBytes(Array(parts.filter { $0 != "." }.map(\.bytes).joined(separator: [UInt8(ascii: "/")])))
            return homes.contains { home in normalized == home || normalized.hasPrefix(home + "/") }
        }
        var depth = linkPath.components.filter { !$0.isEmpty }.count - 1
        for part in parts where part != "." {
            if part == ".." {
                if depth <= 0 { return false }
                depth -= 1
            } else {
                depth += 1
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
    private let home: [PathBytes]
    private(set) var all: [PathBytes: PathBytes] = [:]
    /// Linux's MAXSYMLINKS: a deeper chain fails with ELOOP, so it is refused as leaving.
    private static let maximumDepth = 40

    init(targetHome: String) { home = PathBytes(targetHome).parts }

    func add(path: PathBytes, target: PathBytes) { all[path] = target }

    /// `target` with a leading `old` home (by components, so `//old/./home` counts)
    /// replaced by this host's home; nil when it does not start with `old`.
    func moving(_ target: PathBytes, from old: String) -> PathBytes? {
        guard target.hasPrefix("/") else { return nil }
        let parts = target.parts.filter { $0 != "." }
        let oldParts = PathBytes(old).parts.filter { $0 != "." }
        guard !oldParts.isEmpty, parts.count >= oldParts.count, !oldParts.contains(".."),
              Array(parts.prefix(oldParts.count)) == oldParts else { return nil }
        return "/" + PathBytes(joining: home + parts.dropFirst(oldParts.count))
    }

    /// Whether the link at `linkPath` (relative to the home) pointing at `target` stays in the molt.
    func staysInside(linkPath: PathBytes, target: PathBytes) -> Bool {
        guard !target.isEmpty else { return false }
        var depth = 0
        return resolve(from: Array(linkPath.parts.dropLast()), target, depth: &depth) != nil
    }

    /// The components (below the home) `target` leads to from `directory`; nil when it leaves.
    private func resolve(from directory: [PathBytes], _ target: PathBytes, depth: inout Int) -> [PathBytes]? {
        var stack: [PathBytes]
        var parts = target.parts[...]
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
            stack.append(part)
            if let next = all[PathBytes(joining: stack)] {
                depth += 1
                guard depth <= Self.maximumDepth,
                      let resolved = resolve(from: Array(stack.dropLast()), next, depth: &depth) else { return nil }
                stack = resolved
            }
        }
        return stack
    }
}
