import Crypto
import Foundation

/// One recipient stanza of an age header: `-> TYPE ARG…` and a base64 body.
struct AgeStanza: Equatable {
    var type: String
    var arguments: [String]
    var body: [UInt8]

    /// The stanza as it appears in a header: body base64 in 64-column lines, the last line always
    /// shorter than 64 (empty when the body fills whole lines), as the spec requires.
    var encoded: String {
        var text = "-> " + ([type] + arguments).joined(separator: " ") + "\n"
        let base64 = Array(UnpaddedBase64.encode(body).utf8)
        var offset = 0
        repeat {
            let end = min(offset + 64, base64.count)
            text += String(decoding: base64[offset..<end], as: UTF8.self) + "\n"
            offset += 64
        } while offset <= base64.count
        return text
    }
}

/// The age v1 header: its stanzas and MAC, and the exact bytes the MAC covers.
struct AgeHeader {
    static let versionLine = "age-encryption.org/v1"
    /// The first bytes of every age v1 file: how an encrypted archive is recognised.
    static let magic = Array((versionLine + "\n").utf8)
    /// A header bigger than this is refused rather than buffered (real headers are well under 1 KiB
    /// per recipient).
    static let maximumSize = 1 << 20

    var stanzas: [AgeStanza]
    /// Everything from the version line up to and including the `---` of the MAC line.
    var macInput: [UInt8]
    var mac: [UInt8]

    /// The header for `stanzas`, MAC'd with `fileKey`, ready to write.
    static func encode(stanzas: [AgeStanza], fileKey: SymmetricKey) -> [UInt8] {
        var text = versionLine + "\n"
        for stanza in stanzas { text += stanza.encoded }
        text += "---"
        let macInput = Array(text.utf8)
        let mac = AgeHeader.mac(of: macInput, fileKey: fileKey)
        return macInput + Array((" " + UnpaddedBase64.encode(mac) + "\n").utf8)
    }

    static func mac(of bytes: [UInt8], fileKey: SymmetricKey) -> [UInt8] {
        let key = HKDF<SHA256>.deriveKey(inputKeyMaterial: fileKey, salt: [UInt8](), info: Array("header".utf8),
                                         outputByteCount: 32)
        return Array(HMAC<SHA256>.authenticationCode(for: bytes, using: key))
    }

    /// Parses a header from the start of `bytes`. Returns nil when more bytes are needed, else the
    /// header and the number of bytes it took. Throws on anything that cannot become a valid header.
    static func parse(_ bytes: ArraySlice<UInt8>) throws(AgeError) -> (header: AgeHeader, length: Int)? {
        let version = Array((versionLine + "\n").utf8)
        let prefixLength = min(bytes.count, version.count)
        guard bytes.prefix(prefixLength).elementsEqual(version.prefix(prefixLength)) else {
            if bytes.starts(with: Array("-----BEGIN AGE ENCRYPTED FILE-----".utf8)) {
                throw .notAgeFile(reason: "ASCII-armored age files are not supported")
            }
            if bytes.starts(with: Array("age-encryption.org/".utf8)) {
                throw .notAgeFile(reason: "unsupported age format version")
            }
            throw .notAgeFile(reason: "it does not start with \"\(versionLine)\"")
        }
        guard bytes.count >= version.count else { return nil }
        var lines = LineReader(bytes: bytes, position: bytes.startIndex + version.count)
        var stanzas: [AgeStanza] = []
        while true {
            guard let lineRange = try lines.next() else { return nil }
            let line = bytes[lineRange]
            if line.starts(with: Array("-> ".utf8)) {
                let fields = line.dropFirst(3).split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
                guard fields.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0 >= 33 && $0 <= 126 } }) else {
                    throw .malformedHeader(reason: "invalid stanza line")
                }
                var body: [UInt8] = []
                while true {
                    guard let bodyRange = try lines.next() else { return nil }
                    let bodyLine = bytes[bodyRange]
                    guard bodyLine.count <= 64 else { throw .malformedHeader(reason: "stanza body line longer than 64 columns") }
                    body += bodyLine
                    if bodyLine.count < 64 { break }
                }
                guard let decoded = UnpaddedBase64.decode(body) else {
                    throw .malformedHeader(reason: "invalid base64 in a stanza body")
                }
                stanzas.append(AgeStanza(type: String(decoding: fields[0], as: UTF8.self),
                                         arguments: fields.dropFirst().map { String(decoding: $0, as: UTF8.self) },
                                         body: decoded))
            } else if line.starts(with: Array("--- ".utf8)) {
                guard let mac = UnpaddedBase64.decode(line.dropFirst(4)), mac.count == 32 else {
                    throw .malformedHeader(reason: "invalid header MAC")
                }
                guard !stanzas.isEmpty else { throw .malformedHeader(reason: "no recipient stanza") }
                let macInput = Array(bytes[bytes.startIndex..<(lineRange.lowerBound + 3)])
                return (AgeHeader(stanzas: stanzas, macInput: macInput, mac: mac), lines.position - bytes.startIndex)
            } else {
                throw .malformedHeader(reason: "unexpected line (neither a stanza nor the MAC)")
            }
        }
    }

    /// Splits header bytes at "\n"; nil at the end of the available bytes (more are needed).
    private struct LineReader {
        let bytes: ArraySlice<UInt8>
        var position: Int

        mutating func next() throws(AgeError) -> Range<Int>? {
            guard let newline = bytes[position...].firstIndex(of: UInt8(ascii: "\n")) else {
                if bytes.count > AgeHeader.maximumSize { throw .malformedHeader(reason: "header larger than 1 MiB") }
                return nil
            }
            defer { position = newline + 1 }
            return position..<newline
        }
    }

    /// The file key from the first stanza one of `identities` opens, checked against the MAC.
    func unwrapFileKey(with identities: [AgeIdentity]) throws(AgeError) -> SymmetricKey {
        for identity in identities {
            for stanza in stanzas {
                if let fileKey = try identity.unwrap(stanza) {
                    let expected = AgeHeader.mac(of: macInput, fileKey: fileKey)
                    // Constant-time comparison of the two MACs.
                    guard zip(expected, mac).reduce(UInt8(0), { $0 | ($1.0 ^ $1.1) }) == 0 else {
                        throw .headerMACMismatch
                    }
                    return fileKey
                }
            }
        }
        throw .noMatchingIdentity
    }
}

/// The primitives age builds every stanza from.
enum AgePrimitives {
    static let fileKeySize = 16

    static func hkdf(_ ikm: [UInt8], salt: [UInt8], info: String) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: ikm), salt: salt, info: Array(info.utf8),
                               outputByteCount: 32)
    }

    /// ChaCha20-Poly1305 with the all-zero nonce: each wrapping key is used exactly once.
    static func wrap(_ fileKey: SymmetricKey, with key: SymmetricKey) -> [UInt8] {
        let zeroNonce = try! ChaChaPoly.Nonce(data: [UInt8](repeating: 0, count: 12))
        let box = try! ChaChaPoly.seal(fileKey.withUnsafeBytes { Array($0) }, using: key, nonce: zeroNonce)
        return Array(box.ciphertext) + Array(box.tag)
    }

    /// The file key, or nil when `body` does not open with `key` (the stanza is for someone else).
    static func unwrap(_ body: [UInt8], with key: SymmetricKey) -> SymmetricKey? {
        guard body.count == fileKeySize + 16,
              let zeroNonce = try? ChaChaPoly.Nonce(data: [UInt8](repeating: 0, count: 12)),
              let box = try? ChaChaPoly.SealedBox(nonce: zeroNonce, ciphertext: body.prefix(fileKeySize),
                                                  tag: body.suffix(16)),
              let fileKey = try? ChaChaPoly.open(box, using: key) else { return nil }
        return SymmetricKey(data: fileKey)
    }

    /// X25519(scalar, point), refusing the all-zero result of a low-order point.
    static func x25519(_ scalar: [UInt8], _ point: [UInt8]) throws(AgeError) -> [UInt8] {
        guard let privateKey = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: scalar),
              let publicKey = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: point),
              let shared = try? privateKey.sharedSecretFromKeyAgreement(with: publicKey) else {
            throw .malformedHeader(reason: "invalid X25519 share")
        }
        let bytes = shared.withUnsafeBytes { Array($0) }
        guard bytes.contains(where: { $0 != 0 }) else { throw .malformedHeader(reason: "low-order X25519 share") }
        return bytes
    }

    static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }
}
