import ClmntCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The bytes of `path`; nil when it does not exist; throws when it exists but cannot be read.
func readWholeFile(_ path: String, limit: Int = 64 * 1024 * 1024) throws(HealthError) -> Data? {
    // O_NONBLOCK: a FIFO planted as a PID or config file must not stall a check.
    let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    if fd < 0 {
        if errno == ENOENT { return nil }
        throw .cannotRead(path: path, reason: errnoText())
    }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
        throw .cannotRead(path: path, reason: "not a regular file")
    }
    return try readAll(fd, limit: limit, path: path)
}

/// Reads `fd` to its end, at most about `limit` bytes.
private func readAll(_ fd: Int32, limit: Int, path: String) throws(HealthError) -> Data {
    var data = Data()
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    while data.count < limit {
        let count = read(fd, &buffer, buffer.count)
        if count < 0 && errno == EINTR { continue }
        if count < 0 { throw .cannotRead(path: path, reason: errnoText()) }
        if count == 0 { break }
        data.append(contentsOf: buffer[0..<count])
    }
    return data
}

/// A small file's text, nil when missing or unreadable (for PID and lock files, where either means "no").
func readSmallFile(_ path: String, limit: Int = 64 * 1024) -> String? {
    guard let data = try? readWholeFile(path, limit: limit) else { return nil }
    return String(decoding: data, as: UTF8.self)
}

func errnoText() -> String { String(cString: strerror(errno)) }

/// The bytes of `relative` (such as `.openclaw/openclaw.json`) below `home`, read as root
/// must read in a molt's home: `Molt.readFile` (every component `O_NOFOLLOW` from the home's
/// descriptor, regular files only, non-blocking, bounded). Nil when it does not exist.
func readInHome(_ home: String, _ relative: String, limit: Int = 1 << 20) throws(HealthError) -> Data? {
    do { return try Molt.readFile(home: home, relative, limit: limit) } catch {
        // RestoreError speaks of archives; say it as the health commands do.
        switch error {
        case .hostileEntry(let path, let reason): throw .unsafeStateFile(path: path, reason: reason)
        case .fileSystem(let path, let reason): throw .cannotRead(path: path, reason: reason)
        default: throw .cannotRead(path: home + "/" + relative, reason: error.description)
        }
    }
}
