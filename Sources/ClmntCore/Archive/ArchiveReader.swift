import CArchive
import Foundation

/// Reads a tar stream (gzip, zstd, xz, bzip2 or uncompressed) entry by entry.
/// Only the tar formats and the filters clmnt writes are registered.
public final class ArchiveReader {
    let handle: OpaquePointer
    /// The archive's path, for error messages.
    public let path: String
    private let input: SourceReadBox
    let entry = ArchiveEntry()
    private var entryIsOpen = false
    /// Warnings libarchive reported while reading.
    public private(set) var warnings: [String] = []

    /// Opens `path` for reading (a local file, or a source `ArchiveInput` knows by that name;
    /// decrypted when it is an age file). `blockSize`: the size of a local file's reads.
    public init(path: String, blockSize: Int = 1 << 20) throws(ArchiveError) {
        self.path = path
        ensureUTF8Locale()
        input = SourceReadBox(source: try ArchiveInput.open(path, chunkSize: blockSize), path: path)
        guard let handle = archive_read_new() else {
            throw ArchiveError(.open, path: path, message: "out of memory")
        }
        self.handle = handle
        // Every property is set from here: a throw runs deinit, which frees the handle.
        try checkArchive(archive_read_support_format_tar(handle), handle, .configure, path: path)
        for add in [archive_read_support_filter_gzip, archive_read_support_filter_zstd,
                    archive_read_support_filter_xz, archive_read_support_filter_bzip2] {
            try checkArchive(add(handle), handle, .configure, path: path)
        }
        try input.open(handle)
    }

    deinit {
        archive_read_free(handle)
    }

    /// The next entry's header, or nil at the end of the archive.
    public func next() throws(ArchiveError) -> EntryMetadata? {
        let status = archive_read_next_header2(handle, entry.pointer)
        if status == ARCHIVE_EOF { entryIsOpen = false; return nil }
        if status != ARCHIVE_OK && status != ARCHIVE_WARN, let error = input.error { throw error }
        try checkArchive(status, handle, .read, path: path, warnings: &warnings)
        entryIsOpen = true
        return entry.metadata
    }

    /// Reads the current entry's data as the file's bytes in order, with the
    /// holes of a sparse entry given as zeros, through `body`.
    public func readData(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        var expectedOffset: Int64 = 0
        let zeros = [UInt8](repeating: 0, count: 64 * 1024)
        func emitZeros(upTo offset: Int64) throws {
            while expectedOffset < offset {
                let count = Int(min(Int64(zeros.count), offset - expectedOffset))
                try zeros.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                expectedOffset += Int64(count)
            }
        }
        while true {
            var buffer: UnsafeRawPointer?
            var size = 0
            var offset: Int64 = 0
            let status = archive_read_data_block(handle, &buffer, &size, &offset)
            if status == ARCHIVE_EOF { break }
            if status != ARCHIVE_OK && status != ARCHIVE_WARN, let error = input.error { throw error }
            try checkArchive(status, handle, .read, path: "\(path): \(entry.pathname)", warnings: &warnings)
            try emitZeros(upTo: offset)
            if let buffer, size > 0 {
                try body(UnsafeRawBufferPointer(start: buffer, count: size))
                expectedOffset = offset + Int64(size)
            }
        }
        // A sparse file may end in a hole.
        try emitZeros(upTo: archive_entry_size(entry.pointer))
    }

    /// Reads the whole current entry into memory, refusing more than `limit` bytes.
    public func readAll(limit: Int = 64 << 20) throws -> Data {
        var data = Data()
        try readData(limit: limit) { data.append(contentsOf: $0) }
        return data
    }

    /// Hands the current entry's bytes to `body` a chunk at a time, refusing more than `limit` bytes.
    public func readData(limit: Int, _ body: (UnsafeRawBufferPointer) -> Void) throws {
        var total = 0
        try readData { chunk in
            total += chunk.count
            guard total <= limit else {
                throw ArchiveError(.read, path: "\(path): \(entry.pathname)", message: "entry larger than \(limit) bytes")
            }
            body(chunk)
        }
    }

    /// Compressed bytes consumed so far (for progress).
    public var compressedBytesRead: Int64 { input.bytesRead }

    /// The outermost filter's name: "gzip", "zstd", "xz", "bzip2" or "none".
    public var compressionName: String {
        guard archive_filter_count(handle) > 1, let name = archive_filter_name(handle, 0) else { return "none" }
        return String(cString: name)
    }
}
