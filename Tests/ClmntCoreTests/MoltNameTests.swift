import ClmntTestSupport
@testable import ClmntCore
import Foundation
import Testing

@Suite("fleet discovery", .tags(.fast))
struct FleetDiscoveryTests {
    @Test("molt names are safe as user names, paths and crontab words", arguments: [
        ("assistant-1", true), ("a", true), ("mail_bot", true), ("_svc", false),
        ("", false), ("1bot", false), ("Bot", false), ("../etc", false), ("a b", false), ("a;b", false),
        ("a/b", false), ("bot%", false), (String(repeating: "a", count: 33), false), (String(repeating: "a", count: 32), true),
    ])
    func names(name: String, valid: Bool) {
        #expect(MoltName.isValid(name) == valid)
    }

    @Test(".molt-info: quotes, comments, export")
    func moltInfo() {
        let info = MoltInfo(parsing: "# comment\nMOLT_NAME=\"bot\"\nexport MOLT_PORT=19021\nCREATED='2026-01-01T00:00:00Z'\nbroken line\n")
        #expect(info.name == "bot" && info.port == 19021 && info.created == "2026-01-01T00:00:00Z")
    }

    @Test("JSON5 config: comments, unquoted keys, trailing commas, strings for numbers")
    func json5() throws {
        let value = try JSONValue.parse(json5: Data("// c\n{ gateway: { port: '19041', }, hooks: { enabled: true, path: \"/h\" }, }".utf8))
        #expect(value[path: "gateway.port"]?.intValue == 19041)
        #expect(value[path: "hooks.enabled"]?.boolValue == true)
        #expect(value[path: "hooks.path"]?.stringValue == "/h")
        #expect(value[path: "hooks.token"] == nil)
    }

    @Test("a molt is a real directory with .molt-info and a valid name; the port falls back to openclaw.json")
    func discovery() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let base = directory.path
        let fm = FileManager.default
        for name in ["alpha", "beta", "Not-Valid", "no-info"] {
            try fm.createDirectory(atPath: "\(base)/\(name)/.openclaw", withIntermediateDirectories: true)
        }
        try Data("MOLT_PORT=19001\n".utf8).write(to: URL(fileURLWithPath: base + "/alpha/.molt-info"))
        try Data("MOLT_NAME=beta\n".utf8).write(to: URL(fileURLWithPath: base + "/beta/.molt-info"))
        try Data("{ gateway: { port: 19021 } }".utf8).write(to: URL(fileURLWithPath: base + "/beta/.openclaw/openclaw.json"))
        try Data("MOLT_PORT=1\n".utf8).write(to: URL(fileURLWithPath: base + "/Not-Valid/.molt-info"))
        try fm.createSymbolicLink(atPath: base + "/linked", withDestinationPath: base + "/alpha")

        let fleet = try Fleet.discover(baseDir: base + "/./")
        #expect(fleet.baseDir == base)
        #expect(fleet.names == ["alpha", "beta"])
        #expect(try fleet.molt(named: "beta").port == 19021)
        #expect(try fleet.select(["beta"]).map(\.name) == ["beta"])
        #expect(throws: FleetError.unknownMolt(name: "gamma", known: ["alpha", "beta"])) { try fleet.molt(named: "gamma") }
        #expect(throws: FleetError.invalidName("Not-Valid")) { try fleet.molt(named: "Not-Valid") }
        #expect(throws: FleetError.noMolts(baseDir: base + "/alpha")) { try Fleet.discoverNonEmpty(baseDir: base + "/alpha") }
        #expect(throws: FleetError.baseDirMissing(path: base + "/missing")) { try Fleet.discover(baseDir: base + "/missing") }
    }

    @Test("absolute paths fold . and .. without resolving links")
    func absolutePaths() {
        #expect(absolutePath("/a/./b/../c/") == "/a/c")
        #expect(absolutePath("/") == "/")
        #expect(absolutePath("x").hasSuffix("/x"))
    }
}
