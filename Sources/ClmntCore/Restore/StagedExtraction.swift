import Foundation

/// How archive owners become owners on this host, for one molt.
struct OwnerMap: Sendable {
    /// The molt user here (or the invoking user when it is missing and users are skipped).
    var moltUID: UInt32
    var moltGID: UInt32
    /// Who owned the molt on the host that made the backup.
    var sourceUser: String
    var sourceGroup: String?
    var sourceUID: UInt32?
    var sourceGID: UInt32?
    /// The bash tool's archives: every file belongs to the molt user.
    var everythingToMolt: Bool
}

/// One selected molt being staged.
struct StageTarget: Sendable {
    var plan: MoltPlan
    var owner: OwnerMap
}

/// Everything the extracting thread needs; plain values only.
struct ExtractionJob: Sendable {
    var archive: String
    /// The manifest the plan was made from; the pass checks the archive against it.
    var located: LocatedManifest
    var format: ArchiveFormat { located.format }
    /// The open base dir; extraction runs with it as the working directory.
    var baseDirectory: Int32
    /// Its path: `<baseDir>/<name>` is where each molt of the archive would land.
    var baseDir: String
    /// The root-only directory (in the base dir) that holds one staged home per molt.
    var containerName: String
    var containerDirectory: Int32
    var stages: [String: StageTarget]
    /// Per molt of the archive: its home on the source host, as the manifest claims
    /// (used only to move absolute links along with the home, never to judge them).
    var sourceHomes: [String: String]
    /// Per molt of the archive: the user and group that owned it on the source host.
    var sourceOwners: [String: (user: String, group: String)]
    var restoredAt: String
    /// `RestoreOptions.allowOutsideSymlinks`; the links found are reported as warnings.
    var allowOutsideSymlinks = false
    /// The most data one molt may bring where the manifest's sizes mean nothing
    /// (bash-tool archives): the free space of the base dir's file system.
    var fallbackByteLimit: Int64?
    var cancellation: RestoreCancellation?
    var onProgress: (@Sendable (RestoreProgress) -> Void)?
}

/// What the extracting thread hands back.
struct ExtractionResult: Sendable {
    struct Molt: Sendable {
        var files = 0
        var bytes: Int64 = 0
        var rewrites: [String] = []
        var created: String?
        var port: Int?
    }
    var molts: [String: Molt] = [:]
    var warnings: [String] = []
}

/// Bookkeeping for one molt of the archive (selected or not: a hostile entry
/// anywhere refuses the whole archive). A class: updated in place per entry.
private final class MoltTally {
    var seen = Set<PathBytes>()
    /// Symlinks and files: nothing may lie below them.
    var nonDirectories = Set<PathBytes>()
    var regularFiles = Set<PathBytes>()
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
        func refuseOnProblem() throws(RestoreError) {
            if let problem = check.firstProblem { throw RestoreError(problem, archive: job.archive) }
        }
        var filesWritten = 0
        var lastProgress = Date.distantPast

        do {
            while let entry = try reader.next() {
                if job.cancellation?.isCancelled == true { throw RestoreError.interrupted }
                guard let place = check.admit(entry) else { try refuseOnProblem(); continue }
                switch place {
                case .manifest:
                    check.manifestData(try reader.readAll(limit: ArchiveIntegrity.manifestSizeLimit))
                case .report:
                    check.reportData(try reader.readAll(limit: ArchiveIntegrity.reportSizeLimit))
                case .checksums:
                    check.checksumsData(try reader.readAll(limit: ArchiveIntegrity.checksumsSizeLimit))
                case .archiveRoot:
                    break
                case .global:
                    // The source host's registry: read by nobody, written nowhere; checked like the rest.
                    if let problem = EntryPolicy.typeProblem(kind: entry.kind, mode: entry.mode) {
                        throw RestoreError.hostileEntry(path: entry.path.description, reason: problem)
                    }
                case .molt(let name, let relative):
                    if try handleMoltEntry(entry, name: name, relative: relative, reader: reader, disk: disk, check: check) {
                        filesWritten += 1
                    }
                }
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

        if job.cancellation?.isCancelled == true { throw .interrupted }
        guard check.entries > 0 else { throw .noManifest(archive: job.archive) }
        check.finish(selection: Set(job.stages.keys))
        try refuseOnProblem()
        warnings += check.notes
        // A link judged when it was read may lead elsewhere once later links exist: judge them all again.
        for name in tallies.keys.sorted() {
            guard let tally = tallies[name] else { continue }
            for (path, target) in tally.links.all.sorted(by: { $0.key < $1.key })
            where !tally.outsideLinks.contains(path) && !tally.links.staysInside(linkPath: path, target: target) {
                try judgeOutsideLink(path: PathBytes(name).appending(path).description, target: target)
            }
        }
        job.onProgress?(RestoreProgress(bytesRead: reader.compressedBytesRead, archiveBytes: archiveBytes,
                                        filesWritten: filesWritten, currentMolt: nil))

        // Adjust the staged homes for this host; closing the disk writer then sets
        // the times of the directories the rewrites touched.
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
        do {
            try disk.close()
            // The staged trees reach the disk before any of them is swapped in:
            // a power cut after the rename must not leave empty files behind.
            try DiskWriter.syncFileSystem(of: job.containerDirectory, displayPath: job.baseDir + "/" + job.containerName)
        } catch { throw .archive(error) }
        result.warnings = warnings + disk.warnings + reader.warnings.filter { !$0.contains("can't be converted") }
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
        guard tally.seen.insert(relative).inserted else {
            throw RestoreError.hostileEntry(path: shown, reason: "appears twice")
        }
        // Nothing may be written below a symlink or a file of the archive.
        var prefix = PathBytes([])
        for part in relative.components.dropLast() {
            prefix = prefix.appending(part)
            if tally.nonDirectories.contains(prefix) {
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
            guard tally.regularFiles.contains(linked) else {
                throw RestoreError.hostileEntry(path: shown, reason: "is a hard link to '\(target)', which is not an earlier file of the archive")
            }
            hardlinkRelative = linked
        default:
            break
        }
        if entry.kind != .directory { tally.nonDirectories.insert(relative) }
        if entry.kind == .regular || entry.kind == .hardlink { tally.regularFiles.insert(relative) }

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
