import CArchive
import Foundation

/// Compresses the stream with libzstd's multi-threaded streaming API, with a
/// content checksum in the frame and a bounded job size so memory stays small.
final class ZstdSink: OutputSink {
    private let destination: any OutputSink
    private let context: OpaquePointer
    private let path: String
    private var output: [UInt8]

    init(destination: any OutputSink, level: Int, threads: Int, path: String) throws(ArchiveError) {
        guard let context = ZSTD_createCCtx() else { throw ArchiveError(.configure, path: path, message: "out of memory") }
        self.destination = destination
        self.context = context
        self.path = path
        output = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())
        try setParameter(ZSTD_c_compressionLevel, Int32(level))
        try setParameter(ZSTD_c_checksumFlag, 1)
        if threads > 1 {
            // Without multi-thread support in libzstd this fails; single-threaded is still correct.
            if ZSTD_isError(ZSTD_CCtx_setParameter(context, ZSTD_c_nbWorkers, Int32(threads))) == 0 {
                try setParameter(ZSTD_c_jobSize, 4 << 20)
            }
        }
    }

    deinit { ZSTD_freeCCtx(context) }

    private func setParameter(_ parameter: ZSTD_cParameter, _ value: Int32) throws(ArchiveError) {
        try check(ZSTD_CCtx_setParameter(context, parameter, value))
    }

    private func check(_ code: Int) throws(ArchiveError) {
        if ZSTD_isError(code) != 0 {
            throw ArchiveError(.write, path: path, message: "zstd: " + String(cString: ZSTD_getErrorName(code)))
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(ArchiveError) {
        guard bytes.count > 0 else { return }
        var input = ZSTD_inBuffer(src: bytes.baseAddress, size: bytes.count, pos: 0)
        while input.pos < input.size {
            try compress(&input, ZSTD_e_continue)
        }
    }

    func finish() throws(ArchiveError) {
        var input = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
        while try compress(&input, ZSTD_e_end) != 0 {}
        try destination.finish()
    }

    /// One compression step; writes what it produced. Returns zstd's "bytes left to flush".
    @discardableResult
    private func compress(_ input: inout ZSTD_inBuffer, _ directive: ZSTD_EndDirective) throws(ArchiveError) -> Int {
        let capacity = output.count
        let result: (remaining: Int, produced: Int) = output.withUnsafeMutableBytes { raw in
            var out = ZSTD_outBuffer(dst: raw.baseAddress, size: capacity, pos: 0)
            let remaining = ZSTD_compressStream2(context, &out, &input, directive)
            return (remaining, out.pos)
        }
        try check(result.remaining)
        if result.produced > 0 {
            let chunk = output[0..<result.produced]
            let written: Result<Void, ArchiveError> = chunk.withUnsafeBytes { raw in
                do throws(ArchiveError) { try destination.write(raw); return .success(()) } catch { return .failure(error) }
            }
            try written.get()
        }
        return result.remaining
    }
}
