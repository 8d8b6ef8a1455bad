import Foundation

/// Finishes what a killed restore left in a base dir. Run under the restore's
/// exclusive base-dir lock, so no other clmnt works there meanwhile.
///
/// - A staging container with a journal was killed during its swaps: the molts
///   not yet swapped are swapped in (their trees were checked completely before
///   the journal was written), `molts.json` gets every molt of the journal, and
///   the old trees and the container are removed. Completing rather than rolling
///   back gives the fleet the admin asked for, from data already verified.
/// - A container without a journal was killed before any swap: removed.
/// - `.molts.json.clmnt-*` temporary files of a killed registry write: removed.
enum RestoreRecovery {
    static func recover(baseDirectory: Int32, baseDir: String) -> [String] {
        var notes: [String] = []
        let names = ((try? directoryNames(baseDirectory)) ?? [])
        for name in names where name.hasPrefix(FleetRestore.stagingPrefix) {
            guard let st = SafeFileSystem.status(at: baseDirectory, name), (st.st_mode & S_IFMT) == S_IFDIR,
                  st.st_uid == geteuid() else { continue }
            guard let finished = recoverContainer(name, baseDirectory: baseDirectory, baseDir: baseDir, notes: &notes),
                  finished else { continue }
            do {
                try SafeFileSystem.removeTree(at: baseDirectory, name, displayPath: baseDir + "/" + name)
            } catch {
                notes.append("could not remove \(baseDir)/\(name), left by an interrupted restore: \(error)")
            }
        }
        for name in names where isRegistryTemporary(name) {
            guard let st = SafeFileSystem.status(at: baseDirectory, name), (st.st_mode & S_IFMT) == S_IFREG,
                  st.st_uid == geteuid(), unlinkat(baseDirectory, name, 0) == 0 else { continue }
            notes.append("removed \(baseDir)/\(name), a molts.json update cut short")
        }
        return notes
    }

    /// Completes (journal) or discards (no journal) one staging container; nil when it cannot be
    /// opened, false when it must be kept (molts.json could not be written: the next run tries again).
    private static func recoverContainer(_ name: String, baseDirectory: Int32, baseDir: String, notes: inout [String]) -> Bool? {
        guard let container = try? SafeFileSystem.openDirectory(at: baseDirectory, name, path: baseDir + "/" + name) else { return nil }
        if let journal = RestoreJournal.read(container: container.rawValue) {
            let (note, finished) = complete(journal, container: container.rawValue, containerName: name,
                                            baseDirectory: baseDirectory, baseDir: baseDir)
            notes.append(note)
            return finished
        }
        notes += CreatedUsers.removeStale(container: container.rawValue, baseDirectory: baseDirectory, baseDir: baseDir)
        notes.append("removed \(baseDir)/\(name), left by a restore interrupted before any molt was swapped")
        return true
    }

    /// Whether a restore left a journal to complete in `baseDir` (for the dry run; changes nothing).
    static func pending(baseDir: String) -> [String] {
        pendingJournals(baseDir: baseDir).map { _, journal in
            "a restore from \(PathBytes(journal.archive).description) was interrupted while swapping in \(journal.molts.map(\.name).joined(separator: ", ")); the next restore into \(PathBytes(baseDir).description) (or `clmnt fleet restore --resume`) completes it first"
        }
    }

    /// The journals of restores killed during their swaps in `baseDir`: only in a staging
    /// container the running user owns (as `recover` requires), read by `RestoreJournal.read`.
    static func pendingJournals(baseDir: String) -> [(container: String, journal: RestoreJournal)] {
        guard let base = try? FileDescriptor.open(baseDir, O_RDONLY | O_DIRECTORY) else { return [] }
        var journals: [(container: String, journal: RestoreJournal)] = []
        for name in (try? directoryNames(base.rawValue)) ?? [] where name.hasPrefix(FleetRestore.stagingPrefix) {
            guard let st = SafeFileSystem.status(at: base.rawValue, name), (st.st_mode & S_IFMT) == S_IFDIR,
                  st.st_uid == geteuid(),
                  let container = try? SafeFileSystem.openDirectory(at: base.rawValue, name, path: baseDir + "/" + name) else { continue }
            if let journal = RestoreJournal.read(container: container.rawValue) { journals.append((baseDir + "/" + name, journal)) }
        }
        return journals
    }

    /// `.molts.json.clmnt-<digits>`: `SafeFileSystem.writeFile`'s temporary name for the registry.
    static func isRegistryTemporary(_ name: String) -> Bool {
        SafeFileSystem.isTemporaryName(name, for: "molts.json")
    }

    private static func complete(_ journal: RestoreJournal, container: Int32, containerName: String,
                                 baseDirectory: Int32, baseDir: String) -> (note: String, finished: Bool) {
        // Each name becomes a path under the base dir (swapped, chowned, registered): one that is
        // not a molt name ("../../elsewhere/x") makes the whole journal untrustworthy. Nothing is
        // swapped and the container is kept for the admin to examine.
        if let bad = journal.firstInvalidName {
            return ("\(RestoreError.untrustedJournal(container: baseDir + "/" + containerName, name: bad))", false)
        }
        var already: [String] = []
        var now: [String] = []
        var failed: [String] = []
        var records: [MoltRegistry.Record] = []
        for molt in journal.molts {
            func isStaged(_ st: stat?) -> Bool {
                st.map { UInt64($0.st_dev) == molt.stagedDevice && UInt64($0.st_ino) == molt.stagedInode } ?? false
            }
            if isStaged(SafeFileSystem.status(at: baseDirectory, molt.name)) {
                already.append(molt.name)
            } else if isStaged(SafeFileSystem.status(at: container, molt.name)) {
                do {
                    let replaced = try SafeFileSystem.swapIn(at: baseDirectory, staging: containerName + "/" + molt.name,
                                                             target: molt.name, displayPath: molt.home)
                    if replaced { SafeFileSystem.lockOut(at: container, molt.name) }
                    now.append(molt.name)
                } catch {
                    failed.append("\(molt.name) (\(error))")
                    continue
                }
            } else {
                failed.append("\(molt.name) (its staged tree is gone)")
                continue
            }
            records.append(MoltRegistry.Record(name: molt.name, port: molt.port, home: molt.home, created: molt.created))
        }
        SafeFileSystem.syncDirectory(baseDirectory)
        var line = "completed the restore from \(journal.archive) interrupted at \(journal.restoredAt): "
        var parts: [String] = []
        if !already.isEmpty { parts.append("\(already.joined(separator: ", ")) had been swapped in") }
        if !now.isEmpty { parts.append("\(now.joined(separator: ", ")) swapped in now") }
        if !failed.isEmpty { parts.append("could not swap in \(failed.joined(separator: "; ")), left as they were") }
        line += parts.joined(separator: ", ")
        do {
            if !records.isEmpty {
                try MoltRegistry.update(baseDir: baseDir, baseDirectory: baseDirectory, records: records, now: journal.restoredAt)
            }
            return (line + "; molts.json updated", true)
        } catch {
            return (line + "; molts.json NOT updated (\(error)): the next restore tries again", false)
        }
    }
}
