import Foundation

/// The SHA-256 of every data entry one pass over an archive saw, in archive order, and
/// the archive's `SHA256SUMS` as read; both set aside in `SpillFile`s and matched line
/// by line at the end. A backup writes `SHA256SUMS` in archive order, so the match needs
/// no table of a million paths; lines out of that order (a hand-made or damaged list)
/// are matched by path instead, for what is left.
final class DigestLedger {
    private let seen: SpillFile
    private let listed: SpillFile
    /// The last entry noted, not yet set aside: its digest may still come.
    private var last: (path: PathBytes, digest: String?)?
    private(set) var sawChecksums = false
    /// Why the ledger could not be kept (a full scratch disk): the check cannot conclude.
    private(set) var failure: SystemError?

    init(scratchDirectory: String, memoryLimit: Int = 4 << 20) {
        seen = SpillFile(directory: scratchDirectory, memoryLimit: memoryLimit)
        listed = SpillFile(directory: scratchDirectory, memoryLimit: memoryLimit)
    }

    /// A data entry at `path` (its digest, if the caller hashes it, follows through `digest`).
    func note(_ path: PathBytes, digest: String? = nil) {
        setLastAside()
        last = (path, digest)
    }

    /// The SHA-256 (hex) of the entry just noted at `path`.
    func digest(_ digest: String, path: PathBytes) {
        if last?.path == path { last?.digest = digest } else { note(path, digest: digest) }
    }

    /// The next bytes of `SHA256SUMS`.
    func checksums(_ bytes: UnsafeRawBufferPointer) {
        sawChecksums = true
        do { try listed.append(bytes) } catch { failure = failure ?? error }
    }

    /// Every entry against `SHA256SUMS`, both ways: what does not match, in archive order.
    func mismatches() throws(SystemError) -> [IntegrityProblem] {
        setLastAside()
        if let failure { throw failure }
        var records = SpillReader(seen)
        var lines = SpillReader(listed)
        var problems: [IntegrityProblem] = []
        var unmatched: (path: PathBytes, expected: String)?
        while let line = try lines.line() {
            guard let (path, expected) = ChecksumList.parseLine(line) else { continue }
            guard let record = try records.peekRecord(), record.path == path else {
                unmatched = (path, expected)
                break
            }
            records.skipRecord()
            if let digest = record.digest, digest != expected { problems.append(Self.corrupt(path)) }
        }
        guard let unmatched else {
            while let record = try records.peekRecord() {
                records.skipRecord()
                problems.append(Self.unlisted(record.path))
            }
            return problems
        }
        return problems + (try matchByPath(first: unmatched, records: &records, lines: &lines))
    }

    /// The rest, out of order: matched through a table (only a list not written by clmnt gets here).
    private func matchByPath(first: (path: PathBytes, expected: String), records: inout SpillReader,
                             lines: inout SpillReader) throws(SystemError) -> [IntegrityProblem] {
        var expected: [PathBytes: String] = [first.path: first.expected]
        while let line = try lines.line() {
            if let (path, digest) = ChecksumList.parseLine(line) { expected[path] = digest }
        }
        var digests: [PathBytes: String?] = [:]
        while let record = try records.peekRecord() {
            records.skipRecord()
            digests[record.path] = record.digest
        }
        var problems: [IntegrityProblem] = []
        for (path, digest) in digests.sorted(by: { $0.key < $1.key }) {
            guard let listed = expected[path] else {
                problems.append(Self.unlisted(path))
                continue
            }
            if let digest, listed != digest { problems.append(Self.corrupt(path)) }
        }
        for path in expected.keys.sorted() where digests[path] == nil {
            problems.append(.damaged("\(path): listed in \(ArchiveLayout.checksumsPath) but missing from the archive"))
        }
        return problems
    }

    private static func corrupt(_ path: PathBytes) -> IntegrityProblem {
        .damaged("\(path): SHA-256 mismatch with \(ArchiveLayout.checksumsPath) (content is corrupt)")
    }

    private static func unlisted(_ path: PathBytes) -> IntegrityProblem {
        .damaged("\(path): not listed in \(ArchiveLayout.checksumsPath)")
    }

    /// Record: 0, or 1 and 64 hex digits; the path's length (4 bytes, little-endian); the path.
    private func setLastAside() {
        guard let (path, digest) = last else { return }
        last = nil
        var record: [UInt8] = []
        record.reserveCapacity(path.count + 69)
        if let digest { record.append(1); record += digest.utf8 } else { record.append(0) }
        withUnsafeBytes(of: UInt32(path.count).littleEndian) { record += $0 }
        record += path.bytes
        do { try seen.append(record) } catch { failure = failure ?? error }
    }
}

/// Reads a `SpillFile` back from its start: `DigestLedger`'s records, or lines.
private struct SpillReader {
    private let file: SpillFile
    private var offset = 0
    private var window: [UInt8] = []
    private var position = 0
    private var peeked: (path: PathBytes, digest: String?, length: Int)?

    init(_ file: SpillFile) { self.file = file }

    /// Makes at least `count` bytes available from `position`; false at the end of the file.
    private mutating func fill(_ count: Int) throws(SystemError) -> Bool {
        if window.count - position >= count { return true }
        let more = min(max(1 << 20, count), file.byteCount - offset)
        guard window.count - position + more >= count else { return false }
        window = Array(window[position...]) + (try file.read(at: offset, count: more))
        offset += more
        position = 0
        return true
    }

    /// The next line, without its newline (the last one may lack it), or nil at the end.
    mutating func line() throws(SystemError) -> ArraySlice<UInt8>? {
        var searchFrom = position
        while true {
            if let end = window[searchFrom...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = window[position..<end]
                position = end + 1
                return line
            }
            let had = window.count - position
            guard try fill(had + 1) else {
                guard position < window.count else { return nil }
                let line = window[position...]
                position = window.count
                return line
            }
            searchFrom = position + had
        }
    }

    mutating func peekRecord() throws(SystemError) -> (path: PathBytes, digest: String?)? {
        if let peeked { return (peeked.path, peeked.digest) }
        guard try fill(1) else { return nil }
        let hashed = window[position] == 1
        let head = 1 + (hashed ? 64 : 0)
        guard try fill(head + 4) else { throw SystemError(path: "digest ledger", code: EIO) }
        let digest = hashed ? String(decoding: window[(position + 1)..<(position + 65)], as: UTF8.self) : nil
        var length = 0
        for (shift, byte) in window[(position + head)..<(position + head + 4)].enumerated() { length |= Int(byte) << (8 * shift) }
        guard try fill(head + 4 + length) else { throw SystemError(path: "digest ledger", code: EIO) }
        let path = PathBytes(bytes: window[(position + head + 4)..<(position + head + 4 + length)])
        peeked = (path, digest, head + 4 + length)
        return (path, digest)
    }

    mutating func skipRecord() {
        guard let peeked else { return }
        position += peeked.length
        self.peeked = nil
    }
}
