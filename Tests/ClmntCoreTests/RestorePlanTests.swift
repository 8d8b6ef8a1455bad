import ClmntTestSupport
import Foundation
import Testing
@testable import ClmntCore

/// Plan, dry-run, select, force, ports, path rewriting and the registry, on crafted
/// archives with `--skip-users` (molt names that are no user here).
@Suite struct RestorePlanTests {
    typealias F = RestoreFixture

    struct Scene {
        let directory: TemporaryDirectory
        let base: String
        let alpha = F.uniqueName("a")
        let beta = F.uniqueName("b")
        var archive: String { directory.path + "/fleet.tar.gz" }

        init() throws {
            directory = try TemporaryDirectory(prefix: "clmnt-restore-plan")
            base = directory.path + "/molts"
        }

        func molt(_ name: String, port: Int, oldBase: String = "/srv/old-molts") -> F.CraftedMolt {
            let home = oldBase + "/" + name
            return F.CraftedMolt(name: name, port: port, home: home, entries: [
                .file(".molt-info", "MOLT_NAME=\(name)\nMOLT_PORT=\(port)\nMOLT_HOME=\(home)\nCREATED=2026-01-15T10:00:00Z\n"),
                .dir(".openclaw/", mode: 0o700),
                .file(".openclaw/openclaw.json", """
                    {
                      // JSON5, as OpenClaw allows
                      gateway: { port: \(port), bind: 'lan' },
                      agents: { defaults: { workspace: "\(home)/.openclaw/workspace" } },
                    }

                    """, mode: 0o600),
                .dir(".openclaw/workspace/"),
                .file(".openclaw/workspace/SOUL.md", "soul of \(name)\n"),
                .hardlink(".openclaw/workspace/SOUL-link.md", to: ".openclaw/workspace/SOUL.md"),
                .symlink("soul", to: ".openclaw/workspace/SOUL.md"),
                .symlink("abs-soul", to: home + "/.openclaw/workspace/SOUL.md"),
            ])
        }

        func write(ports: (Int, Int) = (19001, 19021)) throws {
            try F.clmntArchive(archive, molts: [molt(alpha, port: ports.0), molt(beta, port: ports.1)])
        }

        func options(_ configure: (inout RestoreOptions) -> Void = { _ in }) -> RestoreOptions {
            var options = RestoreOptions(archive: archive, baseDir: base)
            options.skipUsers = true
            configure(&options)
            return options
        }

        func cleanUp() { directory.remove() }
    }

    @Test func dryRunReadsOnlyTheManifestAndChangesNothing() throws {
        let scene = try Scene()
        defer { scene.cleanUp() }
        try scene.write()
        let plan = try FleetRestore(options: scene.options()).plan()
        #expect(plan.format == .clmnt)
        #expect(plan.molts.map(\.name) == [scene.alpha, scene.beta])
        #expect(plan.molts.allSatisfy { $0.action == .create && $0.user == .missing })
        #expect(plan.molts[0].port == 19001 && plan.molts[0].portConflict == nil)
        #expect(plan.sourceBaseDir == "/srv/old-molts")
        #expect(plan.notes.contains { $0.contains("will be rewritten from /srv/old-molts to \(scene.base)") })
        #expect(plan.notes.contains { $0.contains("does not exist and will be created") })
        #expect(plan.canRun)
        // Nothing was created: not even the base dir.
        #expect(!F.exists(scene.base))
        #expect(try FileManager.default.contentsOfDirectory(atPath: scene.directory.path) == ["fleet.tar.gz"])
    }

    @Test func unknownSelectionListsTheMoltsOfTheArchive() throws {
        let scene = try Scene()
        defer { scene.cleanUp() }
        try scene.write()
        let options = scene.options { $0.selection = ["nosuchmolt"] }
        #expect(throws: RestoreError.unknownMolts(names: ["nosuchmolt"], inArchive: [scene.alpha, scene.beta])) {
            _ = try FleetRestore(options: options).plan()
        }
        let bad = scene.options { $0.selection = ["../etc"] }
        #expect(throws: RestoreError.invalidName("../etc")) { _ = try FleetRestore(options: bad).plan() }
    }

    @Test func restoresIntoANewBaseDirRewritingPathsAndRegistering() throws {
        let scene = try Scene()
        defer { scene.cleanUp() }
        try scene.write()
        let summary = try FleetRestore(options: scene.options()).run(now: Date(timeIntervalSince1970: 1_795_000_000))
        #expect(summary.molts.map(\.name) == [scene.alpha, scene.beta])
        #expect(summary.files == 2 * 6)
        let home = scene.base + "/" + scene.alpha
        let info = MoltInfo(parsing: try #require(F.read(home + "/.molt-info")))
        #expect(info.home == home)
        #expect(info.port == 19001)
        #expect(info.created == "2026-01-15T10:00:00Z")
        #expect(info["RESTORED"] == "2026-11-18T11:06:40Z")
        let config = try #require(F.read(home + "/.openclaw/openclaw.json"))
        #expect(config.contains("workspace: \"\(home)/.openclaw/workspace\""))
        #expect(config.contains("// JSON5, as OpenClaw allows"))
        #expect(!config.contains("/srv/old-molts"))
        #expect(summary.molts[0].rewrites.contains("MOLT_HOME /srv/old-molts/\(scene.alpha) → \(home)"))
        #expect(summary.molts[0].rewrites.contains { $0.hasPrefix("openclaw.json: 1 path") })
        // Content, hard link, symlinks, and files owned by the invoking user (--skip-users).
        #expect(F.read(home + "/.openclaw/workspace/SOUL.md") == "soul of \(scene.alpha)\n")
        var a = stat(), b = stat()
        stat(home + "/.openclaw/workspace/SOUL.md", &a)
        stat(home + "/.openclaw/workspace/SOUL-link.md", &b)
        #expect(a.st_ino == b.st_ino && a.st_nlink == 2)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: home + "/soul") == ".openclaw/workspace/SOUL.md")
        #expect(a.st_uid == geteuid())
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: home + "/abs-soul") == home + "/.openclaw/workspace/SOUL.md")
        #expect(summary.molts[0].rewrites.contains { $0.hasPrefix("1 absolute symlink") })
        // The registry.
        let registry = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: scene.base + "/molts.json"))) as? [String: Any])
        let molts = try #require(registry["molts"] as? [String: [String: Any]])
        #expect(molts[scene.alpha]?["home"] as? String == home)
        #expect(molts[scene.beta]?["port"] as? Int == 19021)
        #expect(registry["version"] as? String == "1")
        #expect(F.stagingLeftovers(scene.base).isEmpty)
    }

    @Test func anExistingMoltIsRefusedWithoutForceAndReplacedWithIt() throws {
        let scene = try Scene()
        defer { scene.cleanUp() }
        try scene.write()
        try F.write("\(scene.base)/\(scene.alpha)/.molt-info", "MOLT_NAME=\(scene.alpha)\nMOLT_PORT=19001\n")
        try F.write("\(scene.base)/\(scene.alpha)/old.txt", "old\n")
        try F.write("\(scene.base)/molts.json", "{\"version\":\"1\",\"molts\":{\"keepme\":{\"name\":\"keepme\",\"port\":19061}}}")

        let plan = try FleetRestore(options: scene.options()).plan()
        #expect(plan.molts[0].action == .refuse)
        #expect(plan.refusals.count == 1 && plan.refusals[0].contains("--force"))
        #expect(throws: RestoreError.refused(plan.refusals)) { _ = try FleetRestore(options: scene.options()).run() }
        #expect(F.read("\(scene.base)/\(scene.alpha)/old.txt") == "old\n")
        #expect(!F.exists("\(scene.base)/\(scene.beta)"))

        let forced = scene.options { $0.force = true }
        #expect(try FleetRestore(options: forced).plan().molts[0].action == .overwrite)
        let summary = try FleetRestore(options: forced).run()
        #expect(summary.molts[0].replaced && !summary.molts[1].replaced)
        #expect(!F.exists("\(scene.base)/\(scene.alpha)/old.txt"))
        #expect(F.read("\(scene.base)/\(scene.alpha)/.openclaw/workspace/SOUL.md") != nil)
        let registry = try #require(F.read("\(scene.base)/molts.json"))
        #expect(registry.contains("keepme") && registry.contains(scene.alpha))
        #expect(F.stagingLeftovers(scene.base).isEmpty)
    }

    @Test func selectRestoresOnlyTheNamedMolts() throws {
        let scene = try Scene()
        defer { scene.cleanUp() }
        try scene.write()
        let options = scene.options { $0.selection = [scene.beta] }
        let plan = try FleetRestore(options: options).plan()
        #expect(plan.molts.map(\.name) == [scene.beta] && plan.notSelected == [scene.alpha])
        let summary = try FleetRestore(options: options).run()
        #expect(summary.molts.map(\.name) == [scene.beta])
        #expect(!F.exists("\(scene.base)/\(scene.alpha)"))
        #expect(F.exists("\(scene.base)/\(scene.beta)/.openclaw/workspace/SOUL.md"))
    }

    @Test func aPortUsedHereIsRefusedUnlessReassigned() throws {
        let scene = try Scene()
        defer { scene.cleanUp() }
        try scene.write()
        // A molt here already holds 19001 (alpha's) and 19021 (beta's is then taken too).
        let other = F.uniqueName("o")
        try F.write("\(scene.base)/\(other)/.molt-info", "MOLT_NAME=\(other)\nMOLT_PORT=19001\n")
        let plan = try FleetRestore(options: scene.options()).plan()
        #expect(plan.molts[0].portConflict == other)
        #expect(plan.refusals.contains { $0.contains("port 19001") && $0.contains("--reassign-ports") })
        #expect(throws: RestoreError.self) { _ = try FleetRestore(options: scene.options()).run() }
        #expect(!F.exists("\(scene.base)/\(scene.alpha)"))

        let options = scene.options { $0.reassignPorts = true }
        let reassigned = try FleetRestore(options: options).plan()
        // 19001 is taken by `other`, 19021 by beta (restored in the same run): alpha gets 19041.
        #expect(reassigned.molts[0].newPort == 19041)
        #expect(reassigned.molts[1].newPort == nil)
        let summary = try FleetRestore(options: options).run()
        #expect(summary.molts[0].port == 19041)
        let home = "\(scene.base)/\(scene.alpha)"
        #expect(MoltInfo(parsing: try #require(F.read(home + "/.molt-info"))).port == 19041)
        let config = try #require(F.read(home + "/.openclaw/openclaw.json"))
        #expect(config.contains("port: 19041"))
        #expect(summary.molts[0].rewrites.contains("port 19001 → 19041"))
        #expect(try Fleet.discover(baseDir: scene.base).molts.first { $0.name == scene.alpha }?.port == 19041)
    }

    @Test func restoresTheBashToolsArchives() throws {
        let scene = try Scene()
        defer { scene.cleanUp() }
        try F.bashArchive(scene.archive, molts: [
            F.CraftedMolt(name: scene.alpha, port: 19001, entries: [
                .file(".molt-info", "MOLT_NAME=\(scene.alpha)\nMOLT_PORT=19001\nMOLT_HOME=/home/molts/\(scene.alpha)\n"),
                .dir(".openclaw/"), .file(".openclaw/openclaw.json", "{\"gateway\":{\"port\":19001}}"),
                .dir("skills/"), .file("skills/x.md", "skill\n"),
            ]),
            F.CraftedMolt(name: scene.beta, port: 19021, entries: [.file(".molt-info", "MOLT_NAME=\(scene.beta)\n")]),
        ])
        let plan = try FleetRestore(options: scene.options()).plan()
        #expect(plan.format == .bash)
        #expect(plan.notes.contains { $0.contains("no checksums") && $0.contains("ownership comes from each molt's name") })
        let summary = try FleetRestore(options: scene.options()).run()
        #expect(summary.molts.count == 2)
        let home = "\(scene.base)/\(scene.alpha)"
        #expect(F.read(home + "/skills/x.md") == "skill\n")
        #expect(MoltInfo(parsing: try #require(F.read(home + "/.molt-info"))).home == home)
        #expect(summary.molts[0].rewrites.contains("MOLT_HOME /home/molts/\(scene.alpha) → \(home)"))
        #expect(MoltInfo(parsing: try #require(F.read("\(scene.base)/\(scene.beta)/.molt-info"))).home == "\(scene.base)/\(scene.beta)")
    }

    @Test func aMissingBaseDirOrRegistryThatCannotBeReadIsReportedUpFront() throws {
        let scene = try Scene()
        defer { scene.cleanUp() }
        try scene.write()
        try F.write(scene.base + "/molts.json", "{ not json")
        let plan = try FleetRestore(options: scene.options()).plan()
        #expect(plan.refusals.contains { $0.contains("molts.json") })
        #expect(throws: RestoreError.self) { _ = try FleetRestore(options: scene.options()).run() }
        #expect(!F.exists("\(scene.base)/\(scene.alpha)"))
        // A file as base dir.
        let file = scene.options { $0.baseDir = scene.archive }
        #expect(throws: RestoreError.baseDir(path: scene.archive, reason: "is not a directory")) {
            _ = try FleetRestore(options: file).plan()
        }
    }

    @Test func readsEveryCompressionClmntWrites() throws {
        let scene = try Scene()
        defer { scene.cleanUp() }
        let plain = scene.directory.path + "/fleet.tar"
        try F.clmntArchive(plain, molts: [scene.molt(scene.alpha, port: 19001)], gzip: false)
        var archives = [plain]
        for (tool, arguments, suffix) in [("zstd", ["-q", "-k"], ".zst"), ("xz", ["-k"], ".xz"), ("bzip2", ["-k"], ".bz2")]
        where ProgramRunner.locate(tool) != nil {
            try F.run(tool, arguments + [plain])
            archives.append(plain + suffix)
        }
        for (index, archive) in archives.enumerated() {
            var options = RestoreOptions(archive: archive, baseDir: scene.base + "\(index)")
            options.skipUsers = true
            let summary = try FleetRestore(options: options).run()
            #expect(summary.files == 6, "\(archive)")
            #expect(F.read(scene.base + "\(index)/\(scene.alpha)/.openclaw/workspace/SOUL.md") == "soul of \(scene.alpha)\n")
        }
    }

    @Test func theArchiveChangingAfterThePlanIsRefused() throws {
        let scene = try Scene()
        defer { scene.cleanUp() }
        try scene.write()
        let plan = try FleetRestore(options: scene.options()).plan()
        try scene.write(ports: (19101, 19121))
        #expect {
            _ = try FleetRestore(options: scene.options()).run(confirmed: plan)
        } throws: { error in
            guard case RestoreError.planChanged(let what)? = error as? RestoreError else { return false }
            return what.contains("archive changed")
        }
        #expect(!F.exists(scene.base))
    }
}
