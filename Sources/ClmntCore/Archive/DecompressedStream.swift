import CArchive
import Foundation

/// The decompressing half: a thread that fills a bounded queue of chunks.
final class DecompressedStream: @unchecked Sendable {
    private let path: String
    private let condition = NSCondition()
    /// Filled chunks (full-size buffers and the bytes used), and empty ones to reuse:
    /// recycling avoids a fresh mmap, page faults and zeroing for every MiB.
    /// Each chunk frees itself when dropped, on any path.
    private var queue: [(TransferBuffer, Int)] = []
    private var pool: [TransferBuffer] = []
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

    /// Opens the archive (so a missing file or a wrong key fails here) and starts the thread.
    func start() throws(ArchiveError) {
        let input = SourceReadBox(source: try ArchiveInput.open(path), path: path)
        let thread = Thread { [self] in
            produce(input: input)
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
        queue.removeAll()
        pool.removeAll()
        condition.unlock()
    }

    /// The next chunk and its byte count; hand it back with `recycle`. Nil at the end or on failure.
    func pop() -> (TransferBuffer, Int)? {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty && !finished && !stopped { condition.wait() }
        guard !queue.isEmpty else { return nil }
        let chunk = queue.removeFirst()
        condition.broadcast()
        return chunk
    }

    /// Returns a chunk from `pop` for reuse (freed once the stream is stopped).
    func recycle(_ chunk: TransferBuffer) {
        condition.withLock {
            if !stopped { pool.append(chunk) }
        }
    }

    private func emptyChunk() -> TransferBuffer {
        condition.withLock { pool.popLast() } ?? TransferBuffer(byteCount: chunkSize)
    }

    private func push(_ chunk: TransferBuffer, count: Int) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while queue.count >= capacity && !stopped { condition.wait() }
        guard !stopped else { return false }
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

    private func produce(input: SourceReadBox) {
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
            try input.open(handle)
            let header = ArchiveEntry()
            let status = archive_read_next_header2(handle, header.pointer)
            if status == ARCHIVE_EOF { finish(nil); return }
            if status != ARCHIVE_OK && status != ARCHIVE_WARN, let error = input.error { throw error }
            try checkArchive(status, handle, .read, path: path)
            var chunk = emptyChunk()
            var filled = 0
            while true {
                var block: UnsafeRawPointer?
                var length = 0
                var offset: Int64 = 0
                let result = archive_read_data_block(handle, &block, &length, &offset)
                if result == ARCHIVE_EOF { break }
                if result != ARCHIVE_OK && result != ARCHIVE_WARN, let error = input.error { throw error }
                try checkArchive(result, handle, .read, path: path)
                var copied = 0
                while copied < length, let block {
                    let count = min(chunkSize - filled, length - copied)
                    (chunk.bytes.baseAddress! + filled).copyMemory(from: block + copied, byteCount: count)
                    filled += count
                    copied += count
                    if filled == chunkSize {
                        guard push(chunk, count: filled) else { return }
                        chunk = emptyChunk()
                        filled = 0
                    }
                }
                let consumed = input.bytesRead
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
