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
