/// The `sha256sum` lines of every file a backup archives, in archive order, for the
/// trailing `SHA256SUMS`. Each line is made as its file is archived and set aside in a
/// `SpillFile`: a fleet of a million files needs about 130 MB of lines, which go to an
/// unnamed scratch file rather than memory.
struct DigestLog {
    private let lines: SpillFile
    private var digest: [UInt8] = []

    init(scratchDirectory: String) { lines = SpillFile(directory: scratchDirectory) }

    /// Takes `hasher`'s digest (which resets it) for the entry at `archivePath`.
    mutating func record(_ hasher: SHA256Hasher, archivePath: PathBytes) throws(BackupError) {
        digest.removeAll(keepingCapacity: true)
        hasher.finalize(appendingTo: &digest)
        do { try lines.append(ChecksumList.line(digest: digest, path: archivePath)) } catch {
            throw .outputDirectory(path: error.path, reason: "cannot set the SHA-256 lines aside: \(error.reason)")
        }
    }

    /// The size of `SHA256SUMS`.
    var byteCount: Int { lines.byteCount }

    /// `SHA256SUMS`, in order, a chunk at a time.
    func forEachChunk(_ body: (ArraySlice<UInt8>) throws(BackupError) -> Void) throws(BackupError) {
        do { try lines.forEachChunk { try body($0) } } catch let error as BackupError { throw error } catch let error as SystemError {
            throw .unreadable(path: error.path, reason: "cannot read the SHA-256 lines back: \(error.reason)")
        } catch {
            throw .unreadable(path: "SHA256SUMS", reason: "\(error)")
        }
    }
}
