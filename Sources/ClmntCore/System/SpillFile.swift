import CLinux
import Foundation

/// An append-only byte log that stays in memory while small and moves to an
/// unnamed file (`O_TMPFILE`, mode 0600: no name anyone could race) once it
/// passes `memoryLimit`. What a pass must remember per file (digest lines, a
/// scan's entries) goes here, so memory does not grow with the number of files.
final class SpillFile {
    private let directory: String
    private let memoryLimit: Int
    /// The tail not yet written out (all of it while in memory).
    private var pending: [UInt8] = []
    private var file: SpillBacking?
    private(set) var byteCount = 0

    /// `directory`: where the unnamed file lives once it spills (a trusted one, or any:
    /// an `O_TMPFILE` file has no name; the fallback's name is `O_EXCL` and unlinked at once).
    init(directory: String, memoryLimit: Int = 4 << 20) {
        self.directory = directory
        self.memoryLimit = TestHook.spillMemoryLimit ?? memoryLimit
        pending.reserveCapacity(min(self.memoryLimit, 1 << 16))
    }

    /// Where scratch files go when there is no archive directory to put them beside (a streamed
    /// backup, a restore, a verify): $TMPDIR, else /var/tmp (disk, not tmpfs).
    static var defaultDirectory: String {
        if let value = ProcessInfo.processInfo.environment["TMPDIR"], !value.isEmpty { return value }
        return "/var/tmp"
    }

    func append<Bytes: Collection<UInt8>>(_ bytes: Bytes) throws(SystemError) {
        pending.append(contentsOf: bytes)
        byteCount += bytes.count
        if pending.count >= memoryLimit { try writeOut() }
    }

    /// The values' own bytes (plain numbers only: nothing that refers to memory).
    func append<Value: BitwiseCopyable>(raw values: [Value]) throws(SystemError) {
        values.withUnsafeBytes { pending.append(contentsOf: $0) }
        byteCount += values.count * MemoryLayout<Value>.stride
        if pending.count >= memoryLimit { try writeOut() }
    }

    /// Calls `body` with the whole log, in order, a chunk (at most 1 MiB) at a time.
    /// Errors: the body's, or a `SystemError` reading the file back.
    func forEachChunk(_ body: (ArraySlice<UInt8>) throws -> Void) throws {
        var offset = 0
        let written = byteCount - pending.count
        while offset < written {
            let chunk = try read(at: offset, count: min(1 << 20, written - offset))
            try body(chunk[...])
            offset += chunk.count
        }
        if !pending.isEmpty { try body(pending[...]) }
    }

    /// `count` bytes from `offset` (which must lie within the log).
    func read(at offset: Int, count: Int) throws(SystemError) -> [UInt8] {
        precondition(offset >= 0 && count >= 0 && offset + count <= byteCount, "read beyond the spill file")
        let written = byteCount - pending.count
        var result: [UInt8] = []
        if offset < written, let file {
            let fromFile = min(count, written - offset)
            // `read(at:)` stops short only at the file's end: ours never shrinks.
            result = try file.descriptor.read(at: offset, count: fromFile)
            guard result.count == fromFile else { throw SystemError(path: spillPath, code: EIO) }
        }
        if result.count < count {
            let start = offset + result.count - written
            result += pending[start..<(start + count - result.count)]
        }
        return result
    }

    private var spillPath: String { directory + "/(spill file)" }

    private func writeOut() throws(SystemError) {
        let file: SpillBacking
        if let existing = self.file { file = existing } else {
            file = SpillBacking(descriptor: try Self.createUnnamed(in: directory))
            self.file = file
        }
        let result: Result<Void, SystemError> = pending.withUnsafeBytes { raw in
            do throws(SystemError) { try file.descriptor.writeAll(raw); return .success(()) } catch { return .failure(error) }
        }
        try result.get()
        pending.removeAll(keepingCapacity: true)
    }

    /// An unnamed read-write file in `directory`; where the filesystem has no `O_TMPFILE`,
    /// a fresh `O_EXCL` name removed as soon as it is open.
    private static func createUnnamed(in directory: String) throws(SystemError) -> FileDescriptor {
        let fd = open(directory, O_RDWR | LinuxCalls.unnamedFile | O_CLOEXEC, 0o600)
        if fd >= 0 { return FileDescriptor(adopting: fd, path: directory + "/(spill file)") }
        guard errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL else { throw SystemError(path: directory) }
        let path = "\(directory)/.clmnt-spill-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let file = try FileDescriptor.open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0o600)
        unlink(path)
        return file
    }
}

/// The file a `SpillFile` moved to (a class: a descriptor has one owner).
private final class SpillBacking {
    let descriptor: FileDescriptor
    init(descriptor: consuming FileDescriptor) { self.descriptor = descriptor }
}
