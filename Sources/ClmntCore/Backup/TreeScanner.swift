import Foundation

/// One path of a molt tree as seen by the scan that precedes the backup.
/// Only the last component is kept, as bytes in the tree's name arena (the
/// writer rebuilds paths from the depth), so a fleet of 200,000 files costs a
/// few tens of MiB, not a hundred.
struct ScannedEntry {
    /// `databaseSidecar`: a regular file `X-wal`, `X-shm` or `X-journal` whose
    /// sibling `X` looked like a SQLite database at scan time. It is archived only
    /// if `X` is not snapshotted after all (the snapshot holds its content).
    enum Kind: UInt8 { case directory, regular, symlink, databaseSidecar }

    let device: UInt64
    let inode: UInt64
    let size: Int64
    /// Where the last path component starts in `ScannedTree.names` (NUL-terminated there).
    let nameOffset: UInt32
    /// Its length in bytes (at most 255 on Linux); 0 for the home itself.
    let nameLength: UInt16
    /// 0 for the home, 1 for its children, ...
    let depth: UInt16
    let kind: Kind
}

/// Rebuilds the relative paths of a scan's entries, fed in scan order.
struct TreePathBuilder {
    /// "a/b/": the directory the next entry of the deepest level lives in.
    private var prefix: [UInt8] = []
    /// The length of `prefix` after each directory level.
    private var prefixLengths: [Int] = []

    /// The path of `entry` of `tree` below the home (empty for the home itself).
    mutating func relativePath(of entry: ScannedEntry, in tree: ScannedTree) -> PathBytes {
        let depth = Int(entry.depth)
        guard depth > 0 else {
            prefix = []
            prefixLengths = []
            return PathBytes([])
        }
        if prefixLengths.count > depth - 1 {
            prefixLengths.removeLast(prefixLengths.count - (depth - 1))
            prefix.removeLast(prefix.count - (prefixLengths.last ?? 0))
        }
        var path = prefix
        path.append(contentsOf: tree.nameBytes(of: entry))
        if entry.kind == .directory {
            prefix = path
            prefix.append(UInt8(ascii: "/"))
            prefixLengths.append(prefix.count)
        }
        return PathBytes(path)
    }
}

/// What a scan of one molt found.
struct ScannedTree {
    var entries: [ScannedEntry] = []
    /// The entries' names, each followed by a NUL (so it can be handed to `openat` as is).
    var names: [UInt8] = [0]
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

    func nameBytes(of entry: ScannedEntry) -> ArraySlice<UInt8> {
        names[Int(entry.nameOffset)..<(Int(entry.nameOffset) + Int(entry.nameLength))]
    }

    func name(of entry: ScannedEntry) -> PathBytes { PathBytes(bytes: nameBytes(of: entry)) }

    /// Runs `body` with the entry's name as a C string, without copying it.
    func withName<Result>(of entry: ScannedEntry, _ body: (UnsafePointer<CChar>) throws -> Result) rethrows -> Result {
        try names.withUnsafeBufferPointer { buffer in
            try buffer.withMemoryRebound(to: CChar.self) { try body($0.baseAddress! + Int(entry.nameOffset)) }
        }
    }

    mutating func append(name: PathBytes, device: UInt64, inode: UInt64, size: Int64, depth: Int, kind: ScannedEntry.Kind) {
        let offset = UInt32(names.count)
        names.append(contentsOf: name.bytes)
        names.append(0)
        entries.append(ScannedEntry(device: device, inode: inode, size: size, nameOffset: offset,
                                    nameLength: UInt16(name.count), depth: UInt16(depth), kind: kind))
    }
}

/// Walks a molt tree through directory descriptors opened with O_NOFOLLOW, so
/// a symlink planted by the molt user is recorded as a link, never followed.
/// Names are bytes throughout (a name that is not UTF-8 is archived as it is).
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
        let root: FileDescriptor
        let rootStatus: stat
        do { root = try FileDescriptor.openDirectory(home) } catch { throw .unreadable(path: home, reason: error.reason) }
        do { rootStatus = try root.status() } catch { throw .unreadable(path: home, reason: error.reason) }
        let rootFd = root.rawValue
        tree.append(name: PathBytes([]), device: UInt64(rootStatus.st_dev), inode: UInt64(rootStatus.st_ino),
                    size: 0, depth: 0, kind: .directory)
        var seenInodes = Set<InodeKey>()
        walk(directoryFd: rootFd, relativePath: PathBytes([]), depth: 1, home: home, into: &tree, seenInodes: &seenInodes)
        return tree
    }

    private func walk(directoryFd: Int32, relativePath: PathBytes, depth: Int, home: String,
                      into tree: inout ScannedTree, seenInodes: inout Set<InodeKey>) {
        let names: [PathBytes]
        do { names = try directoryEntryNames(directoryFd, path: "\(home)/\(relativePath)") } catch {
            tree.miss("\(home)/\(relativePath)", .unreadable, error.reason,
                      "\(home)/\(relativePath): cannot list directory: \(error.reason)")
            return
        }
        // Names X with a sibling X-wal, X-shm or X-journal; byte order puts X first.
        let sidecarBases = Set(names.compactMap { SQLiteSidecar.base(of: $0) }).intersection(names)
        var databases = Set<PathBytes>()
        for name in names {
            let childPath = relativePath.appending(name)
            var status = stat()
            guard name.withCString({ fstatat(directoryFd, $0, &status, AT_SYMLINK_NOFOLLOW) }) == 0 else {
                if errno != ENOENT {
                    let reason = String(cString: strerror(errno))
                    tree.miss("\(home)/\(childPath)", .unreadable, reason, "\(home)/\(childPath): \(reason)")
                }
                continue
            }
            let type = UInt32(status.st_mode) & FileType.mask
            func record(_ kind: ScannedEntry.Kind, size: Int64 = 0) {
                tree.append(name: name, device: UInt64(status.st_dev), inode: UInt64(status.st_ino),
                            size: size, depth: depth, kind: kind)
            }
            switch type {
            case FileType.directory:
                if let rule = rules.rule(excluding: childPath, name: name, isDirectory: true) {
                    if inventory {
                        var excluded = ExcludedPath(path: childPath.description, rule: rule, directory: true)
                        measure(directoryFd, name, into: &excluded)
                        tree.excluded.append(excluded)
                    }
                    continue
                }
                record(.directory)
                let child: FileDescriptor
                do { child = try FileDescriptor.open(name, in: directoryFd, O_RDONLY | O_DIRECTORY, path: "\(home)/\(childPath)") } catch {
                    tree.miss("\(home)/\(childPath)", .unreadable, error.reason, "\(home)/\(childPath): cannot open directory: \(error.reason)")
                    continue
                }
                walk(directoryFd: child.rawValue, relativePath: childPath, depth: depth + 1, home: home,
                     into: &tree, seenInodes: &seenInodes)
            case FileType.regular:
                scanRegularFile(name, status: status, in: directoryFd, childPath: childPath, depth: depth, home: home,
                                sidecarBases: sidecarBases, databases: &databases, into: &tree, seenInodes: &seenInodes)
            case FileType.symlink:
                if let rule = rules.rule(excluding: childPath, name: name, isDirectory: false) {
                    if inventory { tree.excluded.append(ExcludedPath(path: childPath.description, rule: rule, directory: false, files: 1)) }
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

    /// A regular file: excluded, a database's sidecar, a database (probed when it has a
    /// sidecar, or for the inventory), or a plain file.
    private func scanRegularFile(_ name: PathBytes, status: stat, in directoryFd: Int32, childPath: PathBytes, depth: Int,
                                 home: String, sidecarBases: Set<PathBytes>, databases: inout Set<PathBytes>,
                                 into tree: inout ScannedTree, seenInodes: inout Set<InodeKey>) {
        func record(_ kind: ScannedEntry.Kind) {
            tree.append(name: name, device: UInt64(status.st_dev), inode: UInt64(status.st_ino),
                        size: Int64(status.st_size), depth: depth, kind: kind)
        }
        if let rule = rules.rule(excluding: childPath, name: name, isDirectory: false) {
            if inventory {
                tree.excluded.append(ExcludedPath(path: childPath.description, rule: rule, directory: false,
                                                  files: 1, bytes: Int64(status.st_size)))
            }
            return
        }
        if let base = SQLiteSidecar.base(of: name), databases.contains(base) {
            record(.databaseSidecar)
            tree.sidecarCount += 1
            return
        }
        if sidecarBases.contains(name) || inventory {
            switch probe(directoryFd, name, status) {
            case .database:
                if sidecarBases.contains(name) { databases.insert(name) }
                if inventory {
                    tree.databases.append(PlannedDatabase(path: childPath.description, sizeBytes: Int64(status.st_size),
                                                          snapshot: status.st_uid != 0))
                }
            case .unreadable(let reason) where inventory:
                tree.miss("\(home)/\(childPath)", .unreadable, reason, "\(home)/\(childPath): \(reason); would be skipped")
                return
            default:
                break
            }
        }
        record(.regular)
        // Hardlinked inodes are counted once, as they are stored once.
        if status.st_nlink <= 1 || seenInodes.insert(InodeKey(status)).inserted {
            tree.regularBytes += Int64(status.st_size)
        }
    }

    private enum Probe { case database, notDatabase, unreadable(String) }

    /// Opens the regular file `name` (as `status` saw it) as the backup will, and looks for SQLite's header.
    private func probe(_ directoryFd: Int32, _ name: PathBytes, _ status: stat) -> Probe {
        let file: FileDescriptor
        do {
            do { file = try FileDescriptor.open(name, in: directoryFd, O_RDONLY | O_NONBLOCK | LinuxCalls.noAccessTime, path: "") }
            catch where error.code == EPERM { file = try FileDescriptor.open(name, in: directoryFd, O_RDONLY | O_NONBLOCK, path: "") }
        } catch {
            // Gone since the listing: the scan's own rules (and the backup's check) deal with that.
            return error.code == ENOENT ? .notDatabase : .unreadable(error.reason)
        }
        let fd = file.rawValue
        var now = stat()
        guard fstat(fd, &now) == 0, now.st_dev == status.st_dev, now.st_ino == status.st_ino else { return .notDatabase }
        return SQLiteSnapshot.header(of: fd, size: Int64(now.st_size)) != .notDatabase ? .database : .notDatabase
    }

    /// Counts what lies below the excluded directory `name`, through `O_NOFOLLOW` descriptors.
    private func measure(_ parentFd: Int32, _ name: PathBytes, into excluded: inout ExcludedPath) {
        guard let directory = try? FileDescriptor.open(name, in: parentFd, O_RDONLY | O_DIRECTORY, path: ""),
              let names = try? directoryEntryNames(directory.rawValue) else { return }
        let fd = directory.rawValue
        for child in names {
            var status = stat()
            guard child.withCString({ fstatat(fd, $0, &status, AT_SYMLINK_NOFOLLOW) }) == 0 else { continue }
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

    /// `X` for a name `X-wal`, `X-shm` or `X-journal` (as bytes), else nil.
    static func base(of name: PathBytes) -> PathBytes? {
        for suffix in suffixes.map({ PathBytes($0) }) where name.hasSuffix(suffix) && name.count > suffix.count {
            return PathBytes(bytes: name.bytes.dropLast(suffix.count))
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

