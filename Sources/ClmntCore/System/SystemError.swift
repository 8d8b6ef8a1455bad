import Foundation

/// A failed system call on a path: the path (as shown to an admin) and the
/// `errno` it failed with, kept as a number so a caller can tell ENOENT from EACCES.
/// A few failures are not an errno but a refusal of what was found there.
public struct SystemError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Refusal: Equatable, Sendable {
        /// A symlink where a file or directory was expected (`O_NOFOLLOW` said ELOOP).
        case symlink
        case notRegularFile
        case tooLarge(limit: Int)
        /// A directory that something keeps refilling while it is removed.
        case keepsRefilling(passes: Int)
        /// A symlink or another file where a directory was expected.
        case notDirectory
        /// A directory a molt user keeps, owned by someone else: it could have been planted.
        case ownedBy(uid: UInt32, expected: UInt32)
    }

    public let path: String
    /// `errno`, or 0 for a refusal.
    public let code: Int32
    public let refusal: Refusal?

    public init(path: String, code: Int32 = errno) {
        self.path = path
        self.code = code
        refusal = nil
    }

    public init(path: String, refusal: Refusal) {
        self.path = path
        code = 0
        self.refusal = refusal
    }

    /// What went wrong, without the path.
    public var reason: String {
        switch refusal {
        case .symlink: return "is a symlink where a file is expected"
        case .notRegularFile: return "is not a regular file"
        case .tooLarge(let limit): return "larger than \(limit) bytes"
        case .keepsRefilling(let passes): return "still not empty after \(passes) passes: something keeps writing into it"
        case .notDirectory: return "is not a directory (a symlink?): not followed"
        case .ownedBy(let uid, let expected): return "belongs to uid \(uid), not the molt's user (uid \(expected)): not read"
        case nil: return Self.text(of: code)
        }
    }

    /// Whether the path points at something hostile (a planted symlink or special file)
    /// rather than failing for an ordinary reason.
    public var isHostile: Bool {
        switch refusal {
        case .symlink, .notRegularFile, .notDirectory, .ownedBy: return true
        case .tooLarge, .keepsRefilling, nil: return false
        }
    }

    public var description: String { "\(path): \(reason)" }

    /// `strerror` of `code`: the one place the errno text is made.
    public static func text(of code: Int32 = errno) -> String { String(cString: strerror(code)) }
}
