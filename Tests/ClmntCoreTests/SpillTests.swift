import ClmntTestSupport
@testable import ClmntCore
import Foundation
import Testing

/// What a pass remembers per file (digest lines, scans, the digests a restore computed) leaves
/// memory for an unnamed scratch file once it grows: the same bytes, found the same problems.
@Suite("spill files")
struct SpillTests {
    @Test("a spill file gives back every byte, across the memory/file boundary, and leaves no name behind", .tags(.fast))
    func spillFileRoundTrip() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let spill = SpillFile(directory: directory.path, memoryLimit: 100)
        var expected: [UInt8] = []
        for number in 0..<2000 {
            let record = Array("line \(number) \(String(repeating: "x", count: number % 37))\n".utf8)
            try spill.append(record)
            expected += record
        }
        #expect(spill.byteCount == expected.count)
        var back: [UInt8] = []
        try spill.forEachChunk { back += $0 }
        #expect(back == expected)
        let middle = spill.byteCount - 150
        #expect(try spill.read(at: middle, count: 140) == Array(expected[middle..<(middle + 140)]), "a read across the spilled part and the tail")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty, "the spill file has no name")
    }

    private func line(_ digest: String, _ path: String) -> String { "\(digest)  \(path)\n" }

    /// A ledger fed `entries` (path, digest) and the list `sums`; its mismatches.
    private func mismatches(_ entries: [(String, String?)], _ sums: String, memoryLimit: Int = 64) throws -> [String] {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let ledger = DigestLedger(scratchDirectory: directory.path, memoryLimit: memoryLimit)
        for (path, digest) in entries {
            ledger.note(PathBytes(path))
            if let digest { ledger.digest(digest, path: PathBytes(path)) }
        }
        Array(sums.utf8).withUnsafeBytes { ledger.checksums($0) }
        return try ledger.mismatches().map(\.description)
    }

    @Test("the ledger matches SHA256SUMS in order, and names every mismatch, gap and extra, in order or not", .tags(.fast))
    func ledger() throws {
        let a = String(repeating: "a", count: 64), b = String(repeating: "b", count: 64), c = String(repeating: "c", count: 64)
        let files = (0..<300).map { ("m/file-\($0)", $0 % 2 == 0 ? a : nil) }
        let sums = files.map { line(a, $0.0) }.joined()
        for limit in [64, 4 << 20] {
            #expect(try mismatches(files, sums, memoryLimit: limit).isEmpty)
            #expect(try mismatches(files, String(sums.dropLast()), memoryLimit: limit).isEmpty, "a last line without its newline")
            var changed = files
            changed[100].1 = b
            #expect(try mismatches(changed, sums, memoryLimit: limit) == ["m/file-100: SHA-256 mismatch with SHA256SUMS (content is corrupt)"])
            #expect(try mismatches(files + [("m/extra", c)], sums, memoryLimit: limit) == ["m/extra: not listed in SHA256SUMS"])
            #expect(try mismatches(Array(files.dropLast()), sums, memoryLimit: limit)
                    == ["m/file-299: listed in SHA256SUMS but missing from the archive"])
            // Out of order: matched by path, the same findings.
            var shuffled = files.map { line(a, $0.0) }
            shuffled.swapAt(10, 200)
            #expect(try mismatches(changed, shuffled.joined(), memoryLimit: limit)
                    == ["m/file-100: SHA-256 mismatch with SHA256SUMS (content is corrupt)"])
            #expect(try mismatches(files, shuffled.dropLast().joined(), memoryLimit: limit)
                    == ["m/file-299: not listed in SHA256SUMS"])
        }
        // A name holding a newline: GNU's escaping, matched as bytes.
        let odd = "m/two\nlines"
        #expect(try mismatches([(odd, a)], "\\" + line(a, "m/two\\nlines")).isEmpty)
        let oddMismatch = try mismatches([(odd, b)], "\\" + line(a, "m/two\\nlines"))
        #expect(oddMismatch.count == 1 && oddMismatch[0].hasSuffix(": SHA-256 mismatch with SHA256SUMS (content is corrupt)"), "\(oddMismatch)")
    }

    @Test("backup, verify and restore with every spill file on disk give what they give in memory")
    func spilledEndToEnd() throws {
        let clmnt = clmntExecutable()
        let fixture = try FleetFixture()
        defer { fixture.remove() }
        var spilled = ProcessInfo.processInfo.environment
        spilled["CLMNT_TEST_SPILL_BYTES"] = "64"
        let inMemory = fixture.root.path + "/memory.tar.zst", onDisk = fixture.root.path + "/disk.tar.zst"
        for (archive, environment) in [(inMemory, ProcessInfo.processInfo.environment), (onDisk, spilled)] {
            let backup = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "--compress", "zstd", "-o", archive, "-q"],
                                          environment: environment)
            #expect(backup.status == 0, "\(backup.stderr)")
        }
        // The molts' lines (the manifest and report carry the time of the backup, which may differ by a second).
        func checksums(_ archive: String) throws -> String {
            try run("/bin/tar", ["-xOf", archive, "SHA256SUMS"]).split(separator: "\n")
                .filter { !$0.hasSuffix("  manifest.json") && !$0.hasSuffix("  backup-report.json") }.joined(separator: "\n")
        }
        let listed = try checksums(onDisk)
        #expect(listed == (try checksums(inMemory)), "the same SHA256SUMS, spilled or not")
        #expect(listed.split(separator: "\n").count > 20)
        let verify = try runCapturing(clmnt, ["fleet", "verify", onDisk], environment: spilled)
        #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")

        let target = fixture.root.path + "/restored"
        let restore = try runCapturing(clmnt, ["fleet", "restore", "--from", onDisk, "-d", target, "--yes", "--skip-users",
                                               "--allow-outside-symlinks"], environment: spilled)
        #expect(restore.status == 0, "\(restore.stderr)")
        let extracted = fixture.root.path + "/extracted"
        try FileManager.default.createDirectory(atPath: extracted, withIntermediateDirectories: true)
        try run("/bin/tar", ["--xattrs", "--xattrs-include=*", "--acls", "--numeric-owner", "--same-owner", "-xpf", inMemory, "-C", extracted])
        for molt in fixture.moltNames {
            // A restore rewrites a few files for its new base dir (docs/restore.md): those are left out here.
            let rewritten = { (path: String) in path.hasPrefix(".molt-info") || path.hasPrefix(".openclaw/openclaw.json") || path.hasPrefix(".molt-state") }
            // With --skip-users the molt's files go to the invoker (root), whoever owned them.
            let expected = try snapshotTree(extracted + "/" + molt, skip: rewritten).mapValues { record in
                var owned = record
                (owned.uid, owned.gid) = (0, 0)
                return owned
            }
            let actual = try snapshotTree(target + "/" + molt, skip: rewritten)
            let diff = differences(expected, actual)
            #expect(diff.isEmpty, "\(molt): \(diff.prefix(10).joined(separator: "\n"))")
        }
    }
}
