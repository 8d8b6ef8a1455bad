import ClmntTestSupport
import Foundation
import Testing
@testable import ClmntCore

/// The pure rules of restore: which entries are hostile, how paths and ports are rewritten.
@Suite(.tags(.fast)) struct RestorePolicyTests {
    let molts: Set<String> = ["alpha", "beta"]

    @Test func placesEntriesOfTheClmntLayout() throws {
        #expect(try EntryPolicy.place(of: "manifest.json", format: .clmnt, molts: molts) == .manifest)
        #expect(try EntryPolicy.place(of: "backup-report.json", format: .clmnt, molts: molts) == .report)
        #expect(try EntryPolicy.place(of: "SHA256SUMS", format: .clmnt, molts: molts) == .checksums)
        #expect(try EntryPolicy.place(of: "alpha/", format: .clmnt, molts: molts) == .molt(name: "alpha", relative: ""))
        #expect(try EntryPolicy.place(of: "alpha/.openclaw/openclaw.json", format: .clmnt, molts: molts)
            == .molt(name: "alpha", relative: ".openclaw/openclaw.json"))
        #expect(try EntryPolicy.place(of: "global/molts.json", format: .clmnt, molts: molts) == .global("molts.json"))
    }

    @Test func placesEntriesOfTheBashLayout() throws {
        #expect(try EntryPolicy.place(of: "./", format: .bash, molts: molts) == .archiveRoot)
        #expect(try EntryPolicy.place(of: "./manifest.json", format: .bash, molts: molts) == .manifest)
        #expect(try EntryPolicy.place(of: "./beta/.molt-info", format: .bash, molts: molts) == .molt(name: "beta", relative: ".molt-info"))
        // The bash tool never wrote a checksum entry: one at the top is foreign.
        #expect(throws: RestoreError.self) { try EntryPolicy.place(of: "./SHA256SUMS", format: .bash, molts: molts) }
        // clmnt archives never prefix "./".
        #expect(throws: RestoreError.self) { try EntryPolicy.place(of: "./alpha/x", format: .clmnt, molts: molts) }
    }

    @Test(arguments: [
        ("/etc/passwd", "absolute"),
        ("alpha/../../etc/passwd", "'..'"),
        ("alpha/./x", "'.'"),
        ("alpha//x", "empty path component"),
        ("gamma/x", "does not list"),
        ("Gamma/x", "not a valid molt name"),
        ("stray.txt", "outside <molt>/ and global/"),
        ("", "empty name"),
    ])
    func refusesHostileNames(path: String, reason: String) {
        do {
            _ = try EntryPolicy.place(of: PathBytes(path), format: .clmnt, molts: molts)
            Issue.record("\(path) was accepted")
        } catch {
            guard case .hostileEntry(_, let message) = error else { Issue.record("wrong error \(error)"); return }
            #expect(message.contains(reason), "\(message)")
            #expect(!error.description.contains("\n"))
        }
    }

    @Test func symlinksMustStayInsideTheirMolt() {
        let homes: [PathBytes] = ["/srv/old/alpha"]
        #expect(EntryPolicy.symlinkStaysInside(linkPath: ".local/bin/gog", target: "../../gogcli/bin/gog", homes: homes))
        #expect(EntryPolicy.symlinkStaysInside(linkPath: "exports/latest.tar.gz", target: "2026-10-30-export.tar.gz", homes: homes))
        #expect(EntryPolicy.symlinkStaysInside(linkPath: "a", target: "/srv/old/alpha/.openclaw", homes: homes))
        #expect(!EntryPolicy.symlinkStaysInside(linkPath: ".local/bin/gog", target: "../../../etc/passwd", homes: homes))
        #expect(!EntryPolicy.symlinkStaysInside(linkPath: "a", target: "/etc/shadow", homes: homes))
        #expect(!EntryPolicy.symlinkStaysInside(linkPath: "a", target: "/srv/old/alpha/../beta", homes: homes))
        #expect(!EntryPolicy.symlinkStaysInside(linkPath: "a", target: "/srv/old/alphabet", homes: homes))
        #expect(!EntryPolicy.symlinkStaysInside(linkPath: "a", target: "", homes: homes))
        #expect(!EntryPolicy.symlinkStaysInside(linkPath: "a", target: "..", homes: homes))
    }

    @Test func devicesFifosAndSetuidFilesAreHostile() {
        #expect(EntryPolicy.typeProblem(kind: .other(mode: 0o020000), mode: 0o644) == "is a character device")
        #expect(EntryPolicy.typeProblem(kind: .other(mode: 0o060000), mode: 0o644) == "is a block device")
        #expect(EntryPolicy.typeProblem(kind: .other(mode: 0o010000), mode: 0o644) == "is a FIFO")
        #expect(EntryPolicy.typeProblem(kind: .regular, mode: 0o4755) == "is a setuid file")
        #expect(EntryPolicy.typeProblem(kind: .regular, mode: 0o2755) == "is a setgid file")
        #expect(EntryPolicy.typeProblem(kind: .directory, mode: 0o2775) == nil)
        #expect(EntryPolicy.typeProblem(kind: .regular, mode: 0o755) == nil)
    }

    @Test func rewritesHomePathsOnlyAsWholePathPrefixes() {
        var text = #"{"workspace": "/srv/old/alpha/.openclaw/workspace", "other": "/srv/old/alphabet", "home": "/srv/old/alpha"}"#
        let count = HomeRewriter.replacePathPrefix(in: &text, old: "/srv/old/alpha", new: "/home/molts/alpha")
        #expect(count == 2)
        #expect(text == #"{"workspace": "/home/molts/alpha/.openclaw/workspace", "other": "/srv/old/alphabet", "home": "/home/molts/alpha"}"#)
    }

    @Test func rewritesPortsInJSONAndJSON5() {
        var json = "{\n  \"gateway\": {\n    \"port\": 19001,\n    \"bind\": \"lan\"\n  },\n  \"x\": 190012\n}\n"
        #expect(HomeRewriter.replacePort(in: &json, old: 19001, new: 19041) == 1)
        #expect(json.contains("\"port\": 19041,"))
        #expect(json.contains("190012"))
        var json5 = "{ gateway: { port: '19001', /* comment */ } }"
        #expect(HomeRewriter.replacePort(in: &json5, old: 19001, new: 19021) == 1)
        #expect(json5 == "{ gateway: { port: '19021', /* comment */ } }")
    }

    @Test func parsesSha256sumLines() {
        let digest = String(repeating: "ab", count: 32)
        let text = "\(digest)  alpha/a file.txt\n\\\(digest)  alpha/new\\nline\n\(digest) *alpha/binary\n"
        let parsed = ChecksumList.parse(Array(text.utf8))
        #expect(parsed["alpha/a file.txt"] == digest)
        #expect(parsed["alpha/new\nline"] == digest)
        #expect(parsed["alpha/binary"] == digest)
    }
}
