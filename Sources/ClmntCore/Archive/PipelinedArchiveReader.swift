import CArchive
import CLinux
import Foundation

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
        try readData(limit: limit) { data.append(contentsOf: $0) }
        return data
    }

    /// Hands the current entry's bytes to `body` a chunk at a time, refusing more than `limit` bytes.
    func readData(limit: Int, _ body: (UnsafeRawBufferPointer) -> Void) throws(ArchiveError) {
        var total = 0
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { archive_read_data(handle, $0.baseAddress, $0.count) }
            if count == 0 { break }
            if count < 0 {
                if let failure = stream.failure { throw failure }
                throw ArchiveError.fromArchive(handle, .read, path: "\(path): \(entry.pathname)")
            }
            total += count
            guard total <= limit else {
                throw ArchiveError(.read, path: "\(path): \(entry.pathname)", message: "entry larger than \(limit) bytes")
            }
            buffer.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        }
    }

    /// Compressed bytes of the file consumed so far (for progress).
    var compressedBytesRead: Int64 { stream.compressedBytes }
}

/// Carries the stream into libarchive's read callback, and keeps the chunk it is reading alive.
private final class StreamBox {
    let stream: DecompressedStream
    private var current: TransferBuffer?

    init(stream: DecompressedStream) { self.stream = stream }

    /// The next chunk (the previous one goes back to the stream's pool), or nil at the end.
    func nextChunk() -> UnsafeRawBufferPointer? {
        releaseCurrent()
        guard let (chunk, count) = stream.pop() else { return nil }
        current = chunk
        return UnsafeRawBufferPointer(rebasing: chunk.bytes[0..<count])
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
