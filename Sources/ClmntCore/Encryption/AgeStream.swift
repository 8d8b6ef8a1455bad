import Crypto

/// The age payload: a 16-byte nonce, then ChaCha20-Poly1305 STREAM over 64 KiB plaintext chunks.
enum AgePayload {
    static let chunkSize = 64 * 1024
    static let tagSize = 16
    static let nonceSize = 16

    /// HKDF(ikm: file key, salt: payload nonce, info: "payload").
    static func key(fileKey: SymmetricKey, nonce: [UInt8]) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: fileKey, salt: nonce, info: Array("payload".utf8), outputByteCount: 32)
    }

    /// 11-byte big-endian chunk counter, then 1 for the final chunk and 0 otherwise.
    static func chunkNonce(_ counter: UInt64, last: Bool) -> ChaChaPoly.Nonce {
        let bytes: [UInt8] = [0, 0, 0] + withUnsafeBytes(of: counter.bigEndian) { Array($0) } + [last ? 1 : 0]
        return try! ChaChaPoly.Nonce(data: bytes)
    }
}

/// Encrypts a stream to age v1, handing ciphertext to `output` as it goes (memory: one chunk).
///
/// `init` writes the header and payload nonce; `write` buffers up to one 64 KiB chunk and seals
/// each full chunk once more data shows it is not the last; `finish` seals the final chunk
/// (possibly full-size, empty only when nothing was written, as the spec requires).
public final class AgeEncryptor {
    private let output: (UnsafeRawBufferPointer) throws -> Void
    private let payloadKey: SymmetricKey
    private var pending: [UInt8] = []
    private var counter: UInt64 = 0
    private var finished = false

    public init(recipients: [AgeRecipient], output: @escaping (UnsafeRawBufferPointer) throws -> Void) throws {
        guard !recipients.isEmpty else { throw AgeError.noRecipients }
        self.output = output
        let fileKey = SymmetricKey(size: .bits128)
        var stanzas: [AgeStanza] = []
        for recipient in recipients { stanzas.append(try recipient.wrap(fileKey)) }
        let nonce = AgePrimitives.randomBytes(AgePayload.nonceSize)
        payloadKey = AgePayload.key(fileKey: fileKey, nonce: nonce)
        pending.reserveCapacity(AgePayload.chunkSize)
        try (AgeHeader.encode(stanzas: stanzas, fileKey: fileKey) + nonce).withUnsafeBytes { try output($0) }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard !finished else { throw AgeError.streamClosed }
        var offset = 0
        while offset < bytes.count {
            // A full buffered chunk is sealed only now that more data proves it is not the last.
            if pending.count == AgePayload.chunkSize { try seal(last: false) }
            let take = min(AgePayload.chunkSize - pending.count, bytes.count - offset)
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + take]))
            offset += take
        }
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Seals the final chunk. The ciphertext is complete only after this returns.
    public func finish() throws {
        guard !finished else { throw AgeError.streamClosed }
        finished = true
        try seal(last: true)
    }

    private func seal(last: Bool) throws {
        let box = try ChaChaPoly.seal(pending, using: payloadKey, nonce: AgePayload.chunkNonce(counter, last: last))
        try box.ciphertext.withUnsafeBytes { try output($0) }
        try box.tag.withUnsafeBytes { try output($0) }
        pending.removeAll(keepingCapacity: true)
        counter += 1
    }

    /// The whole age file for `plaintext` (small inputs and tests).
    public static func encrypt(_ plaintext: [UInt8], to recipients: [AgeRecipient]) throws -> [UInt8] {
        var result: [UInt8] = []
        let encryptor = try AgeEncryptor(recipients: recipients) { result.append(contentsOf: $0) }
        try encryptor.write(plaintext)
        try encryptor.finish()
        return result
    }
}

/// Decrypts an age v1 stream, handing plaintext to `output` one authenticated chunk at a time.
///
/// Plaintext is released only after its chunk authenticated, but the stream as a whole is known
/// complete (not truncated) only when `finish` returns: a consumer must not commit what it
/// received before that. After any error the decryptor stays failed and outputs nothing more.
public final class AgeDecryptor {
    private enum State { case header, nonce, payload, done, failed(AgeError) }

    private let identities: [AgeIdentity]
    private let output: (UnsafeRawBufferPointer) throws -> Void
    private var state = State.header
    private var buffer: [UInt8] = []
    /// Bytes of `buffer` before this index are consumed.
    private var start = 0
    private var fileKey: SymmetricKey?
    private var payloadKey: SymmetricKey?
    private var counter: UInt64 = 0

    private static let sealedChunkSize = AgePayload.chunkSize + AgePayload.tagSize

    public init(identities: [AgeIdentity], output: @escaping (UnsafeRawBufferPointer) throws -> Void) throws {
        guard !identities.isEmpty else { throw AgeError.noIdentities }
        self.identities = identities
        self.output = output
    }

    private var available: Int { buffer.count - start }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        try checkOpen()
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
        try failing { try process(final: false) }
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Decrypts the final chunk; throws `.truncated` when the stream ended early.
    public func finish() throws {
        try checkOpen()
        try failing {
            try process(final: true)
            state = .done
        }
    }

    private func checkOpen() throws {
        switch state {
        case .failed(let error): throw error
        case .done: throw AgeError.streamClosed
        default: break
        }
    }

    /// Runs `body`, and on an age error stays failed with it (an output error is passed through).
    private func failing(_ body: () throws -> Void) throws {
        do { try body() } catch let error as AgeError {
            state = .failed(error)
            throw error
        }
    }

    private func process(final: Bool) throws {
        if case .header = state {
            guard let parsed = try AgeHeader.parse(buffer[start...]) else {
                if final {
                    throw available == 0 ? AgeError.notAgeFile(reason: "it is empty")
                        : AgeError.truncated(reason: "the file ends inside the header")
                }
                return
            }
            fileKey = try parsed.header.unwrapFileKey(with: identities)
            start += parsed.length
            state = .nonce
        }
        if case .nonce = state {
            guard available >= AgePayload.nonceSize else {
                if final { throw AgeError.truncated(reason: "the file ends before the payload") }
                return
            }
            payloadKey = AgePayload.key(fileKey: fileKey!, nonce: Array(buffer[start..<start + AgePayload.nonceSize]))
            start += AgePayload.nonceSize
            state = .payload
        }
        guard case .payload = state, let payloadKey else { return }
        // A full sealed chunk followed by at least one more byte cannot be the last one.
        while available > Self.sealedChunkSize {
            let chunk = buffer[start..<start + Self.sealedChunkSize]
            guard let plaintext = Self.open(chunk, key: payloadKey, counter: counter, last: false) else {
                if Self.open(chunk, key: payloadKey, counter: counter, last: true) != nil {
                    throw AgeError.trailingData(afterChunk: counter)
                }
                throw AgeError.chunkAuthenticationFailed(chunk: counter)
            }
            start += Self.sealedChunkSize
            try emit(plaintext)
        }
        guard final else { return }
        let chunk = buffer[start...]
        if chunk.isEmpty {
            throw AgeError.truncated(reason: counter == 0 ? "the payload is missing"
                                     : "the file ends after chunk \(counter - 1) without a final chunk")
        }
        guard chunk.count >= AgePayload.tagSize else {
            throw AgeError.truncated(reason: "the file ends inside chunk \(counter)")
        }
        guard let plaintext = Self.open(chunk, key: payloadKey, counter: counter, last: true) else {
            if chunk.count == Self.sealedChunkSize,
               Self.open(chunk, key: payloadKey, counter: counter, last: false) != nil {
                throw AgeError.truncated(reason: "the file ends after chunk \(counter) without a final chunk")
            }
            throw AgeError.chunkAuthenticationFailed(chunk: counter)
        }
        if plaintext.isEmpty && counter > 0 { throw AgeError.emptyFinalChunk }
        start = buffer.count
        try emit(plaintext)
    }

    private func emit(_ plaintext: [UInt8]) throws {
        counter += 1
        try plaintext.withUnsafeBytes { try output($0) }
    }

    private static func open(_ chunk: ArraySlice<UInt8>, key: SymmetricKey, counter: UInt64, last: Bool) -> [UInt8]? {
        guard let box = try? ChaChaPoly.SealedBox(nonce: AgePayload.chunkNonce(counter, last: last),
                                                  ciphertext: chunk.dropLast(AgePayload.tagSize),
                                                  tag: chunk.suffix(AgePayload.tagSize)),
              let plaintext = try? ChaChaPoly.open(box, using: key) else { return nil }
        return Array(plaintext)
    }

    /// The whole plaintext of an age file (small inputs and tests).
    public static func decrypt(_ ciphertext: [UInt8], identities: [AgeIdentity]) throws -> [UInt8] {
        var result: [UInt8] = []
        let decryptor = try AgeDecryptor(identities: identities) { result.append(contentsOf: $0) }
        try decryptor.write(ciphertext)
        try decryptor.finish()
        return result
    }
}
