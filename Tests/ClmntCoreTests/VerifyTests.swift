import ClmntTestSupport
@testable import ClmntCore
import Foundation
import Testing

@Suite("fleet verify and list-backups")
struct VerifyTests {
    /// A fixture fleet and one archive of it.
    private func makeArchive(_ compression: Compression = .gzip, name: String = "fleet") throws -> (FleetFixture, String) {
        let fixture = try FleetFixture()
        var options = BackupOptions(baseDir: fixture.baseDir)
        options.compression = compression
        options.output = fixture.root.path + "/\(name).\(compression.fileExtension)"
        return (fixture, try FleetBackup(options: options).run().output)
    }

    @Test("an intact archive verifies", arguments: [Compression.gzip, .zstd, .none])
    func intact(compression: Compression) throws {
        let (fixture, archive) = try makeArchive(compression)
        defer { fixture.remove() }
        let report = try ArchiveVerifier.verify(path: archive)
        #expect(report.isIntact, "\(report.problems)")
        #expect(report.filesChecked > 20)
        #expect(report.compression == (compression == .none ? "none" : compression.rawValue))
    }

    @Test("a truncated archive fails", arguments: [Compression.gzip, .zstd])
    func truncated(compression: Compression) throws {
        let (fixture, archive) = try makeArchive(compression)
        defer { fixture.remove() }
        let data = try Data(contentsOf: URL(fileURLWithPath: archive))
        let cut = fixture.root.path + "/cut.tar"
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: cut))
        let report = try ArchiveVerifier.verify(path: cut)
        #expect(!report.isIntact)
        #expect(report.problems.contains { $0.contains("SHA256SUMS is missing") })
    }

    @Test("a stream cut cleanly between two entries fails")
    func cutBetweenEntries() throws {
        let (fixture, archive) = try makeArchive(.none)
        defer { fixture.remove() }
        // Cut the plain tar just before the header block of backup-report.json: libarchive sees a clean end.
        let data = try Data(contentsOf: URL(fileURLWithPath: archive))
        let name = Data("backup-report.json".utf8) + Data([0])
        let headerStart = try #require(stride(from: data.count - 512, through: 0, by: -512).first { offset in
            data[offset..<(offset + name.count)].elementsEqual(name)
        })
        let cut = fixture.root.path + "/cut.tar"
        try (data.prefix(headerStart) + Data(count: 1024)).write(to: URL(fileURLWithPath: cut))
        let report = try ArchiveVerifier.verify(path: cut)
        #expect(!report.isIntact)
        #expect(report.problems.contains { $0.contains("SHA256SUMS is missing") }, "\(report.problems)")
    }

    @Test("a flipped bit in file data fails with the file's name")
    func bitFlip() throws {
        let (fixture, archive) = try makeArchive(.none)
        defer { fixture.remove() }
        var data = try Data(contentsOf: URL(fileURLWithPath: archive))
        let marker = try #require(data.range(of: Data("unicode name".utf8)))
        data[marker.lowerBound] ^= 0x01
        let flipped = fixture.root.path + "/flipped.tar"
        try data.write(to: URL(fileURLWithPath: flipped))
        let report = try ArchiveVerifier.verify(path: flipped)
        #expect(!report.isIntact)
        #expect(report.problems.contains { $0.contains("notes 🗓.md") && $0.contains("SHA-256 mismatch") }, "\(report.problems)")
    }

    @Test("a flipped byte in compressed data fails")
    func compressedCorruption() throws {
        let (fixture, archive) = try makeArchive(.gzip)
        defer { fixture.remove() }
        var data = try Data(contentsOf: URL(fileURLWithPath: archive))
        data[data.count / 3] ^= 0xFF
        let flipped = fixture.root.path + "/flipped.tar.gz"
        try data.write(to: URL(fileURLWithPath: flipped))
        let report = try ArchiveVerifier.verify(path: flipped)
        #expect(!report.isIntact)
    }

    @Test("list-backups reads manifests and lists a corrupt file as unreadable")
    func listing() throws {
        let (fixture, archive) = try makeArchive(.zstd)
        defer { fixture.remove() }
        let directory = fixture.root.path + "/backups"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try FileManager.default.moveItem(atPath: archive, toPath: directory + "/fleet-a.tar.zst")
        try Data("not an archive".utf8).write(to: URL(fileURLWithPath: directory + "/broken.tar.gz"))
        try Data("notes".utf8).write(to: URL(fileURLWithPath: directory + "/README.txt"))
        let listings = try BackupCatalog.list(directory: directory)
        #expect(listings.count == 2)
        let good = try #require(listings.first { $0.file.hasSuffix("fleet-a.tar.zst") })
        #expect(good.moltCount == 2 && good.compression == "zstd" && good.unreadable == nil && good.writtenBy == "clmnt")
        #expect(good.hostname == ProcessInfo.processInfo.hostName)
        let bad = try #require(listings.first { $0.file.hasSuffix("broken.tar.gz") })
        #expect(bad.unreadable != nil)
    }

    @Test("an archive from the bash tool is listed, and verify says it has no checksums")
    func bashToolArchive() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let staging = directory.path + "/backup"
        try FileManager.default.createDirectory(atPath: staging + "/bot-1", withIntermediateDirectories: true)
        try Data("MOLT_NAME=bot-1\n".utf8).write(to: URL(fileURLWithPath: staging + "/bot-1/.molt-info"))
        try Data("""
            {"version":"1.0","timestamp":"2026-02-02T10:30:00Z","hostname":"claw-mountain",
             "molts":[{"name":"bot-1","port":"19001","created":null,"backup_size_bytes":"16"}],"total_size_bytes":"16"}
            """.utf8).write(to: URL(fileURLWithPath: staging + "/manifest.json"))
        try run("/bin/tar", ["-czf", directory.path + "/fleet-2026-02-02.tar.gz", "-C", staging, "."])
        let listings = try BackupCatalog.list(directory: directory.path)
        #expect(listings.count == 1)
        #expect(listings.first?.writtenBy == "bash" && listings.first?.hostname == "claw-mountain")
        let manifest = try BackupCatalog.readManifest(path: directory.path + "/fleet-2026-02-02.tar.gz")
        #expect(manifest.molts.first?.port == 19001 && manifest.molts.first?.backupSizeBytes == 16 && manifest.totalSizeBytes == 16)
        let report = try ArchiveVerifier.verify(path: directory.path + "/fleet-2026-02-02.tar.gz")
        #expect(report.notes.contains { $0.contains("no checksums") })
    }
}
