/// The `sha256sum` line format. Names are written as bytes, as `sha256sum`
/// writes them; a name holding `\`, a newline or a carriage return gets GNU's
/// escaping (the line starts with `\`; those become `\\`, `\n`, `\r`).
public enum ChecksumList {
    static func line<Digest: Collection<UInt8>>(digest: Digest, path: PathBytes) -> [UInt8] {
        var line: [UInt8] = []
        line.reserveCapacity(path.count + 68)
        let needsEscape = path.bytes.contains { $0 == backslashByte || $0 == newlineByte || $0 == returnByte }
        if needsEscape { line.append(backslashByte) }
        line.append(contentsOf: hexString(digest).utf8)
        line += [UInt8(ascii: " "), UInt8(ascii: " ")]
        if needsEscape {
            for byte in path.bytes {
                switch byte {
                case backslashByte: line += [backslashByte, backslashByte]
                case newlineByte: line += [backslashByte, UInt8(ascii: "n")]
                case returnByte: line += [backslashByte, UInt8(ascii: "r")]
                default: line.append(byte)
                }
            }
        } else {
            line.append(contentsOf: path.bytes)
        }
        line.append(newlineByte)
        return line
    }

    /// Parses `sha256sum` output (bytes, not text: names need not be UTF-8)
    /// into path → lowercase hex digest. Text (`  `) and binary (` *`) lines both.
    public static func parse<Bytes: Collection<UInt8>>(_ data: Bytes) -> [PathBytes: String] {
        var result: [PathBytes: String] = [:]
        for rawLine in data.split(separator: newlineByte) {
            if let (path, digest) = parseLine(rawLine) { result[path] = digest }
        }
        return result
    }

    /// One line (without its newline): the path and the lowercase hex digest, or nil for a line that is none.
    static func parseLine<Bytes: Collection<UInt8>>(_ rawLine: Bytes) -> (PathBytes, String)? {
        var line = Array(rawLine)
        let escaped = line.first == backslashByte
        if escaped { line.removeFirst() }
        guard line.count > 66 else { return nil }
        let digest = String(decoding: line[0..<64], as: UTF8.self).lowercased()
        var path = Array(line[66...])
        if escaped {
            var unescaped: [UInt8] = []
            var index = 0
            while index < path.count {
                let byte = path[index]
                index += 1
                guard byte == backslashByte, index < path.count else { unescaped.append(byte); continue }
                let next = path[index]
                index += 1
                switch next {
                case UInt8(ascii: "n"): unescaped.append(newlineByte)
                case UInt8(ascii: "r"): unescaped.append(returnByte)
                default: unescaped.append(next)
                }
            }
            path = unescaped
        }
        return (PathBytes(path), digest)
    }
}

private let backslashByte = UInt8(ascii: "\\")
private let newlineByte = UInt8(ascii: "\n")
private let returnByte = UInt8(ascii: "\r")
