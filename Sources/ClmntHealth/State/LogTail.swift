import ClmntCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `tail` and `tail -F` of `.molt-state/cron.log`, read through the state
/// directory's descriptors like every state file: a log that is a symlink (say to
/// `/etc/shadow`) or a FIFO is refused, never printed or waited on.
public enum LogTail {
    /// The last `count` lines of the log (reads only the end of a big file).
    public static func lastLines(in directory: StateDirectory, name: String = StateDirectory.cronLogName,
                                 count: Int) throws(HealthError) -> [String] {
        var window = 64 * 1024
        while true {
            guard let (data, skipped) = try directory.tail(of: name, maxBytes: window) else {
                throw .logMissing(path: directory.display(name))
            }
            var lines = String(decoding: data, as: UTF8.self).components(separatedBy: "\n")
            if lines.last == "" { lines.removeLast() }
            // Enough lines, the whole file, or a window as big as we go (lines that long are not a log).
            if lines.count >= count || skipped == 0 || window >= 16 << 20 { return Array(lines.suffix(count)) }
            window *= 4
        }
    }

    /// The most `follow` holds of a line it has not seen the end of: a longer one is
    /// printed in pieces of this size, each ending in ``cutMarker``.
    public static let longestLine = 64 * 1024
    public static let cutMarker = " [clmnt: line cut at 64 KiB]"

    /// Prints lines appended to the log as they come, like `tail -F`: follows a
    /// file that is replaced (rotated) or truncated, waits for one that is
    /// missing (or unsafe: it says so once). Returns when `shouldStop` says so
    /// (checked every `poll` seconds).
    public static func follow(in directory: StateDirectory, name: String = StateDirectory.cronLogName,
                              from start: Int64? = nil, poll: Double = 0.5, longestLine: Int = LogTail.longestLine,
                              shouldStop: () -> Bool = { false }, warning: (String) -> Void = { _ in },
                              output: (String) -> Void) {
        var file: FileDescriptor?
        var inode: ino_t = 0
        var position: Int64 = 0
        var pending = Data()
        var warned = false
        /// The log through the state directory, when it is not the one we hold (inode `held`).
        func openedIfReplaced(held: ino_t?) -> FileDescriptor? {
            let opened: FileDescriptor?
            do throws(HealthError) {
                opened = try directory.open(create: false)?.openFile(name, writing: false, create: false)
            } catch {
                if !warned { warning(error.description) }
                warned = true
                return nil
            }
            guard let opened, let info = try? opened.status() else { return nil }
            warned = false
            if let held, info.st_ino == held { return nil }
            return opened
        }
        func hold(_ opened: consuming FileDescriptor, first: Bool) {
            let info = try? opened.status()
            let size = Int64(info?.st_size ?? 0)
            inode = info?.st_ino ?? 0
            position = first ? min(start ?? size, size) : 0
            file = consume opened
        }
        if let opened = openedIfReplaced(held: nil) { hold(opened, first: true) }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let fd = file?.rawValue ?? -1
            if fd >= 0 {
                var current = stat()
                if fstat(fd, &current) == 0, Int64(current.st_size) < position { position = 0 } // truncated
                while true {
                    let got = pread(fd, &buffer, buffer.count, off_t(position))
                    guard got > 0 else { break }
                    position += Int64(got)
                    pending.append(contentsOf: buffer[0..<got])
                    while let newline = pending.firstIndex(of: 10) {
                        output(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                        pending = Data(pending[(newline + 1)...])
                    }
                    // A molt writing no newline must not grow root's process: print what we hold, marked.
                    if pending.count >= longestLine {
                        output(String(decoding: pending, as: UTF8.self) + Self.cutMarker)
                        pending = Data()
                    }
                }
            }
            // A new file at the name (rotated, or created after we started): read it from its start.
            if let opened = openedIfReplaced(held: fd >= 0 ? inode : nil) {
                hold(opened, first: false)
                continue
            }
            if shouldStop() { return }
            usleep(useconds_t(poll * 1_000_000))
        }
    }
}
