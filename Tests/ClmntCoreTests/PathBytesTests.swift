import ClmntTestSupport
@testable import ClmntCore
import Foundation
import Testing

@Suite("names as bytes", .tags(.fast))
struct PathBytesTests {
    static let odd: [PathBytes] = [
        PathBytes([0x63, 0x61, 0x66, 0xE9, 0x2E, 0x74, 0x78, 0x74]),            // caf\xE9.txt (Latin-1)
        PathBytes([0x64, 0x69, 0x72, 0x2D, 0xFF]),                              // dir-\xFF
        PathBytes("back\\slash"), PathBytes("new\nline"), PathBytes("tab\there"), PathBytes("café-ünï"),
        PathBytes([0xC3]), PathBytes([0xED, 0xA0, 0x80]), PathBytes([0xF4, 0x90, 0x80, 0x80]), PathBytes([0xC2, 0x9B]),
        PathBytes("\\x41"), PathBytes([UInt8](repeating: 0xE9, count: 255)),
    ]

    @Test func escapedFormIsLosslessAndOneLine() throws {
        for name in Self.odd {
            let shown = name.description
            #expect(PathBytes(escaped: shown) == name, "\(shown)")
            #expect(!shown.contains("\n") && !shown.contains("\t"), "\(shown)")
        }
        #expect(PathBytes([0x63, 0x61, 0x66, 0xE9]).description == "caf\\xE9")
        #expect(PathBytes("back\\slash").description == "back\\\\slash")
        #expect(PathBytes("café").description == "café", "valid UTF-8 stays readable")
        #expect(PathBytes(escaped: "bad\\q") == nil)
        #expect(PathBytes(escaped: "bad\\x4") == nil)
    }

    @Test func escapedFormSurvivesJSON() throws {
        let names = Self.odd.map(\.description)
        let decoded = try JSONDecoder().decode([String].self, from: JSONEncoder().encode(names))
        #expect(decoded.map { PathBytes(escaped: $0) } == Self.odd)
    }

    @Test func checksumLinesRoundTripAnyName() {
        let digest = [UInt8](repeating: 0xAB, count: 32)
        var text: [UInt8] = []
        for name in Self.odd { text += ChecksumList.line(digest: digest, path: PathBytes("alpha").appending(name)) }
        let parsed = ChecksumList.parse(text)
        #expect(parsed.count == Self.odd.count)
        for name in Self.odd { #expect(parsed[PathBytes("alpha/") + name] == String(repeating: "ab", count: 32), "\(name)") }
        // Not UTF-8: written raw, as sha256sum writes it (so `sha256sum -c` finds the file).
        let raw = ChecksumList.line(digest: digest, path: Self.odd[0])
        #expect(Array(raw.suffix(9)) == Self.odd[0].bytes + [0x0A])
    }
}
