import Foundation

/// The manifest of an archive and how it was found.
struct LocatedManifest {
    var manifest: Manifest
    var format: ArchiveFormat
    var digest: String
    var compression: String
}

/// Reads an archive's manifest: entry 0 for clmnt archives (so planning costs
/// the archive's first blocks only); anywhere in the stream for the bash tool's.
enum ManifestLocator {
    static let sizeLimit = 16 << 20

    static func locate(archive: String) throws(RestoreError) -> LocatedManifest {
        let reader: ArchiveReader
        do { reader = try ArchiveReader(path: archive, blockSize: 64 << 10) } catch { throw .archive(error) }
        var index = 0
        do {
            while let entry = try reader.next() {
                defer { index += 1 }
                let isManifest = entry.path == ArchiveLayout.manifestPath || entry.path == "./" + ArchiveLayout.manifestPath
                guard isManifest else {
                    if index == 0, entry.path.hasPrefix("/") {
                        throw RestoreError.hostileEntry(path: entry.path, reason: "is an absolute path")
                    }
                    continue
                }
                guard entry.kind == .regular else {
                    throw RestoreError.badManifest(archive: archive, reason: "manifest.json is not a regular file")
                }
                let data = try reader.readAll(limit: sizeLimit)
                let manifest: Manifest
                do { manifest = try Manifest.decode(data) } catch {
                    throw RestoreError.badManifest(archive: archive, reason: describeDecodingError(error))
                }
                let format: ArchiveFormat = manifest.isClmntArchive ? .clmnt : .bash
                if format == .clmnt && (index != 0 || entry.path != ArchiveLayout.manifestPath) {
                    throw RestoreError.contentMismatch(archive: archive, reason: "a clmnt manifest.json must be the first entry")
                }
                let hasher = SHA256Hasher()
                data.withUnsafeBytes { hasher.update($0) }
                return LocatedManifest(manifest: manifest, format: format, digest: hasher.finalizeHex(),
                                       compression: reader.compressionName)
            }
        } catch let error as RestoreError {
            throw error
        } catch let error as ArchiveError {
            if index == 0 { throw .archive(error) }
            throw .contentMismatch(archive: archive, reason: error.message)
        } catch {
            throw .badManifest(archive: archive, reason: "\(error)")
        }
        throw .noManifest(archive: archive)
    }

    private static func describeDecodingError(_ error: any Error) -> String {
        switch error as? DecodingError {
        case .keyNotFound(let key, _)?: return "missing \"\(key.stringValue)\""
        case .typeMismatch(_, let context)?, .valueNotFound(_, let context)?:
            return "wrong type at \"\(context.codingPath.map(\.stringValue).joined(separator: "."))\""
        case .dataCorrupted?: return "not valid JSON"
        default: return "\(error)"
        }
    }
}

/// Works out what a restore would do, from the manifest and the state of
/// this host, without changing anything.
public struct RestorePlanner {
    public let options: RestoreOptions
    /// Ports are handed out from here in steps of `portStep` (19001, 19021, ...).
    public static let firstPort = 19001
    public static let portStep = 20

    public init(options: RestoreOptions) { self.options = options }

    public func plan() throws(RestoreError) -> RestorePlan {
        try planAndManifest().plan
    }

    func planAndManifest() throws(RestoreError) -> (plan: RestorePlan, manifest: LocatedManifest) {
        let located = try ManifestLocator.locate(archive: absolutePath(options.archive))
        return (try plan(located: located), located)
    }

    func plan(located: LocatedManifest) throws(RestoreError) -> RestorePlan {
        let archive = absolutePath(options.archive)
        let manifest = located.manifest
        let names = manifest.molts.map(\.name)
        for name in names {
            guard MoltName.isValid(name), !ArchiveLayout.reservedNames.contains(name) else { throw .invalidName(name) }
        }
        if Set(names).count != names.count {
            throw .badManifest(archive: archive, reason: "a molt is listed twice")
        }
        if let selection = options.selection {
            for name in selection where !MoltName.isValid(name) { throw .invalidName(name) }
            let unknown = selection.filter { !names.contains($0) }
            if !unknown.isEmpty { throw .unknownMolts(names: unknown, inArchive: names) }
        }
        let selected = manifest.molts.filter { options.selection?.contains($0.name) ?? true }

        let baseDir = absolutePath(options.baseDir)
        var baseStatus = stat()
        let baseDirExists = stat(baseDir, &baseStatus) == 0
        if baseDirExists && (baseStatus.st_mode & S_IFMT) != S_IFDIR {
            throw .baseDir(path: baseDir, reason: "is not a directory")
        }
        var existingMolts: [Molt] = []
        var refusals: [String] = []
        if baseDirExists {
            do { existingMolts = try Fleet.discover(baseDir: baseDir).molts } catch {
                throw .baseDir(path: baseDir, reason: "\(error)")
            }
            do { try MoltRegistry.check(baseDir: baseDir) } catch { refusals.append("\(error)") }
        }

        let sourceBaseDir = manifest.baseDir ?? commonParent(of: manifest.molts.compactMap(\.home))
        let minimumUID = UserAccounts.minimumRegularUID()
        let selectedNames = Set(selected.map(\.name))
        // Ports held by the molts here that stay (a molt restored over itself
        // does not conflict with its own old tree).
        var usedPorts: [Int: String] = [:]
        for molt in existingMolts {
            guard let port = molt.port, !selectedNames.contains(molt.name) else { continue }
            usedPorts[port] = usedPorts[port] ?? molt.name
        }
        // Restored molts keep their ports where they can; the others get ports none of these use.
        var conflicts: [String: String] = [:]
        for record in selected {
            guard let port = record.port else { continue }
            if let holder = usedPorts[port] { conflicts[record.name] = holder } else { usedPorts[port] = record.name }
        }

        var molts: [MoltPlan] = []
        for record in selected {
            let target = baseDir + "/" + record.name
            var targetStatus = stat()
            let exists = lstat(target, &targetStatus) == 0
            let action: MoltPlan.Action = !exists ? .create : (options.force ? .overwrite : .refuse)
            if action == .refuse {
                refusals.append("\(record.name) already exists at \(target) (use --force to replace it)")
            }

            var userAction: MoltPlan.UserAction
            var uid: UInt32?
            if let account = UserAccounts.user(named: record.name) {
                uid = account.uid
                userAction = .exists
                if account.uid < minimumUID {
                    userAction = .systemAccount
                    refusals.append("\(record.name) is a system account here (uid \(account.uid)); a molt cannot use it")
                }
            } else {
                userAction = options.skipUsers ? .missing : .create
            }

            var newPort: Int?
            let conflict = conflicts[record.name]
            if let wanted = record.port, let holder = conflict {
                if options.reassignPorts {
                    let port = nextFreePort(used: usedPorts)
                    usedPorts[port] = record.name
                    newPort = port
                } else {
                    refusals.append("port \(wanted) of \(record.name) is used by \(holder) here (use --reassign-ports)")
                }
            }

            let sourceHome = record.home ?? sourceBaseDir.map { $0 + "/" + record.name }
            molts.append(MoltPlan(name: record.name, target: target, sizeBytes: record.backupSizeBytes,
                                  fileCount: record.fileCount, action: action, user: userAction, uid: uid,
                                  port: record.port, newPort: newPort, portConflict: conflict, sourceHome: sourceHome))
        }

        var notes: [String] = []
        // The backup's completeness, from the mark on the archive file (its report is at the far end).
        if located.format == .clmnt, let mark = BackupStatusMark.read(path: archive) {
            for index in molts.indices { molts[index].missedFiles = mark.molts[molts[index].name] ?? 0 }
            let incomplete = molts.filter { ($0.missedFiles ?? 0) > 0 }
            if !incomplete.isEmpty {
                notes.append("the backup missed files of \(incomplete.map(\.name).joined(separator: ", ")) (they vanished, could not be read or changed while read): those molts are incomplete; `clmnt fleet verify` names the files")
            }
        }
        if located.format == .bash {
            notes.append("this archive was made by the bash tool: it carries no checksums, so only libarchive's own checks guard its content; ownership comes from each molt's name")
        }
        if !baseDirExists { notes.append("base dir \(baseDir) does not exist and will be created") }
        if let sourceBaseDir, sourceBaseDir != baseDir {
            notes.append("new base dir: home paths in .molt-info and openclaw.json will be rewritten from \(sourceBaseDir) to \(baseDir)")
        }
        for molt in molts where molt.user == .missing {
            notes.append("user \(molt.name) does not exist and --skip-users is set: its files will be owned by the invoking user (\(invokingUserName()))")
        }
        return RestorePlan(
            archive: archive, format: located.format, hostname: manifest.hostname, timestamp: manifest.timestamp,
            compression: manifest.compression ?? located.compression, sourceBaseDir: sourceBaseDir,
            baseDir: baseDir, baseDirExists: baseDirExists, molts: molts,
            notSelected: names.filter { !selectedNames.contains($0) }, notes: notes, refusals: refusals,
            manifestDigest: located.digest)
    }

    /// The first port of 19001, 19021, ... that no molt uses.
    func nextFreePort(used: [Int: String]) -> Int {
        var port = RestorePlanner.firstPort
        while used[port] != nil { port += RestorePlanner.portStep }
        return port
    }

    private func commonParent(of homes: [String]) -> String? {
        let parents = Set(homes.map { ($0 as NSString).deletingLastPathComponent })
        return parents.count == 1 ? parents.first : nil
    }
}

/// The name of the user running this process.
func invokingUserName() -> String {
    UserAccounts.user(uid: geteuid())?.name ?? "uid \(geteuid())"
}
