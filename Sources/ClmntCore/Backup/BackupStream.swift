import Foundation

/// Where a backup's archive goes when it is not a local file written atomically: standard
/// output (`-o -`), an object in a bucket (`--to s3://…`). The archive streams in as it is
/// made; `commit` makes it appear whole, `discard` makes sure nothing appears.
public protocol BackupStream: AnyObject {
    /// For messages and the summary: `-` or `s3://bucket/key`.
    var name: String { get }
    func write(_ bytes: [UInt8]) throws
    /// The archive is complete: make it appear. Returns the bytes written.
    func commit() throws -> Int64
    /// Gives the archive up (after a failure or a signal); safe to call more than once.
    func discard()
}

/// `-o -`: the archive on standard output, for `clmnt fleet backup -o - | ssh host 'cat > x'`.
public final class StandardOutputStream: BackupStream {
    public let name = "-"
    private let sink = FileDescriptorSink(fileDescriptor: 1, path: "standard output")

    public init() {}

    public func write(_ bytes: [UInt8]) throws { try sink.write(bytes) }

    public func commit() throws -> Int64 {
        // A pipe has nothing to sync; a file redirected to has (EINVAL from a pipe is fine).
        if fsync(1) != 0 && errno != EINVAL && errno != EROFS {
            throw ArchiveError.fromErrno(.finish, path: "standard output")
        }
        return sink.bytesWritten
    }

    public func discard() {}
}

/// Feeds the archive writer's output into a `BackupStream`.
final class BackupStreamSink: OutputSink {
    let stream: any BackupStream
    private(set) var bytesWritten: Int64 = 0

    init(stream: any BackupStream) { self.stream = stream }

    func write(_ bytes: UnsafeRawBufferPointer) throws(ArchiveError) {
        guard bytes.count > 0 else { return }
        do { try stream.write(Array(bytes)) } catch let error as ArchiveError { throw error } catch {
            throw ArchiveError(.write, path: stream.name, message: "\(error)")
        }
        bytesWritten += Int64(bytes.count)
    }

    func finish() throws(ArchiveError) {}
}

/// Encrypts the (compressed) archive to age recipients on its way to `destination`, in the
/// same pass: nothing of the plaintext reaches the disk. The encryption (and the writes after
/// it) run on a thread of their own, fed 1 MiB at a time through a queue of at most four
/// chunks, so ChaCha20-Poly1305 overlaps the tar writer and the compressor instead of adding
/// to them.
final class EncryptingSink: OutputSink {
    private let path: String
    private let worker: EncryptionWorker
    private var chunks = ChunkAccumulator(chunkSize: 1 << 20)

    init(destination: any OutputSink, recipients: [AgeRecipient], path: String) throws(ArchiveError) {
        self.path = path
        let encryptor: AgeEncryptor
        do {
            encryptor = try AgeEncryptor(recipients: recipients) { ciphertext in
                do throws(ArchiveError) { try destination.write(ciphertext) } catch { throw error }
            }
        } catch { throw EncryptingSink.failure(error, path: path) }
        worker = EncryptionWorker(encryptor: encryptor, destination: destination, path: path)
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

    static func failure(_ error: any Error, path: String) -> ArchiveError {
        if let error = error as? ArchiveError { return error }
        if let error = error as? AgeError { return ArchiveError(.write, path: path, age: error) }
        return ArchiveError(.write, path: path, message: "\(error)")
    }
}

/// The encrypting thread: takes plaintext chunks in order, encrypts and writes them; the
/// first failure is kept and handed back to the writer at its next call.
private final class EncryptionWorker: @unchecked Sendable {
    private let encryptor: AgeEncryptor
    private let destination: any OutputSink
    private let path: String
    private let condition = NSCondition()
    private var queue: [[UInt8]] = []
    private var ending = false
    private var stopped = false
    private var done = false
    private var failure: ArchiveError?
    private let capacity = 4

    init(encryptor: AgeEncryptor, destination: any OutputSink, path: String) {
        self.encryptor = encryptor
        self.destination = destination
        self.path = path
        let thread = Thread { [self] in run() }
        thread.name = "clmnt-encrypt"
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

    /// Encrypts what is queued, seals the final chunk and flushes the destination.
    func finish() throws(ArchiveError) {
        condition.lock()
        ending = true
        condition.broadcast()
        while !done { condition.wait() }
        let failure = self.failure
        condition.unlock()
        if let failure { throw failure }
    }

    /// Ends the thread without finishing the stream (a failed backup).
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
                if finishing { complete() }
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
            do { try encryptor.write(chunk) } catch { fail(error) }
        }
    }

    private func complete() {
        do {
            try encryptor.finish()
            try destination.finish()
        } catch { fail(error) }
    }

    private func fail(_ error: any Error) {
        condition.lock()
        if failure == nil { failure = EncryptingSink.failure(error, path: path) }
        // Nothing more will be taken: let a waiting writer see the failure.
        queue.removeAll()
        condition.broadcast()
        condition.unlock()
    }
}
