import Foundation

/// Runs the rest of the output chain on a thread of its own, fed 1 MiB chunks through a
/// queue of at most four: the thread that reads, hashes and formats the tar stream never
/// waits for the compressor's (or the encryptor's) turn, only for a full queue. This is the
/// shape of `tar -I zstd`, whose compressor is another process at the end of a pipe.
final class BackgroundSink: OutputSink {
    private let worker: ChunkWorker
    private var chunks = ChunkAccumulator(chunkSize: 1 << 20)

    /// `consume` takes each chunk, `complete` ends the chain; both run on the thread `name`d.
    init(name: String, consume: @escaping ([UInt8]) throws(ArchiveError) -> Void,
         complete: @escaping () throws(ArchiveError) -> Void) {
        worker = ChunkWorker(name: name, consume: consume, complete: complete)
    }

    /// `destination`'s writes and finish, moved to a thread of their own.
    convenience init(name: String, destination: any OutputSink) {
        self.init(name: name, consume: { (chunk) throws(ArchiveError) in try destination.write(chunk) },
                  complete: { () throws(ArchiveError) in try destination.finish() })
    }

    deinit { worker.stop() }

    func write(_ bytes: UnsafeRawBufferPointer) throws(ArchiveError) {
        try chunks.append(bytes) { (chunk) throws(ArchiveError) in try worker.submit(chunk) }
    }

    func finish() throws(ArchiveError) {
        let rest = chunks.takeRest()
        if !rest.isEmpty { try worker.submit(rest) }
        try worker.finish()
    }
}

/// The thread behind a `BackgroundSink`: takes chunks in order; the first failure stops it
/// and is thrown to the writer at its next chunk (or at `finish`).
private final class ChunkWorker: @unchecked Sendable {  // state behind `condition`
    private let consume: ([UInt8]) throws(ArchiveError) -> Void
    private let complete: () throws(ArchiveError) -> Void
    private let condition = NSCondition()
    private var queue: [[UInt8]] = []
    private var ending = false
    private var stopped = false
    private var done = false
    private var failure: ArchiveError?
    private let capacity = 4

    init(name: String, consume: @escaping ([UInt8]) throws(ArchiveError) -> Void,
         complete: @escaping () throws(ArchiveError) -> Void) {
        self.consume = consume
        self.complete = complete
        let thread = Thread { [self] in run() }
        thread.name = name
        thread.start()
    }

    func submit(_ chunk: [UInt8]) throws(ArchiveError) {
        condition.lock()
        defer { condition.unlock() }
        while queue.count >= capacity && failure == nil && !done { condition.wait() }
        if let failure { throw failure }
        queue.append(chunk)
        condition.broadcast()
    }

    func finish() throws(ArchiveError) {
        condition.lock()
        ending = true
        condition.broadcast()
        while !done { condition.wait() }
        let failure = self.failure
        condition.unlock()
        if let failure { throw failure }
    }

    /// Ends the thread without completing the chain (a failed or abandoned backup).
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        while !done { condition.wait() }
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty && !ending && !stopped { condition.wait() }
            if stopped || (queue.isEmpty && ending) {
                let finishing = !stopped && failure == nil
                condition.unlock()
                if finishing {
                    do { try complete() } catch { fail(error) }
                }
                condition.lock()
                done = true
                condition.broadcast()
                condition.unlock()
                return
            }
            let chunk = queue.removeFirst()
            condition.broadcast()
            let failed = failure != nil
            condition.unlock()
            guard !failed else { continue }
            do { try consume(chunk) } catch { fail(error) }
        }
    }

    private func fail(_ error: ArchiveError) {
        condition.lock()
        if failure == nil { failure = error }
        // Nothing more will be taken: let a waiting writer see the failure.
        queue.removeAll()
        condition.broadcast()
        condition.unlock()
    }
}
