import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `tail` and `tail -F` of `.molt-state/cron.log`.
public enum LogTail {
    /// The last `count` lines of `path` (reads only the end of a big file).
    public static func lastLines(of path: String, count: Int) throws(HealthError) -> [String] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { throw .logMissing(path: path) }
            throw .cannotRead(path: path, reason: errnoText())
        }
        defer { close(fd) }
        guard count > 0 else { return [] }
        var info = stat()
        fstat(fd, &info)
        var offset = Int64(info.st_size)
        var data = Data()
        let chunk = 64 * 1024
        // Read backwards until enough newlines are in hand.
        while offset > 0 {
            let size = Int(min(Int64(chunk), offset))
            offset -= Int64(size)
            var buffer = [UInt8](repeating: 0, count: size)
            let got = pread(fd, &buffer, size, off_t(offset))
            guard got >= 0 else { throw .cannotRead(path: path, reason: errnoText()) }
            data.insert(contentsOf: buffer[0..<got], at: 0)
            if data.reduce(0, { $0 + ($1 == 10 ? 1 : 0) }) > count { break }
        }
        var lines = String(decoding: data, as: UTF8.self).components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        return Array(lines.suffix(count))
    }

    /// Prints lines appended to `path` as they come, like `tail -F`: follows a
    /// file that is replaced (rotated) or truncated, waits for one that is
    /// missing. Returns when `shouldStop` says so (checked every `poll` seconds).
    public static func follow(_ path: String, from start: Int64? = nil, poll: Double = 0.5,
                              shouldStop: () -> Bool = { false }, output: (String) -> Void) {
        var fd: Int32 = -1
        var inode: ino_t = 0
        var position: Int64 = 0
        var pending = Data()
        defer { if fd >= 0 { close(fd) } }
        var info = stat()
        if stat(path, &info) == 0 {
            fd = open(path, O_RDONLY | O_CLOEXEC)
            inode = info.st_ino
            position = min(start ?? Int64(info.st_size), Int64(info.st_size))
        }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            if fd >= 0 {
                var current = stat()
                if fstat(fd, &current) == 0, Int64(current.st_size) < position { position = 0 } // truncated
                while true {
                    let got = pread(fd, &buffer, buffer.count, off_t(position))
                    guard got > 0 else { break }
                    position += Int64(got)
                    pending.append(contentsOf: buffer[0..<got])
                }
                while let newline = pending.firstIndex(of: 10) {
                    output(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                    pending = Data(pending[(newline + 1)...])
                }
            }
            // A new file at the path (rotated, or created after we started): read it from its start.
            if stat(path, &info) == 0, fd < 0 || info.st_ino != inode {
                if fd >= 0 { close(fd) }
                fd = open(path, O_RDONLY | O_CLOEXEC)
                inode = info.st_ino
                position = 0
                continue
            }
            if shouldStop() { return }
            usleep(useconds_t(poll * 1_000_000))
        }
    }
}
