import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Identity, size and modification time of a file, by `lstat` (a link is not followed):
/// enough to tell that a file changed without reading it.
public struct FileStamp: Equatable, Sendable {
    public let device: UInt64
    public let inode: UInt64
    public let size: Int64
    public let modified: Int64
    public let modifiedNanoseconds: Int64

    public init?(path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modified = Int64(info.st_mtim.tv_sec)
        modifiedNanoseconds = Int64(info.st_mtim.tv_nsec)
    }
}

/// What a long-running reader (the dashboard) keeps between discoveries: each molt's parse of
/// `.molt-info` and `openclaw.json` by their stamps, so an unchanged molt costs two `lstat`s,
/// and a molt whose files keep changing is parsed again at most once per `minimumInterval`
/// (meanwhile its last parse stands): a molt rewriting its files in a loop cannot keep root busy.
public final class DiscoveryCache: @unchecked Sendable {  // state behind `lock`
    private struct Entry {
        let stamps: [FileStamp?]
        let parsedAt: Double
        let molt: Molt?
    }

    public let minimumInterval: Double
    private let lock = NSLock()
    private var entries: [String: Entry] = [:]
    private var parseCount = 0

    /// How many times a molt's files were parsed (tests and measurements read it).
    public var parses: Int {
        lock.lock()
        defer { lock.unlock() }
        return parseCount
    }

    public init(minimumInterval: Double = 5) { self.minimumInterval = minimumInterval }

    /// The cached molt for `home` when its files are unchanged, or changed too recently after the
    /// last parse; else `load()`'s, remembered.
    func molt(home: String, now: Double, load: () -> Molt?) -> Molt? {
        let stamps = [FileStamp(path: home + "/.molt-info"), FileStamp(path: home + "/.openclaw/openclaw.json")]
        lock.lock()
        let cached = entries[home]
        lock.unlock()
        if let cached, cached.stamps == stamps || now - cached.parsedAt < minimumInterval { return cached.molt }
        let molt = load()
        lock.lock()
        entries[home] = Entry(stamps: stamps, parsedAt: now, molt: molt)
        parseCount += 1
        lock.unlock()
        return molt
    }

    /// Forgets homes not seen in the last discovery.
    func keep(only homes: Set<String>) {
        lock.lock()
        entries = entries.filter { homes.contains($0.key) }
        lock.unlock()
    }
}
