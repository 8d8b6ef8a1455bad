import CArchive
import Foundation

/// Where a fleet archive's bytes come from: a local file, standard input, an object in a
/// bucket. Readers pull chunks; an empty chunk is the end.
public protocol ArchiveByteSource: AnyObject {
    func nextChunk() throws -> [UInt8]
}

/// Opens a fleet archive by name for every reader (list, verify, restore): a local file,
/// standard input (`-`, once `useStandardInput()` was called) or a source registered under
/// its name (an `s3://` object). An age-encrypted archive is recognised by its first bytes
/// and decrypted with the identities given, whatever its name.
public enum ArchiveInput {
    private static let state = InputState()

    /// Decrypt age-encrypted archives with these identities (`--identity`).
    public static func useIdentities(_ identities: [AgeIdentity]) {
        state.withLock { $0.identities = identities }
    }

    /// Makes `name` open through `opener` (called once per reading pass).
    public static func register(name: String, opener: @escaping @Sendable () throws -> any ArchiveByteSource) {
        state.withLock { $0.openers[name] = opener }
    }

    /// `-` reads standard input. Restore and verify read an archive's head first and then the
    /// whole of it: the head is kept in memory and replayed, so standard input is read once.
    public static func useStandardInput() {
        let tape = StandardInputTape()
        register(name: "-") { try tape.makeReader() }
    }

    /// `name` as readers should get it: a registered name as it is, a local path made absolute.
    public static func resolvedName(_ name: String) -> String {
        isRegistered(name) ? name : absolutePath(name)
    }

    /// True when `name` is read from a registered source rather than a local file.
    public static func isRegistered(_ name: String) -> Bool {
        state.withLock { $0.openers[name] != nil }
    }

    /// The archive's bytes, decrypted when they are an age file.
    /// `chunkSize`: how much of a local file one read takes (small for a head-only look).
    static func open(_ name: String, chunkSize: Int = 1 << 20) throws(ArchiveError) -> any ArchiveByteSource {
        let (opener, identities) = state.withLock { ($0.openers[name], $0.identities) }
        let raw: any ArchiveByteSource
        if let opener {
            do { raw = try opener() } catch let error as ArchiveError { throw error } catch {
                throw ArchiveError(.open, path: name, message: "\(error)")
            }
        } else {
            raw = FileByteSource(file: try openArchiveFile(name), path: name, chunkSize: chunkSize)
        }
        return try decryptingIfNeeded(raw, path: name, identities: identities)
    }

    private static func decryptingIfNeeded(_ raw: any ArchiveByteSource, path: String,
                                           identities: [AgeIdentity]) throws(ArchiveError) -> any ArchiveByteSource {
        var head: [UInt8] = []
        // The first chunk may be short (a pipe): read until the magic line is decided.
        while head.count < AgeHeader.magic.count {
            let chunk: [UInt8]
            do { chunk = try raw.nextChunk() } catch { throw readError(error, path: path) }
            if chunk.isEmpty { break }
            head += chunk
        }
        let prefixed = PrefixedSource(head: head, rest: raw)
        guard head.starts(with: AgeHeader.magic) else { return prefixed }
        guard !identities.isEmpty else { throw ArchiveError(.open, path: path, age: .identityRequired) }
        return DecryptingSource(source: prefixed, identities: identities, path: path)
    }

    static func readError(_ error: any Error, path: String) -> ArchiveError {
        if let error = error as? ArchiveError { return error }
        if let error = error as? AgeError { return ArchiveError(.read, path: path, age: error) }
        return ArchiveError(.read, path: path, message: "\(error)")
    }
}

private final class InputState: @unchecked Sendable {
    struct Values {
        var identities: [AgeIdentity] = []
        var openers: [String: @Sendable () throws -> any ArchiveByteSource] = [:]
    }
    private let lock = NSLock()
    private var values = Values()

    func withLock<T>(_ body: (inout Values) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(&values)
    }
}

/// A local file, read through a descriptor this source owns.
final class FileByteSource: ArchiveByteSource {
    private let file: FileDescriptor
    private let path: String
    private let chunkSize: Int

    init(file: consuming FileDescriptor, path: String, chunkSize: Int = 1 << 20) {
        self.file = file
        self.path = path
        self.chunkSize = chunkSize
    }

    func nextChunk() throws -> [UInt8] {
        try readChunk(file.rawValue, count: chunkSize, path: path)
    }
}

/// Up to `count` bytes from `fd` (fewer at the end, none at end of file); EINTR is retried.
func readChunk(_ fd: Int32, count: Int, path: String) throws(ArchiveError) -> [UInt8] {
    var failure: Int32 = 0
    let chunk = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        while true {
            let got = read(fd, buffer.baseAddress, count)
            if got < 0 && errno == EINTR { continue }
            if got < 0 { failure = errno; initialized = 0 } else { initialized = got }
            return
        }
    }
    if failure != 0 { throw ArchiveError.fromErrno(.read, path: path, errno: failure) }
    return chunk
}

/// Bytes already read (to look at them), then the rest of the source.
private final class PrefixedSource: ArchiveByteSource {
    private var head: [UInt8]
    private let rest: any ArchiveByteSource

    init(head: [UInt8], rest: any ArchiveByteSource) {
        self.head = head
        self.rest = rest
    }

    func nextChunk() throws -> [UInt8] {
        guard head.isEmpty else { defer { head = [] }; return head }
        return try rest.nextChunk()
    }
}

/// Decrypts an age stream chunk by chunk; every failure is an `ArchiveError` carrying the `AgeError`.
private final class DecryptingSource: ArchiveByteSource {
    private let source: any ArchiveByteSource
    private let path: String
    private var decryptor: AgeDecryptor?
    private let plaintext = PlaintextBuffer()
    private var ended = false

    init(source: any ArchiveByteSource, identities: [AgeIdentity], path: String) {
        self.source = source
        self.path = path
        let plaintext = self.plaintext
        decryptor = try? AgeDecryptor(identities: identities) { plaintext.bytes.append(contentsOf: $0) }
    }

    func nextChunk() throws -> [UInt8] {
        guard let decryptor else { throw ArchiveError(.open, path: path, age: .noIdentities) }
        while plaintext.bytes.isEmpty && !ended {
            let ciphertext: [UInt8]
            do { ciphertext = try source.nextChunk() } catch { throw ArchiveInput.readError(error, path: path) }
            do {
                if ciphertext.isEmpty {
                    try decryptor.finish()
                    ended = true
                } else {
                    try decryptor.write(ciphertext)
                }
            } catch { throw ArchiveInput.readError(error, path: path) }
        }
        defer { plaintext.bytes = [] }
        return plaintext.bytes
    }
}

private final class PlaintextBuffer {
    var bytes: [UInt8] = []
}

/// Standard input, read once: the bytes the first readers took are kept (up to `limit`) and
/// replayed to the next one, which then goes on reading standard input.
final class StandardInputTape: @unchecked Sendable {
    private let lock = NSLock()
    private var recorded: [UInt8] = []
    /// Standard input was read past what `recorded` holds: a further pass cannot start.
    private var overflowed = false
    private let limit: Int

    init(limit: Int = 64 << 20) { self.limit = limit }

    func makeReader() throws -> any ArchiveByteSource {
        try lock.withLock {
            guard !overflowed else {
                throw ArchiveError(.read, path: "standard input", message: "it can be read only once, and it was already read past its first \(limit >> 20) MiB")
            }
            return TapeReader(tape: self)
        }
    }

    fileprivate func replay(from offset: Int) -> [UInt8] {
        lock.withLock { offset < recorded.count ? Array(recorded[offset...]) : [] }
    }

    /// Reads standard input on; keeps the bytes while under the limit.
    fileprivate func readMore() throws -> [UInt8] {
        let chunk = try readChunk(0, count: 1 << 20, path: "standard input")
        lock.withLock {
            if !overflowed && recorded.count + chunk.count <= limit {
                recorded += chunk
            } else {
                overflowed = true
                recorded = []
            }
        }
        return chunk
    }

    fileprivate var recordedCount: Int { lock.withLock { recorded.count } }
    fileprivate var isOverflowed: Bool { lock.withLock { overflowed } }
}

private final class TapeReader: ArchiveByteSource {
    private let tape: StandardInputTape
    private var offset = 0

    init(tape: StandardInputTape) { self.tape = tape }

    func nextChunk() throws -> [UInt8] {
        if !tape.isOverflowed, offset < tape.recordedCount {
            let replayed = tape.replay(from: offset)
            offset += replayed.count
            return replayed
        }
        let chunk = try tape.readMore()
        offset += chunk.count
        return chunk
    }
}

/// Carries a byte source into libarchive's read callback: the chunk handed to libarchive
/// stays alive until the next call, and the source's error comes back out typed.
final class SourceReadBox: @unchecked Sendable {  // used by one thread at a time
    let source: any ArchiveByteSource
    private let path: String
    /// The chunk libarchive is reading: owned here, valid until the next call.
    private var current = UnsafeMutableRawBufferPointer.allocate(byteCount: 0, alignment: 16)
    private(set) var error: ArchiveError?
    private(set) var bytesRead: Int64 = 0

    init(source: any ArchiveByteSource, path: String) {
        self.source = source
        self.path = path
    }

    deinit { current.deallocate() }

    /// Opens `handle` on this box (which must outlive the handle's reading).
    func open(_ handle: OpaquePointer) throws(ArchiveError) {
        let context = Unmanaged.passUnretained(self).toOpaque()
        let status = archive_read_open(handle, context, nil, sourceReadCallback, nil)
        if status != ARCHIVE_OK { throw error ?? ArchiveError.fromArchive(handle, .open, path: path) }
    }

    fileprivate func read(_ archive: OpaquePointer?, _ buffer: UnsafeMutablePointer<UnsafeRawPointer?>?) -> Int {
        let chunk: [UInt8]
        do {
            chunk = try source.nextChunk()
        } catch {
            let failure = ArchiveInput.readError(error, path: path)
            self.error = failure
            if let archive { clmnt_archive_set_error(archive, failure.code == 0 ? EIO : failure.code, failure.message) }
            return -1
        }
        bytesRead += Int64(chunk.count)
        if chunk.count > current.count {
            current.deallocate()
            current = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk.count, alignment: 16)
        }
        chunk.withUnsafeBytes { current.copyMemory(from: $0) }
        buffer?.pointee = UnsafeRawPointer(current.baseAddress)
        return chunk.count
    }
}

private func sourceReadCallback(_ archive: OpaquePointer?, _ context: UnsafeMutableRawPointer?,
                                _ buffer: UnsafeMutablePointer<UnsafeRawPointer?>?) -> Int {
    guard let context else { return -1 }
    return Unmanaged<SourceReadBox>.fromOpaque(context).takeUnretainedValue().read(archive, buffer)
}
