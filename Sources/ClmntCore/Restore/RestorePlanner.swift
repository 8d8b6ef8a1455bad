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

    /// The plan in stages: which molts, the base dir as it is, then per molt its target, user,
    /// groups and port; then space and what the archive says of its own completeness.
    func plan(located: LocatedManifest) throws(RestoreError) -> RestorePlan {
        let archive = ArchiveInput.resolvedName(options.archive)
        let manifest = located.manifest
        let names = manifest.molts.map(\.name)
        let selected = try selectedRecords(manifest, archive: archive)
        let baseDir = absolutePath(options.baseDir)
        var draft = try PlanDraft(baseDir: baseDir)
        draft.sourceBaseDir = manifest.baseDir ?? commonParent(of: manifest.molts.compactMap(\.home))
        let selectedNames = Set(selected.map(\.name))
        draft.reservePorts(keeping: selectedNames, restoring: selected)
        var molts = selected.map { moltPlan($0, draft: &draft) }
        draft.checkSpace(for: selected)
        noteCompleteness(of: &molts, located: located, archive: archive, draft: &draft)
        draft.addGeneralNotes(molts: molts, format: located.format)
        return RestorePlan(
            archive: archive, format: located.format, hostname: manifest.hostname, timestamp: manifest.timestamp,
            compression: manifest.compression ?? located.compression, sourceBaseDir: draft.sourceBaseDir,
            baseDir: baseDir, baseDirExists: draft.baseDirExists, molts: molts,
            notSelected: names.filter { !selectedNames.contains($0) }, notes: draft.notes, refusals: draft.refusals,
            manifestDigest: located.digest)
    }

    /// The manifest's molts that `--select` names (all by default); every name checked.
    private func selectedRecords(_ manifest: Manifest, archive: String) throws(RestoreError) -> [Manifest.MoltRecord] {
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
        return manifest.molts.filter { options.selection?.contains($0.name) ?? true }
    }

    private func moltPlan(_ record: Manifest.MoltRecord, draft: inout PlanDraft) -> MoltPlan {
        let target = draft.baseDir + "/" + record.name
        let action = targetAction(record.name, target: target, draft: &draft)
        let (userAction, uid) = userPlan(record.name, target: target, draft: &draft)
        let groups = userAction == .create ? groupsToGive(record, draft: &draft) : []
        let conflict = draft.conflicts[record.name]
        var newPort: Int?
        if let wanted = record.port, let holder = conflict {
            if options.reassignPorts {
                let port = nextFreePort(used: draft.usedPorts)
                draft.usedPorts[port] = record.name
                newPort = port
            } else {
                draft.refusals.append("port \(wanted) of \(record.name) is used by \(holder) here (use --reassign-ports)")
            }
        }
        return MoltPlan(name: record.name, target: target, sizeBytes: record.backupSizeBytes,
                        fileCount: record.fileCount, action: action, user: userAction, uid: uid,
                        port: record.port, newPort: newPort, portConflict: conflict,
                        sourceHome: record.home ?? draft.sourceBaseDir.map { $0 + "/" + record.name }, groups: groups)
    }

    /// Create, overwrite (`--force`, and only a molt of that name), or refuse.
    private func targetAction(_ name: String, target: String, draft: inout PlanDraft) -> MoltPlan.Action {
        var targetStatus = stat()
        let exists = lstat(target, &targetStatus) == 0
        let action: MoltPlan.Action = !exists ? .create : (options.force ? .overwrite : .refuse)
        if action == .refuse {
            draft.refusals.append("\(name) already exists at \(target) (use --force to replace it)")
        } else if action == .overwrite, let reason = SystemDirectories.notThisMolt(baseDir: draft.baseDir, name: name) {
            // --force replaces a molt, never whatever else happens to carry its name.
            draft.refusals.append("\(target) \(reason): --force replaces only a molt of that name")
            return .refuse
        }
        return action
    }

    /// The molt's user here: to create, missing (`--skip-users`), or an existing account that
    /// must be a regular one this host shows is the molt's (or `--adopt-existing-users`).
    private func userPlan(_ name: String, target: String, draft: inout PlanDraft) -> (MoltPlan.UserAction, UInt32?) {
        guard let account = UserAccounts.user(named: name) else { return (options.skipUsers ? .missing : .create, nil) }
        let regularUIDs = draft.regularUIDs
        if account.uid < regularUIDs.lowerBound {
            draft.refusals.append("\(name) is a system account here (uid \(account.uid)); a molt cannot use it")
            return (.systemAccount, account.uid)
        }
        if !regularUIDs.contains(account.uid) {
            draft.refusals.append("\(name) is an account outside the regular uids here (uid \(account.uid), regular \(regularUIDs.lowerBound)-\(regularUIDs.upperBound)); a molt cannot use it")
            return (.systemAccount, account.uid)
        }
        guard MoltAccountEvidence.evidence(account: account, name: name, target: target,
                                           registered: draft.registeredMolts) == nil else { return (.exists, account.uid) }
        // Nothing on this host says it is the molt's (the archive's `home` is no evidence: every
        // home is in /etc/passwd): the archive's files (setuid ones too) must not become its.
        if options.adoptExistingUsers { return (.adopted, account.uid) }
        draft.refusals.append("user \(name) exists here with home \(account.home), which holds no .molt-info of \(name), and \(draft.baseDir)/molts.json does not list it: nothing on this host shows it is this molt's user (--adopt-existing-users reuses it)")
        return (.foreign, account.uid)
    }

    /// The source host's supplementary groups a created user gets: existing, unprivileged ones.
    private func groupsToGive(_ record: Manifest.MoltRecord, draft: inout PlanDraft) -> [String] {
        var groups: [String] = []
        for group in record.groups ?? [] where group != record.name {
            if UserAccounts.privilegedGroups.contains(group) {
                draft.notes.append("\(record.name): group \(group) of the source host is privileged and is not given")
            } else if UserAccounts.groupID(named: group) == nil {
                draft.notes.append("\(record.name): group \(group) of the source host does not exist here")
            } else {
                groups.append(group)
            }
        }
        return groups
    }

    /// The backup's completeness, from the mark on the archive file (its report is at the far end).
    private func noteCompleteness(of molts: inout [MoltPlan], located: LocatedManifest, archive: String, draft: inout PlanDraft) {
        guard located.format == .clmnt, !ArchiveInput.isRegistered(archive), let mark = BackupStatusMark.read(path: archive) else { return }
        for index in molts.indices { molts[index].missedFiles = mark.molts[molts[index].name] ?? 0 }
        let incomplete = molts.filter { ($0.missedFiles ?? 0) > 0 }
        if !incomplete.isEmpty {
            draft.notes.append("the backup missed files of \(incomplete.map(\.name).joined(separator: ", ")) (they vanished, could not be read or changed while read): those molts are incomplete; `clmnt fleet verify` names the files")
        }
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
func invokingUserName() -> String { UserAccounts.invokingUserName() }

/// What a plan learns of this host as it goes: the base dir, its molts and ports, and the
/// refusals and notes gathered so far.
private struct PlanDraft {
    let baseDir: String
    let baseDirExists: Bool
    let existingMolts: [Molt]
    let regularUIDs = UserAccounts.regularUIDs()
    let registeredMolts: Set<String>
    var sourceBaseDir: String?
    var refusals: [String] = []
    var notes: [String] = []
    /// Port → the molt holding it (staying molts, then restored ones keeping theirs).
    var usedPorts: [Int: String] = [:]
    /// Restored molt → the molt here already holding its port.
    var conflicts: [String: String] = [:]

    init(baseDir: String) throws(RestoreError) {
        self.baseDir = baseDir
        if let reason = SystemDirectories.refusal(baseDir) { throw .baseDir(path: baseDir, reason: reason) }
        var baseStatus = stat()
        baseDirExists = stat(baseDir, &baseStatus) == 0
        if baseDirExists && (baseStatus.st_mode & S_IFMT) != S_IFDIR {
            throw .baseDir(path: baseDir, reason: "is not a directory")
        }
        var molts: [Molt] = []
        if baseDirExists {
            do { molts = try Fleet.discover(baseDir: baseDir).molts } catch {
                throw .baseDir(path: baseDir, reason: "\(error)")
            }
            do { try MoltRegistry.check(baseDir: baseDir) } catch { refusals.append("\(error)") }
        }
        existingMolts = molts
        registeredMolts = baseDirExists ? MoltAccountEvidence.trustedRegistryNames(baseDir: baseDir) : []
    }

    /// Ports held by the molts here that stay (a molt restored over itself does not conflict
    /// with its own old tree); restored molts keep theirs where they can.
    mutating func reservePorts(keeping selectedNames: Set<String>, restoring selected: [Manifest.MoltRecord]) {
        for molt in existingMolts {
            guard let port = molt.port, !selectedNames.contains(molt.name) else { continue }
            usedPorts[port] = usedPorts[port] ?? molt.name
        }
        for record in selected {
            guard let port = record.port else { continue }
            if let holder = usedPorts[port] { conflicts[record.name] = holder } else { usedPorts[port] = record.name }
        }
    }

    /// Everything is staged beside the old trees before a swap: it must fit next to them.
    mutating func checkSpace(for selected: [Manifest.MoltRecord]) {
        let need = FreeSpace.needed(bytes: selected.reduce(0) { $0 + $1.backupSizeBytes },
                                    entries: selected.reduce(0) { $0 + ($1.entryCount ?? $1.fileCount ?? 1) })
        guard let free = FreeSpace.of(path: baseDir) else { return }
        if free.bytes < need.bytes {
            refusals.append("not enough space for \(baseDir): the selected molts need about \(need.bytes) bytes, \(free.bytes) are free")
        } else if let inodes = free.inodes, inodes < need.inodes {
            refusals.append("not enough inodes for \(baseDir): the selected molts need \(need.inodes), \(inodes) are free")
        }
    }

    mutating func addGeneralNotes(molts: [MoltPlan], format: ArchiveFormat) {
        if format == .bash {
            notes.append("this archive was made by the bash tool: it carries no checksums, so only libarchive's own checks guard its content; ownership comes from each molt's name")
        }
        if !baseDirExists { notes.append("base dir \(baseDir) does not exist and will be created") }
        if let sourceBaseDir, sourceBaseDir != baseDir {
            notes.append("new base dir: home paths in .molt-info and openclaw.json will be rewritten from \(sourceBaseDir) to \(baseDir)")
        }
        for molt in molts where molt.user == .missing {
            notes.append("user \(molt.name) does not exist and --skip-users is set: its files will be owned by the invoking user (\(invokingUserName()))")
        }
    }
}
