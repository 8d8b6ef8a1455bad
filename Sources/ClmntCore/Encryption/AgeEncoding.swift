/// The two text encodings age uses: Bech32 for keys and unpadded, canonical base64 in headers.

/// Bech32 (BIP 173) with its checksum, without BIP 173's 90-character limit (age keys are longer).
/// Encodes lower case; decodes a string that is all lower or all upper case.
enum Bech32 {
    private static let charset = Array("qpzry9x8gf2tvdw0s3jn54khce6mua7l".utf8)
    private static let generator: [UInt32] = [0x3b6a_57b2, 0x2650_8e6d, 0x1ea1_19fa, 0x3d42_33dd, 0x2a14_62b3]

    private static func polymod(_ values: [UInt8]) -> UInt32 {
        var chk: UInt32 = 1
        for value in values {
            let top = chk >> 25
            chk = (chk & 0x1ff_ffff) << 5 ^ UInt32(value)
            for i in 0..<5 where (top >> i) & 1 == 1 { chk ^= generator[i] }
        }
        return chk
    }

    private static func expand(_ hrp: [UInt8]) -> [UInt8] {
        hrp.map { $0 >> 5 } + [0] + hrp.map { $0 & 31 }
    }

    /// Regroups bits (8 → 5 with zero padding, 5 → 8 refusing non-zero or overlong padding).
    private static func convertBits(_ data: [UInt8], from: Int, to: Int, pad: Bool) -> [UInt8]? {
        var accumulator = 0, bits = 0
        var result: [UInt8] = []
        let maxValue = (1 << to) - 1
        for value in data {
            accumulator = accumulator << from | Int(value)
            bits += from
            while bits >= to {
                bits -= to
                result.append(UInt8((accumulator >> bits) & maxValue))
            }
        }
        if pad {
            if bits > 0 { result.append(UInt8((accumulator << (to - bits)) & maxValue)) }
        } else if bits >= from || (accumulator << (to - bits)) & maxValue != 0 {
            return nil
        }
        return result
    }

    static func encode(hrp: String, data: [UInt8]) -> String {
        let hrpBytes = Array(hrp.lowercased().utf8)
        let values = convertBits(data, from: 8, to: 5, pad: true)!
        let mod = polymod(expand(hrpBytes) + values + [0, 0, 0, 0, 0, 0]) ^ 1
        let checksum = (0..<6).map { UInt8((mod >> (5 * (5 - UInt32($0)))) & 31) }
        return String(decoding: hrpBytes + [UInt8(ascii: "1")] + (values + checksum).map { charset[Int($0)] },
                      as: UTF8.self)
    }

    /// The human-readable part (lower-cased) and the data, or a reason it is not valid Bech32.
    static func decode(_ string: String) -> Result<(hrp: String, data: [UInt8]), Bech32Failure> {
        let bytes = Array(string.utf8)
        guard bytes.allSatisfy({ $0 >= 33 && $0 <= 126 }) else { return .failure(.invalidCharacter) }
        let lower = string.lowercased(), upper = string.uppercased()
        guard string == lower || string == upper else { return .failure(.mixedCase) }
        let chars = Array(lower.utf8)
        guard let separator = chars.lastIndex(of: UInt8(ascii: "1")), separator >= 1,
              chars.count - separator - 1 >= 6 else { return .failure(.missingSeparator) }
        let hrp = Array(chars[..<separator])
        var values: [UInt8] = []
        for char in chars[(separator + 1)...] {
            guard let index = charset.firstIndex(of: char) else { return .failure(.invalidCharacter) }
            values.append(UInt8(index))
        }
        guard polymod(expand(hrp) + values) == 1 else { return .failure(.badChecksum) }
        guard let data = convertBits(Array(values.dropLast(6)), from: 5, to: 8, pad: false) else {
            return .failure(.badPadding)
        }
        return .success((String(decoding: hrp, as: UTF8.self), data))
    }

    enum Bech32Failure: Error, CustomStringConvertible {
        case invalidCharacter, mixedCase, missingSeparator, badChecksum, badPadding
        var description: String {
            switch self {
            case .invalidCharacter: return "invalid Bech32 character"
            case .mixedCase: return "mixed upper and lower case"
            case .missingSeparator: return "no Bech32 separator or data"
            case .badChecksum: return "Bech32 checksum mismatch (mistyped key?)"
            case .badPadding: return "invalid Bech32 padding"
            }
        }
    }
}

/// Standard-alphabet base64 without padding, decoding only the canonical form (as age requires:
/// no `=`, no line breaks, unused trailing bits zero), so a header has exactly one encoding.
enum UnpaddedBase64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let reverse: [UInt8] = {
        var table = [UInt8](repeating: 0xff, count: 256)
        for (index, char) in alphabet.enumerated() { table[Int(char)] = UInt8(index) }
        return table
    }()

    static func encode<Bytes: Collection<UInt8>>(_ data: Bytes) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((data.count * 4 + 2) / 3)
        var iterator = data.makeIterator()
        while let b0 = iterator.next() {
            let b1 = iterator.next(), b2 = iterator.next()
            let n = UInt32(b0) << 16 | UInt32(b1 ?? 0) << 8 | UInt32(b2 ?? 0)
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            if b1 != nil { out.append(alphabet[Int(n >> 6 & 63)]) }
            if b2 != nil { out.append(alphabet[Int(n & 63)]) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode<Chars: Collection<UInt8>>(_ text: Chars) -> [UInt8]? {
        let chars = Array(text)
        guard chars.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count * 3 / 4)
        var index = 0
        while index < chars.count {
            let group = chars[index..<min(index + 4, chars.count)]
            var n: UInt32 = 0
            for char in group {
                let value = reverse[Int(char)]
                guard value != 0xff else { return nil }
                n = n << 6 | UInt32(value)
            }
            switch group.count {
            case 4:
                out += [UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)]
            case 3:
                guard n & 0x3 == 0 else { return nil }  // non-canonical: unused bits set
                out += [UInt8(n >> 10 & 0xff), UInt8(n >> 2 & 0xff)]
            default:
                guard n & 0xf == 0 else { return nil }
                out.append(UInt8(n >> 4 & 0xff))
            }
            index += 4
        }
        return out
    }
}
