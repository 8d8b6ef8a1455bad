import ClmntTestSupport
import Foundation
import Testing
@testable import ClmntCore

/// Crafted hostile and damaged archives: each is refused as a whole, nothing is
/// written outside the staging directory, existing molts stay as they were.
@Suite struct RestoreHostileTests {
    typealias F = RestoreFixture

    /// A base dir with an existing molt `keep` (also in every archive, restored with --force),
    /// and an `outside` dir an attack would write into.
    struct Scene {
        let directory: TemporaryDirectory
        let base: String
        let outside: String
        let keep: String
        let victim: String
        var archive: String { directory.path + "/fleet.tar.gz" }

        init() throws {
            directory = try TemporaryDirectory(prefix: "clmnt-restore-hostile")
            base = directory.path + "/base"
            outside = directory.path + "/outside"
            keep = F.uniqueName("k")
            victim = F.uniqueName("v")
            try F.write("\(base)/\(keep)/.molt-info", "MOLT_NAME=\(keep)\nMOLT_PORT=19001\nMOLT_HOME=\(base)/\(keep)\n")
            try F.write("\(base)/\(keep)/precious.txt", "do not lose me\n")
            try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
            try F.write("\(outside)/existing.txt", "outside\n")
        }

        /// The molts of every archive: `keep` (replacing the live one) and `victim`.
        func molts(victimEntries: [F.Entry]) -> [F.CraftedMolt] {
            [F.CraftedMolt(name: keep, port: 19001, entries: [.file(".molt-info", "MOLT_NAME=\(keep)\n"), .file("new.txt", "new\n")]),
             F.CraftedMolt(name: victim, port: 19021, entries: [.file(".molt-info", "MOLT_NAME=\(victim)\n")] + victimEntries)]
        }

        func restore(select: [String]? = nil) throws(RestoreError) -> RestoreSummary {
            var options = RestoreOptions(archive: archive, baseDir: base)
            options.force = true
            options.skipUsers = true
            options.selection = select
            return try FleetRestore(options: options).run()
        }

        /// Checks that the host is exactly as before the attempt.
        func expectUntouched(sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(F.read("\(base)/\(keep)/precious.txt") == "do not lose me\n", sourceLocation: sourceLocation)
            #expect(!F.exists("\(base)/\(keep)/new.txt"), sourceLocation: sourceLocation)
            #expect(!F.exists("\(base)/\(victim)"), sourceLocation: sourceLocation)
            #expect(F.stagingLeftovers(base).isEmpty, "staging left: \(F.stagingLeftovers(base))", sourceLocation: sourceLocation)
            let outsideNames = (try? FileManager.default.contentsOfDirectory(atPath: outside)) ?? []
            #expect(outsideNames == ["existing.txt"], "written outside: \(outsideNames)", sourceLocation: sourceLocation)
            #expect(F.read("\(outside)/existing.txt") == "outside\n", sourceLocation: sourceLocation)
            #expect(!F.exists("\(base)/molts.json"), sourceLocation: sourceLocation)
        }

        func cleanUp() { directory.remove() }
    }

    /// Restores a clmnt archive whose victim molt holds `entries`; expects a hostile-entry refusal naming `entry`.
    private func expectHostile(_ entries: [F.Entry], entry: String, reason: String, bash: Bool = false) throws {
        let scene = try Scene()
        defer { scene.cleanUp() }
        if bash {
            try F.bashArchive(scene.archive, molts: scene.molts(victimEntries: entries))
        } else {
            try F.clmntArchive(scene.archive, molts: scene.molts(victimEntries: entries))
        }
        do {
            _ = try scene.restore()
            Issue.record("a hostile archive was restored")
        } catch {
            guard case .hostileEntry(let path, let message) = error else {
                Issue.record("expected a hostile-entry refusal, got: \(error)")
                return
            }
            #expect(path.contains(entry), "\(error)")
            #expect(message.contains(reason), "\(error)")
            #expect(error.description.contains("nothing was restored"))
        }
        scene.expectUntouched()
    }

    @Test func refusesPathTraversal() throws {
        try expectHostile([.file("../../outside/pwned", "x")], entry: "../../outside/pwned", reason: "'..'")
    }

    @Test func refusesAbsolutePaths() throws {
        let scene = try Scene()
        defer { scene.cleanUp() }
        try F.clmntArchive(scene.archive, molts: scene.molts(victimEntries: [])) { entries in
            entries.insert(.file(scene.outside + "/pwned", "x"), at: 3)
        }
        #expect {
            _ = try scene.restore()
        } throws: { error in
            guard case RestoreError.hostileEntry(let path, let reason)? = error as? RestoreError else { return false }
            return path == scene.outside + "/pwned" && reason.contains("absolute")
        }
        scene.expectUntouched()
    }

    @Test func refusesSymlinkThenWriteOutside() throws {
        let scene = try Scene()
        defer { scene.cleanUp() }
        try expectHostile([.symlink("escape", to: scene.outside), .file("escape/pwned", "x")],
                          entry: "escape", reason: "symlink pointing outside")
    }

    @Test func refusesWritingBelowAnArchivedSymlinkEvenInside() throws {
        try expectHostile([.dir("sub/"), .symlink("link", to: "sub"), .file("link/pwned", "x")],
                          entry: "link/pwned", reason: "not a directory in the archive")
    }

    @Test func refusesRelativeSymlinkEscapingTheMolt() throws {
        try expectHostile([.dir("a/"), .symlink("a/up", to: "../../outside")], entry: "a/up", reason: "symlink pointing outside")
    }

    @Test func refusesHardlinksOutOfTheMolt() throws {
        try expectHostile([.hardlink("passwd", to: "../../../etc/passwd")], entry: "passwd", reason: "hard link")
        try expectHostile([.hardlink("later", to: "not-yet.txt"), .file("not-yet.txt", "x")], entry: "later",
                          reason: "not an earlier file")
    }

    @Test func refusesDevicesFifosAndSetuidFiles() throws {
        try expectHostile([F.Entry(name: "null", type: "chardev")], entry: "null", reason: "character device")
        try expectHostile([F.Entry(name: "pipe", type: "fifo")], entry: "pipe", reason: "FIFO")
        try expectHostile([.file("rootshell", "#!/bin/sh\n", mode: 0o4755)], entry: "rootshell", reason: "setuid")
        try expectHostile([.file("rootgroup", "#!/bin/sh\n", mode: 0o2755)], entry: "rootgroup", reason: "setgid")
    }

    @Test func refusesDuplicateEntries() throws {
        try expectHostile([.file("a.txt", "1"), .file("a.txt", "2")], entry: "a.txt", reason: "appears twice")
    }

    @Test func refusesEntriesOutsideTheMoltsOfTheManifest() throws {
        let scene = try Scene()
        defer { scene.cleanUp() }
        for (stray, reason) in [("stray.txt", "outside <molt>/ and global/"), ("ctunlisted/x", "does not list"),
                                ("Not-A-Molt/x", "not a valid molt name")] {
            try F.clmntArchive(scene.archive, molts: scene.molts(victimEntries: []), extra: [.file(stray, "x")])
            #expect {
                _ = try scene.restore()
            } throws: { error in
                guard case RestoreError.hostileEntry(let path, let message)? = error as? RestoreError else { return false }
                return path == stray && message.contains(reason)
            }
            scene.expectUntouched()
        }
    }

    @Test func refusesHostileBashArchivesToo() throws {
        try expectHostile([.file("../../outside/pwned", "x")], entry: "pwned", reason: "'..'", bash: true)
        try expectHostile([.symlink("etc", to: "/etc")], entry: "etc", reason: "symlink pointing outside", bash: true)
    }

    @Test func refusesAnArchiveWithoutManifest() throws {
        let scene = try Scene()
        defer { scene.cleanUp() }
        try F.tar(scene.archive, [.dir(scene.victim + "/"), .file(scene.victim + "/.molt-info", "x")])
        #expect(throws: RestoreError.noManifest(archive: scene.archive)) { _ = try scene.restore() }
        scene.expectUntouched()
        // Not a tar at all.
        try F.write(scene.archive, "this is not an archive\n")
        #expect(throws: RestoreError.self) { _ = try scene.restore() }
        scene.expectUntouched()
    }

    @Test func refusesAManifestThatDisagreesWithTheContent() throws {
        let scene = try Scene()
        defer { scene.cleanUp() }
        // The manifest lists the victim, but its entries were dropped.
        try F.clmntArchive(scene.archive, molts: scene.molts(victimEntries: [])) { entries in
            entries.removeAll { $0.name.hasPrefix(scene.victim + "/") }
        }
        #expect {
            _ = try scene.restore()
        } throws: { error in
            guard case RestoreError.contentMismatch(_, let reason)? = error as? RestoreError else { return false }
            return reason.contains(scene.victim)
        }
        scene.expectUntouched()
    }

    @Test func refusesAStreamCutBetweenTwoEntries() throws {
        let scene = try Scene()
        defer { scene.cleanUp() }
        let plain = scene.directory.path + "/fleet.tar"
        try F.clmntArchive(scene.archive, molts: scene.molts(victimEntries: [.file("data.txt", "payload\n")]))
        // Decompress, then cut right before the report's header: libarchive sees a clean end.
        try F.run("python3", ["-c", """
            import gzip, sys, tarfile
            raw = gzip.open(sys.argv[1]).read()
            open(sys.argv[2], "wb").write(raw)
            with tarfile.open(sys.argv[2]) as tf:
                cut = [m.offset for m in tf.getmembers() if m.name == "backup-report.json"][0]
            open(sys.argv[2], "r+b").truncate(cut)
            """, scene.archive, plain])
        var options = RestoreOptions(archive: plain, baseDir: scene.base)
        options.force = true
        options.skipUsers = true
        #expect {
            _ = try FleetRestore(options: options).run()
        } throws: { error in
            guard case RestoreError.contentMismatch(_, let reason)? = error as? RestoreError else { return false }
            return reason.contains("SHA256SUMS")
        }
        scene.expectUntouched()
    }

    @Test func refusesATruncatedCompressedStream() throws {
        let scene = try Scene()
        defer { scene.cleanUp() }
        let big = String((0..<200_000).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789".randomElement()! })
        try F.clmntArchive(scene.archive, molts: scene.molts(victimEntries: [.file("big.txt", big)]))
        var st = stat()
        stat(scene.archive, &st)
        truncate(scene.archive, st.st_size * 2 / 3)
        #expect(throws: RestoreError.self) { _ = try scene.restore() }
        scene.expectUntouched()
    }

    @Test func refusesAFileWhoseContentDoesNotMatchItsChecksum() throws {
        let scene = try Scene()
        defer { scene.cleanUp() }
        try F.clmntArchive(scene.archive, molts: scene.molts(victimEntries: [.file("data.txt", "payload\n")])) { entries in
            let index = entries.firstIndex { $0.name.hasSuffix("/data.txt") }!
            entries[index].data = "paylOad\n"
        }
        #expect {
            _ = try scene.restore()
        } throws: { error in
            guard case RestoreError.contentMismatch(_, let reason)? = error as? RestoreError else { return false }
            return reason.contains("data.txt") && reason.contains("SHA-256")
        }
        scene.expectUntouched()
    }

    @Test func neverFollowsASymlinkAlreadyInTheTarget() throws {
        let scene = try Scene()
        defer { scene.cleanUp() }
        // The live home of `keep` was seeded by its user with a symlink to a place outside.
        try FileManager.default.createSymbolicLink(atPath: "\(scene.base)/\(scene.keep)/.openclaw", withDestinationPath: scene.outside)
        // And the victim's target is itself a symlink to the outside dir.
        try FileManager.default.createSymbolicLink(atPath: "\(scene.base)/\(scene.victim)", withDestinationPath: scene.outside)
        try F.clmntArchive(scene.archive, molts: [
            F.CraftedMolt(name: scene.keep, port: 19001, entries: [.file(".molt-info", "MOLT_NAME=x\n"), .dir(".openclaw/"),
                                                                    .file(".openclaw/openclaw.json", "{\"gateway\":{\"port\":19001}}")]),
            F.CraftedMolt(name: scene.victim, port: 19021, entries: [.file(".molt-info", "MOLT_NAME=y\n"), .file("pwned", "x")]),
        ])
        // --force replaces a molt, never a symlink standing where a molt would land.
        #expect {
            _ = try scene.restore()
        } throws: { error in
            guard case RestoreError.refused(let reasons)? = error as? RestoreError else { return false }
            return reasons.contains { $0.contains(scene.victim) && $0.contains("not a directory") }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: scene.outside) == ["existing.txt"])
        unlink("\(scene.base)/\(scene.victim)")
        let summary = try scene.restore()
        #expect(summary.molts.count == 2)
        #expect(try FileManager.default.contentsOfDirectory(atPath: scene.outside) == ["existing.txt"])
        var st = stat()
        #expect(lstat("\(scene.base)/\(scene.victim)", &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR)
        #expect(lstat("\(scene.base)/\(scene.keep)/.openclaw", &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR)
        #expect(F.read("\(scene.base)/\(scene.victim)/pwned") == "x")
        #expect(!F.exists("\(scene.base)/\(scene.keep)/precious.txt"))
        #expect(F.stagingLeftovers(scene.base).isEmpty)
    }
}
