import CArchive
import Foundation

/// Writes entries read by an `ArchiveReader` to disk through libarchive's
/// `archive_write_disk`, with the SECURE_* flags: no absolute paths, no `..`,
/// never through a symlink. Paths given to it are relative to the calling
/// thread's working directory; the caller chooses that directory, and keeps
/// one `DiskWriter` working from one thread at a time (libarchive 3.6.2's disk
/// writer changes the umask while it works, CVE-2023-30571).
final class DiskWriter {
    private let handle: OpaquePointer
    /// Warnings libarchive or the xattr filter reported (one line each).
    private(set) var warnings: [String] = []
    private var isOpen = true
    private let zeros = [UInt8](repeating: 0, count: 64 * 1024)

    /// What was written for one regular file.
    struct WrittenFile {
        /// Apparent size (holes of sparse files included).
        var size: Int64
        /// SHA-256 of the content (holes as zeros), nil when not asked for.
        var digest: String?
    }

    static let flags: Int32 = ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT
        | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM
        | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_ACL | ARCHIVE_EXTRACT_XATTR

    init() throws(ArchiveError) {
        guard let handle = archive_write_disk_new() else {
            throw ArchiveError(.open, path: "(disk)", message: "out of memory")
        }
        self.handle = handle
        do {
            try checkArchive(archive_write_disk_set_options(handle, DiskWriter.flags), handle, .configure, path: "(disk)")
            // Named users and groups of ACL entries are mapped by name; file
            // owners are set by number by the caller (their names are cleared).
            try checkArchive(archive_write_disk_set_standard_lookup(handle), handle, .configure, path: "(disk)")
        } catch {
            archive_write_free(handle)
            throw error
        }
    }

    deinit { archive_write_free(handle) }

    /// Writes the reader's current entry at `path` (relative), owned by
    /// `uid`/`gid`, as a hard link to `hardlinkTarget` (relative) when given,
    /// with its symlink target replaced by `symlinkTarget` when given.
    /// Regular files get their data copied, hashed when `hash` is set.
    /// Extended attributes outside the `user.` namespace are dropped with a
    /// warning (`security.capability` would hand out privileges, and the
    /// `system.posix_acl_*` blobs carry numeric ids; ACLs come back by name).
    /// `displayPath` names the entry in messages.
    @discardableResult
    func write(from reader: some TarEntrySource, path: PathBytes, hardlinkTarget: PathBytes?, symlinkTarget: PathBytes? = nil,
               uid: UInt32, gid: UInt32,
               hash: SHA256Hasher?, displayPath: String,
               shouldStop: () -> Bool = { false }) throws(ArchiveError) -> WrittenFile? {
        let entry = reader.entry.pointer
        reader.entry.pathname = path
        if let hardlinkTarget {
            reader.entry.hardlink = hardlinkTarget
            archive_entry_set_size(entry, 0)
        }
        if let symlinkTarget { reader.entry.symlink = symlinkTarget }
        archive_entry_set_uid(entry, Int64(uid))
        archive_entry_set_gid(entry, Int64(gid))
        archive_entry_copy_uname(entry, nil)
        archive_entry_copy_gname(entry, nil)
        filterExtendedAttributes(entry, displayPath: displayPath)

        let isRegular = hardlinkTarget == nil && archive_entry_filetype(entry) == FileType.regular
        try check(archive_write_header(handle, entry), displayPath)
        var written: WrittenFile?
        if isRegular {
            written = try copyData(from: reader, size: archive_entry_size(entry), hash: hash, displayPath: displayPath,
                                   shouldStop: shouldStop)
        }
        try check(archive_write_finish_entry(handle), displayPath)
        return written
    }

    /// Completes the pending work (directory modes and times are set last,
    /// deepest first) and releases the writer.
    func close() throws(ArchiveError) {
        guard isOpen else { return }
        isOpen = false
        try check(archive_write_close(handle), "(restore)")
    }

    private func copyData(from reader: some TarEntrySource, size: Int64, hash: SHA256Hasher?, displayPath: String,
                          shouldStop: () -> Bool) throws(ArchiveError) -> WrittenFile {
        var hashedUpTo: Int64 = 0
        var chunks = 0
        func hashZeros(upTo offset: Int64) throws(ArchiveError) {
            guard let hash else { return }
            while hashedUpTo < offset {
                // A huge hole (a sparse bomb) must not outlast a signal: look every 4 MiB.
                chunks += 1
                if chunks % 64 == 0, shouldStop() { throw ArchiveError(.extract, path: displayPath, code: EINTR, message: "interrupted") }
                let count = Int(min(Int64(zeros.count), offset - hashedUpTo))
                zeros.withUnsafeBytes { hash.update(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                hashedUpTo += Int64(count)
            }
        }
        var blocks = 0
        while true {
            blocks += 1
            if blocks % 64 == 0, shouldStop() { throw ArchiveError(.extract, path: displayPath, code: EINTR, message: "interrupted") }
            var buffer: UnsafeRawPointer?
            var length = 0
            var offset: Int64 = 0
            let status = archive_read_data_block(reader.handle, &buffer, &length, &offset)
            if status == ARCHIVE_EOF { break }
            if status != ARCHIVE_OK {
                if status == ARCHIVE_WARN { warnings.append("\(displayPath): \(readerMessage(reader))"); continue }
                throw ArchiveError.fromArchive(reader.handle, .read, path: "\(reader.path): \(displayPath)")
            }
            guard let buffer, length > 0 else { continue }
            if let hash {
                try hashZeros(upTo: offset)
                hash.update(UnsafeRawBufferPointer(start: buffer, count: length))
                hashedUpTo = offset + Int64(length)
            }
            // libarchive reports a failed or short write(2) (ENOSPC, EIO, EDQUOT)
            // as a mere ARCHIVE_WARN: for a restore every one is fatal.
            let result = archive_write_data_block(handle, buffer, length, offset)
            if result != ARCHIVE_OK { throw writeFailure(displayPath) }
        }
        try hashZeros(upTo: size)
        return WrittenFile(size: size, digest: hash?.finalizeHex())
    }

    private func check(_ status: Int32, _ displayPath: String) throws(ArchiveError) {
        if status == ARCHIVE_OK { return }
        // Metadata libarchive could not set is a warning; storage running out or failing never is.
        if status == ARCHIVE_WARN && !DiskWriter.storageErrors.contains(archive_errno(handle)) {
            warnings.append("\(displayPath): \(message())")
            return
        }
        throw ArchiveError.fromArchive(handle, .extract, path: displayPath)
    }

    static let storageErrors: Set<Int32> = [ENOSPC, EDQUOT, EIO, EFBIG, EROFS]

    /// A failed write of data, with the path and errno's text.
    private func writeFailure(_ displayPath: String) -> ArchiveError {
        let code = archive_errno(handle)
        let text = archive_error_string(handle).map { String(cString: $0) } ?? "write failed"
        return ArchiveError(.write, path: displayPath, code: code,
                            message: code != 0 ? "\(text): \(String(cString: strerror(code)))" : text)
    }

    /// Flushes the whole file system holding `directory` (`syncfs(2)`).
    static func syncFileSystem(of directory: Int32, displayPath: String) throws(ArchiveError) {
        guard LinuxCalls.syncFileSystem(directory) else { throw ArchiveError.fromErrno(.write, path: displayPath) }
    }

    private func message() -> String {
        archive_error_string(handle).map { String(cString: $0) } ?? "warning"
    }

    private func readerMessage(_ reader: some TarEntrySource) -> String {
        archive_error_string(reader.handle).map { String(cString: $0) } ?? "warning"
    }

    private func filterExtendedAttributes(_ entry: OpaquePointer, displayPath: String) {
        guard archive_entry_xattr_reset(entry) > 0 else { return }
        var kept: [(String, Data)] = []
        var dropped: [String] = []
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var length = 0
        while archive_entry_xattr_next(entry, &name, &value, &length) == ARCHIVE_OK {
            guard let name else { continue }
            let key = String(cString: name)
            if key.hasPrefix("user.") {
                kept.append((key, value.map { Data(bytes: $0, count: length) } ?? Data()))
            } else {
                dropped.append(key)
            }
        }
        guard !dropped.isEmpty else { return }
        archive_entry_xattr_clear(entry)
        for (key, data) in kept {
            data.withUnsafeBytes { archive_entry_xattr_add_entry(entry, key, $0.baseAddress, data.count) }
        }
        warnings.append("\(displayPath): extended attribute\(dropped.count == 1 ? "" : "s") \(dropped.joined(separator: ", ")) not restored (only user.* are)")
    }
}

extension ArchiveReader {
    /// The raw file-type and permission bits of the current entry's header
    /// (what `EntryMetadata.mode` leaves out).
    var currentEntryFileType: UInt32 { UInt32(archive_entry_filetype(entry.pointer)) }

    /// The current entry's size as its header gives it (hard links included).
    var currentEntryHeaderSize: Int64 { archive_entry_size(entry.pointer) }
}

/// What `DiskWriter` needs of a reader positioned on an entry.
protocol TarEntrySource: AnyObject {
    var handle: OpaquePointer { get }
    var entry: ArchiveEntry { get }
    var path: String { get }
}

extension ArchiveReader: TarEntrySource {}

/// Reads a fleet archive with decompression on a second thread: one thread
/// inflates the file (libarchive's filters, "raw" format) into a small queue of
/// 1 MiB chunks, the calling thread parses the tar stream from that queue
/// (tar format only, no filter). As `tar -xzf` pipes through `gzip -d`, so the
/// two halves of a restore overlap; memory stays bounded by the queue.
final class PipelinedArchiveReader: TarEntrySource {
    let handle: OpaquePointer
    let path: String
    let entry = ArchiveEntry()
    private let stream: DecompressedStream
    private let box: StreamBox
    private(set) var warnings: [String] = []

    init(path: String) throws(ArchiveError) {
        self.path = path
        let stream = DecompressedStream(path: path)
        try stream.start()
        guard let handle = archive_read_new() else {
            stream.stop()
            throw ArchiveError(.open, path: path, message: "out of memory")
        }
        self.handle = handle
        self.stream = stream
        self.box = StreamBox(stream: stream)
        // Fully initialized from here: a throw runs deinit, which frees the handle and stops the thread.
        try checkArchive(archive_read_support_format_tar(handle), handle, .configure, path: path)
        let context = Unmanaged.passUnretained(box).toOpaque()
        let status = archive_read_open(handle, context, nil, pipelineReadCallback, nil)
        if status != ARCHIVE_OK { throw stream.failure ?? ArchiveError.fromArchive(handle, .open, path: path) }
    }

    deinit {
        archive_read_free(handle)
        stream.stop()
        box.releaseCurrent()
    }

    /// The next entry's header, or nil at the end of the archive.
    func next() throws(ArchiveError) -> EntryMetadata? {
        let status = archive_read_next_header2(handle, entry.pointer)
        if status == ARCHIVE_EOF {
            if let failure = stream.failure { throw failure }
            return nil
        }
        if status != ARCHIVE_OK && status != ARCHIVE_WARN, let failure = stream.failure { throw failure }
        try checkArchive(status, handle, .read, path: path, warnings: &warnings)
        return entry.metadata
    }

    /// Reads the whole current entry into memory, refusing more than `limit` bytes.
    func readAll(limit: Int) throws(ArchiveError) -> Data {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { archive_read_data(handle, $0.baseAddress, $0.count) }
            if count == 0 { break }
            if count < 0 {
                if let failure = stream.failure { throw failure }
                throw ArchiveError.fromArchive(handle, .read, path: "\(path): \(entry.pathname)")
            }
            guard data.count + count <= limit else {
                throw ArchiveError(.read, path: "\(path): \(entry.pathname)", message: "entry larger than \(limit) bytes")
            }
            data.append(contentsOf: buffer[0..<count])
        }
        return data
    }

    /// Compressed bytes of the file consumed so far (for progress).
    var compressedBytesRead: Int64 { stream.compressedBytes }
}

/// Carries the stream into libarchive's read callback, and keeps the chunk it is reading alive.
private final class StreamBox {
    let stream: DecompressedStream
    private var current: UnsafeMutableRawBufferPointer?

    init(stream: DecompressedStream) { self.stream = stream }

    /// The next chunk (the previous one goes back to the stream's pool), or nil at the end.
    func nextChunk() -> UnsafeRawBufferPointer? {
        releaseCurrent()
        guard let (chunk, count) = stream.pop() else { return nil }
        current = chunk
        return UnsafeRawBufferPointer(rebasing: chunk[0..<count])
    }

    func releaseCurrent() {
        if let current { stream.recycle(current) }
        current = nil
    }
}

private func pipelineReadCallback(_ archive: OpaquePointer?, _ context: UnsafeMutableRawPointer?,
                                  _ buffer: UnsafeMutablePointer<UnsafeRawPointer?>?) -> Int {
    guard let context else { return -1 }
    let box = Unmanaged<StreamBox>.fromOpaque(context).takeUnretainedValue()
    guard let chunk = box.nextChunk() else {
        if let failure = box.stream.failure {
            if let archive { clmnt_archive_set_error(archive, failure.code == 0 ? EIO : failure.code, failure.message) }
            return -1
        }
        return 0
    }
    buffer?.pointee = UnsafeRawPointer(chunk.baseAddress)
    return chunk.count
}

/// The decompressing half: a thread that fills a bounded queue of chunks.
final class DecompressedStream: @unchecked Sendable {
    private let path: String
    private let condition = NSCondition()
    /// Filled chunks (full-size buffers and the bytes used), and empty ones to reuse:
    /// recycling avoids a fresh mmap, page faults and zeroing for every MiB.
    private var queue: [(UnsafeMutableRawBufferPointer, Int)] = []
    private var pool: [UnsafeMutableRawBufferPointer] = []
    private var finished = false
    private var stopped = false
    private var threadDone = false
    private var error: ArchiveError?
    private var bytesConsumed: Int64 = 0
    private let capacity = 8
    private let chunkSize = 1 << 20

    init(path: String) { self.path = path }

    var failure: ArchiveError? { condition.withLock { error } }
    var compressedBytes: Int64 { condition.withLock { bytesConsumed } }

    /// Opens the file (so a missing file fails here) and starts the thread.
    func start() throws(ArchiveError) {
        let fd = try openArchiveFile(path)
        let thread = Thread { [self] in
            produce(fd: fd)
            close(fd)
            condition.withLock { threadDone = true; condition.broadcast() }
        }
        thread.name = "clmnt-inflate"
        thread.start()
    }

    /// Stops the thread (if still running), waits for it, and frees what it queued.
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        while !threadDone { condition.wait() }
        for (chunk, _) in queue { chunk.deallocate() }
        for chunk in pool { chunk.deallocate() }
        queue.removeAll()
        pool.removeAll()
        condition.unlock()
    }

    /// The next chunk and its byte count; hand it back with `recycle`. Nil at the end or on failure.
    func pop() -> (UnsafeMutableRawBufferPointer, Int)? {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty && !finished && !stopped { condition.wait() }
        guard !queue.isEmpty else { return nil }
        let chunk = queue.removeFirst()
        condition.broadcast()
        return chunk
    }

    /// Returns a chunk from `pop` for reuse (freed once the stream is stopped).
    func recycle(_ chunk: UnsafeMutableRawBufferPointer) {
        condition.withLock {
            if stopped { chunk.deallocate() } else { pool.append(chunk) }
        }
    }

    private func emptyChunk() -> UnsafeMutableRawBufferPointer {
        condition.withLock { pool.popLast() } ?? UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
    }

    private func push(_ chunk: UnsafeMutableRawBufferPointer, count: Int) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while queue.count >= capacity && !stopped { condition.wait() }
        guard !stopped else { chunk.deallocate(); return false }
        queue.append((chunk, count))
        condition.broadcast()
        return true
    }

    private func finish(_ failure: ArchiveError?) {
        condition.withLock {
            error = error ?? failure
            finished = true
            condition.broadcast()
        }
    }

    private func produce(fd: Int32) {
        guard let handle = archive_read_new() else {
            finish(ArchiveError(.open, path: path, message: "out of memory"))
            return
        }
        defer { archive_read_free(handle) }
        do throws(ArchiveError) {
            for add in [archive_read_support_filter_gzip, archive_read_support_filter_zstd,
                        archive_read_support_filter_xz, archive_read_support_filter_bzip2,
                        archive_read_support_format_raw] {
                try checkArchive(add(handle), handle, .configure, path: path)
            }
            try checkArchive(archive_read_open_fd(handle, fd, 1 << 20), handle, .open, path: path)
            let header = ArchiveEntry()
            let status = archive_read_next_header2(handle, header.pointer)
            if status == ARCHIVE_EOF { finish(nil); return }
            try checkArchive(status, handle, .read, path: path)
            var chunk = emptyChunk()
            var filled = 0
            while true {
                var block: UnsafeRawPointer?
                var length = 0
                var offset: Int64 = 0
                let result = archive_read_data_block(handle, &block, &length, &offset)
                if result == ARCHIVE_EOF { break }
                try checkArchive(result, handle, .read, path: path)
                var copied = 0
                while copied < length, let block {
                    let count = min(chunkSize - filled, length - copied)
                    (chunk.baseAddress! + filled).copyMemory(from: block + copied, byteCount: count)
                    filled += count
                    copied += count
                    if filled == chunkSize {
                        guard push(chunk, count: filled) else { return }
                        chunk = emptyChunk()
                        filled = 0
                    }
                }
                let consumed = archive_filter_bytes(handle, -1)
                condition.withLock { bytesConsumed = consumed }
            }
            if filled > 0 {
                guard push(chunk, count: filled) else { return }
            } else {
                recycle(chunk)
            }
            finish(nil)
        } catch {
            finish(error)
        }
    }
}
