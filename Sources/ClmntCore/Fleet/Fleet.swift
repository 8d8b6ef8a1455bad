import Foundation

/// One molt as discovered on disk.
public struct Molt: Sendable, Equatable {
    public let name: String
    /// Absolute path of the molt's home, `<base-dir>/<name>`.
    public let home: String
    public let info: MoltInfo
    /// From `.molt-info` `MOLT_PORT`, else `.openclaw/openclaw.json` `gateway.port`.
    public let port: Int?
    /// `CREATED` from `.molt-info` (ISO-8601), if any.
    public let created: String?

    public var infoPath: String { home + "/.molt-info" }
    public var openClawConfigPath: String { home + "/.openclaw/openclaw.json" }
    public var stateDir: String { home + "/.molt-state" }

    /// Reads `.openclaw/openclaw.json` (JSON5); nil when missing, not a regular file or unparsable.
    public func openClawConfig() -> JSONValue? {
        guard let data = try? Molt.readFile(home: home, ".openclaw/openclaw.json") else { return nil }
        return try? JSONValue.parse(json5: data)
    }

    /// The regular file at `relativePath` below `home`, read as root may read
    /// inside a home: every component opened with O_NOFOLLOW from the home's
    /// descriptor (a symlink anywhere is refused), non-blocking (a FIFO cannot
    /// hang the caller), at most `limit` bytes. nil when it does not exist.
    public static func readFile(home: String, _ relativePath: String, limit: Int = 1 << 20) throws(SystemError) -> Data? {
        var directory = try FileDescriptor.openDirectory(home)
        var components = relativePath.split(separator: "/").map(String.init)
        let name = components.removeLast()
        for component in components {
            guard let next = try directory.openIfPresent(component, O_RDONLY | O_DIRECTORY) else { return nil }
            directory = next
        }
        return try SafeFileSystem.readFile(at: directory.rawValue, name, displayPath: directory.path + "/" + name, limit: limit)?.data
    }

    /// The files of `directory` whose names pass `accept`, where `directory` is one a molt
    /// user keeps outside its home (such as `/tmp/openclaw-<uid>`), read as root must: the
    /// directory is opened `O_NOFOLLOW` and used only when `owner` owns it (another user
    /// could plant one in `/tmp` for it), each file through its descriptor (`O_NOFOLLOW`,
    /// non-blocking, regular files only, at most `limit` bytes). Empty when it does not
    /// exist; a symlink or someone else's directory is refused.
    public static func readOwnedFiles(in directory: String, owner: uid_t, limit: Int,
                                      accept: (String) -> Bool) throws(SystemError) -> [(path: String, data: Result<Data, SystemError>)] {
        let opened: FileDescriptor
        do { opened = try FileDescriptor.openDirectory(directory) } catch {
            if error.code == ENOENT { return [] }
            if error.code == ELOOP || error.code == ENOTDIR { throw SystemError(path: directory, refusal: .notDirectory) }
            throw error
        }
        let status = try opened.status()
        guard status.st_uid == owner else { throw SystemError(path: directory, refusal: .ownedBy(uid: status.st_uid, expected: owner)) }
        let names = try directoryNames(opened.rawValue)
        var files: [(path: String, data: Result<Data, SystemError>)] = []
        for name in names where accept(name) {
            let path = directory + "/" + name
            do throws(SystemError) {
                if let file = try SafeFileSystem.readFile(at: opened.rawValue, name, displayPath: path, limit: limit) { files.append((path, .success(file.data))) }
            } catch {
                files.append((path, .failure(error)))
            }
        }
        return files
    }
}

/// The fleet: every direct subdirectory of the base dir that holds `.molt-info`.
public struct Fleet: Sendable {
    public let baseDir: String
    /// Sorted by name.
    public let molts: [Molt]

    public var registryPath: String { baseDir + "/molts.json" }
    public var names: [String] { molts.map(\.name) }

    /// Discovers the molts under `baseDir` (made absolute). Directories whose
    /// names are not valid molt names are ignored: they cannot be molt users.
    /// With a `cache` (a long-running reader's), a molt whose `.molt-info` and `openclaw.json` did
    /// not change is not read again, and one that changes them all the time is re-read at most
    /// once per the cache's interval.
    public static func discover(baseDir: String, cache: DiscoveryCache? = nil) throws(FleetError) -> Fleet {
        let base = absolutePath(baseDir)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: base, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw .baseDirMissing(path: base)
        }
        let children: [String]
        do { children = try directoryNames(atPath: base) } catch {
            throw .baseDirUnreadable(path: base, reason: error.reason)
        }
        var molts: [Molt] = []
        var homes: Set<String> = []
        let now = ProcessInfo.processInfo.systemUptime
        for child in children where MoltName.isValid(child) {
            let home = base + "/" + child
            var st = stat()
            // lstat: a symlinked "molt" pointing elsewhere is not part of this fleet.
            guard lstat(home, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { continue }
            homes.insert(home)
            let load = { () -> Molt? in
                // Read without following a symlink or opening a FIFO; a .molt-info that is present
                // but not a readable regular file still makes a molt (with no info): its home is backed up.
                let data: Data?
                do { data = try Molt.readFile(home: home, ".molt-info") } catch {
                    data = SafeFileSystem.status(at: AT_FDCWD, home + "/.molt-info") == nil ? nil : Data()
                }
                guard let data else { return nil }
                return loadMolt(name: child, home: home, infoText: String(decoding: data, as: UTF8.self))
            }
            if let molt = cache.map({ $0.molt(home: home, now: now, load: load) }) ?? load() { molts.append(molt) }
        }
        cache?.keep(only: homes)
        return Fleet(baseDir: base, molts: molts)
    }

    /// Like `discover`, but throws `.noMolts` on an empty fleet.
    public static func discoverNonEmpty(baseDir: String) throws(FleetError) -> Fleet {
        let fleet = try discover(baseDir: baseDir)
        guard !fleet.molts.isEmpty else { throw .noMolts(baseDir: fleet.baseDir) }
        return fleet
    }

    public init(baseDir: String, molts: [Molt]) {
        self.baseDir = baseDir
        self.molts = molts
    }

    /// The molt called `name`, or `.unknownMolt` listing the fleet.
    public func molt(named name: String) throws(FleetError) -> Molt {
        try MoltName.validate(name)
        guard let molt = molts.first(where: { $0.name == name }) else {
            throw .unknownMolt(name: name, known: names)
        }
        return molt
    }

    /// The molts named in `selection` (all when nil), in fleet order.
    public func select(_ selection: [String]?) throws(FleetError) -> [Molt] {
        guard let selection else { return molts }
        for name in selection { _ = try molt(named: name) }
        return molts.filter { selection.contains($0.name) }
    }

    static func loadMolt(name: String, home: String, infoText: String) -> Molt {
        let info = MoltInfo(parsing: infoText)
        let partial = Molt(name: name, home: home, info: info, port: info.port, created: info.created)
        if partial.port != nil { return partial }
        let configPort = partial.openClawConfig()?[path: "gateway.port"]?.intValue
        return Molt(name: name, home: home, info: info, port: configPort, created: info.created)
    }
}

/// `path` made absolute against the current directory, with `.` and `..`
/// folded lexically (symlinks are not resolved).
public func absolutePath(_ path: String) -> String {
    let joined = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    var parts: [Substring] = []
    for part in joined.split(separator: "/") {
        if part == "." { continue }
        if part == ".." { _ = parts.popLast(); continue }
        parts.append(part)
    }
    return "/" + parts.joined(separator: "/")
}

/// The short reason of a Foundation file error ("No such file or directory").
public func describeFileError(_ error: any Error) -> String {
    let nsError = error as NSError
    if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
        return String(cString: strerror(Int32(underlying.code)))
    }
    return nsError.localizedDescription
}
