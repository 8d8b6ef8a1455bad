import Foundation

/// `clmnt fleet restore`: restores the selected molts of a fleet archive in
/// one pass, each into a root-only staging directory beside its target, and
/// swaps each in with a rename once the whole archive has been checked.
/// On any failure before the swaps nothing on the host has changed: staging
/// is removed and users created by this run are deleted again.
public struct FleetRestore {
    public let options: RestoreOptions
    /// Called now and then from the extracting thread.
    public var onProgress: (@Sendable (RestoreProgress) -> Void)?
    /// Set it (from a signal handler, say) to stop before the swaps.
    public var cancellation: RestoreCancellation?

    /// Prefix of the staging directories in the base dir; leftovers of a
    /// killed restore are removed by the next one.
    public static let stagingPrefix = ".clmnt-restore-"

    public init(options: RestoreOptions) { self.options = options }

    /// Completes what a restore killed during its swaps left in `baseDir` (see
    /// `RestoreRecovery`), under the exclusive base-dir lock; says what it did.
    public static func resume(baseDir: String, wait: Double = 0) throws(RestoreError) -> [String] {
        if let reason = SystemDirectories.refusal(baseDir) { throw .baseDir(path: baseDir, reason: reason) }
        let baseDirectory = open(baseDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard baseDirectory >= 0 else {
            if errno == ENOENT { return [] }  // nothing was ever restored there
            throw .baseDir(path: baseDir, reason: String(cString: strerror(errno)))
        }
        defer { close(baseDirectory) }
        let lock: BaseDirLock
        do { lock = try BaseDirLock(baseDirectory: baseDirectory, baseDir: baseDir, mode: .restore, wait: wait) } catch {
            throw .locked(error)
        }
        defer { withExtendedLifetime(lock) {} }
        // A journal naming a path instead of a molt is refused whole, before anything is swapped.
        for (container, journal) in RestoreRecovery.pendingJournals(baseDir: baseDir) {
            if let name = journal.firstInvalidName { throw .untrustedJournal(container: container, name: name) }
        }
        return RestoreRecovery.recover(baseDirectory: baseDirectory, baseDir: baseDir)
    }

    /// Interrupted restores waiting in `baseDir` to be completed (changes nothing: for the dry run).
    public static func pendingRecovery(baseDir: String) -> [String] {
        RestoreRecovery.pending(baseDir: baseDir)
    }

    /// The plan, from the manifest alone: what `--dry-run` shows.
    public func plan() throws(RestoreError) -> RestorePlan {
        try RestorePlanner(options: options).plan()
    }

    /// Restores. `confirmed` is the plan the user agreed to: if the host or
    /// the archive no longer matches it, nothing is done.
    public func run(confirmed: RestorePlan? = nil, now: Date = Date()) throws(RestoreError) -> RestoreSummary {
        let started = Date()
        let (plan, located) = try RestorePlanner(options: options).planAndManifest()
        if let confirmed, confirmed != plan { throw .planChanged(difference(confirmed, plan)) }
        guard plan.canRun else { throw .refused(plan.refusals) }
        let restoredAt = Timestamp.format(now)

        // The base dir, locked against a backup or a second restore (`BaseDirLock`).
        if !plan.baseDirExists {
            do {
                try FileManager.default.createDirectory(atPath: plan.baseDir, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o755])
            } catch { throw .baseDir(path: plan.baseDir, reason: describeFileError(error)) }
        }
        let baseDirectory = open(plan.baseDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard baseDirectory >= 0 else { throw .baseDir(path: plan.baseDir, reason: String(cString: strerror(errno))) }
        defer { close(baseDirectory) }
        let lock: BaseDirLock
        do { lock = try BaseDirLock(baseDirectory: baseDirectory, baseDir: plan.baseDir, mode: .restore, wait: options.wait) } catch {
            throw .locked(error)
        }
        defer { withExtendedLifetime(lock) {} }
        var warnings = RestoreRecovery.recover(baseDirectory: baseDirectory, baseDir: plan.baseDir)

        // A root-only container holds the staged homes, so no molt user can
        // reach into them before they are swapped in.
        var template = Array((plan.baseDir + "/" + FleetRestore.stagingPrefix + "XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw SafeFileSystem.failure(plan.baseDir) }
        let containerName = (String(cString: made) as NSString).lastPathComponent
        let containerDirectory = SafeFileSystem.openDirectory(at: baseDirectory, containerName)
        func discardStaging() {
            try? SafeFileSystem.removeTree(at: baseDirectory, containerName, displayPath: plan.baseDir + "/" + containerName)
        }
        guard containerDirectory >= 0 else {
            let error = SafeFileSystem.failure(plan.baseDir + "/" + containerName)
            discardStaging()
            throw error
        }
        defer { close(containerDirectory) }

        // Users next: their uids decide the owners of the extracted files. Each
        // one created is noted in the container first, so the next run can
        // delete it if this one is killed before it finishes.
        var createdUsers: [String] = []
        var accounts: [String: UserAccount] = [:]
        do throws(RestoreError) {
            for molt in plan.molts {
                if let account = UserAccounts.user(named: molt.name) {
                    accounts[molt.name] = account
                    if account.home != molt.target {
                        warnings.append("user \(molt.name) exists with home \(account.home); its molt is restored to \(molt.target)")
                    }
                } else if !options.skipUsers {
                    try CreatedUsers.note(createdUsers + [molt.name], container: containerDirectory,
                                          displayPath: plan.baseDir + "/" + containerName)
                    do {
                        accounts[molt.name] = try UserAccounts.create(name: molt.name, home: molt.target,
                                                                      supplementaryGroups: molt.groups)
                        createdUsers.append(molt.name)
                    } catch { throw .user(name: molt.name, reason: "\(error)") }
                }
            }
        } catch {
            discardStaging()
            rollBack(users: createdUsers)
            throw error
        }

        let extraction: ExtractionResult
        do throws(RestoreError) {
            var stages: [String: StageTarget] = [:]
            // Each staged home is created by libarchive from the home's own entry
            // (so its mode and times are set last, like any directory's).
            for molt in plan.molts {
                let record = located.manifest.molts.first { $0.name == molt.name }
                let account = accounts[molt.name]
                let owner = OwnerMap(
                    moltUID: account?.uid ?? geteuid(), moltGID: account?.gid ?? getegid(),
                    sourceUser: record?.owner?.user ?? molt.name, sourceGroup: record?.owner?.group,
                    sourceUID: record?.owner?.uid, sourceGID: record?.owner?.gid,
                    everythingToMolt: plan.format == .bash)
                stages[molt.name] = StageTarget(plan: molt, owner: owner)
            }
            var sourceHomes: [String: String] = [:]
            var sourceOwners: [String: (user: String, group: String)] = [:]
            for record in located.manifest.molts {
                sourceHomes[record.name] = record.home ?? plan.sourceBaseDir.map { $0 + "/" + record.name }
                let user = record.owner?.user ?? record.name
                sourceOwners[record.name] = (user: user, group: record.owner?.group ?? user)
            }
            let job = ExtractionJob(
                archive: plan.archive, located: located, baseDirectory: baseDirectory, baseDir: plan.baseDir,
                containerName: containerName, containerDirectory: containerDirectory, stages: stages,
                sourceHomes: sourceHomes, sourceOwners: sourceOwners, restoredAt: restoredAt,
                allowOutsideSymlinks: options.allowOutsideSymlinks,
                fallbackByteLimit: FreeSpace.of(baseDirectory).map { $0.bytes }, cancellation: cancellation,
                onProgress: onProgress)
            extraction = try StagedExtraction.isolated(job)
            if cancellation?.isCancelled == true { throw .interrupted }
        } catch {
            discardStaging()
            rollBack(users: createdUsers)
            throw error
        }
        warnings += extraction.warnings

        // The journal: a restore killed during the swaps is completed by the next one.
        var journal = RestoreJournal(archive: plan.archive, restoredAt: restoredAt, molts: [])
        for molt in plan.molts {
            guard let staged = SafeFileSystem.status(at: containerDirectory, molt.name) else { continue }
            let result = extraction.molts[molt.name] ?? ExtractionResult.Molt()
            journal.molts.append(RestoreJournal.Molt(name: molt.name, home: molt.target, port: result.port, created: result.created,
                                                     stagedDevice: UInt64(staged.st_dev), stagedInode: UInt64(staged.st_ino)))
        }
        do throws(RestoreError) {
            try journal.write(container: containerDirectory, displayPath: plan.baseDir + "/" + containerName + "/" + RestoreJournal.fileName)
        } catch {
            discardStaging()
            rollBack(users: createdUsers)
            throw error
        }

        // Swap each molt in; the old tree ends up in the container, removed below.
        var restored: [RestoreSummary.RestoredMolt] = []
        var records: [MoltRegistry.Record] = []
        var swapError: RestoreError?
        for (number, molt) in plan.molts.enumerated() {
            TestHook.stop(at: "before-swap-\(number + 1)")
            let stagedName = containerName + "/" + molt.name
            do {
                let replaced = try SafeFileSystem.swapIn(at: baseDirectory, staging: stagedName, target: molt.name,
                                                         displayPath: molt.target)
                if replaced { SafeFileSystem.lockOut(at: containerDirectory, molt.name) }
                let account = accounts[molt.name]
                let result = extraction.molts[molt.name] ?? ExtractionResult.Molt()
                restored.append(RestoreSummary.RestoredMolt(
                    name: molt.name, home: molt.target, user: account?.name ?? invokingUserName(),
                    uid: account?.uid ?? geteuid(), userCreated: createdUsers.contains(molt.name), replaced: replaced,
                    port: result.port, files: result.files, bytes: result.bytes, rewrites: result.rewrites))
                records.append(MoltRegistry.Record(name: molt.name, port: result.port, home: molt.target,
                                                   created: result.created))
            } catch {
                swapError = error
                break
            }
        }
        SafeFileSystem.syncDirectory(baseDirectory)
        if swapError == nil {
            // The old trees go first (they may be what fills the disk); the journal stays until molts.json is written.
            for molt in restored where molt.replaced {
                try? SafeFileSystem.removeTree(at: containerDirectory, molt.name, displayPath: plan.baseDir + "/" + containerName + "/" + molt.name)
            }
            TestHook.stop(at: "before-registry")
            do {
                try MoltRegistry.update(baseDir: plan.baseDir, baseDirectory: baseDirectory, records: records, now: restoredAt)
            } catch {
                throw .registryAfterSwaps(reason: "\(error)", replaced: restored.map(\.name), baseDir: plan.baseDir)
            }
        }
        do {
            try SafeFileSystem.removeTree(at: baseDirectory, containerName, displayPath: plan.baseDir + "/" + containerName)
        } catch {
            warnings.append("could not remove the old trees in \(plan.baseDir)/\(containerName): \(error)")
        }
        if let swapError {
            let done = restored.map(\.name)
            rollBack(users: createdUsers.filter { !done.contains($0) })
            if !records.isEmpty {
                try? MoltRegistry.update(baseDir: plan.baseDir, baseDirectory: baseDirectory, records: records, now: restoredAt)
            }
            throw .swapFailed(reason: "\(swapError)", restored: done)
        }

        for name in createdUsers {
            do { try UserAccounts.enableLinger(name: name) } catch {
                warnings.append("lingering not enabled for \(name): \(error)")
            }
        }
        return RestoreSummary(
            archive: plan.archive, baseDir: plan.baseDir, molts: restored,
            files: restored.reduce(0) { $0 + $1.files }, bytes: restored.reduce(0) { $0 + $1.bytes },
            seconds: Date().timeIntervalSince(started), warnings: warnings)
    }

    /// Deletes the users this run created (their files are gone with the staging).
    private func rollBack(users: [String]) {
        for name in users.reversed() { try? UserAccounts.delete(name: name) }
    }

    private func difference(_ old: RestorePlan, _ new: RestorePlan) -> String {
        if old.manifestDigest != new.manifestDigest { return "the archive changed" }
        for (a, b) in zip(old.molts, new.molts) where a != b {
            if a.action != b.action { return "\(a.name) is now \(b.action.rawValue)" }
            if a.user != b.user || a.uid != b.uid { return "user \(a.name) changed" }
            if a.newPort != b.newPort || a.portConflict != b.portConflict { return "ports of \(a.name) changed" }
            return "\(a.name) changed"
        }
        if old.refusals != new.refusals { return new.refusals.first ?? "refusals changed" }
        return "the fleet changed"
    }
}

/// `.users` in a staging container: the accounts a restore created, so the
/// next run can delete them when this one is killed (SIGKILL gives no chance
/// to) before any molt arrived.
enum CreatedUsers {
    static let fileName = ".users"

    static func note(_ names: [String], container: Int32, displayPath: String) throws(RestoreError) {
        try SafeFileSystem.writeFile(at: container, fileName, data: Data((names.joined(separator: "\n") + "\n").utf8),
                                     uid: 0, gid: 0, mode: 0o600, displayPath: displayPath + "/" + fileName)
    }

    /// Deletes the users noted in the open `container` whose molt is not at its
    /// home (`<baseDir>/<name>`, as the killed run created them); returns what it did.
    static func removeStale(container: Int32, baseDirectory: Int32, baseDir: String) -> [String] {
        guard let file = try? SafeFileSystem.readFile(at: container, fileName, displayPath: fileName) else { return [] }
        var notes: [String] = []
        for user in String(decoding: file.data, as: UTF8.self).split(separator: "\n").map(String.init).filter(MoltName.isValid)
        where UserAccounts.user(named: user)?.home == baseDir + "/" + user && SafeFileSystem.status(at: baseDirectory, user) == nil {
            do {
                try UserAccounts.delete(name: user)
                notes.append("deleted user \(user), created by an interrupted restore whose molt never arrived")
            } catch {
                notes.append("could not delete user \(user), created by an interrupted restore: \(error)")
            }
        }
        return notes
    }
}
