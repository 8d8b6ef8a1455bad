import ClmntCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The bytes of `path`; nil when it does not exist; throws when it exists but cannot be read.
func readWholeFile(_ path: String, limit: Int = 64 * 1024 * 1024) throws(HealthError) -> Data? {
    let file: FileDescriptor
    // O_NONBLOCK: a FIFO planted as a PID or config file must not stall a check.
    do { file = try FileDescriptor.open(path, O_RDONLY | O_NONBLOCK) } catch {
        if error.code == ENOENT { return nil }
        throw .cannotRead(path: path, reason: error.reason)
    }
    guard let info = try? file.status(), (info.st_mode & S_IFMT) == S_IFREG else {
        throw .cannotRead(path: path, reason: "not a regular file")
    }
    // At most `limit` bytes: what a check needs is at the start.
    do { return Data(try file.read(upTo: limit)) } catch { throw .cannotRead(path: path, reason: error.reason) }
}

/// A small file's text, nil when missing or unreadable (for PID and lock files, where either means "no").
func readSmallFile(_ path: String, limit: Int = 64 * 1024) -> String? {
    guard let data = try? readWholeFile(path, limit: limit) else { return nil }
    return String(decoding: data, as: UTF8.self)
}

func errnoText() -> String { SystemError.text() }

/// The bytes of `relative` (such as `.openclaw/openclaw.json`) below `home`, read as root
/// must read in a molt's home: `Molt.readFile` (every component `O_NOFOLLOW` from the home's
/// descriptor, regular files only, non-blocking, bounded). Nil when it does not exist.
func readInHome(_ home: String, _ relative: String, limit: Int = 1 << 20) throws(HealthError) -> Data? {
    do { return try Molt.readFile(home: home, relative, limit: limit) } catch {
        if error.isHostile { throw .unsafeStateFile(path: error.path, reason: error.reason) }
        throw .cannotRead(path: error.path, reason: error.reason)
    }
}
