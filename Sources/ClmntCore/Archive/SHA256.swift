import CCrypto

/// Incremental SHA-256 over OpenSSL's EVP interface (uses the CPU's SHA extensions).
public final class SHA256Hasher {
    private let context: OpaquePointer

    public init() {
        // Allocation failure of a few bytes is not recoverable.
        guard let context = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new failed") }
        self.context = context
        reset()
    }

    deinit { EVP_MD_CTX_free(context) }

    public func reset() {
        precondition(EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1, "SHA-256 init failed")
    }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        precondition(EVP_DigestUpdate(context, base, bytes.count) == 1, "SHA-256 update failed")
    }

    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Appends the 32-byte digest to `digests`; resets the hasher.
    public func finalize(appendingTo digests: inout [UInt8]) {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        precondition(EVP_DigestFinal_ex(context, &digest, &length) == 1, "SHA-256 final failed")
        reset()
        digests.append(contentsOf: digest)
    }

    /// The digest as 64 lower-case hex digits; resets the hasher.
    public func finalizeHex() -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        precondition(EVP_DigestFinal_ex(context, &digest, &length) == 1, "SHA-256 final failed")
        reset()
        return hexString(digest)
    }
}

private let hexDigits = Array("0123456789abcdef".utf8)

func hexString<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String {
    var out = [UInt8]()
    out.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        out.append(hexDigits[Int(byte >> 4)])
        out.append(hexDigits[Int(byte & 0xF)])
    }
    return String(decoding: out, as: UTF8.self)
}
