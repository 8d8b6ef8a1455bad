import CArchive
import Foundation

/// What happened while a file's data was copied into the archive.
struct StreamOutcome {
    /// Bytes that were missing at the end (the file shrank) and were written as zeros.
    var paddedBytes: Int64 = 0
}

extension ArchiveWriter {
    /// Copies the data of the open file `fd` for `entry` (whose header is written),
    /// exactly `entry.size` bytes: the data regions of a sparse file are read,
    /// its holes fed as zeros (the pax writer drops them), and a file that
    /// shrank meanwhile is padded with zeros so the archive stays valid.
    /// A failed read throws with `.read` and the file's path; a failed write, with `.write`.
    func streamFileData(from fd: Int32, entry: ArchiveEntry, buffer transfer: TransferBuffer,
                        hasher: SHA256Hasher, sourcePath: @autoclosure () -> String) throws(ArchiveError) -> StreamOutcome {
        let buffer = transfer.bytes
        let size = entry.size
        var regions = entry.sparseRegions
        if regions.isEmpty { regions = [(0, size)] }
        var position: Int64 = 0
        var outcome = StreamOutcome()
        let entryPath = entry.pathname

        func emitZeros(_ count: Int64) throws(ArchiveError) {
            var remaining = count
            while remaining > 0 {
                let chunk = Int(min(remaining, Int64(zeroBlock.count)))
                let result: Result<Void, ArchiveError> = zeroBlock.withUnsafeBytes { raw in
                    let bytes = UnsafeRawBufferPointer(rebasing: raw[0..<chunk])
                    hasher.update(bytes)
                    do throws(ArchiveError) { try writeData(bytes, entryPath: entryPath.description); return .success(()) }
                    catch { return .failure(error) }
                }
                try result.get()
                remaining -= Int64(chunk)
            }
        }

        for region in regions where region.offset < size {
            if region.offset > position { try emitZeros(region.offset - position); position = region.offset }
            var remaining = min(region.length, size - position)
            while remaining > 0 {
                let want = Int(min(remaining, Int64(buffer.count)))
                let got = pread(fd, buffer.baseAddress, want, off_t(position))
                if got < 0 {
                    if errno == EINTR { continue }
                    throw ArchiveError.fromErrno(.read, path: sourcePath())
                }
                if got == 0 {
                    outcome.paddedBytes += remaining
                    try emitZeros(remaining)
                    position += remaining
                    break
                }
                let bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<got])
                hasher.update(bytes)
                try writeData(bytes, entryPath: entryPath.description)
                position += Int64(got)
                remaining -= Int64(got)
            }
        }
        if position < size { try emitZeros(size - position) }
        return outcome
    }

    /// Writes a whole in-memory file (manifest, report, a database snapshot).
    func writeBytes(_ bytes: [UInt8], entry: ArchiveEntry, hasher: SHA256Hasher?) throws(ArchiveError) {
        entry.size = Int64(bytes.count)
        entry.clearSparse()
        try writeHeader(entry)
        let result: Result<Void, ArchiveError> = bytes.withUnsafeBytes { raw in
            hasher?.update(raw)
            do throws(ArchiveError) { try writeData(raw, entryPath: entry.pathname.description); return .success(()) }
            catch { return .failure(error) }
        }
        try result.get()
    }
}

/// Zeros for sparse holes and shrunk files.
private let zeroBlock = [UInt8](repeating: 0, count: 1 << 20)
