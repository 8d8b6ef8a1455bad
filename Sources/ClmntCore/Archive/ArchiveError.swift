import CArchive
import Foundation

/// A failure of libarchive or of the I/O around it: what was being done, to
/// which path, errno, and libarchive's own message. Prints as one line.
public struct ArchiveError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Operation: String, Sendable {
        case open = "open"
        case read = "read"
        case write = "write"
        case finish
        case configure = "configure"
        case extract = "extract"
    }

    public let operation: Operation
    /// The archive file, or the entry inside it.
    public let path: String
    public let code: Int32
    public let message: String
    /// Set when the archive is age-encrypted and could not be decrypted (no key, wrong key, damage).
    public let age: AgeError?

    public init(_ operation: Operation, path: String, code: Int32 = 0, message: String) {
        self.operation = operation
        self.path = path
        self.code = code
        self.message = message
        age = nil
    }

    init(_ operation: Operation, path: String, age: AgeError) {
        self.operation = operation
        self.path = path
        code = 0
        message = age.description
        self.age = age
    }

    public var description: String { "cannot \(operation.rawValue) \(path): \(message)" }

    /// Reads libarchive's error string and errno on the spot.
    static func fromArchive(_ handle: OpaquePointer, _ operation: Operation, path: String) -> ArchiveError {
        let code = archive_errno(handle)
        let text = archive_error_string(handle).map { String(cString: $0) }
        let message = text ?? (code != 0 ? String(cString: strerror(code)) : "unknown libarchive error")
        return ArchiveError(operation, path: path, code: code, message: message)
    }

    /// Reads errno on the spot.
    static func fromErrno(_ operation: Operation, path: String, errno code: Int32 = errno) -> ArchiveError {
        ArchiveError(operation, path: path, code: code, message: String(cString: strerror(code)))
    }
}

/// The one funnel for libarchive status codes: warnings go to `warnings`, failures throw.
@discardableResult
func checkArchive(_ status: Int32, _ handle: OpaquePointer, _ operation: ArchiveError.Operation, path: @autoclosure () -> String,
                  warnings: inout [String]) throws(ArchiveError) -> Int32 {
    if status == ARCHIVE_OK || status == ARCHIVE_EOF { return status }
    if status == ARCHIVE_WARN {
        let message = archive_error_string(handle).map { String(cString: $0) } ?? "warning"
        warnings.append("\(path()): \(message)")
        return status
    }
    throw ArchiveError.fromArchive(handle, operation, path: path())
}

/// The funnel for calls whose warnings carry nothing worth keeping (configuration).
func checkArchive(_ status: Int32, _ handle: OpaquePointer, _ operation: ArchiveError.Operation,
                  path: String) throws(ArchiveError) {
    var ignored: [String] = []
    try checkArchive(status, handle, operation, path: path, warnings: &ignored)
}

/// libarchive converts names through the C library's locale; under the "C"
/// locale cron gives us, a UTF-8 name would be stored as raw bytes with a
/// warning. Switch the character type (only) to UTF-8 once.
func ensureUTF8Locale() {
    _ = utf8LocaleOnce
}

private let utf8LocaleOnce: Bool = {
    let current = setlocale(LC_CTYPE, nil).map { String(cString: $0) } ?? "C"
    if current.lowercased().contains("utf-8") || current.lowercased().contains("utf8") { return true }
    return setlocale(LC_CTYPE, "C.UTF-8") != nil
}()

/// Opens an archive file for reading; only a regular file will do.
func openArchiveFile(_ path: String) throws(ArchiveError) -> FileDescriptor {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
    let file: FileDescriptor
    do { file = try FileDescriptor.open(path, O_RDONLY | O_NONBLOCK) } catch {
        throw ArchiveError.fromErrno(.open, path: path, errno: error.code)
    }
    guard let status = try? file.status(), (status.st_mode & S_IFMT) == S_IFREG else {
        throw ArchiveError(.open, path: path, message: "not a regular file")
    }
    _ = fcntl(file.rawValue, F_SETFL, fcntl(file.rawValue, F_GETFL) & ~O_NONBLOCK)
    return file
}
