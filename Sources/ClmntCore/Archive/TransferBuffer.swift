/// A fixed block of memory for moving bytes (file data into an archive, chunks
/// of a decompressed stream), freed when its last owner lets go of it, whatever
/// path, error or early return that takes. The only place clmnt allocates raw memory.
final class TransferBuffer: @unchecked Sendable {
    let bytes: UnsafeMutableRawBufferPointer

    init(byteCount: Int) {
        bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: byteCount, alignment: 64)
    }

    deinit { bytes.deallocate() }

    var count: Int { bytes.count }
}
