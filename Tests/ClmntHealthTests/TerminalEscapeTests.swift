import ClmntTestSupport
import ClmntCore
import Foundation
import Testing
@testable import ClmntHealth

/// A molt user writes its own `.molt-state`: what `molt health status`, `history` and `logs`
/// show root from there is escaped; `--json` keeps it exact (issue 16, part 4).
@Suite("control characters from state files, through the binary")
struct HealthTerminalEscapeTests {
    static let hostile = "refused\u{1B}]0;pwned\u{07}\u{1B}[2J\nclmnt: everything fine"

    static func assertNoControls(_ text: String, _ what: String) {
        #expect(rawControlCharacters(text).isEmpty, "\(what) printed raw control characters: \(rawControlCharacters(text))")
        #expect(!hasForgedLine(text), "\(what) printed a forged line")
    }

    @Test("status, history and logs escape a molt's detail and log lines")
    func stateWordsEscaped() throws {
        let fleet = try FleetFixture.bare()
        defer { fleet.remove() }
        try fleet.addMolt("alpha", port: 19001)
        try FileManager.default.createDirectory(atPath: fleet.base + "/alpha/.molt-state", withIntermediateDirectories: true)
        let record = HealthRecord(timestamp: Date(), status: .unhealthy, pid: 4242, port: 19001, detail: Self.hostile)
        try (record.json().pretty + "\n").write(toFile: fleet.stateFile("alpha", "health-status.json"), atomically: true, encoding: .utf8)
        try (record.json(includeNullDetail: false).compact + "\n")
            .write(toFile: fleet.stateFile("alpha", "health-history.jsonl"), atomically: true, encoding: .utf8)
        try "2026-12-07T10:00:00Z health: ok\n\u{1B}]0;pwned\u{07}line two\u{1B}[2J\n"
            .write(toFile: fleet.stateFile("alpha", "cron.log"), atomically: true, encoding: .utf8)

        let status = try runClmnt(["molt", "health", "status", "alpha", "-d", fleet.base])
        #expect(status.status == 2, "\(status.stderr)")
        Self.assertNoControls(status.stdout + status.stderr, "health status")
        #expect(status.stdout.contains(#"refused\x1B]0;pwned\x07\x1B[2J\x0Aclmnt: everything fine"#), "\(status.stdout)")

        let json = try runClmnt(["molt", "health", "status", "alpha", "-d", fleet.base, "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect((object["last"] as? [String: Any])?["detail"] as? String == Self.hostile, "\(json.stdout)")

        let history = try runClmnt(["molt", "health", "history", "alpha", "-d", fleet.base])
        #expect(history.status == 0, "\(history.stderr)")
        Self.assertNoControls(history.stdout + history.stderr, "health history")
        #expect(history.stdout.contains(#"\x0Aclmnt: everything fine"#), "\(history.stdout)")

        let logs = try runClmnt(["molt", "health", "logs", "alpha", "-d", fleet.base])
        #expect(logs.status == 0, "\(logs.stderr)")
        Self.assertNoControls(logs.stdout + logs.stderr, "health logs")
        #expect(logs.stdout.contains(#"\x1B]0;pwned\x07line two\x1B[2J"#), "\(logs.stdout)")
    }
}
