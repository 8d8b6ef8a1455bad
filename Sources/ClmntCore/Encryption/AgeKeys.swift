import Crypto
import Foundation

/// Someone a file is encrypted to: an age X25519 key (`age1…`) or an OpenSSH ed25519 public key.
public struct AgeRecipient: Sendable, Equatable, CustomStringConvertible {
    enum Kind: Sendable, Equatable {
        /// The recipient's X25519 public key.
        case x25519(publicKey: [UInt8])
        /// The SSH wire-format public key and its Montgomery (X25519) form.
        case sshEd25519(wireKey: [UInt8], montgomeryKey: [UInt8])
    }

    let kind: Kind

    /// Parses `age1…` (lower-case Bech32, checksum verified) or `ssh-ed25519 AAAA… [comment]`.
    public init(parsing text: String) throws(AgeError) {
        try self.init(parsing: text, line: nil)
    }

    init(kind: Kind) { self.kind = kind }
    init(x25519PublicKey: [UInt8]) { kind = .x25519(publicKey: x25519PublicKey) }

    init(parsing text: String, line: Int?) throws(AgeError) {
        let text = text.trimmingCharacters(in: .whitespaces)
        if text.hasPrefix("ssh-") {
            kind = try SSHEd25519.parseRecipient(text, line: line)
            return
        }
        guard text.hasPrefix("age1") else {
            throw .invalidRecipient(reason: "not an age1… X25519 key or an ssh-ed25519 public key", line: line)
        }
        guard text == text.lowercased() else {
            throw .invalidRecipient(reason: "age1… keys are lower case", line: line)
        }
        switch Bech32.decode(text) {
        case .failure(let failure):
            throw .invalidRecipient(reason: failure.description, line: line)
        case .success(let decoded):
            guard decoded.hrp == "age", decoded.data.count == 32 else {
                throw .invalidRecipient(reason: "not a 32-byte X25519 key", line: line)
            }
            kind = .x25519(publicKey: decoded.data)
        }
    }

    /// The recipients of a recipients file (age's format): one a line, `#` comments and blank lines skipped.
    public static func parseFile(_ text: String) throws(AgeError) -> [AgeRecipient] {
        var recipients: [AgeRecipient] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            recipients.append(try AgeRecipient(parsing: line, line: index + 1))
        }
        guard !recipients.isEmpty else { throw .noRecipients }
        return recipients
    }

    /// `age1…`, or `ssh-ed25519 AAAA…` without its comment.
    public var description: String {
        switch kind {
        case .x25519(let publicKey): return Bech32.encode(hrp: "age", data: publicKey)
        case .sshEd25519(let wireKey, _): return "ssh-ed25519 " + Data(wireKey).base64EncodedString()
        }
    }

    /// The stanza that gives this recipient `fileKey`.
    func wrap(_ fileKey: SymmetricKey) throws(AgeError) -> AgeStanza {
        let ephemeral = AgePrimitives.randomBytes(32)
        let share = try AgePrimitives.x25519(ephemeral, X25519Basepoint.bytes)
        switch kind {
        case .x25519(let publicKey):
            let shared: [UInt8]
            do { shared = try AgePrimitives.x25519(ephemeral, publicKey) } catch {
                throw .invalidRecipient(reason: "the X25519 key is a low-order point", line: nil)
            }
            let key = AgePrimitives.hkdf(shared, salt: share + publicKey, info: X25519Label.value)
            return AgeStanza(type: "X25519", arguments: [UnpaddedBase64.encode(share)],
                             body: AgePrimitives.wrap(fileKey, with: key))
        case .sshEd25519(let wireKey, let montgomeryKey):
            let shared: [UInt8]
            do { shared = try AgePrimitives.x25519(ephemeral, montgomeryKey) } catch {
                throw .invalidRecipient(reason: "the ssh-ed25519 key is a low-order point", line: nil)
            }
            let tweaked = try SSHEd25519.tweak(shared, wireKey: wireKey)
            let key = AgePrimitives.hkdf(tweaked, salt: share + montgomeryKey, info: SSHEd25519.label)
            return AgeStanza(type: "ssh-ed25519", arguments: [SSHEd25519.tag(wireKey), UnpaddedBase64.encode(share)],
                             body: AgePrimitives.wrap(fileKey, with: key))
        }
    }
}

enum X25519Label { static let value = "age-encryption.org/v1/X25519" }
enum X25519Basepoint { static let bytes: [UInt8] = [9] + [UInt8](repeating: 0, count: 31) }

/// A key that opens files: an age X25519 secret key (`AGE-SECRET-KEY-1…`) or an unencrypted
/// OpenSSH ed25519 private key.
public struct AgeIdentity: Sendable {
    enum Kind: Sendable {
        case x25519(secretKey: [UInt8])
        /// The X25519 scalar derived from the ed25519 seed and the SSH wire-format public key.
        case sshEd25519(scalar: [UInt8], wireKey: [UInt8])
    }

    let kind: Kind

    init(kind: Kind) { self.kind = kind }

    /// Parses one `AGE-SECRET-KEY-1…` key.
    public init(parsing text: String) throws(AgeError) {
        try self.init(parsing: text, line: nil)
    }

    init(parsing text: String, line: Int?) throws(AgeError) {
        guard text.uppercased().hasPrefix("AGE-SECRET-KEY-1") else {
            throw .invalidIdentity(reason: "not an AGE-SECRET-KEY-1… key", line: line)
        }
        switch Bech32.decode(text) {
        case .failure(let failure):
            throw .invalidIdentity(reason: failure.description, line: line)
        case .success(let decoded):
            guard decoded.hrp == "age-secret-key-", decoded.data.count == 32 else {
                throw .invalidIdentity(reason: "not a 32-byte X25519 secret key", line: line)
            }
            kind = .x25519(secretKey: decoded.data)
        }
    }

    /// A new random X25519 identity (what `age-keygen` makes).
    public static func generate() -> AgeIdentity {
        AgeIdentity(kind: .x25519(secretKey: AgePrimitives.randomBytes(32)))
    }

    /// The identities in an age identity file (`AGE-SECRET-KEY-1…` lines, `#` comments and blank
    /// lines skipped) or in an unencrypted OpenSSH ed25519 private key file.
    public static func parseFile(_ text: String) throws(AgeError) -> [AgeIdentity] {
        if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
            return [try SSHEd25519.parsePrivateKey(text)]
        }
        var identities: [AgeIdentity] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            identities.append(try AgeIdentity(parsing: line, line: index + 1))
        }
        guard !identities.isEmpty else { throw .noIdentities }
        return identities
    }

    /// `AGE-SECRET-KEY-1…` for an X25519 identity; nil for an SSH key (it lives in its own file).
    public var encoded: String? {
        guard case .x25519(let secretKey) = kind else { return nil }
        return Bech32.encode(hrp: "age-secret-key-", data: secretKey).uppercased()
    }

    /// The recipient files for this identity are encrypted to.
    public var recipient: AgeRecipient {
        switch kind {
        case .x25519(let secretKey):
            return AgeRecipient(x25519PublicKey: try! AgePrimitives.x25519(secretKey, X25519Basepoint.bytes))
        case .sshEd25519(let scalar, let wireKey):
            return AgeRecipient(kind: .sshEd25519(
                wireKey: wireKey, montgomeryKey: try! AgePrimitives.x25519(scalar, X25519Basepoint.bytes)))
        }
    }

    /// The file key if `stanza` is addressed to this identity, nil if it is not (another recipient,
    /// another stanza type). Throws when a stanza of this identity's type is malformed.
    func unwrap(_ stanza: AgeStanza) throws(AgeError) -> SymmetricKey? {
        switch kind {
        case .x25519(let secretKey):
            guard stanza.type == "X25519" else { return nil }
            guard stanza.arguments.count == 1, let share = UnpaddedBase64.decode(Array(stanza.arguments[0].utf8)),
                  share.count == 32, stanza.body.count == 32 else {
                throw .malformedHeader(reason: "invalid X25519 stanza")
            }
            let ownPublicKey = try AgePrimitives.x25519(secretKey, X25519Basepoint.bytes)
            let shared = try AgePrimitives.x25519(secretKey, share)
            let key = AgePrimitives.hkdf(shared, salt: share + ownPublicKey, info: X25519Label.value)
            return AgePrimitives.unwrap(stanza.body, with: key)
        case .sshEd25519(let scalar, let wireKey):
            guard stanza.type == "ssh-ed25519" else { return nil }
            guard stanza.arguments.count == 2, let share = UnpaddedBase64.decode(Array(stanza.arguments[1].utf8)),
                  share.count == 32, stanza.body.count == 32 else {
                throw .malformedHeader(reason: "invalid ssh-ed25519 stanza")
            }
            guard stanza.arguments[0] == SSHEd25519.tag(wireKey) else { return nil }
            let ownPublicKey = try AgePrimitives.x25519(scalar, X25519Basepoint.bytes)
            let shared = try AgePrimitives.x25519(scalar, share)
            let tweaked = try SSHEd25519.tweak(shared, wireKey: wireKey)
            let key = AgePrimitives.hkdf(tweaked, salt: share + ownPublicKey, info: SSHEd25519.label)
            return AgePrimitives.unwrap(stanza.body, with: key)
        }
    }
}
