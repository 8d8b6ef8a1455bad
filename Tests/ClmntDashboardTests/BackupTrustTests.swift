import ClmntTestSupport
import ClmntCore
import Foundation
import HummingbirdTesting
import Testing
@testable import ClmntDashboard

/// The dashboard lists the backup dir through the shared descriptor listing (issue 16 §2):
/// a planted or future-dated archive cannot silence the stale-backup alert, and links
/// show nothing on the world-readable `/api/backups`.
@Suite(.serialized) struct DashboardBackupTrustTests {
    @Test func plantedAndFutureArchivesDoNotSetTheLastSuccessAndLinksShowNothing() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        let summary = try fleet.backUp()
        let dir = fleet.backupDir.path
        // nobody's 332-byte archive dated 2099, and one of root's whose clock was ahead.
        let planted = dir + "/fleet-2099-01-01.tar.gz"
        try writeForgedArchive(to: planted, baseDir: fleet.fixture.baseDir, timestamp: "2099-01-01T00:00:00Z")
        chown(planted, 65534, 65534)
        try writeForgedArchive(to: dir + "/fleet-2098-01-01.tar.gz", baseDir: fleet.fixture.baseDir, timestamp: "2098-01-01T00:00:00Z")
        // Links to a root-only archive and to /etc/shadow.
        let hidden = try TemporaryDirectory(prefix: "clmnt-dash-hidden")
        defer { hidden.remove() }
        var options = BackupOptions(baseDir: fleet.fixture.baseDir)
        options.output = hidden.path + "/fleet-secret.tar.gz"
        _ = try FleetBackup(options: options).run(now: fleet.now.addingTimeInterval(-60))
        symlink(hidden.path + "/fleet-secret.tar.gz", dir + "/fleet-link.tar.gz")
        symlink("/etc/shadow", dir + "/fleet-shadow.tar.gz")

        try await buildApplication(fleet.configuration()).test(.router) { client in
            let metrics = text(try await client.execute(uri: "/metrics", method: .get))
            let line = metrics.split(separator: "\n").first { $0.hasPrefix("clmnt_backup_last_success_timestamp_seconds ") }
            let value = try #require(line.flatMap { Double($0.split(separator: " ").last ?? "") }, "\(metrics)")
            #expect(abs(value - fleet.now.addingTimeInterval(-7200).timeIntervalSince1970) < 2, "the real archive's time, not 2098/2099")
            let response = try await client.execute(uri: "/api/backups", method: .get)
            let body = try object(response)
            let rows = try #require(body["backups"] as? [[String: Any]])
            let files = rows.compactMap { ($0["file"] as? String).map { ($0 as NSString).lastPathComponent } }
            #expect(Set(files) == ["fleet-2026-11-29.tar.gz", "fleet-2098-01-01.tar.gz", "fleet-2099-01-01.tar.gz"], "\(files)")
            let all = text(response)
            #expect(!all.contains("fleet-secret") && !all.contains("shadow"), "\(all)")
            let future = try #require(rows.first { ($0["file"] as? String)?.hasSuffix("2098-01-01.tar.gz") == true })
            #expect(future["untrusted_date"] is String)
            #expect(summary.output.hasSuffix("fleet-2026-11-29.tar.gz"))
        }
    }

    /// `clmnt_backup_offhost_last_success_timestamp_seconds` comes from root's record in the
    /// backup dir only: a record someone else owns (or with two links) shows nothing.
    @Test func offHostLastSuccessIsRootsRecordOnly() async throws {
        let fleet = try DashboardFleet()
        defer { fleet.remove() }
        _ = try fleet.backUp()
        let dir = fleet.backupDir.path
        let completed = fleet.now.addingTimeInterval(-3600)
        #expect(OffHostStatus.record(OffHostCopy(target: "s3://b/p/host/fleet-2026-11-29.tar.gz", succeeded: true, bytes: 10),
                                     completed: completed, in: dir) == nil)
        @Sendable func metric(in metrics: String) -> Double? {
            let line = metrics.split(separator: "\n").first { $0.hasPrefix("clmnt_backup_offhost_last_success_timestamp_seconds ") }
            return line.flatMap { Double($0.split(separator: " ").last ?? "") }
        }
        try await buildApplication(fleet.configuration()).test(.router) { client in
            let metrics = text(try await client.execute(uri: "/metrics", method: .get))
            let value = try #require(metric(in: metrics), "\(metrics)")
            #expect(abs(value - completed.timeIntervalSince1970) < 1)
        }
        chown(dir + "/" + OffHostStatus.fileName, 65534, 65534)
        try await buildApplication(fleet.configuration()).test(.router) { client in
            let metrics = text(try await client.execute(uri: "/metrics", method: .get))
            #expect(metric(in: metrics) == nil, "nobody's record is not believed")
        }
    }
}
