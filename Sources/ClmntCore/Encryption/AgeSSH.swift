import Crypto
import Foundation

/// age's `ssh-ed25519` recipient type (as agessh implements it): the ed25519 key is used as an
/// X25519 key (Edwards → Montgomery), and the shared secret is tweaked with a value derived from
/// the SSH public key, so the stanza is bound to that exact key.
enum SSHEd25519 {
    static let label = "age-encryption.org/v1/ssh-ed25519"
    static let keyType = "ssh-ed25519"

    /// The stanza's first argument: base64 of the first 4 bytes of SHA-256 of the SSH wire-format key.
    static func tag(_ wireKey: [UInt8]) -> String {
        UnpaddedBase64.encode(Array(SHA256.hash(data: wireKey)).prefix(4))
    }

    /// X25519(HKDF(ikm: empty, salt: wire key, info: label), shared).
    static func tweak(_ shared: [UInt8], wireKey: [UInt8]) throws(AgeError) -> [UInt8] {
        let tweak = AgePrimitives.hkdf([], salt: wireKey, info: label).withUnsafeBytes { Array($0) }
        return try AgePrimitives.x25519(tweak, shared)
    }

    /// The SSH wire format of an ed25519 public key: string "ssh-ed25519", string key.
    static func wireKey(_ publicKey: [UInt8]) -> [UInt8] {
        var writer: [UInt8] = []
        for field in [Array(keyType.utf8), publicKey] {
            writer += withUnsafeBytes(of: UInt32(field.count).bigEndian) { [UInt8]($0) }
            writer += field
        }
        return writer
    }

    /// `ssh-ed25519 AAAA… [comment]` as in an authorized_keys or `.pub` file.
    static func parseRecipient(_ text: String, line: Int?) throws(AgeError) -> AgeRecipient.Kind {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count >= 2, fields[0] == keyType else {
            throw .invalidRecipient(reason: "unsupported SSH key type (only ssh-ed25519)", line: line)
        }
        guard let wire = Data(base64Encoded: String(fields[1])).map({ [UInt8]($0) }) else {
            throw .invalidRecipient(reason: "invalid base64 in the SSH public key", line: line)
        }
        var reader = SSHReader(bytes: wire)
        guard let type = reader.string(), type == Array(keyType.utf8), let publicKey = reader.string(),
              publicKey.count == 32, reader.isAtEnd else {
            throw .invalidRecipient(reason: "malformed ssh-ed25519 public key", line: line)
        }
        guard let montgomery = Field25519.montgomeryU(fromEdwardsY: publicKey) else {
            throw .invalidRecipient(reason: "the ssh-ed25519 key is not a valid curve point", line: line)
        }
        return .sshEd25519(wireKey: wire, montgomeryKey: montgomery)
    }

    /// An unencrypted `openssh-key-v1` ed25519 private key (what `ssh-keygen -t ed25519 -N ''` writes).
    static func parsePrivateKey(_ text: String) throws(AgeError) -> AgeIdentity {
        let begin = "-----BEGIN OPENSSH PRIVATE KEY-----", end = "-----END OPENSSH PRIVATE KEY-----"
        guard let start = text.range(of: begin), let stop = text.range(of: end, range: start.upperBound..<text.endIndex),
              let blob = Data(base64Encoded: text[start.upperBound..<stop.lowerBound]
                  .filter { !$0.isWhitespace }).map({ [UInt8]($0) }) else {
            throw .invalidIdentity(reason: "malformed OpenSSH private key (PEM armor or base64)", line: nil)
        }
        func malformed(_ what: String) -> AgeError { .invalidIdentity(reason: "malformed OpenSSH private key: \(what)", line: nil) }
        let magic = Array("openssh-key-v1".utf8) + [0]
        guard blob.starts(with: magic) else { throw malformed("not openssh-key-v1") }
        var reader = SSHReader(bytes: Array(blob.dropFirst(magic.count)))
        guard let cipher = reader.string(), let kdf = reader.string(), reader.string() != nil else {
            throw malformed("truncated")
        }
        guard cipher == Array("none".utf8), kdf == Array("none".utf8) else {
            throw .invalidIdentity(reason: "passphrase-protected OpenSSH keys are not supported "
                                   + "(decrypt a copy with ssh-keygen -p, or use an age identity)", line: nil)
        }
        guard reader.uint32() == 1 else { throw malformed("it must hold exactly one key") }
        guard reader.string() != nil, let secretBlock = reader.string() else { throw malformed("truncated") }
        var secret = SSHReader(bytes: secretBlock)
        guard let check1 = secret.uint32(), let check2 = secret.uint32(), check1 == check2 else {
            throw malformed("check integers differ")
        }
        guard let type = secret.string(), type == Array(keyType.utf8) else {
            throw .invalidIdentity(reason: "unsupported OpenSSH key type (only ssh-ed25519)", line: nil)
        }
        guard let publicKey = secret.string(), publicKey.count == 32, let privateKey = secret.string(),
              privateKey.count == 64, Array(privateKey.suffix(32)) == publicKey else {
            throw malformed("invalid ed25519 key")
        }
        // The X25519 scalar of an ed25519 key is the first half of SHA-512(seed) (clamped by X25519 itself).
        let scalar = Array(Array(SHA512.hash(data: privateKey.prefix(32))).prefix(32))
        return AgeIdentity(kind: .sshEd25519(scalar: scalar, wireKey: wireKey(publicKey)))
    }
}

/// Reads SSH wire-format fields (RFC 4251: uint32 big-endian, string = uint32 length + bytes).
struct SSHReader {
    let bytes: [UInt8]
    var position = 0

    var isAtEnd: Bool { position == bytes.count }

    mutating func uint32() -> UInt32? {
        guard bytes.count - position >= 4 else { return nil }
        defer { position += 4 }
        return bytes[position..<position + 4].reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func string() -> [UInt8]? {
        guard let length = uint32(), bytes.count - position >= Int(length) else { return nil }
        defer { position += Int(length) }
        return Array(bytes[position..<position + Int(length)])
    }
}

/// Just enough arithmetic modulo p = 2^255 − 19 to map an ed25519 public key to its X25519 form,
/// u = (1 + y) / (1 − y). Numbers are five 51-bit limbs (value = Σ limb[i]·2^(51·i)), products
/// are taken in UInt128, and 2^255 ≡ 19 folds the high part back. Speed does not matter here
/// (one conversion per recipient), clarity does.
struct Field25519: Equatable {
    static let mask51: UInt64 = (1 << 51) - 1
    var limbs: [UInt64]

    static let one = Field25519(limbs: [1, 0, 0, 0, 0])

    /// From 32 little-endian bytes, ignoring bit 255 (the sign of x in an ed25519 point).
    init(littleEndian bytes: [UInt8]) {
        var words = [UInt64](repeating: 0, count: 4)
        for (index, byte) in bytes.prefix(32).enumerated() { words[index / 8] |= UInt64(byte) << (8 * UInt64(index % 8)) }
        words[3] &= 0x7fff_ffff_ffff_ffff
        limbs = [words[0] & Self.mask51,
                 (words[0] >> 51 | words[1] << 13) & Self.mask51,
                 (words[1] >> 38 | words[2] << 26) & Self.mask51,
                 (words[2] >> 25 | words[3] << 39) & Self.mask51,
                 words[3] >> 12]
    }

    init(limbs: [UInt64]) { self.limbs = limbs }

    /// Propagates carries so every limb is below 2^51 again (the top carry re-enters as ×19).
    static func carried(_ wide: [UInt128]) -> Field25519 {
        var wide = wide
        for _ in 0..<2 {
            for i in 0..<4 {
                wide[i + 1] += wide[i] >> 51
                wide[i] &= UInt128(mask51)
            }
            wide[0] += (wide[4] >> 51) * 19
            wide[4] &= UInt128(mask51)
        }
        return Field25519(limbs: wide.map { UInt64($0) })
    }

    static func + (a: Field25519, b: Field25519) -> Field25519 {
        carried((0..<5).map { UInt128(a.limbs[$0]) + UInt128(b.limbs[$0]) })
    }

    /// a − b computed as a + 2p − b so no limb goes negative.
    static func - (a: Field25519, b: Field25519) -> Field25519 {
        let twoP: [UInt64] = [2 * (mask51 - 18), 2 * mask51, 2 * mask51, 2 * mask51, 2 * mask51]
        return carried((0..<5).map { UInt128(a.limbs[$0]) + UInt128(twoP[$0]) - UInt128(b.limbs[$0]) })
    }

    static func * (a: Field25519, b: Field25519) -> Field25519 {
        var wide = [UInt128](repeating: 0, count: 5)
        for i in 0..<5 {
            for j in 0..<5 {
                let product = UInt128(a.limbs[i]) * UInt128(b.limbs[j])
                // Limb i + j ≥ 5 stands for 2^255·2^(51·(i+j−5)) ≡ 19·2^(51·(i+j−5)).
                if i + j < 5 { wide[i + j] += product } else { wide[i + j - 5] += product * 19 }
            }
        }
        return carried(wide)
    }

    /// a^(p − 2) = a^−1 by Fermat (0 maps to 0). p − 2 = 2^255 − 21: all bits set from 254 down
    /// to 5, then 0b01011.
    func inverted() -> Field25519 {
        var result = Field25519.one
        for bit in stride(from: 254, through: 0, by: -1) {
            result = result * result
            let set = bit >= 5 || (0b01011 >> bit) & 1 == 1
            if set { result = result * self }
        }
        return result
    }

    /// The canonical (fully reduced) 32 little-endian bytes.
    var littleEndianBytes: [UInt8] {
        var value = limbs
        // Carry until every limb is below 2^51 (the top carry re-enters as ×19); two rounds suffice.
        while value[0...3].contains(where: { $0 > Self.mask51 }) || value[4] > Self.mask51 {
            for i in 0..<4 { value[i + 1] += value[i] >> 51; value[i] &= Self.mask51 }
            value[0] += (value[4] >> 51) * 19
            value[4] &= Self.mask51
        }
        // value < 2^255 now; it is ≥ p exactly when value + 19 reaches 2^255.
        var plus19 = value
        plus19[0] += 19
        for i in 0..<4 { plus19[i + 1] += plus19[i] >> 51; plus19[i] &= Self.mask51 }
        if plus19[4] >> 51 != 0 { plus19[4] &= Self.mask51; value = plus19 }
        var words = [UInt64](repeating: 0, count: 4)
        words[0] = value[0] | value[1] << 51
        words[1] = value[1] >> 13 | value[2] << 38
        words[2] = value[2] >> 26 | value[3] << 25
        words[3] = value[3] >> 39 | value[4] << 12
        return words.flatMap { word in (0..<8).map { UInt8(truncatingIfNeeded: word >> (8 * UInt64($0))) } }
    }

    /// The X25519 u-coordinate of the ed25519 point whose encoding is `edwards` (y, little-endian,
    /// sign bit ignored): u = (1 + y) / (1 − y). Nil for y = 1 (the identity point, no u).
    static func montgomeryU(fromEdwardsY edwards: [UInt8]) -> [UInt8]? {
        guard edwards.count == 32 else { return nil }
        let y = Field25519(littleEndian: edwards)
        let denominator = Field25519.one - y
        guard denominator.littleEndianBytes.contains(where: { $0 != 0 }) else { return nil }
        return ((Field25519.one + y) * denominator.inverted()).littleEndianBytes
    }
}
