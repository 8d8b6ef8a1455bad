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
        let lock: BaseDirLock
        do { lock = try BaseDirLock(baseDir: baseDir, mode: .restore, wait: wait) } catch {
            if case .baseDir(let failure) = error, failure.code == ENOENT { return [] }  // nothing was ever restored there
            throw restoreError(error, baseDir: baseDir)
        }
        // A journal naming a path instead of a molt is refused whole, before anything is swapped.
        for (container, journal) in RestoreRecovery.pendingJournals(baseDir: baseDir) {
            if let name = journal.firstInvalidName { throw .untrustedJournal(container: container, name: name) }
        }
        return RestoreRecovery.recover(baseDirectory: lock.baseDirectory.rawValue, baseDir: baseDir)
    }

    /// The exclusive base-dir lock of a restore (see `BaseDirLock`).
    static func lockBaseDir(_ baseDir: String, wait: Double) throws(RestoreError) -> BaseDirLock {
        do { return try BaseDirLock(baseDir: baseDir, mode: .restore, wait: wait) } catch {
            throw restoreError(error, baseDir: baseDir)
        }
    }

    /// A base dir that cannot be opened, or a lock that was not taken, as a restore says it.
    private static func restoreError(_ error: BaseDirLockError, baseDir: String) -> RestoreError {
        if case .baseDir(let failure) = error { return .baseDir(path: baseDir, reason: failure.reason) }
        return .locked(error)
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
    ///
    /// The stages: lock the base dir and finish what a killed run left; stage (create
    /// users, extract and check the whole archive, write the journal), where any failure
    /// removes the staging and the users this run created; then swap each molt in and
    /// write `molts.json`.
    public func run(confirmed: RestorePlan? = nil, now: Date = Date()) throws(RestoreError) -> RestoreSummary {
        let started = Date()
        let (plan, located) = try RestorePlanner(options: options).planAndManifest()
        if let confirmed, confirmed != plan { throw .planChanged(difference(confirmed, plan)) }
        guard plan.canRun else { throw .refused(plan.refusals) }
        let restoredAt = Timestamp.format(now)
        if !plan.baseDirExists {
            do {
                try FileManager.default.createDirectory(atPath: plan.baseDir, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o755])
            } catch { throw .baseDir(path: plan.baseDir, reason: describeFileError(error)) }
        }
        let lock = try Self.lockBaseDir(plan.baseDir, wait: options.wait)
        defer { withExtendedLifetime(lock) {} }
        let baseDirectory = lock.baseDirectory.rawValue
        var warnings = RestoreRecovery.recover(baseDirectory: baseDirectory, baseDir: plan.baseDir)

        let staging = try RestoreStaging(baseDirectory: baseDirectory, baseDir: plan.baseDir)
        let staged: StagedRestore
        do throws(RestoreError) {
            staged = try stage(plan: plan, located: located, staging: staging, restoredAt: restoredAt)
        } catch {
            staging.discard()
            rollBack(users: staging.createdUsers)
            throw error
        }
        warnings += staged.warnings
        let restored = try swapIn(plan: plan, staged: staged, staging: staging, restoredAt: restoredAt)
        warnings += staging.finish()
        for name in staging.createdUsers {
            do { try UserAccounts.enableLinger(name: name) } catch {
                warnings.append("lingering not enabled for \(name): \(error)")
            }
        }
        return RestoreSummary(
            archive: plan.archive, baseDir: plan.baseDir, molts: restored,
            files: restored.reduce(0) { $0 + $1.files }, bytes: restored.reduce(0) { $0 + $1.bytes },
            seconds: Date().timeIntervalSince(started), warnings: warnings)
    }

    /// Staged and journalled, ready to swap in.
    private struct StagedRestore {
        var accounts: [String: UserAccount]
        var extraction: ExtractionResult
        var warnings: [String]
    }

    /// Users, then the whole archive into the staging container, then the journal.
    /// Nothing outside the container has changed but the users it notes.
    private func stage(plan: RestorePlan, located: LocatedManifest, staging: RestoreStaging,
                       restoredAt: String) throws(RestoreError) -> StagedRestore {
        var warnings: [String] = []
        let accounts = try prepareUsers(plan: plan, staging: staging, warnings: &warnings)
        let extraction = try StagedExtraction.isolated(
            extractionJob(plan: plan, located: located, accounts: accounts, staging: staging, restoredAt: restoredAt))
        if cancellation?.isCancelled == true { throw .interrupted }
        warnings += extraction.warnings
        // The journal: a restore killed during the swaps is completed by the next one.
        var journal = RestoreJournal(archive: plan.archive, restoredAt: restoredAt, molts: [])
        for molt in plan.molts {
            guard let stagedHome = SafeFileSystem.status(at: staging.directory.rawValue, molt.name) else { continue }
            let result = extraction.molts[molt.name] ?? ExtractionResult.Molt()
            journal.molts.append(RestoreJournal.Molt(name: molt.name, home: molt.target, port: result.port, created: result.created,
                                                     stagedDevice: UInt64(stagedHome.st_dev), stagedInode: UInt64(stagedHome.st_ino)))
        }
        try journal.write(container: staging.directory.rawValue, displayPath: staging.path + "/" + RestoreJournal.fileName)
        return StagedRestore(accounts: accounts, extraction: extraction, warnings: warnings)
    }

    /// Finds or creates each molt's user. Each one created is noted in the container
    /// first, so the next run can delete it if this one is killed before it finishes.
    private func prepareUsers(plan: RestorePlan, staging: RestoreStaging,
                              warnings: inout [String]) throws(RestoreError) -> [String: UserAccount] {
        var accounts: [String: UserAccount] = [:]
        for molt in plan.molts {
            if let account = UserAccounts.user(named: molt.name) {
                accounts[molt.name] = account
                if account.home != molt.target {
                    warnings.append("user \(molt.name) exists with home \(account.home); its molt is restored to \(molt.target)")
                }
            } else if !options.skipUsers {
                try CreatedUsers.note(staging.createdUsers + [molt.name], container: staging.directory.rawValue,
                                      displayPath: staging.path)
                do {
                    accounts[molt.name] = try UserAccounts.create(name: molt.name, home: molt.target,
                                                                  supplementaryGroups: molt.groups)
                    staging.createdUsers.append(molt.name)
                } catch { throw .user(name: molt.name, reason: "\(error)") }
            }
        }
        return accounts
    }

    /// What the extracting thread needs: each staged home is created by libarchive from the
    /// home's own entry (so its mode and times are set last, like any directory's).
    private func extractionJob(plan: RestorePlan, located: LocatedManifest, accounts: [String: UserAccount],
                               staging: RestoreStaging, restoredAt: String) -> ExtractionJob {
        var stages: [String: StageTarget] = [:]
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
        return ExtractionJob(
            archive: plan.archive, located: located, baseDirectory: staging.baseDirectory, baseDir: plan.baseDir,
            containerName: staging.name, containerDirectory: staging.directory.rawValue, stages: stages,
            sourceHomes: sourceHomes, sourceOwners: sourceOwners, restoredAt: restoredAt,
            allowOutsideSymlinks: options.allowOutsideSymlinks,
            fallbackByteLimit: FreeSpace.of(staging.baseDirectory).map { $0.bytes }, cancellation: cancellation,
            onProgress: onProgress)
    }

    /// Swaps each molt in (the old tree ends up in the container), then writes `molts.json`.
    /// A failed swap keeps the molts before it and rolls back the users of the others.
    private func swapIn(plan: RestorePlan, staged: StagedRestore, staging: RestoreStaging,
                        restoredAt: String) throws(RestoreError) -> [RestoreSummary.RestoredMolt] {
        let baseDirectory = staging.baseDirectory
        var restored: [RestoreSummary.RestoredMolt] = []
        var records: [MoltRegistry.Record] = []
        var swapError: RestoreError?
        for (number, molt) in plan.molts.enumerated() {
            TestHook.stop(at: "before-swap-\(number + 1)")
            do throws(RestoreError) {
                let replaced = try RestoreError.step { () throws(SystemError) in
                    try SafeFileSystem.swapIn(at: baseDirectory, staging: staging.name + "/" + molt.name, target: molt.name,
                                              displayPath: molt.target)
                }
                if replaced { SafeFileSystem.lockOut(at: staging.directory.rawValue, molt.name) }
                let account = staged.accounts[molt.name]
                let result = staged.extraction.molts[molt.name] ?? ExtractionResult.Molt()
                restored.append(RestoreSummary.RestoredMolt(
                    name: molt.name, home: molt.target, user: account?.name ?? invokingUserName(),
                    uid: account?.uid ?? geteuid(), userCreated: staging.createdUsers.contains(molt.name), replaced: replaced,
                    port: result.port, files: result.files, bytes: result.bytes, rewrites: result.rewrites))
                records.append(MoltRegistry.Record(name: molt.name, port: result.port, home: molt.target,
                                                   created: result.created))
            } catch {
                swapError = error
                break
            }
        }
        SafeFileSystem.syncDirectory(baseDirectory)
        if let swapError {
            let done = restored.map(\.name)
            rollBack(users: staging.createdUsers.filter { !done.contains($0) })
            if !records.isEmpty {
                try? MoltRegistry.update(baseDir: plan.baseDir, baseDirectory: baseDirectory, records: records, now: restoredAt)
            }
            _ = staging.finish()
            throw .swapFailed(reason: "\(swapError)", restored: done)
        }
        // The old trees go first (they may be what fills the disk); the journal stays until molts.json is written.
        for molt in restored where molt.replaced { staging.removeOldTree(molt.name) }
        TestHook.stop(at: "before-registry")
        do {
            try MoltRegistry.update(baseDir: plan.baseDir, baseDirectory: baseDirectory, records: records, now: restoredAt)
        } catch {
            throw .registryAfterSwaps(reason: "\(error)", replaced: restored.map(\.name), baseDir: plan.baseDir)
        }
        return restored
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
