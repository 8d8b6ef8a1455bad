import ClmntTestSupport
@testable import ClmntCore
import Foundation
import Testing

/// Runs Debian's `age`, `age-keygen` and `ssh-keygen` on files in a temporary directory.
struct AgeTools {
    let dir: TemporaryDirectory

    init() throws { dir = try TemporaryDirectory(prefix: "clmnt-age") }

    func path(_ name: String) -> String { dir.path + "/" + name }

    func write(_ name: String, _ bytes: [UInt8]) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path(name)))
    }

    /// The file's bytes; age creates its output file only when it writes a byte, so none is empty.
    func read(_ name: String) throws -> [UInt8] {
        guard FileManager.default.fileExists(atPath: path(name)) else { return [] }
        return Array(try Data(contentsOf: URL(fileURLWithPath: path(name))))
    }

    func text(_ name: String) throws -> String { try String(contentsOfFile: path(name), encoding: .utf8) }

    @discardableResult
    func run(_ program: String, _ arguments: [String]) throws -> ProgramOutput {
        try ProgramRunner.run(program, arguments, timeout: 120)
    }

    /// A new key from `age-keygen`: the identity file's path and its `age1…` recipient.
    func ageKeygen(_ name: String) throws -> (identityFile: String, recipient: String) {
        try run("age-keygen", ["-o", path(name)])
        let recipient = try run("age-keygen", ["-y", path(name)]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        return (path(name), recipient)
    }

    /// A new unencrypted OpenSSH ed25519 key pair from `ssh-keygen`.
    func sshKeygen(_ name: String) throws -> (privateKey: String, publicKey: String) {
        try run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", path(name)])
        return (path(name), path(name) + ".pub")
    }

    func remove() { dir.remove() }
}

/// Deterministic test data that is not all one byte, so reordered chunks differ.
func agePattern(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15
    return (0..<count).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return UInt8(truncatingIfNeeded: state >> 33)
    }
}

/// The error `body` throws, as an AgeError (nil when it throws nothing or something else).
func ageError(_ body: () throws -> Void) -> AgeError? {
    do { try body() } catch let error as AgeError { return error } catch { return nil }
    return nil
}

/// Keys, Bech32, the header and payload encodings, with age's own known-answer values.
@Suite(.tags(.fast)) struct AgeFormatTests {
    /// filippo.io/age testdata/example.age and example_keys.txt (age_test.go: ExampleDecrypt).
    static let exampleFile = Array(Data(base64Encoded: "YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSA4aHJsTStaQkczRGQ0ZkYyK2E1ODN6ZFRJV0RrOC9SNDFrQ1lac3Z3VFc0CnlPNFBZZGxNV0RKK0N4Z1VOUnFZNVowVC9tK2czRkNoNWpJeEdMYkNWWGMKLS0tIEkvaW1ldlp6eTgxMjBKU3ptSm5tbi9LTWszcDVBMTFWODNOazQxbTlOUEUKcMXlNiShUgdT+Sxa0Q7KsnO6TWEXgHcT6DggQXod8soIGCJyyPhchXc0oTEaO3XpjQ6v")!)
    static let exampleKey = "AGE-SECRET-KEY-184JMZMVQH3E6U0PSL869004Y3U2NYV7R30EU99CSEDNPH02YUVFSZW44VU"

    @Test func decryptsAgesOwnExampleFile() throws {
        let identities = try AgeIdentity.parseFile("# Test key for ExampleParseIdentities.\n\(Self.exampleKey)\n")
        let plaintext = try AgeDecryptor.decrypt(Self.exampleFile, identities: identities)
        #expect(String(decoding: plaintext, as: UTF8.self) == "Black lives matter.")
    }

    @Test func identityRoundTripsThroughBech32() throws {
        let identity = try AgeIdentity(parsing: Self.exampleKey)
        #expect(identity.encoded == Self.exampleKey)
        let recipient = identity.recipient.description
        // age_test.go's ExampleEncrypt key; `age-keygen -y` gives it for this identity.
        #expect(recipient == "age1cy0su9fwf3gf9mw868g5yut09p6nytfmmnktexz2ya5uqg9vl9sss4euqm")
        #expect(recipient.hasPrefix("age1") && recipient.count == 62)
        #expect(try AgeRecipient(parsing: recipient) == identity.recipient)
    }

    @Test func recipientStringsAreCheckedStrictly() throws {
        let good = AgeIdentity.generate().recipient.description
        var mistyped = Array(good)
        mistyped[10] = mistyped[10] == "q" ? "p" : "q"
        #expect(ageError { _ = try AgeRecipient(parsing: String(mistyped)) }
            == .invalidRecipient(reason: "Bech32 checksum mismatch (mistyped key?)", line: nil))
        #expect(ageError { _ = try AgeRecipient(parsing: good.uppercased()) } != nil)
        #expect(ageError { _ = try AgeRecipient(parsing: "age1") } != nil)
        #expect(ageError { _ = try AgeRecipient(parsing: "ssh-rsa AAAAB3NzaC1yc2E=") } != nil)
        let file = "# fleet keys\n\n\(good)\nage1notakey\n"
        guard case .invalidRecipient(_, let line) = ageError({ _ = try AgeRecipient.parseFile(file) }) else {
            Issue.record("a bad recipients file was accepted"); return
        }
        #expect(line == 4)
        #expect(try AgeRecipient.parseFile("# only\n\(good)\n").count == 1)
    }

    @Test func identityFileReportsTheBadLine() throws {
        let file = "# created: today\n# public key: age1…\n\(Self.exampleKey)\n\nAGE-SECRET-KEY-1XYZ\n"
        guard case .invalidIdentity(_, let line) = ageError({ _ = try AgeIdentity.parseFile(file) }) else {
            Issue.record("a bad identity file was accepted"); return
        }
        #expect(line == 5)
        #expect(ageError { _ = try AgeIdentity.parseFile("# nothing here\n") } == .noIdentities)
        #expect(AgeError.invalidIdentity(reason: "x", line: 5).description == "invalid identity on line 5: x")
    }

    @Test func headerIsWrittenAsTheSpecSays() throws {
        let identity = AgeIdentity.generate()
        let file = try AgeEncryptor.encrypt([], to: [identity.recipient, AgeIdentity.generate().recipient])
        let text = String(decoding: file, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[0] == "age-encryption.org/v1")
        #expect(lines[1].hasPrefix("-> X25519 ") && lines[1].count == 10 + 43)
        #expect(lines[2].count == 43)
        #expect(lines[5].hasPrefix("--- ") && lines[5].count == 4 + 43)
        // Header, 16-byte nonce, one empty final chunk (its 16-byte tag).
        let headerLength = lines[0...5].reduce(0) { $0 + $1.utf8.count + 1 }
        #expect(file.count == headerLength + 16 + 16)
        #expect(try AgeDecryptor.decrypt(file, identities: [identity]).isEmpty)
    }

    @Test func stanzaBodiesWrapAt64Columns() {
        #expect(AgeStanza(type: "t", arguments: [], body: Array(repeating: 1, count: 48)).encoded
            == "-> t\n" + String(repeating: "AQEB", count: 16) + "\n\n")
        #expect(AgeStanza(type: "t", arguments: ["a"], body: []).encoded == "-> t a\n\n")
        #expect(UnpaddedBase64.decode(Array("AQ".utf8)) == [1])
        #expect(UnpaddedBase64.decode(Array("AR".utf8)) == nil)  // non-canonical trailing bits
        #expect(UnpaddedBase64.decode(Array("AQ==".utf8)) == nil)
    }

    @Test func chunkSizesAndTheFinalChunkRule() throws {
        let identity = AgeIdentity.generate()
        let overhead = try AgeEncryptor.encrypt([], to: [identity.recipient]).count - 16
        for (size, chunks) in [(0, 1), (1, 1), (65535, 1), (65536, 1), (65537, 2), (3 * 65536, 3)] {
            let plaintext = agePattern(size)
            let file = try AgeEncryptor.encrypt(plaintext, to: [identity.recipient])
            #expect(file.count == overhead + size + 16 * chunks, "size \(size)")
            #expect(try AgeDecryptor.decrypt(file, identities: [identity]) == plaintext, "size \(size)")
        }
    }

    @Test func streamingInOddPiecesGivesTheSamePlaintext() throws {
        let identity = AgeIdentity.generate()
        let plaintext = agePattern(200_000, seed: 7)
        var ciphertext: [UInt8] = []
        let encryptor = try AgeEncryptor(recipients: [identity.recipient]) { ciphertext.append(contentsOf: $0) }
        var offset = 0, step = 1
        while offset < plaintext.count {
            let end = min(offset + step, plaintext.count)
            try encryptor.write(Array(plaintext[offset..<end]))
            offset = end
            step = step * 3 % 70_001 + 1
        }
        try encryptor.finish()
        #expect(ageError { try encryptor.write([1]) } == .streamClosed)
        var decrypted: [UInt8] = []
        let decryptor = try AgeDecryptor(identities: [identity]) { decrypted.append(contentsOf: $0) }
        offset = 0; step = 1
        while offset < ciphertext.count {
            let end = min(offset + step, ciphertext.count)
            try decryptor.write(Array(ciphertext[offset..<end]))
            offset = end
            step = step * 5 % 90_001 + 1
        }
        try decryptor.finish()
        #expect(decrypted == plaintext)
    }

    @Test func edwardsToMontgomeryMapsTheBasePointToNine() throws {
        // The ed25519 base point has y = 4/5; its X25519 counterpart is u = 9.
        var baseY = [UInt8](repeating: 0x66, count: 32)
        baseY[0] = 0x58
        #expect(Field25519.montgomeryU(fromEdwardsY: baseY) == X25519Basepoint.bytes)
        let five = Field25519(limbs: [5, 0, 0, 0, 0])
        #expect((five * five.inverted()).littleEndianBytes == Field25519.one.littleEndianBytes)
        // p − 1 + 1 reduces to 0; y = 1 has no Montgomery form.
        var pMinusOne = [UInt8](repeating: 0xff, count: 32)
        pMinusOne[0] = 0xec
        pMinusOne[31] = 0x7f
        #expect((Field25519(littleEndian: pMinusOne) + .one).littleEndianBytes == [UInt8](repeating: 0, count: 32))
        #expect(Field25519.montgomeryU(fromEdwardsY: [1] + [UInt8](repeating: 0, count: 31)) == nil)
    }

    /// filippo.io/age cmd/age/testdata/ed25519.txt: the key pair both as OpenSSH files.
    static let sshPrivateKey = """
        -----BEGIN OPENSSH PRIVATE KEY-----
        b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
        QyNTUxOQAAACB/aTuac9tiWRGrKEtixFlryYlGCPTOpdbmXN9RRmDF2gAAAKDgV/GC4Ffx
        ggAAAAtzc2gtZWQyNTUxOQAAACB/aTuac9tiWRGrKEtixFlryYlGCPTOpdbmXN9RRmDF2g
        AAAECvFoQXQzXgJLQ+Gz4PfEcfyZwC2gUjOiWTD//mTPyD8H9pO5pz22JZEasoS2LEWWvJ
        iUYI9M6l1uZc31FGYMXaAAAAG2ZpbGlwcG9AQmlzdHJvbWF0aC1NMS5sb2NhbAEC
        -----END OPENSSH PRIVATE KEY-----

        """
    static let sshPublicKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH9pO5pz22JZEasoS2LEWWvJiUYI9M6l1uZc31FGYMXa"

    @Test func sshPublicKeyConvertsToTheSameX25519KeyAsItsPrivateKey() throws {
        let identity = try #require(try AgeIdentity.parseFile(Self.sshPrivateKey).first)
        let recipient = try AgeRecipient(parsing: Self.sshPublicKey + " filippo@example")
        // The private side derives its X25519 key from SHA-512(seed); the public side converts the
        // Edwards point: they must meet.
        #expect(identity.recipient == recipient)
        #expect(recipient.description == Self.sshPublicKey)
        let plaintext = agePattern(70_000)
        #expect(try AgeDecryptor.decrypt(AgeEncryptor.encrypt(plaintext, to: [recipient]), identities: [identity])
            == plaintext)
        let encrypted = Self.sshPrivateKey.replacingOccurrences(of: "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ",
                                                               with: "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZR")
        #expect(ageError { _ = try AgeIdentity.parseFile(encrypted) } != nil)
    }
}

/// Interoperability with Debian's age 1.1 in both directions, and every failure a restore must
/// recognise, with real files.
@Suite struct AgeInteropTests {
    @Test(arguments: [0, 1, 65535, 65536, 65537, 3 * 65536, 5_000_000])
    func ageDecryptsWhatClmntEncrypts(size: Int) throws {
        let tools = try AgeTools()
        defer { tools.remove() }
        let key = try tools.ageKeygen("key.txt")
        let plaintext = agePattern(size, seed: UInt64(size))
        try tools.write("file.age", AgeEncryptor.encrypt(plaintext, to: [AgeRecipient(parsing: key.recipient)]))
        try tools.run("age", ["-d", "-i", key.identityFile, "-o", tools.path("out"), tools.path("file.age")])
        #expect(try tools.read("out") == plaintext)
    }

    @Test(arguments: [0, 1, 65536, 65537, 3 * 65536 + 5])
    func clmntDecryptsWhatAgeEncrypts(size: Int) throws {
        let tools = try AgeTools()
        defer { tools.remove() }
        let key = try tools.ageKeygen("key.txt")
        let other = AgeIdentity.generate()
        let plaintext = agePattern(size, seed: UInt64(size) + 3)
        try tools.write("in", plaintext)
        // Two recipients: clmnt must find its stanza among others.
        try tools.run("age", ["-r", other.recipient.description, "-r", key.recipient, "-o", tools.path("file.age"),
                              tools.path("in")])
        let identities = try AgeIdentity.parseFile(tools.text("key.txt"))
        #expect(try AgeDecryptor.decrypt(tools.read("file.age"), identities: identities) == plaintext)
        #expect(try AgeDecryptor.decrypt(tools.read("file.age"), identities: [other]) == plaintext)
    }

    @Test func recipientsFileWorksWithAge() throws {
        let tools = try AgeTools()
        defer { tools.remove() }
        let key = try tools.ageKeygen("key.txt")
        let recipients = try AgeRecipient.parseFile("# backups\n\(key.recipient)\n")
        let plaintext = agePattern(100_000)
        try tools.write("file.age", AgeEncryptor.encrypt(plaintext, to: recipients))
        try tools.write("recipients.txt", Array("# backups\n\(key.recipient)\n".utf8))
        try tools.write("in", plaintext)
        try tools.run("age", ["-R", tools.path("recipients.txt"), "-o", tools.path("by-age.age"), tools.path("in")])
        let identities = try AgeIdentity.parseFile(tools.text("key.txt"))
        #expect(try AgeDecryptor.decrypt(tools.read("by-age.age"), identities: identities) == plaintext)
        try tools.run("age", ["-d", "-i", key.identityFile, "-o", tools.path("out"), tools.path("file.age")])
        #expect(try tools.read("out") == plaintext)
    }

    @Test func sshEd25519KeysWorkBothWays() throws {
        let tools = try AgeTools()
        defer { tools.remove() }
        let key = try tools.sshKeygen("id_ed25519")
        let plaintext = agePattern(150_000, seed: 9)
        try tools.write("in", plaintext)
        // age -R id_ed25519.pub encrypts; clmnt decrypts with the OpenSSH private key.
        try tools.run("age", ["-R", key.publicKey, "-o", tools.path("by-age.age"), tools.path("in")])
        let identities = try AgeIdentity.parseFile(tools.text("id_ed25519"))
        #expect(try AgeDecryptor.decrypt(tools.read("by-age.age"), identities: identities) == plaintext)
        // clmnt encrypts to the .pub line; age -d -i id_ed25519 decrypts.
        let recipient = try AgeRecipient(parsing: tools.text("id_ed25519.pub"))
        try tools.write("by-clmnt.age", AgeEncryptor.encrypt(plaintext, to: [recipient]))
        try tools.run("age", ["-d", "-i", key.privateKey, "-o", tools.path("out"), tools.path("by-clmnt.age")])
        #expect(try tools.read("out") == plaintext)
        // The wrong SSH key is "no matching identity", not a crash or garbage.
        let other = try tools.sshKeygen("other")
        #expect(ageError {
            _ = try AgeDecryptor.decrypt(tools.read("by-age.age"), identities: AgeIdentity.parseFile(tools.text("other")))
        } == .noMatchingIdentity)
        _ = other
    }

    /// An age file of three full chunks and a short last one, made by age itself, and its key.
    func ageMadeFile(_ tools: AgeTools) throws -> (file: [UInt8], identities: [AgeIdentity], headerLength: Int) {
        let key = try tools.ageKeygen("key.txt")
        try tools.write("in", agePattern(3 * 65536 + 1000, seed: 11))
        try tools.run("age", ["-r", key.recipient, "-o", tools.path("file.age"), tools.path("in")])
        let file = try tools.read("file.age")
        let macLine = Array("\n--- ".utf8)
        let macStart = try #require((0...(file.count - macLine.count)).first { file[$0..<($0 + macLine.count)].elementsEqual(macLine) })
        let headerEnd = try #require(file[macStart + 1 ..< file.count].firstIndex(of: UInt8(ascii: "\n")))
        return (file, try AgeIdentity.parseFile(tools.text("key.txt")), headerEnd + 1)
    }

    /// Decrypts through the streaming API and returns the error and how much plaintext came out.
    func failure(_ file: [UInt8], _ identities: [AgeIdentity]) -> (error: AgeError?, released: Int) {
        var released = 0
        let error = ageError {
            let decryptor = try AgeDecryptor(identities: identities) { released += $0.count }
            try decryptor.write(file)
            try decryptor.finish()
        }
        return (error, released)
    }

    @Test func eachDamageGivesItsOwnError() throws {
        let tools = try AgeTools()
        defer { tools.remove() }
        let (file, identities, headerLength) = try ageMadeFile(tools)
        let payload = headerLength + 16
        let sealed = 65536 + 16
        #expect(try AgeDecryptor.decrypt(file, identities: identities) == agePattern(3 * 65536 + 1000, seed: 11))

        // Wrong key.
        #expect(failure(file, [AgeIdentity.generate()]).error == .noMatchingIdentity)
        // Not an age file at all, and an empty one.
        #expect(failure(Array("hello, world\n".utf8), identities).error
            == .notAgeFile(reason: "it does not start with \"age-encryption.org/v1\""))
        #expect(failure([], identities).error == .notAgeFile(reason: "it is empty"))
        // A flipped byte in the header's MAC, and an extra stanza slipped into the header.
        var badMAC = file
        badMAC[headerLength - 5] = badMAC[headerLength - 5] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(failure(badMAC, identities).error == .headerMACMismatch)
        let extra = Array("-> unknown-type arg\nAAAA\n".utf8)
        let versionLength = "age-encryption.org/v1\n".utf8.count
        let withStanza = Array(file[..<versionLength]) + extra + Array(file[versionLength...])
        #expect(failure(withStanza, identities).error == .headerMACMismatch)
        // A flipped byte in the payload: chunk 1 fails, and only chunk 0's plaintext was released.
        var flipped = file
        flipped[payload + sealed + 100] ^= 0x01
        let flippedResult = failure(flipped, identities)
        #expect(flippedResult.error == .chunkAuthenticationFailed(chunk: 1) && flippedResult.released == 65536)
        // Swapped chunks 0 and 1.
        var swapped = Array(file[..<payload])
        swapped += file[(payload + sealed)..<(payload + 2 * sealed)]
        swapped += file[payload..<(payload + sealed)]
        swapped += file[(payload + 2 * sealed)...]
        let swappedResult = failure(swapped, identities)
        #expect(swappedResult.error == .chunkAuthenticationFailed(chunk: 0) && swappedResult.released == 0)
        // Reordered: the short final chunk moved before the last full one.
        var reordered = Array(file[..<(payload + 2 * sealed)])
        reordered += file[(payload + 3 * sealed)...]
        reordered += file[(payload + 2 * sealed)..<(payload + 3 * sealed)]
        #expect(failure(reordered, identities).error == .chunkAuthenticationFailed(chunk: 2))
        // Truncated at a chunk boundary (the final chunk dropped), inside a chunk, inside the header.
        #expect(failure(Array(file[..<(payload + 3 * sealed)]), identities).error
            == .truncated(reason: "the file ends after chunk 2 without a final chunk"))
        #expect(failure(Array(file[..<(payload + 2 * sealed)]), identities).error
            == .truncated(reason: "the file ends after chunk 1 without a final chunk"))
        #expect(failure(Array(file[..<(payload + sealed + 5000)]), identities).error
            == .chunkAuthenticationFailed(chunk: 1))
        #expect(failure(Array(file[..<(headerLength - 3)]), identities).error
            == .truncated(reason: "the file ends inside the header"))
        #expect(failure(Array(file[..<headerLength]), identities).error
            == .truncated(reason: "the file ends before the payload"))
        // Data after the final chunk.
        #expect(failure(file + [0], identities).error == .chunkAuthenticationFailed(chunk: 3))
        let fullLast = try AgeEncryptor.encrypt(agePattern(65536), to: [identities[0].recipient])
        #expect(failure(fullLast + agePattern(20), identities).error == .trailingData(afterChunk: 0))
        // Every error is one line.
        for error in [AgeError.noMatchingIdentity, .headerMACMismatch, .chunkAuthenticationFailed(chunk: 1),
                      .truncated(reason: "x"), .trailingData(afterChunk: 0), .notAgeFile(reason: "y")] {
            #expect(!error.description.contains("\n"))
        }
    }

    @Test func unknownStanzasAreSkipped() throws {
        let tools = try AgeTools()
        defer { tools.remove() }
        let identity = AgeIdentity.generate()
        let plaintext = agePattern(1000)
        let file = try AgeEncryptor.encrypt(plaintext, to: [identity.recipient])
        // Re-issue the header with foreign stanzas before ours and a correct MAC.
        let parsed = try #require(try AgeHeader.parse(file[...]))
        let fileKey = try parsed.header.unwrapFileKey(with: [identity])
        let foreign = [AgeStanza(type: "scrypt", arguments: ["c2FsdHNhbHRzYWx0c2FsdA", "18"], body: agePattern(32)),
                       AgeStanza(type: "example.com/plugin", arguments: [], body: agePattern(100))]
        let rewritten = AgeHeader.encode(stanzas: foreign + parsed.header.stanzas, fileKey: fileKey)
            + file[parsed.length...]
        #expect(try AgeDecryptor.decrypt(rewritten, identities: [identity]) == plaintext)
        try tools.write("key.txt", Array((identity.encoded! + "\n").utf8))
        try tools.write("file.age", rewritten)
        // age skips them too.
        try tools.run("age", ["-d", "-i", tools.path("key.txt"), "-o", tools.path("out"), tools.path("file.age")])
        #expect(try tools.read("out") == plaintext)
        // Only foreign stanzas: no identity matches.
        let foreignOnly = AgeHeader.encode(stanzas: foreign, fileKey: fileKey) + file[parsed.length...]
        #expect(ageError { _ = try AgeDecryptor.decrypt(foreignOnly, identities: [identity]) } == .noMatchingIdentity)
    }

    @Test func ageRejectsWhatClmntRejects() throws {
        // The same damage, judged by age itself: the test cases above are real corruption, not quirks.
        let tools = try AgeTools()
        defer { tools.remove() }
        let (file, _, headerLength) = try ageMadeFile(tools)
        var flipped = file
        flipped[headerLength + 16 + 65552 + 100] ^= 0x01
        try tools.write("flipped.age", flipped)
        let result = try ProgramRunner.capture("age", ["-d", "-i", tools.path("key.txt"), "-o", tools.path("out"),
                                                       tools.path("flipped.age")])
        #expect(result.status != 0)
    }
}
