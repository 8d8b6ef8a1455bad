import Foundation

/// A file name or path as Linux keeps it: bytes, with no promise of UTF-8.
/// Names travel as `PathBytes` from `getdents` to the tar header and back to
/// `openat`; a `String` appears only where a human reads it (`description`,
/// the escaped form below) or where the name is known to be ours (molt names,
/// `manifest.json`).
///
/// The escaped form (messages, JSON) is the UTF-8 text itself, except that a
/// byte which is not part of valid UTF-8, and every control character, is
/// written `\xHH`, and a backslash is written `\\`. It is lossless:
/// `PathBytes(escaped: p.description) == p`.
public struct PathBytes: Hashable, Sendable, Comparable, CustomStringConvertible, ExpressibleByStringLiteral {
    public var bytes: [UInt8]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public init<Bytes: Sequence<UInt8>>(bytes: Bytes) { self.bytes = Array(bytes) }
    public init(_ string: String) { bytes = Array(string.utf8) }
    public init(stringLiteral value: String) { self.init(value) }

    /// The bytes up to the first NUL of a C string.
    init(cString: UnsafePointer<CChar>) {
        let length = strlen(cString)
        bytes = cString.withMemoryRebound(to: UInt8.self, capacity: length) { Array(UnsafeBufferPointer(start: $0, count: length)) }
    }

    public var isEmpty: Bool { bytes.isEmpty }
    public var count: Int { bytes.count }

    /// The text, when the bytes are valid UTF-8.
    public var string: String? { String(validating: bytes, as: UTF8.self) }

    public var description: String { Self.escape(bytes) }

    public static func < (lhs: PathBytes, rhs: PathBytes) -> Bool { lhs.bytes.lexicographicallyPrecedes(rhs.bytes) }

    public static func + (lhs: PathBytes, rhs: PathBytes) -> PathBytes { PathBytes(lhs.bytes + rhs.bytes) }

    /// `self/component` (just `component` when `self` is empty).
    public func appending(_ component: PathBytes) -> PathBytes {
        if bytes.isEmpty { return component }
        var joined = bytes
        joined.reserveCapacity(bytes.count + 1 + component.bytes.count)
        joined.append(slash)
        joined.append(contentsOf: component.bytes)
        return PathBytes(joined)
    }

    public func hasPrefix(_ prefix: PathBytes) -> Bool { bytes.starts(with: prefix.bytes) }
    public func hasSuffix(_ suffix: PathBytes) -> Bool {
        bytes.count >= suffix.bytes.count && bytes[(bytes.count - suffix.bytes.count)...].elementsEqual(suffix.bytes)
    }

    /// The parts between slashes; empty parts kept (so `a//b` has three).
    public var components: [PathBytes] {
        bytes.split(separator: slash, omittingEmptySubsequences: false).map { PathBytes(bytes: $0) }
    }

    /// The non-empty components (`a//b/` has two), as the kernel walks them.
    public var parts: [PathBytes] {
        bytes.split(separator: slash).map { PathBytes(bytes: $0) }
    }

    /// `parts` joined by single slashes.
    public init<Parts: Sequence<PathBytes>>(joining parts: Parts) {
        var joined: [UInt8] = []
        for part in parts {
            if !joined.isEmpty { joined.append(slash) }
            joined.append(contentsOf: part.bytes)
        }
        bytes = joined
    }

    /// The last component (the whole path when it has no slash).
    public var lastComponent: PathBytes {
        guard let index = bytes.lastIndex(of: slash) else { return self }
        return PathBytes(bytes: bytes[(index + 1)...])
    }

    /// Runs `body` with the bytes as a NUL-terminated C string (for system calls).
    public func withCString<Result>(_ body: (UnsafePointer<CChar>) throws -> Result) rethrows -> Result {
        var terminated = bytes
        terminated.append(0)
        return try terminated.withUnsafeBufferPointer { buffer in
            try buffer.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) }
        }
    }

    // MARK: - the escaped form

    /// Parses the escaped form; nil when it is not one (a lone `\`, a bad `\x`).
    public init?(escaped text: String) {
        var result: [UInt8] = []
        result.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == backslash else { result.append(byte); continue }
            switch iterator.next() {
            case backslash: result.append(backslash)
            case UInt8(ascii: "x"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
                result.append(high << 4 | low)
            default: return nil
            }
        }
        bytes = result
    }

    static func escape(_ bytes: [UInt8]) -> String {
        // Fast path: printable ASCII without a backslash is its own escaped form.
        if bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != backslash }) {
            return String(decoding: bytes, as: UTF8.self)
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 8)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == backslash {
                out += [backslash, backslash]
                index += 1
            } else if byte < 0x20 || byte == 0x7F {
                appendHex(byte, to: &out)
                index += 1
            } else if byte < 0x80 {
                out.append(byte)
                index += 1
            } else if let length = validSequenceLength(bytes, at: index) {
                let scalar = bytes[index..<(index + length)]
                // C1 controls (U+0080...U+009F) are escaped like C0 ones: they steer terminals too.
                if length == 2, byte == 0xC2, bytes[index + 1] < 0xA0 {
                    for part in scalar { appendHex(part, to: &out) }
                } else {
                    out.append(contentsOf: scalar)
                }
                index += length
            } else {
                appendHex(byte, to: &out)
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

private let slash = UInt8(ascii: "/")
private let backslash = UInt8(ascii: "\\")

private func appendHex(_ byte: UInt8, to out: inout [UInt8]) {
    let digits = Array("0123456789ABCDEF".utf8)
    out += [backslash, UInt8(ascii: "x"), digits[Int(byte >> 4)], digits[Int(byte & 0xF)]]
}

private func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
    default: return nil
    }
}

/// The length of the well-formed UTF-8 sequence starting at `index` (RFC 3629:
/// no overlong forms, no surrogates, nothing above U+10FFFF), or nil.
private func validSequenceLength(_ bytes: [UInt8], at index: Int) -> Int? {
    let lead = bytes[index]
    let length: Int
    var low: UInt8 = 0x80, high: UInt8 = 0xBF
    switch lead {
    case 0xC2...0xDF: length = 2
    case 0xE0: length = 3; low = 0xA0
    case 0xE1...0xEC, 0xEE...0xEF: length = 3
    case 0xED: length = 3; high = 0x9F
    case 0xF0: length = 4; low = 0x90
    case 0xF1...0xF3: length = 4
    case 0xF4: length = 4; high = 0x8F
    default: return nil
    }
    guard index + length <= bytes.endIndex else { return nil }
    let second = bytes[index + 1]
    guard second >= low && second <= high else { return nil }
    for offset in 2..<max(2, length) where !(0x80...0xBF).contains(bytes[index + offset]) { return nil }
    return length
}
