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
        try RestoreError.step { () throws(SystemError) in
            try SafeFileSystem.writeFile(at: container, Self.fileName, data: data, uid: geteuid(), gid: getegid(), mode: 0o600,
                                         displayPath: displayPath)
        }
        SafeFileSystem.syncDirectory(container)
    }

    /// The journal in an open container, when there is one (a root-owned regular file).
    static func read(container: Int32) -> RestoreJournal? {
        guard let file = try? SafeFileSystem.readFile(at: container, fileName, displayPath: fileName),
              file.status.st_uid == geteuid() else { return nil }
        return try? JSONDecoder().decode(RestoreJournal.self, from: file.data)
    }
}
