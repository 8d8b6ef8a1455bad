import Foundation

/// One path of a molt tree as seen by the scan that precedes the backup.
/// Only the last component is kept (the writer rebuilds paths from the depth),
/// so a fleet of 200,000 files costs a few tens of MiB, not a hundred.
struct ScannedEntry {
    /// `databaseSidecar`: a regular file `X-wal`, `X-shm` or `X-journal` whose
    /// sibling `X` looked like a SQLite database at scan time. It is archived only
    /// if `X` is not snapshotted after all (the snapshot holds its content).
    enum Kind: UInt8 { case directory, regular, symlink, databaseSidecar }

    /// The last path component, as `openat` wants it; "" for the home itself.
    let name: String
    let device: UInt64
    let inode: UInt64
    let size: Int64
    /// 0 for the home, 1 for its children, ...
    let depth: UInt16
    let kind: Kind
}

/// Rebuilds the relative paths of a scan's entries, fed in scan order.
struct TreePathBuilder {
    /// "a/b/": the directory the next entry of the deepest level lives in.
    private var prefix = ""
    /// The length of `prefix` after each directory level.
    private var prefixLengths: [Int] = []

    /// The path of `entry` below the home ("" for the home itself).
    mutating func relativePath(of entry: ScannedEntry) -> String {
        let depth = Int(entry.depth)
        guard depth > 0 else {
            prefix = ""
            prefixLengths = []
            return ""
        }
        if prefixLengths.count > depth - 1 {
            prefixLengths.removeLast(prefixLengths.count - (depth - 1))
            prefix = String(decoding: prefix.utf8.prefix(prefixLengths.last ?? 0), as: UTF8.self)
        }
        let path = prefix + entry.name
        if entry.kind == .directory {
            prefix = path + "/"
            prefixLengths.append(prefix.utf8.count)
        }
        return path
    }
}

/// What a scan of one molt found.
struct ScannedTree {
    var entries: [ScannedEntry] = []
    /// Apparent bytes of regular files, each hardlinked inode once.
    var regularBytes: Int64 = 0
    var warnings: [String] = []
    /// What the scan could not read (its molt is filled in by the backup).
    var missed: [MissedFile] = []

    /// Warns and records `path` as missed.
    mutating func miss(_ path: String, _ problem: MissedFile.Problem, _ detail: String, _ message: String) {
        missed.append(MissedFile(molt: nil, path: path, problem: problem, detail: detail))
        warnings.append(message)
    }
    /// Database sidecars in `entries`: planned to be left out (see `ScannedEntry.Kind`).
    var sidecarCount = 0
    /// With `TreeScanner.inventory` (the dry run): what the rules leave out, and the SQLite databases.
    var excluded: [ExcludedPath] = []
    var databases: [PlannedDatabase] = []

    /// Entries the archive will hold under the molt, as planned at scan time.
    var plannedEntryCount: Int { entries.count - sidecarCount }
    /// Non-directory entries the archive will hold, as planned at scan time.
    var plannedFileCount: Int { entries.count(where: { $0.kind != .directory }) - sidecarCount }
}

/// Walks a molt tree through directory descriptors opened with O_NOFOLLOW, so
/// a symlink planted by the molt user is recorded as a link, never followed.
/// Children are visited in byte order, so archives are reproducible.
struct TreeScanner {
    let rules: ExclusionRules
    /// The dry run's extra look, still read-only: what each exclusion leaves out (counted
    /// below excluded directories), every regular file opened as the backup would open it
    /// (one that cannot be is named as missed) and checked for SQLite's header.
    var inventory = false

    init(rules: ExclusionRules, inventory: Bool = false) {
        self.rules = rules
        self.inventory = inventory
    }

    func scan(home: String) throws(BackupError) -> ScannedTree {
        var tree = ScannedTree()
        let rootFd = open(home, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard rootFd >= 0 else { throw .unreadable(path: home, reason: String(cString: strerror(errno))) }
        defer { close(rootFd) }
        var rootStatus = stat()
        guard fstat(rootFd, &rootStatus) == 0 else { throw .unreadable(path: home, reason: String(cString: strerror(errno))) }
        tree.entries.append(ScannedEntry(name: "", device: UInt64(rootStatus.st_dev), inode: UInt64(rootStatus.st_ino),
                                         size: 0, depth: 0, kind: .directory))
        var seenInodes = Set<InodeKey>()
        walk(directoryFd: rootFd, relativePath: "", depth: 1, home: home, into: &tree, seenInodes: &seenInodes)
        return tree
    }

    private func walk(directoryFd: Int32, relativePath: String, depth: Int, home: String,
                      into tree: inout ScannedTree, seenInodes: inout Set<InodeKey>) {
        let names: [String]
        do { names = try directoryNames(directoryFd) } catch {
            tree.miss("\(home)/\(relativePath)", .unreadable, error.reason,
                      "\(home)/\(relativePath): cannot list directory: \(error.reason)")
            return
        }
        // Names X with a sibling X-wal, X-shm or X-journal; byte order puts X first.
        let sidecarBases = Set(names.compactMap { SQLiteSidecar.base(of: $0) }).intersection(names)
        var databases = Set<String>()
        for name in names {
            let childPath = relativePath.isEmpty ? name : relativePath + "/" + name
            var status = stat()
            guard fstatat(directoryFd, name, &status, AT_SYMLINK_NOFOLLOW) == 0 else {
                // directoryNames repairs a name that is not UTF-8 with U+FFFD, so such a
                // file cannot be reached by that name: it must be missed loudly, not skipped.
                if errno == ENOENT && name.contains("\u{FFFD}") {
                    let reason = "its name is not valid UTF-8, which this version cannot archive"
                    tree.miss("\(home)/\(childPath)", .unreadable, reason, "\(home)/\(childPath): \(reason)")
                } else if errno != ENOENT {
                    let reason = String(cString: strerror(errno))
                    tree.miss("\(home)/\(childPath)", .unreadable, reason, "\(home)/\(childPath): \(reason)")
                }
                continue
            }
            let type = UInt32(status.st_mode) & FileType.mask
            func record(_ kind: ScannedEntry.Kind, size: Int64 = 0) {
                tree.entries.append(ScannedEntry(name: name, device: UInt64(status.st_dev), inode: UInt64(status.st_ino),
                                                 size: size, depth: UInt16(depth), kind: kind))
            }
            switch type {
            case FileType.directory:
                if let rule = rules.rule(excluding: childPath, name: name, isDirectory: true) {
                    if inventory {
                        var excluded = ExcludedPath(path: childPath, rule: rule, directory: true)
                        measure(directoryFd, name, into: &excluded)
                        tree.excluded.append(excluded)
                    }
                    continue
                }
                record(.directory)
                let childFd = openat(directoryFd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard childFd >= 0 else {
                    let reason = String(cString: strerror(errno))
                    tree.miss("\(home)/\(childPath)", .unreadable, reason, "\(home)/\(childPath): cannot open directory: \(reason)")
                    continue
                }
                walk(directoryFd: childFd, relativePath: childPath, depth: depth + 1, home: home,
                     into: &tree, seenInodes: &seenInodes)
                close(childFd)
            case FileType.regular:
                if let rule = rules.rule(excluding: childPath, name: name, isDirectory: false) {
                    if inventory {
                        tree.excluded.append(ExcludedPath(path: childPath, rule: rule, directory: false,
                                                          files: 1, bytes: Int64(status.st_size)))
                    }
                    continue
                }
                if let base = SQLiteSidecar.base(of: name), databases.contains(base) {
                    record(.databaseSidecar, size: Int64(status.st_size))
                    tree.sidecarCount += 1
                    continue
                }
                if sidecarBases.contains(name) || inventory {
                    switch probe(directoryFd, name, status) {
                    case .database:
                        if sidecarBases.contains(name) { databases.insert(name) }
                        if inventory {
                            tree.databases.append(PlannedDatabase(path: childPath, sizeBytes: Int64(status.st_size),
                                                                  snapshot: status.st_uid != 0))
                        }
                    case .unreadable(let reason) where inventory:
                        tree.miss("\(home)/\(childPath)", .unreadable, reason, "\(home)/\(childPath): \(reason); would be skipped")
                        continue
                    default:
                        break
                    }
                }
                record(.regular, size: Int64(status.st_size))
                // Hardlinked inodes are counted once, as they are stored once.
                if status.st_nlink <= 1 || seenInodes.insert(InodeKey(status)).inserted {
                    tree.regularBytes += Int64(status.st_size)
                }
            case FileType.symlink:
                if let rule = rules.rule(excluding: childPath, name: name, isDirectory: false) {
                    if inventory { tree.excluded.append(ExcludedPath(path: childPath, rule: rule, directory: false, files: 1)) }
                    continue
                }
                record(.symlink)
            case FileType.socket:
                continue
            default:
                tree.warnings.append("\(home)/\(childPath): skipped (not a file, directory or symlink)")
            }
        }
    }

    private enum Probe { case database, notDatabase, unreadable(String) }

    /// Opens the regular file `name` (as `status` saw it) as the backup will, and looks for SQLite's header.
    private func probe(_ directoryFd: Int32, _ name: String, _ status: stat) -> Probe {
        var fd = openat(directoryFd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | LinuxCalls.noAccessTime)
        if fd < 0 && errno == EPERM { fd = openat(directoryFd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) }
        // Gone since the listing: the scan's own rules (and the backup's check) deal with that.
        guard fd >= 0 else { return errno == ENOENT ? .notDatabase : .unreadable(String(cString: strerror(errno))) }
        defer { close(fd) }
        var now = stat()
        guard fstat(fd, &now) == 0, now.st_dev == status.st_dev, now.st_ino == status.st_ino else { return .notDatabase }
        return SQLiteSnapshot.header(of: fd, size: Int64(now.st_size)) != .notDatabase ? .database : .notDatabase
    }

    /// Counts what lies below the excluded directory `name`, through `O_NOFOLLOW` descriptors.
    private func measure(_ parentFd: Int32, _ name: String, into excluded: inout ExcludedPath) {
        let fd = openat(parentFd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        guard let names = try? directoryNames(fd) else { return }
        for child in names {
            var status = stat()
            guard fstatat(fd, child, &status, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            switch UInt32(status.st_mode) & FileType.mask {
            case FileType.directory: measure(fd, child, into: &excluded)
            case FileType.regular:
                excluded.files += 1
                excluded.bytes += Int64(status.st_size)
            case FileType.symlink: excluded.files += 1
            default: break
            }
        }
    }
}

/// SQLite's companion files of a database `X`: `X-wal`, `X-shm`, `X-journal`.
enum SQLiteSidecar {
    static let suffixes = ["-wal", "-shm", "-journal"]

    /// `X` for a name `X-wal`, `X-shm` or `X-journal`, else nil.
    static func base(of name: String) -> String? {
        for suffix in suffixes where name.hasSuffix(suffix) && name.utf8.count > suffix.utf8.count {
            return String(name.dropLast(suffix.count))
        }
        return nil
    }
}

struct InodeKey: Hashable {
    let device: UInt64
    let inode: UInt64

    init(_ status: stat) {
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
    }

    init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }
}

struct DirectoryListingError: Error { let reason: String }

/// The names in the open directory `fd` (without `.` and `..`), byte-sorted.
func directoryNames(_ fd: Int32) throws(DirectoryListingError) -> [String] {
    let duplicate = dup(fd)
    guard duplicate >= 0, let directory = fdopendir(duplicate) else {
        throw DirectoryListingError(reason: String(cString: strerror(errno)))
    }
    defer { closedir(directory) }
    var names: [String] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
}
