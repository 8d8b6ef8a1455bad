import CArchive
import Foundation

/// Writes a pax tar stream (readable by GNU tar and bsdtar) into an `OutputSink`.
/// gzip is done by `ParallelGzipSink`; zstd, xz and bzip2 by libarchive's filters.
final class ArchiveWriter {
    private let handle: OpaquePointer
    private let path: String
    private let callbackBox: CallbackBox
    private var isOpen = false
    /// Warnings libarchive reported (e.g. a name it had to translate).
    private(set) var warnings: [String] = []

    init(sink: any OutputSink, compression: Compression, level: Int?, threads: Int, path: String) throws(ArchiveError) {
        ensureUTF8Locale()
        let level = level ?? compression.defaultLevel
        let destination: any OutputSink
        switch compression {
        case .gzip: destination = ParallelGzipSink(destination: sink, level: level ?? 6, threads: threads)
        // (Feeding zstd from a thread of its own, as tar does through a pipe, was measured slower:
        // its workers already take the compression off this thread; docs/performance.md.)
        case .zstd: destination = try ZstdSink(destination: sink, level: level ?? 3, threads: threads, path: path)
        default: destination = sink
        }
        guard let handle = archive_write_new() else { throw ArchiveError(.open, path: path, message: "out of memory") }
        self.handle = handle
        self.path = path
        callbackBox = CallbackBox(sink: destination)
        do {
            try checkArchive(archive_write_set_format_pax_restricted(handle), handle, .configure, path: path)
            // SCHILY.xattr only: GNU tar reads it too, and warns about LIBARCHIVE.xattr.
            try checkArchive(archive_write_set_format_option(handle, "pax", "xattrheader", "SCHILY"),
                             handle, .configure, path: path)
            try configureFilter(compression, level: level, threads: threads)
            // Large blocks mean few write calls; the last one is not padded.
            try checkArchive(archive_write_set_bytes_per_block(handle, 64 * 1024), handle, .configure, path: path)
            try checkArchive(archive_write_set_bytes_in_last_block(handle, 1), handle, .configure, path: path)
            let context = Unmanaged.passUnretained(callbackBox).toOpaque()
            let status = archive_write_open2(handle, context, nil, archiveWriteCallback, nil, nil)
            if status != ARCHIVE_OK { throw callbackBox.error ?? ArchiveError.fromArchive(handle, .open, path: path) }
            isOpen = true
        } catch let error as ArchiveError {
            // Every property is set, so deinit frees the handle.
            throw error
        } catch {
            throw ArchiveError(.open, path: path, message: "\(error)")
        }
    }

    deinit { archive_write_free(handle) }

    private func configureFilter(_ compression: Compression, level: Int?, threads: Int) throws(ArchiveError) {
        let filterName: String
        switch compression {
        case .gzip, .zstd, .none: return
        case .xz:
            try checkArchive(archive_write_add_filter_xz(handle), handle, .configure, path: path)
            filterName = "xz"
        case .bzip2:
            try checkArchive(archive_write_add_filter_bzip2(handle), handle, .configure, path: path)
            filterName = "bzip2"
        }
        if let level {
            try checkArchive(archive_write_set_filter_option(handle, filterName, "compression-level", String(level)),
                             handle, .configure, path: path)
        }
        if compression == .xz, threads > 1 {
            try checkArchive(archive_write_set_filter_option(handle, filterName, "threads", String(threads)),
                             handle, .configure, path: path)
        }
    }

    func writeHeader(_ entry: ArchiveEntry) throws(ArchiveError) {
        let status = archive_write_header(handle, entry.pointer)
        if status != ARCHIVE_OK, let error = callbackBox.error { throw error }
        var headerWarnings: [String] = []
        try checkArchive(status, handle, .write, path: "\(path): \(entry.pathname)", warnings: &headerWarnings)
        // A name that is not UTF-8 is stored as raw bytes under hdrcharset=BINARY
        // (what bsdtar does): libarchive says it "can't translate" it, which is the intent.
        if entry.hasBinaryNames { headerWarnings.removeAll { $0.contains("Can't translate") } }
        warnings += headerWarnings
    }

    /// Writes data of the current entry; the tar writer never takes more than the header's size.
    func writeData(_ bytes: UnsafeRawBufferPointer, entryPath: @autoclosure () -> String) throws(ArchiveError) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        let written = archive_write_data(handle, base, bytes.count)
        if written < 0 {
            if let error = callbackBox.error { throw error }
            throw ArchiveError.fromArchive(handle, .write, path: "\(path): \(entryPath())")
        }
    }

    /// Completes the stream (end-of-archive blocks, compressor flush).
    func close() throws(ArchiveError) {
        guard isOpen else { return }
        isOpen = false
        let status = archive_write_close(handle)
        if status != ARCHIVE_OK {
            throw callbackBox.error ?? ArchiveError.fromArchive(handle, .finish, path: path)
        }
        try callbackBox.sink.finish()
    }
}

/// Carries the sink into libarchive's C callback, and the sink's error back out.
private final class CallbackBox {
    let sink: any OutputSink
    var error: ArchiveError?

    init(sink: any OutputSink) { self.sink = sink }
}

private func archiveWriteCallback(_ archive: OpaquePointer?, _ context: UnsafeMutableRawPointer?,
                                  _ buffer: UnsafeRawPointer?, _ length: Int) -> Int {
    guard let context else { return -1 }
    let box = Unmanaged<CallbackBox>.fromOpaque(context).takeUnretainedValue()
    do {
        try box.sink.write(UnsafeRawBufferPointer(start: buffer, count: length))
        return length
    } catch {
        box.error = error
        if let archive { clmnt_archive_set_error(archive, error.code == 0 ? EIO : error.code, error.message) }
        return -1
    }
}
