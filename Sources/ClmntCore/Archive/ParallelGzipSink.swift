import CArchive
import Foundation

/// Compresses the stream as a series of independent gzip members, several at
/// once on all cores (as pigz does), and writes them in order. Every gzip
/// reader, libarchive's and GNU gzip's included, reads a multi-member stream.
/// At most `2 × threads` chunks are in flight, so memory stays bounded.
final class ParallelGzipSink: OutputSink {
    private let destination: any OutputSink
    private let pipeline: GzipPipeline
    private var chunks: ChunkAccumulator
    private var nextSequence = 0

    init(destination: any OutputSink, level: Int, threads: Int, chunkSize: Int = 1 << 20) {
        self.destination = destination
        self.pipeline = GzipPipeline(level: level, maxInFlight: max(2, 2 * threads))
        chunks = ChunkAccumulator(chunkSize: chunkSize)
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(ArchiveError) {
        try chunks.append(bytes) { (chunk) throws(ArchiveError) in try submit(chunk) }
    }

    func finish() throws(ArchiveError) {
        let rest = chunks.takeRest()
        if !rest.isEmpty { try submit(rest) }
        while let compressed = pipeline.takeNext(waitFor: nextSequence) {
            try destination.write(compressed)
        }
        try destination.finish()
    }

    private func submit(_ chunk: [UInt8]) throws(ArchiveError) {
        let sequence = nextSequence
        nextSequence += 1
        // Write finished members in order while too many are in flight.
        while let compressed = pipeline.takeReady(beforeSubmitting: sequence) {
            try destination.write(compressed)
        }
        pipeline.submit(chunk, sequence: sequence)
    }
}

/// The shared state between the writer and the compressing workers.
private final class GzipPipeline: @unchecked Sendable {
    private let condition = NSCondition()
    private var finished: [Int: [UInt8]] = [:]
    private var nextToWrite = 0
    private let maxInFlight: Int
    private let level: Int32
    private var idleCompressors: [DeflateCompressor] = []

    init(level: Int, maxInFlight: Int) {
        self.level = Int32(level)
        self.maxInFlight = maxInFlight
    }

    func submit(_ chunk: [UInt8], sequence: Int) {
        DispatchQueue.global(qos: .userInitiated).async {
            let compressor = self.borrowCompressor()
            let compressed = compressor.gzip(chunk)
            self.condition.lock()
            self.idleCompressors.append(compressor)
            self.finished[sequence] = compressed
            self.condition.broadcast()
            self.condition.unlock()
        }
    }

    /// The next member in order if one must be written before `sequence` may be
    /// submitted (waiting for it), or one that is already done; nil otherwise.
    func takeReady(beforeSubmitting sequence: Int) -> [UInt8]? {
        condition.lock()
        defer { condition.unlock() }
        while sequence - nextToWrite >= maxInFlight && finished[nextToWrite] == nil {
            condition.wait()
        }
        return popNext()
    }

    /// The next member in order, waiting for it; nil once all before `end` are taken.
    func takeNext(waitFor end: Int) -> [UInt8]? {
        condition.lock()
        defer { condition.unlock() }
        guard nextToWrite < end else { return nil }
        while finished[nextToWrite] == nil { condition.wait() }
        return popNext()
    }

    private func popNext() -> [UInt8]? {
        guard let member = finished.removeValue(forKey: nextToWrite) else { return nil }
        nextToWrite += 1
        return member
    }

    private func borrowCompressor() -> DeflateCompressor {
        condition.lock()
        defer { condition.unlock() }
        return idleCompressors.popLast() ?? DeflateCompressor(level: level)
    }
}

/// One libdeflate compressor; not thread-safe, so each worker borrows its own.
private final class DeflateCompressor: @unchecked Sendable {
    private let handle: OpaquePointer

    init(level: Int32) {
        guard let handle = libdeflate_alloc_compressor(level) else { fatalError("libdeflate_alloc_compressor(\(level)) failed") }
        self.handle = handle
    }

    deinit { libdeflate_free_compressor(handle) }

    /// `input` as one complete gzip member.
    func gzip(_ input: [UInt8]) -> [UInt8] {
        let bound = libdeflate_gzip_compress_bound(handle, input.count)
        return [UInt8](unsafeUninitializedCapacity: bound) { output, count in
            count = input.withUnsafeBytes { raw in
                libdeflate_gzip_compress(handle, raw.baseAddress, raw.count, output.baseAddress, bound)
            }
            // The bound guarantees room; 0 would mean a libdeflate bug.
            precondition(count > 0 || input.isEmpty, "libdeflate_gzip_compress overflowed its bound")
        }
    }
}
