import Foundation

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
        let archive = ArchiveInput.resolvedName(options.archive)
        let located: LocatedManifest
        do { located = try ArchiveIntegrity.locateManifest(archive: archive) } catch {
            throw RestoreError(error, archive: archive)
        }
        return (try plan(located: located), located)
    }

    func plan(located: LocatedManifest) throws(RestoreError) -> RestorePlan {
        let archive = ArchiveInput.resolvedName(options.archive)
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
        if let reason = SystemDirectories.refusal(baseDir) { throw .baseDir(path: baseDir, reason: reason) }
        var baseStatus = stat()
        let baseDirExists = stat(baseDir, &baseStatus) == 0
        if baseDirExists && (baseStatus.st_mode & S_IFMT) != S_IFDIR {
            throw .baseDir(path: baseDir, reason: "is not a directory")
        }
        var existingMolts: [Molt] = []
        var refusals: [String] = []
        var notes: [String] = []
        if baseDirExists {
            do { existingMolts = try Fleet.discover(baseDir: baseDir).molts } catch {
                throw .baseDir(path: baseDir, reason: "\(error)")
            }
            do { try MoltRegistry.check(baseDir: baseDir) } catch { refusals.append("\(error)") }
        }

        let sourceBaseDir = manifest.baseDir ?? commonParent(of: manifest.molts.compactMap(\.home))
        let regularUIDs = UserAccounts.regularUIDs()
        let registeredMolts = baseDirExists ? MoltAccountEvidence.trustedRegistryNames(baseDir: baseDir) : []
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
            var action: MoltPlan.Action = !exists ? .create : (options.force ? .overwrite : .refuse)
            if action == .refuse {
                refusals.append("\(record.name) already exists at \(target) (use --force to replace it)")
            } else if action == .overwrite, let reason = SystemDirectories.notThisMolt(baseDir: baseDir, name: record.name) {
                // --force replaces a molt, never whatever else happens to carry its name.
                action = .refuse
                refusals.append("\(target) \(reason): --force replaces only a molt of that name")
            }

            var userAction: MoltPlan.UserAction
            var uid: UInt32?
            let sourceHome = record.home ?? sourceBaseDir.map { $0 + "/" + record.name }
            if let account = UserAccounts.user(named: record.name) {
                uid = account.uid
                userAction = .exists
                if account.uid < regularUIDs.lowerBound {
                    userAction = .systemAccount
                    refusals.append("\(record.name) is a system account here (uid \(account.uid)); a molt cannot use it")
                } else if !regularUIDs.contains(account.uid) {
                    userAction = .systemAccount
                    refusals.append("\(record.name) is an account outside the regular uids here (uid \(account.uid), regular \(regularUIDs.lowerBound)-\(regularUIDs.upperBound)); a molt cannot use it")
                } else if MoltAccountEvidence.evidence(account: account, name: record.name, target: target,
                                                       registered: registeredMolts) == nil {
                    // Nothing on this host says it is the molt's (the archive's `home` is no evidence: every
                    // home is in /etc/passwd): the archive's files (setuid ones too) must not become its.
                    if options.adoptExistingUsers {
                        userAction = .adopted
                    } else {
                        userAction = .foreign
                        refusals.append("user \(record.name) exists here with home \(account.home), which holds no .molt-info of \(record.name), and \(baseDir)/molts.json does not list it: nothing on this host shows it is this molt's user (--adopt-existing-users reuses it)")
                    }
                }
            } else {
                userAction = options.skipUsers ? .missing : .create
            }
            var groups: [String] = []
            if userAction == .create {
                for group in record.groups ?? [] where group != record.name {
                    if UserAccounts.privilegedGroups.contains(group) {
                        notes.append("\(record.name): group \(group) of the source host is privileged and is not given")
                    } else if UserAccounts.groupID(named: group) == nil {
                        notes.append("\(record.name): group \(group) of the source host does not exist here")
                    } else {
                        groups.append(group)
                    }
                }
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

            molts.append(MoltPlan(name: record.name, target: target, sizeBytes: record.backupSizeBytes,
                                  fileCount: record.fileCount, action: action, user: userAction, uid: uid,
                                  port: record.port, newPort: newPort, portConflict: conflict, sourceHome: sourceHome,
                                  groups: groups))
        }

        // Everything is staged beside the old trees before a swap: it must fit next to them.
        let need = FreeSpace.needed(bytes: selected.reduce(0) { $0 + $1.backupSizeBytes },
                                    entries: selected.reduce(0) { $0 + ($1.entryCount ?? $1.fileCount ?? 1) })
        if let free = FreeSpace.of(path: baseDir) {
            if free.bytes < need.bytes {
                refusals.append("not enough space for \(baseDir): the selected molts need about \(need.bytes) bytes, \(free.bytes) are free")
            } else if let inodes = free.inodes, inodes < need.inodes {
                refusals.append("not enough inodes for \(baseDir): the selected molts need \(need.inodes), \(inodes) are free")
            }
        }

        // The backup's completeness, from the mark on the archive file (its report is at the far end).
        if located.format == .clmnt, !ArchiveInput.isRegistered(archive), let mark = BackupStatusMark.read(path: archive) {
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
