import Foundation

/// Where the bytes of an archive go, in order.
protocol OutputSink: AnyObject {
    func write(_ bytes: UnsafeRawBufferPointer) throws(ArchiveError)
    /// Flushes whatever is buffered; no write follows.
    func finish() throws(ArchiveError)
}

/// Writes straight to a file descriptor it does not own, retrying short writes and EINTR.
final class FileDescriptorSink: OutputSink {
    let fileDescriptor: Int32
    let path: String
    private(set) var bytesWritten: Int64 = 0
    /// Where the disk's writeback was last asked to start (see `startWriteback`).
    private var writebackStarted: Int64 = 0
    private var writebackWorks = true

    init(fileDescriptor: Int32, path: String) {
        self.fileDescriptor = fileDescriptor
        self.path = path
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(ArchiveError) {
        guard var base = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let written = Glibc.write(fileDescriptor, base, remaining)
            if written < 0 {
                if errno == EINTR { continue }
                throw ArchiveError.fromErrno(.write, path: path)
            }
            remaining -= written
            base += written
            bytesWritten += Int64(written)
        }
        if bytesWritten - writebackStarted >= 8 << 20 { startWriteback() }
    }

    /// Asks the kernel to start writing what was written so far (`sync_file_range`, which does
    /// not wait), so the archive's closing fsync finds little left to write: on a 150 MB archive
    /// that fsync took a third of a second, all of it after the last byte. Not a file (a pipe):
    /// nothing to do.
    private func startWriteback() {
        guard writebackWorks else { return }
        writebackWorks = LinuxCalls.startWriteback(fileDescriptor, offset: writebackStarted, count: bytesWritten - writebackStarted)
        writebackStarted = bytesWritten
    }

    func finish() throws(ArchiveError) {}
}

extension OutputSink {
    func write(_ bytes: [UInt8]) throws(ArchiveError) {
        let result: Result<Void, ArchiveError> = bytes.withUnsafeBytes { raw in
            do throws(ArchiveError) { try write(raw); return .success(()) } catch { return .failure(error) }
        }
        try result.get()
    }
}

/// Gathers written bytes into chunks of one size, handing each full one on: the parallel
/// gzip members and the age chunks are cut by it.
struct ChunkAccumulator {
    let chunkSize: Int
    private var pending: [UInt8] = []

    init(chunkSize: Int) {
        self.chunkSize = chunkSize
        pending.reserveCapacity(chunkSize)
    }

    /// Appends `bytes`; `full` gets each chunk as it fills.
    mutating func append(_ bytes: UnsafeRawBufferPointer, full: ([UInt8]) throws(ArchiveError) -> Void) throws(ArchiveError) {
        var rest = bytes[...]
        while !rest.isEmpty {
            let take = min(chunkSize - pending.count, rest.count)
            pending.append(contentsOf: rest.prefix(take))
            rest = rest.dropFirst(take)
            if pending.count == chunkSize { try full(takeRest()) }
        }
    }

    /// What is gathered so far (empty at a chunk boundary); the accumulator starts again.
    mutating func takeRest() -> [UInt8] {
        let chunk = pending
        pending = []
        pending.reserveCapacity(chunkSize)
        return chunk
    }
}
