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
    private let background: BackgroundSink

    init(destination: any OutputSink, recipients: [AgeRecipient], path: String) throws(ArchiveError) {
        let encryptor: AgeEncryptor
        do {
            encryptor = try AgeEncryptor(recipients: recipients) { ciphertext in
                do throws(ArchiveError) { try destination.write(ciphertext) } catch { throw error }
            }
        } catch { throw EncryptingSink.failure(error, path: path) }
        background = BackgroundSink(
            name: "clmnt-encrypt",
            consume: { (chunk) throws(ArchiveError) in
                do { try encryptor.write(chunk) } catch { throw EncryptingSink.failure(error, path: path) }
            },
            complete: { () throws(ArchiveError) in
                do { try encryptor.finish() } catch { throw EncryptingSink.failure(error, path: path) }
                try destination.finish()
            })
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(ArchiveError) { try background.write(bytes) }

    func finish() throws(ArchiveError) { try background.finish() }

    static func failure(_ error: any Error, path: String) -> ArchiveError {
        if let error = error as? ArchiveError { return error }
        if let error = error as? AgeError { return ArchiveError(.write, path: path, age: error) }
        return ArchiveError(.write, path: path, message: "\(error)")
    }
}
