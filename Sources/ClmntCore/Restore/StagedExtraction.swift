import Foundation

/// Bookkeeping for one molt of the archive (selected or not: a hostile entry
/// anywhere refuses the whole archive). A class: updated in place per entry.
private final class MoltTally {
    /// Every path seen, and what it was: 8 bytes each (a molt of a million files needs 8 MiB, not 300).
    var seen = PathKinds()
    let links: MoltLinks
    /// Links already reported as leaving the molt (with --allow-outside-symlinks).
    var outsideLinks = Set<PathBytes>()
    var unknownOwners = 0
    var movedSymlinks = 0

    init(targetHome: String) { links = MoltLinks(targetHome: targetHome) }
}

/// The one pass over the archive: validates every entry, writes the selected
/// molts into their staging homes, hashes their files, and checks the result
/// against the manifest, the report and `SHA256SUMS` before anything is swapped in.
final class StagedExtraction {
    private let job: ExtractionJob
    private var tallies: [String: MoltTally] = [:]
    private var warnings: [String] = []
    private var userIDs: [String: UInt32?] = [:]
    private var groupIDs: [String: UInt32?] = [:]
    private let hasher = SHA256Hasher()

    /// Only one disk writer works at a time in this process (CVE-2023-30571).
    static let diskWriterLock = NSLock()

    init(job: ExtractionJob) { self.job = job }

    /// Runs `body` on a fresh thread with its own working directory and umask
    /// (the base dir and 077), holding the process-wide extraction lock.
    static func isolated(_ job: ExtractionJob) throws(RestoreError) -> ExtractionResult {
        final class Box: @unchecked Sendable { var result: Result<ExtractionResult, RestoreError>? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            diskWriterLock.lock()
            defer { diskWriterLock.unlock(); done.signal() }
            guard LinuxCalls.unshareFileSystem() else {
                box.result = .failure(.fileSystem(path: job.archive, reason: "cannot give the extracting thread its own working directory: \(String(cString: strerror(errno)))"))
                return
            }
            guard fchdir(job.baseDirectory) == 0 else {
                box.result = .failure(.fileSystem(path: job.baseDir, reason: SystemError.text()))
                return
            }
            umask(0o077)
            do throws(RestoreError) {
                box.result = .success(try StagedExtraction(job: job).run())
            } catch {
                box.result = .failure(error)
            }
        }
        thread.stackSize = 8 << 20
        thread.name = "clmnt-restore"
        thread.start()
        done.wait()
        guard let result = box.result else { throw .fileSystem(path: job.archive, reason: "extraction thread ended without a result") }
        return try result.get()
    }

    /// The stages: read and check the whole archive, writing the selected molts into the
    /// container; judge every link again once all exist; adjust each staged home for this
    /// host; flush it all to disk.
    func run() throws(RestoreError) -> ExtractionResult {
        let reader: PipelinedArchiveReader
        let disk: DiskWriter
        do {
            reader = try PipelinedArchiveReader(path: job.archive)
            disk = try DiskWriter(root: job.containerDirectory, userID: { [unowned self] in lookupUser($0) },
                                  groupID: { [unowned self] in lookupGroup($0) })
        } catch { throw .archive(error) }
        var archiveBytes: Int64 = 0
        var st = stat()
        if !ArchiveInput.isRegistered(job.archive), stat(job.archive, &st) == 0 { archiveBytes = Int64(st.st_size) }
        let check = IntegrityCheck(located: job.located, fallbackByteLimit: job.fallbackByteLimit)

        let filesWritten = try extractAll(reader: reader, disk: disk, check: check, archiveBytes: archiveBytes)
        if job.cancellation?.isCancelled == true { throw .interrupted }
        guard check.entries > 0 else { throw .noManifest(archive: job.archive) }
        check.finish(selection: Set(job.stages.keys))
        if let problem = check.firstProblem { throw RestoreError(problem, archive: job.archive) }
        warnings += check.notes
        try judgeAllLinksAgain()
        job.onProgress?(RestoreProgress(bytesRead: reader.compressedBytesRead, archiveBytes: archiveBytes,
                                        filesWritten: filesWritten, currentMolt: nil))
        var result = try adjustStagedHomes(check: check)
        do {
            // Closing the disk writer sets the times of the directories the rewrites touched.
            try disk.close()
            // The staged trees reach the disk before any of them is swapped in:
            // a power cut after the rename must not leave empty files behind.
            try DiskWriter.syncFileSystem(of: job.containerDirectory, displayPath: job.baseDir + "/" + job.containerName)
        } catch { throw .archive(error) }
        result.warnings = warnings + disk.warnings + reader.warnings.filter { !$0.contains("can't be converted") }
        return result
    }

    /// Reads every entry, checking each against the manifest's rules and writing the selected
    /// molts' ones; returns how many files were written. A read error is damage.
    private func extractAll(reader: PipelinedArchiveReader, disk: DiskWriter, check: IntegrityCheck,
                            archiveBytes: Int64) throws(RestoreError) -> Int {
        func refuseOnProblem() throws(RestoreError) {
            if let problem = check.firstProblem { throw RestoreError(problem, archive: job.archive) }
        }
        var filesWritten = 0
        var lastProgress = Date.distantPast
        do {
            while let entry = try reader.next() {
                if job.cancellation?.isCancelled == true { throw RestoreError.interrupted }
                guard let place = check.admit(entry) else { try refuseOnProblem(); continue }
                if try extract(entry, at: place, reader: reader, disk: disk, check: check) { filesWritten += 1 }
                try refuseOnProblem()
                if let onProgress = job.onProgress, check.entries % 64 == 0, Date().timeIntervalSince(lastProgress) >= 0.1 {
                    lastProgress = Date()
                    onProgress(RestoreProgress(bytesRead: reader.compressedBytesRead, archiveBytes: archiveBytes,
                                               filesWritten: filesWritten, currentMolt: currentMolt(entry.path)))
                }
            }
        } catch let error as RestoreError {
            throw error
        } catch let error as ArchiveError {
            if job.cancellation?.isCancelled == true { throw .interrupted }
            if error.operation == .extract || error.operation == .write { throw .archive(error) }
            throw .contentMismatch(archive: job.archive, reason: error.message)
        } catch {
            throw .contentMismatch(archive: job.archive, reason: "\(error)")
        }
        return filesWritten
    }

    /// One admitted entry; true when a molt file was written.
    private func extract(_ entry: EntryMetadata, at place: EntryPlace, reader: PipelinedArchiveReader, disk: DiskWriter,
                         check: IntegrityCheck) throws -> Bool {
        switch place {
        case .manifest:
            check.manifestData(try reader.readAll(limit: ArchiveIntegrity.manifestSizeLimit))
        case .report:
            check.reportData(try reader.readAll(limit: ArchiveIntegrity.reportSizeLimit))
        case .checksums:
            try reader.readData(limit: ArchiveIntegrity.checksumsSizeLimit) { check.checksumsData($0) }
        case .archiveRoot:
            break
        case .global:
            // The source host's registry: read by nobody, written nowhere; checked like the rest.
            if let problem = EntryPolicy.typeProblem(kind: entry.kind, mode: entry.mode) {
                throw RestoreError.hostileEntry(path: entry.path.description, reason: problem)
            }
        case .molt(let name, let relative):
            return try handleMoltEntry(entry, name: name, relative: relative, reader: reader, disk: disk, check: check)
        }
        return false
    }

    /// A link judged when it was read may lead elsewhere once later links exist: judge them all again.
    private func judgeAllLinksAgain() throws(RestoreError) {
        for name in tallies.keys.sorted() {
            guard let tally = tallies[name] else { continue }
            for (path, target) in tally.links.all.sorted(by: { $0.key < $1.key })
            where !tally.outsideLinks.contains(path) && !tally.links.staysInside(linkPath: path, target: target) {
                try judgeOutsideLink(path: PathBytes(name).appending(path).description, target: target)
            }
        }
    }

    /// Adjusts each staged home for this host (`HomeRewriter`) and says what was restored.
    private func adjustStagedHomes(check: IntegrityCheck) throws(RestoreError) -> ExtractionResult {
        var result = ExtractionResult()
        for (name, stage) in job.stages.sorted(by: { $0.key < $1.key }) {
            let home = try RestoreError.step { () throws(SystemError) in
                try SafeFileSystem.openDirectory(at: job.containerDirectory, name, path: job.containerName + "/" + name)
            }
            let outcome = try HomeRewriter.apply(
                home: home.rawValue, moltName: name, target: stage.plan.target, sourceHome: stage.plan.sourceHome,
                port: stage.plan.port, newPort: stage.plan.newPort, ownerUID: stage.owner.moltUID,
                ownerGID: stage.owner.moltGID, restoredAt: job.restoredAt)
            let tally = tallies[name] ?? MoltTally(targetHome: stage.plan.target)
            var rewrites = outcome.rewrites
            if tally.movedSymlinks > 0 {
                rewrites.append("\(tally.movedSymlinks) absolute symlink\(tally.movedSymlinks == 1 ? "" : "s") into the old home now point\(tally.movedSymlinks == 1 ? "s" : "") into \(stage.plan.target)")
            }
            let stats = check.sections[name] ?? Manifest.SectionStats()
            result.molts[name] = ExtractionResult.Molt(files: stats.fileCount, bytes: stats.backupSizeBytes, rewrites: rewrites,
                                                       created: outcome.created, port: outcome.port)
            if tally.unknownOwners > 0 {
                warnings.append("\(name): \(tally.unknownOwners) entr\(tally.unknownOwners == 1 ? "y" : "ies") owned by users or groups unknown here were given to \(name)")
            }
        }
        return result
    }

    /// A symlink that leaves its molt: refused, or with --allow-outside-symlinks restored and named.
    private func judgeOutsideLink(path: String, target: PathBytes) throws(RestoreError) {
        guard job.allowOutsideSymlinks else {
            throw .hostileEntry(path: path, reason: "is a symlink pointing outside its molt ('\(target)'); --allow-outside-symlinks restores such links")
        }
        warnings.append("\(path): symlink pointing outside its molt ('\(target)') restored as a link")
    }

    /// Validates and (for a selected molt) writes one entry; true when a file was written.
    private func handleMoltEntry(_ entry: EntryMetadata, name: String, relative: PathBytes,
                                 reader: PipelinedArchiveReader, disk: DiskWriter, check: IntegrityCheck) throws -> Bool {
        let tally: MoltTally
        if let existing = tallies[name] { tally = existing } else {
            tally = MoltTally(targetHome: job.stages[name]?.plan.target ?? job.baseDir + "/" + name)
            tallies[name] = tally
        }
        let shown = entry.path.description
        guard tally.seen.insert(relative, entry.kind) else {
            throw RestoreError.hostileEntry(path: shown, reason: "appears twice")
        }
        // Nothing may be written below a symlink or a file of the archive.
        var prefix = PathBytes([])
        for part in relative.components.dropLast() {
            prefix = prefix.appending(part)
            if tally.seen.isNonDirectory(prefix) {
                throw RestoreError.hostileEntry(path: shown, reason: "lies below '\(name)/\(prefix)', which is not a directory in the archive")
            }
        }
        if let problem = EntryPolicy.typeProblem(kind: entry.kind, mode: entry.mode) {
            // A setuid/setgid file is the molt user's own business; anyone else's is an escalation.
            let owners = job.sourceOwners[name] ?? (user: name, group: name)
            let ownUser = (job.format == .bash || entry.userName == owners.user) && owners.user != "root"
            let ownGroup = (job.format == .bash || entry.groupName == owners.group) && owners.group != "root"
            let allowed = entry.kind == .regular && (entry.mode & 0o4000 == 0 || ownUser) && (entry.mode & 0o2000 == 0 || ownGroup)
            if !allowed { throw RestoreError.hostileEntry(path: shown, reason: problem + " not owned by the molt's user") }
        }
        var hardlinkRelative: PathBytes?
        var newSymlinkTarget: PathBytes?
        switch entry.kind {
        case .symlink:
            var target = entry.symlinkTarget ?? PathBytes([])
            // An absolute link into the old home follows the home to its new place
            // (`//old/home/x` and `/old/./home/x` too); it is then judged where it lands.
            if let old = job.sourceHomes[name], let moved = tally.links.moving(target, from: old) {
                if moved != target, job.stages[name] != nil {
                    newSymlinkTarget = moved
                    tally.movedSymlinks += 1
                }
                target = moved
            }
            tally.links.add(path: relative, target: target)
            if !tally.links.staysInside(linkPath: relative, target: target) {
                try judgeOutsideLink(path: shown, target: target)
                tally.outsideLinks.insert(relative)
            }
        case .hardlink:
            let target = entry.hardlinkTarget ?? PathBytes([])
            let place = try? EntryPolicy.place(of: target, format: job.format, molts: [name])
            guard case .molt(name, let linked)? = place, !linked.isEmpty else {
                throw RestoreError.hostileEntry(path: shown, reason: "is a hard link to '\(target)', outside its molt")
            }
            guard linked != relative, tally.seen.isRegularFile(linked) else {
                throw RestoreError.hostileEntry(path: shown, reason: "is a hard link to '\(target)', which is not an earlier file of the archive")
            }
            hardlinkRelative = linked
        default:
            break
        }

        guard let stage = job.stages[name] else { return false }
        // Relative to the staging container: the writer works by descriptors from there.
        let base = PathBytes(name)
        let path = base.appending(relative)
        let owner = owner(for: entry, map: stage.owner, unknown: &tally.unknownOwners)
        if entry.kind == .regular, (entry.mode & 0o4000 != 0 && owner.uid == 0) || (entry.mode & 0o2000 != 0 && owner.gid == 0) {
            throw RestoreError.hostileEntry(path: shown, reason: "would become a setuid or setgid file of root here")
        }
        let written = try disk.write(from: reader, path: path, hardlinkTarget: hardlinkRelative.map { base.appending($0) },
                                     symlinkTarget: newSymlinkTarget,
                                     uid: owner.uid, gid: owner.gid,
                                     hash: entry.kind == .regular && job.format == .clmnt ? hasher : nil, displayPath: shown,
                                     shouldStop: { [job] in job.cancellation?.isCancelled == true })
        if let digest = written?.digest { check.fileDigest(digest, path: entry.path) }
        return entry.kind != .directory
    }

    /// The owner on this host of an entry of a molt: by name, never by the source host's numbers.
    private func owner(for entry: EntryMetadata, map: OwnerMap, unknown: inout Int) -> (uid: UInt32, gid: UInt32) {
        if map.everythingToMolt { return (map.moltUID, map.moltGID) }
        var isUnknown = false
        let uid: UInt32
        if let name = entry.userName, !name.isEmpty {
            if name == map.sourceUser { uid = map.moltUID }
            else if name == "root" { uid = 0 }
            else if let found = lookupUser(name) { uid = found }
            else { uid = map.moltUID; isUnknown = true }
        } else if let sourceUID = map.sourceUID, entry.uid == Int64(sourceUID) {
            uid = map.moltUID
        } else if entry.uid == 0 {
            uid = 0
        } else {
            uid = map.moltUID; isUnknown = true
        }
        let gid: UInt32
        if let name = entry.groupName, !name.isEmpty {
            if name == (map.sourceGroup ?? map.sourceUser) { gid = map.moltGID }
            else if name == "root" { gid = 0 }
            else if let found = lookupGroup(name) { gid = found }
            else { gid = map.moltGID; isUnknown = true }
        } else if let sourceGID = map.sourceGID, entry.gid == Int64(sourceGID) {
            gid = map.moltGID
        } else if entry.gid == 0 {
            gid = 0
        } else {
            gid = map.moltGID; isUnknown = true
        }
        if isUnknown { unknown += 1 }
        return (uid, gid)
    }

    private func lookupUser(_ name: String) -> UInt32? {
        if let cached = userIDs[name] { return cached }
        let found = UserAccounts.user(named: name)?.uid
        userIDs[name] = found
        return found
    }

    private func lookupGroup(_ name: String) -> UInt32? {
        if let cached = groupIDs[name] { return cached }
        let found = UserAccounts.groupID(named: name)
        groupIDs[name] = found
        return found
    }

    private func currentMolt(_ path: PathBytes) -> String? {
        let parts = path.components.filter { !$0.isEmpty && $0 != "." }
        guard let name = parts.first?.string else { return nil }
        return job.stages[name] != nil ? name : nil
    }
}
