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
    var format: ArchiveFormat
    var manifestNames: [String]
    var manifestDigest: String
    /// The open base dir; extraction runs with it as the working directory.
    var baseDirectory: Int32
    /// The root-only directory (in the base dir) that holds one staged home per molt.
    var containerName: String
    var containerDirectory: Int32
    var stages: [String: StageTarget]
    /// Per molt of the archive (selected or not): absolute homes its symlinks may point into.
    var sourceHomes: [String: [String]]
    /// Per molt of the archive: the user and group that owned it on the source host.
    var sourceOwners: [String: (user: String, group: String)]
    var restoredAt: String
    /// `RestoreOptions.allowOutsideSymlinks`; the links found are reported as warnings.
    var allowOutsideSymlinks = false
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

/// Counts and bookkeeping for one molt of the archive (selected or not: a
/// hostile entry anywhere refuses the whole archive). A class: updated in place per entry.
private final class MoltTally {
    var entries = 0
    var files = 0
    var bytes: Int64 = 0
    var sawHome = false
    var seen = Set<String>()
    /// Symlinks and files: nothing may lie below them.
    var nonDirectories = Set<String>()
    var regularFiles = Set<String>()
    /// archive path → SHA-256 (selected molts only).
    var digests: [String: String] = [:]
    var sizes: [String: Int64] = [:]
    var unknownOwners = 0
    var movedSymlinks = 0
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
                box.result = .failure(SafeFileSystem.failure("base dir"))
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
            disk = try DiskWriter()
        } catch { throw .archive(error) }
        var archiveBytes: Int64 = 0
        var st = stat()
        if stat(job.archive, &st) == 0 { archiveBytes = Int64(st.st_size) }

        let names = Set(job.manifestNames)
        for name in job.manifestNames { tallies[name] = MoltTally() }
        var entryIndex = 0
        var sawManifest = false
        var report: BackupReport?
        var checksums: [String: String]?
        var filesWritten = 0
        var lastProgress = Date.distantPast

        do {
            while let entry = try reader.next() {
                entryIndex += 1
                if job.cancellation?.isCancelled == true { throw RestoreError.interrupted }
                if checksums != nil {
                    throw RestoreError.contentMismatch(archive: job.archive, reason: "entry '\(entry.path)' follows SHA256SUMS, which must be last")
                }
                let place = try EntryPolicy.place(of: entry.path, format: job.format, molts: names)
                switch place {
                case .manifest:
                    guard !sawManifest else { throw RestoreError.hostileEntry(path: entry.path, reason: "is a second manifest") }
                    if job.format == .clmnt && entryIndex != 1 {
                        throw RestoreError.contentMismatch(archive: job.archive, reason: "manifest.json is not the first entry")
                    }
                    guard entry.kind == .regular else { throw RestoreError.hostileEntry(path: entry.path, reason: "is not a regular file") }
                    let data = try reader.readAll(limit: ManifestLocator.sizeLimit)
                    data.withUnsafeBytes { hasher.update($0) }
                    guard hasher.finalizeHex() == job.manifestDigest else {
                        throw RestoreError.planChanged("the archive's manifest differs from the one planned with")
                    }
                    sawManifest = true
                case .report:
                    guard entry.kind == .regular else { throw RestoreError.hostileEntry(path: entry.path, reason: "is not a regular file") }
                    let data = try reader.readAll(limit: 64 << 20)
                    do { report = try JSONDecoder().decode(BackupReport.self, from: data) } catch {
                        throw RestoreError.contentMismatch(archive: job.archive, reason: "backup-report.json cannot be read")
                    }
                case .checksums:
                    guard entry.kind == .regular else { throw RestoreError.hostileEntry(path: entry.path, reason: "is not a regular file") }
                    checksums = Self.parseChecksums(String(decoding: try reader.readAll(limit: 512 << 20), as: UTF8.self))
                case .archiveRoot:
                    guard entry.kind == .directory else { throw RestoreError.hostileEntry(path: entry.path, reason: "is not a directory") }
                case .global:
                    // The source host's registry: read by nobody, written nowhere; checked like the rest.
                    if let problem = EntryPolicy.typeProblem(kind: entry.kind, mode: entry.mode) {
                        throw RestoreError.hostileEntry(path: entry.path, reason: problem)
                    }
                case .molt(let name, let relative):
                    if !sawManifest && job.format == .clmnt {
                        throw RestoreError.contentMismatch(archive: job.archive, reason: "no manifest before the molts")
                    }
                    if try handleMoltEntry(entry, name: name, relative: relative, reader: reader, disk: disk) {
                        filesWritten += 1
                    }
                }
                if let onProgress = job.onProgress, entryIndex % 64 == 0, Date().timeIntervalSince(lastProgress) >= 0.1 {
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
        guard sawManifest else { throw .noManifest(archive: job.archive) }
        try verify(entryCount: entryIndex, report: report, checksums: checksums)
        job.onProgress?(RestoreProgress(bytesRead: reader.compressedBytesRead, archiveBytes: archiveBytes,
                                        filesWritten: filesWritten, currentMolt: nil))

        // Adjust the staged homes for this host, then let libarchive set the
        // directories' modes and times (it does those last).
        var result = ExtractionResult()
        for (name, stage) in job.stages.sorted(by: { $0.key < $1.key }) {
            let home = SafeFileSystem.openDirectory(at: job.containerDirectory, name)
            guard home >= 0 else { throw SafeFileSystem.failure(job.containerName + "/" + name) }
            defer { close(home) }
            let outcome = try HomeRewriter.apply(
                home: home, moltName: name, target: stage.plan.target, sourceHome: stage.plan.sourceHome,
                port: stage.plan.port, newPort: stage.plan.newPort, ownerUID: stage.owner.moltUID,
                ownerGID: stage.owner.moltGID, restoredAt: job.restoredAt)
            let tally = tallies[name] ?? MoltTally()
            var rewrites = outcome.rewrites
            if tally.movedSymlinks > 0 {
                rewrites.append("\(tally.movedSymlinks) absolute symlink\(tally.movedSymlinks == 1 ? "" : "s") into the old home now point\(tally.movedSymlinks == 1 ? "s" : "") into \(stage.plan.target)")
            }
            result.molts[name] = ExtractionResult.Molt(files: tally.files, bytes: tally.bytes, rewrites: rewrites,
                                                       created: outcome.created, port: outcome.port)
            if tally.unknownOwners > 0 {
                warnings.append("\(name): \(tally.unknownOwners) entr\(tally.unknownOwners == 1 ? "y" : "ies") owned by users or groups unknown here were given to \(name)")
            }
        }
        do { try disk.close() } catch { throw .archive(error) }
        result.warnings = warnings + disk.warnings + reader.warnings.filter { !$0.contains("can't be converted") }
        return result
    }

    /// Validates and (for a selected molt) writes one entry; true when a file was written.
    private func handleMoltEntry(_ entry: EntryMetadata, name: String, relative: String,
                                 reader: PipelinedArchiveReader, disk: DiskWriter) throws -> Bool {
        let tally: MoltTally
        if let existing = tallies[name] { tally = existing } else { tally = MoltTally(); tallies[name] = tally }
        let shown = entry.path
        guard tally.seen.insert(relative).inserted else {
            throw RestoreError.hostileEntry(path: shown, reason: "appears twice")
        }
        if relative.isEmpty {
            guard entry.kind == .directory else { throw RestoreError.hostileEntry(path: shown, reason: "is the molt's home but not a directory") }
            tally.sawHome = true
        }
        // Nothing may be written below a symlink or a file of the archive.
        var prefix = ""
        for part in relative.split(separator: "/").dropLast() {
            prefix = prefix.isEmpty ? String(part) : prefix + "/" + part
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
        var hardlinkRelative: String?
        var newSymlinkTarget: String?
        switch entry.kind {
        case .symlink:
            let target = entry.symlinkTarget ?? ""
            let homes = job.sourceHomes[name] ?? []
            if !EntryPolicy.symlinkStaysInside(linkPath: relative, target: target, homes: homes) {
                guard job.allowOutsideSymlinks else {
                    throw RestoreError.hostileEntry(
                        path: shown, reason: "is a symlink pointing outside its molt ('\(target)'); --allow-outside-symlinks restores such links")
                }
                warnings.append("\(shown): symlink pointing outside its molt ('\(target)') restored as a link")
            }
            // An absolute link into the old home follows the home to its new place.
            if target.hasPrefix("/"), let stage = job.stages[name], let old = stage.plan.sourceHome, old != stage.plan.target {
                var moved = target
                if HomeRewriter.replacePathPrefix(in: &moved, old: old, new: stage.plan.target) > 0, moved.hasPrefix(stage.plan.target) {
                    newSymlinkTarget = moved
                    tally.movedSymlinks += 1
                }
            }
        case .hardlink:
            let target = entry.hardlinkTarget ?? ""
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
        tally.entries += 1
        if entry.kind != .directory {
            tally.files += 1
            tally.nonDirectories.insert(relative)
        }
        if entry.kind == .regular || entry.kind == .hardlink { tally.regularFiles.insert(relative) }
        if entry.kind == .regular { tally.bytes += entry.size }

        guard let stage = job.stages[name] else { return false }
        let base = job.containerName + "/" + name
        let path = relative.isEmpty ? base : base + "/" + relative
        let owner = owner(for: entry, map: stage.owner, unknown: &tally.unknownOwners)
        if entry.kind == .regular, (entry.mode & 0o4000 != 0 && owner.uid == 0) || (entry.mode & 0o2000 != 0 && owner.gid == 0) {
            throw RestoreError.hostileEntry(path: shown, reason: "would become a setuid or setgid file of root here")
        }
        let written = try disk.write(from: reader, path: path, hardlinkTarget: hardlinkRelative.map { base + "/" + $0 },
                                     symlinkTarget: newSymlinkTarget,
                                     uid: owner.uid, gid: owner.gid,
                                     hash: entry.kind == .regular && job.format == .clmnt ? hasher : nil, displayPath: shown,
                                     shouldStop: { [job] in job.cancellation?.isCancelled == true })
        if let written, let digest = written.digest {
            let archivePath = name + "/" + relative
            tally.digests[archivePath] = digest
            tally.sizes[archivePath] = written.size
        }
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

    /// Checks the pass against the manifest, the report and the checksums.
    private func verify(entryCount: Int, report: BackupReport?, checksums: [String: String]?) throws(RestoreError) {
        for name in job.manifestNames where tallies[name]?.sawHome != true {
            throw .contentMismatch(archive: job.archive, reason: "the manifest lists molt '\(name)' but the archive holds no home directory for it")
        }
        guard job.format == .clmnt else { return }
        guard let checksums else {
            throw .contentMismatch(archive: job.archive, reason: "SHA256SUMS, the last entry, is missing: the archive ends early")
        }
        guard let report else {
            throw .contentMismatch(archive: job.archive, reason: "backup-report.json is missing")
        }
        guard report.entryCount == entryCount else {
            throw .contentMismatch(archive: job.archive, reason: "it holds \(entryCount) entries where the backup wrote \(report.entryCount)")
        }
        for name in job.manifestNames {
            guard let expected = report.molts[name], let tally = tallies[name] else {
                throw .contentMismatch(archive: job.archive, reason: "backup-report.json has no counts for molt '\(name)'")
            }
            if expected.entryCount != tally.entries {
                throw .contentMismatch(archive: job.archive, reason: "\(name) has \(tally.entries) entries where the backup wrote \(expected.entryCount)")
            }
            if expected.fileCount != tally.files {
                throw .contentMismatch(archive: job.archive, reason: "\(name) has \(tally.files) files where the backup wrote \(expected.fileCount)")
            }
            if expected.backupSizeBytes != tally.bytes {
                throw .contentMismatch(archive: job.archive, reason: "\(name) holds \(tally.bytes) bytes where the backup wrote \(expected.backupSizeBytes)")
            }
        }
        for name in job.stages.keys {
            guard let tally = tallies[name] else { continue }
            for (path, digest) in tally.digests {
                guard let expected = checksums[path] else {
                    if tally.sizes[path] == 0 { continue }
                    throw .contentMismatch(archive: job.archive, reason: "\(path) has no line in SHA256SUMS")
                }
                guard expected == digest else {
                    throw .contentMismatch(archive: job.archive, reason: "\(path) does not match its SHA-256 in SHA256SUMS")
                }
            }
            let prefix = name + "/"
            for path in checksums.keys where path.hasPrefix(prefix) && tally.digests[path] == nil {
                throw .contentMismatch(archive: job.archive, reason: "\(path) is listed in SHA256SUMS but missing from the archive")
            }
        }
    }

    private func currentMolt(_ path: String) -> String? {
        var trimmed = Substring(path)
        if trimmed.hasPrefix("./") { trimmed = trimmed.dropFirst(2) }
        guard let first = trimmed.split(separator: "/").first else { return nil }
        let name = String(first)
        return job.stages[name] != nil ? name : nil
    }

    /// Parses `sha256sum` lines (with GNU's `\` escaping) into path → digest.
    static func parseChecksums(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        for rawLine in text.split(separator: "\n") {
            var line = Substring(rawLine)
            let escaped = line.hasPrefix("\\")
            if escaped { line = line.dropFirst() }
            guard line.utf8.count > 66 else { continue }
            let digest = String(line.prefix(64)).lowercased()
            // "<digest>  path" (text mode) or "<digest> *path" (binary mode)
            var path = String(line.dropFirst(66))
            if escaped {
                var unescaped = ""
                var iterator = path.makeIterator()
                while let character = iterator.next() {
                    guard character == "\\", let next = iterator.next() else { unescaped.append(character); continue }
                    switch next {
                    case "n": unescaped.append("\n")
                    case "r": unescaped.append("\r")
                    default: unescaped.append(next)
                    }
                }
                path = unescaped
            }
            result[path] = digest
        }
        return result
    }
}
