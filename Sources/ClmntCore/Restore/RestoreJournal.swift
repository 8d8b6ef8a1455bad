import Foundation

/// What a restore is about to swap in: `<base-dir>/.clmnt-restore-XXXXXX/journal.json`,
/// written and fsynced once the whole archive is checked and staged, before
/// the first swap. A restore killed during the swaps leaves it beside the
/// staged trees; the next restore into the base dir (or `fleet restore --resume`)
/// reads it and completes the swaps and the `molts.json` update (`RestoreRecovery`).
///
/// Whether a molt was swapped is read from the disk, not from the journal: the
/// staged home's device and inode are recorded, so the tree at `<base-dir>/<name>`
/// either is the staged one (swapped) or not (the staged one still waits in the
/// container).
struct RestoreJournal: Codable, Equatable {
    static let fileName = "journal.json"

    struct Molt: Codable, Equatable {
        var name: String
        var home: String
        var port: Int?
        var created: String?
        var stagedDevice: UInt64
        var stagedInode: UInt64

        enum CodingKeys: String, CodingKey {
            case name, home, port, created
            case stagedDevice = "staged_device"
            case stagedInode = "staged_inode"
        }
    }

    var archive: String
    var restoredAt: String
    var molts: [Molt]

    enum CodingKeys: String, CodingKey {
        case archive, molts
        case restoredAt = "restored_at"
    }

    /// The first molt name that is not one (`MoltName.isValid`, not reserved), or nil: each
    /// name becomes a path under the base dir, so "../../elsewhere/x" must never be acted on.
    var firstInvalidName: String? {
        molts.first { !MoltName.isValid($0.name) || ArchiveLayout.reservedNames.contains($0.name) }?.name
    }

    /// Writes the journal into the container (root-only) and fsyncs it and the container.
    func write(container: Int32, displayPath: String) throws(RestoreError) {
        // Strings and numbers only: encoding cannot fail.
        let data = Data(try! JSONStyle.encode(self).utf8)
        try SafeFileSystem.writeFile(at: container, Self.fileName, data: data, uid: geteuid(), gid: getegid(), mode: 0o600,
                                     displayPath: displayPath)
        SafeFileSystem.syncDirectory(container)
    }

    /// The journal in an open container, when there is one (a root-owned regular file).
    static func read(container: Int32) -> RestoreJournal? {
        let fd = openat(container, fileName, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        var status = stat()
        guard fstat(fd, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG, status.st_uid == geteuid(),
              status.st_size < 16 << 20, let data = try? handle.readToEnd() else { return nil }
        return try? JSONDecoder().decode(RestoreJournal.self, from: data)
    }
}

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
            let container = SafeFileSystem.openDirectory(at: baseDirectory, name)
            guard container >= 0 else { continue }
            if let journal = RestoreJournal.read(container: container) {
                let (note, finished) = complete(journal, container: container, containerName: name,
                                                baseDirectory: baseDirectory, baseDir: baseDir)
                notes.append(note)
                close(container)
                // Kept (journal and all) when molts.json could not be written: the next run tries again.
                guard finished else { continue }
            } else {
                notes += CreatedUsers.removeStale(container: container, baseDirectory: baseDirectory, baseDir: baseDir)
                notes.append("removed \(baseDir)/\(name), left by a restore interrupted before any molt was swapped")
                close(container)
            }
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

    /// Whether a restore left a journal to complete in `baseDir` (for the dry run; changes nothing).
    static func pending(baseDir: String) -> [String] {
        pendingJournals(baseDir: baseDir).map { _, journal in
            "a restore from \(PathBytes(journal.archive).description) was interrupted while swapping in \(journal.molts.map(\.name).joined(separator: ", ")); the next restore into \(PathBytes(baseDir).description) (or `clmnt fleet restore --resume`) completes it first"
        }
    }

    /// The journals of restores killed during their swaps in `baseDir`: only in a staging
    /// container the running user owns (as `recover` requires), read by `RestoreJournal.read`.
    static func pendingJournals(baseDir: String) -> [(container: String, journal: RestoreJournal)] {
        let baseDirectory = open(baseDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard baseDirectory >= 0 else { return [] }
        defer { close(baseDirectory) }
        var journals: [(container: String, journal: RestoreJournal)] = []
        for name in (try? directoryNames(baseDirectory)) ?? [] where name.hasPrefix(FleetRestore.stagingPrefix) {
            guard let st = SafeFileSystem.status(at: baseDirectory, name), (st.st_mode & S_IFMT) == S_IFDIR,
                  st.st_uid == geteuid() else { continue }
            let container = SafeFileSystem.openDirectory(at: baseDirectory, name)
            guard container >= 0 else { continue }
            defer { close(container) }
            if let journal = RestoreJournal.read(container: container) { journals.append((baseDir + "/" + name, journal)) }
        }
        return journals
    }

    /// `.molts.json.clmnt-<digits>`: `SafeFileSystem.writeFile`'s temporary name for the registry.
    static func isRegistryTemporary(_ name: String) -> Bool {
        let prefix = ".molts.json.clmnt-"
        guard name.hasPrefix(prefix) else { return false }
        let suffix = name.dropFirst(prefix.count)
        return !suffix.isEmpty && suffix.allSatisfy { $0.isASCII && $0.isNumber }
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
