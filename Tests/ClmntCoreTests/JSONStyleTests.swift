import ClmntTestSupport
import ClmntCore
import Foundation
import Testing

/// The one JSON style (README "Output"): its layout, and that laying out never changes a value.
@Suite("JSONStyle", .tags(.fast))
struct JSONStyleTests {
    struct Sample: Codable, Equatable {
        var zulu: String
        var alpha: [Int]
        var empty: [String]
        var nested: [String: Double]
        var when: Date
        var none: String?

        enum CodingKeys: String, CodingKey {
            case zulu, alpha, empty, nested, when
            case none = "none_here"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(zulu, forKey: .zulu)
            try container.encode(alpha, forKey: .alpha)
            try container.encode(empty, forKey: .empty)
            try container.encode(nested, forKey: .nested)
            try container.encode(when, forKey: .when)
            try container.encode(none, forKey: .none)   // a real null
        }
    }

    @Test("sorted keys, two spaces, \"key\": value, {} and [] kept, ISO-8601 UTC dates, a final newline")
    func layout() throws {
        let sample = Sample(zulu: "a/b", alpha: [1, 2], empty: [], nested: [:], when: Date(timeIntervalSince1970: 1_795_054_504), none: nil)
        let text = try JSONStyle.encode(sample)
        #expect(text == """
            {
              "alpha": [
                1,
                2
              ],
              "empty": [],
              "nested": {},
              "none_here": null,
              "when": "2026-11-19T02:15:04Z",
              "zulu": "a/b"
            }

            """)
    }

    @Test("strings holding JSON punctuation, escapes and UTF-8 come back unchanged")
    func stringsSurvive() throws {
        let tricky = ["x, y: {z} [w]", "quote \" and backslash \\", "\\\"", "tab\there\nnewline", "ünïcödé 🦞", ":,{}[]\"", ""]
        let nested = Dictionary(uniqueKeysWithValues: tricky.enumerated().map { ("k\($0.offset)", $0.element) })
        let text = try JSONStyle.encode(["list": tricky])
        let decoded = try JSONDecoder().decode([String: [String]].self, from: Data(text.utf8))
        #expect(decoded["list"] == tricky)
        let map = try JSONDecoder().decode([String: String].self, from: Data(try JSONStyle.encode(nested).utf8))
        #expect(map == nested)
        // The punctuation inside strings was not laid out: every line is the layout's own.
        #expect(text.split(separator: "\n").allSatisfy { $0.hasPrefix("  ") || $0 == "{" || $0 == "}" })
    }
}
