/// Everything that can go wrong reading or writing an age file, each with one line for a human.
///
/// The cases map to what an operator must do: `.notAgeFile` (wrong file), `.noMatchingIdentity`
/// (wrong key), `.headerMACMismatch` and `.chunkAuthenticationFailed` (the file was modified),
/// `.truncated` / `.trailingData` (the file was cut or something was appended).
public enum AgeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input does not start with the age v1 header line.
    case notAgeFile(reason: String)
    /// The header is not well formed (bad stanza line, bad base64, a known stanza of the wrong shape).
    case malformedHeader(reason: String)
    /// None of the identities opens any stanza of the header.
    case noMatchingIdentity
    /// A file key was unwrapped but the header's MAC does not match: the header was modified.
    case headerMACMismatch
    /// Payload chunk `chunk` (counted from 0) did not authenticate: flipped bytes, swapped or reordered chunks.
    case chunkAuthenticationFailed(chunk: UInt64)
    /// The file ends too early (inside the header, or without the payload's final chunk).
    case truncated(reason: String)
    /// Bytes follow the payload's final chunk.
    case trailingData(afterChunk: UInt64)
    /// The final chunk is empty although the payload is not (the spec forbids it).
    case emptyFinalChunk
    /// A recipient string or a line of a recipients file is not a supported recipient.
    case invalidRecipient(reason: String, line: Int?)
    /// An identity string or a line of an identity file is not a supported identity.
    case invalidIdentity(reason: String, line: Int?)
    /// Encrypting needs at least one recipient, decrypting at least one identity.
    case noRecipients
    case noIdentities
    /// The file is age-encrypted and no identity was given to open it.
    case identityRequired
    /// `write` or `finish` called after `finish` or after an error.
    case streamClosed

    public var description: String {
        switch self {
        case .notAgeFile(let reason): return "not an age encrypted file: \(reason)"
        case .malformedHeader(let reason): return "malformed age header: \(reason)"
        case .noMatchingIdentity: return "no identity matches any recipient of this age file (wrong key?)"
        case .headerMACMismatch: return "the age header's MAC does not match: the header was modified"
        case .chunkAuthenticationFailed(let chunk):
            return "age payload chunk \(chunk) failed authentication: the file is corrupted or its chunks were reordered"
        case .truncated(let reason): return "truncated age file: \(reason)"
        case .trailingData(let chunk): return "data follows the final chunk (\(chunk)) of the age payload"
        case .emptyFinalChunk: return "the final chunk of the age payload is empty, which age v1 forbids"
        case .invalidRecipient(let reason, let line):
            return line.map { "invalid recipient on line \($0): \(reason)" } ?? "invalid recipient: \(reason)"
        case .invalidIdentity(let reason, let line):
            return line.map { "invalid identity on line \($0): \(reason)" } ?? "invalid identity: \(reason)"
        case .noRecipients: return "age encryption needs at least one recipient"
        case .noIdentities: return "age decryption needs at least one identity"
        case .identityRequired: return "the archive is age-encrypted: give --identity FILE (or set CLMNT_IDENTITY_FILE)"
        case .streamClosed: return "the age stream was already finished or failed"
        }
    }
}

extension AgeError {
    /// The file was modified, cut or extended: damage, not a wrong key (`fleet verify` exits 2).
    public var isDamage: Bool {
        switch self {
        case .headerMACMismatch, .chunkAuthenticationFailed, .truncated, .trailingData, .emptyFinalChunk, .malformedHeader:
            return true
        default:
            return false
        }
    }
}
