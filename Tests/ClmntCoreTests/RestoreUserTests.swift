import ClmntTestSupport
import Foundation
import Testing
@testable import ClmntCore

/// Restores with real `useradd`/`userdel`: ownership by name on a "new host",
/// the bash tool's archives, and the rollback of users a failed restore created.
@Suite(.serialized) struct RestoreUserTests {
    typealias F = RestoreFixture

    /// Creates the `docker` group for the test when the host has none; removes it afterwards.
    private func withDockerGroup(_ body: () throws -> Void) throws {
        let created = UserAccounts.groupID(named: "docker") == nil
        if created { try F.run("groupadd", ["docker"]) }
        defer { if created { _ = try? F.run("groupdel", ["docker"]) } }
        try body()
    }

    @Test func roundTripOnANewHostRestoresEverythingAndOwnersByName() throws {
        let directory = try TemporaryDirectory(prefix: "clmnt-restore-roundtrip")
        let source = directory.path + "/old-host"
        let target = directory.path + "/new-host"
        let archive = directory.path + "/fleet.tar.gz"
        let names = [F.uniqueName("a"), F.uniqueName("b")].sorted()
        var users = names
        defer {
            F.removeUsers(users)
            directory.remove()
        }
        // The old host: two molts with their users, mixed ownership, every kind of file.
        var oldUIDs: [UInt32] = []
        // The first molt's user is in a group (recorded in the manifest, given again on the new host).
        let group = F.uniqueName("g")
        try F.run("groupadd", [group])
        defer { _ = try? F.run("groupdel", [group]) }
        for (index, name) in names.enumerated() {
            let account = try F.addUser(name, home: source + "/" + name)
            if index == 0 { try F.run("usermod", ["-a", "-G", group, name]) }
            oldUIDs.append(account.uid)
            try F.buildMolt(base: source, name: name, port: 19001 + 20 * index, user: account)
        }
        try F.write(source + "/molts.json", "{\"version\":\"1\",\"molts\":{}}\n")
        var backupOptions = BackupOptions(baseDir: source)
        backupOptions.output = archive
        _ = try FleetBackup(options: backupOptions).run()

        let before = names.map { F.snapshot(source + "/" + $0) }
        let aclBefore = F.acl(source + "/" + names[0] + "/.msmtprc")
        #expect(before[0][".openclaw/gateway.log.1"]?.owner == "root")
        #expect(before[0][".openclaw/workspace/SOUL.md"]?.owner == names[0])
        #expect(before[0][".openclaw/workspace/SOUL.md"]?.xattrs["user.comment"] != nil)

        // The new host: the users are gone, other users hold their uids, the tree is gone.
        F.removeUsers(names)
        try FileManager.default.removeItem(atPath: source)
        for uid in oldUIDs {
            let thief = F.uniqueName("t")
            users.append(thief)
            _ = try F.addUser(thief, uid: uid)
        }

        try withDockerGroup {
            let restored = try FleetRestore(options: RestoreOptions(archive: archive, baseDir: target)).run()
            try checkRoundTrip(restored, names: names, oldUIDs: oldUIDs, before: before, aclBefore: aclBefore,
                               source: source, target: target)
        }
    }

    private func checkRoundTrip(_ restored: RestoreSummary, names: [String], oldUIDs: [UInt32], before: [[String: F.Record]],
                                aclBefore: String?, source: String, target: String) throws {
        #expect(restored.molts.map(\.name) == names)
        #expect(restored.molts.allSatisfy { $0.userCreated })

        for (index, name) in names.enumerated() {
            let account = try #require(UserAccounts.user(named: name))
            #expect(account.uid != oldUIDs[index], "the uid was taken: the user must have a new one")
            #expect(account.home == target + "/" + name)
            #expect(account.shell == "/bin/bash")
            let groups = UserAccounts.supplementaryGroups(of: account)
            #expect(groups.count == (index == 0 ? 1 : 0) && !groups.contains("docker"), "the source host's groups, not docker: \(groups)")
            #expect(!UserAccounts.supplementaryGroups(of: account).contains("sudo"))

            let after = F.snapshot(target + "/" + name)
            let rewritten: Set<String> = [".molt-info", ".openclaw/openclaw.json"]
            #expect(Set(after.keys) == Set(before[index].keys))
            for (path, expected) in before[index] where !rewritten.contains(path) {
                #expect(after[path] == expected, "\(name)/\(path)")
            }
            for path in rewritten {
                #expect(after[path]?.owner == name && after[path]?.mode == before[index][path]?.mode)
            }
            // Ownership by name: the thief owning the old uid owns nothing here.
            #expect(after[".openclaw/workspace/todo.md"]?.owner == name)
            #expect(after[".molt-state/cron.log"]?.owner == "root")
            // Sparse stays sparse.
            var st = stat()
            stat(target + "/" + name + "/.openclaw/workspace/scratch/disk.img", &st)
            #expect(st.st_size == 8 << 20 && st.st_blocks * 512 < 1 << 20)

            let home = target + "/" + name
            let info = MoltInfo(parsing: try #require(F.read(home + "/.molt-info")))
            #expect(info.home == home && info["RESTORED"] != nil && info.port == 19001 + 20 * index)
            let config = try #require(F.read(home + "/.openclaw/openclaw.json"))
            #expect(config.contains("\"workspace\": \"\(home)/.openclaw/workspace\""))
            #expect(!config.contains(source))
        }
        if let aclBefore {
            #expect(F.acl(target + "/" + names[0] + "/.msmtprc") == aclBefore)
            #expect(aclBefore.contains("user:\(names[0]):r--"))
        }
        let registry = try #require(F.read(target + "/molts.json"))
        #expect(names.allSatisfy { registry.contains("\"home\" : \"\(target)/\($0)\"") || registry.contains("\"home\":\"\(target)/\($0)\"") })
        #expect(F.stagingLeftovers(target).isEmpty)
    }

    @Test func theBashToolsArchivesGiveEveryFileToTheMoltUser() throws {
        let directory = try TemporaryDirectory(prefix: "clmnt-restore-bash")
        let name = F.uniqueName("s")
        defer {
            F.removeUsers([name])
            directory.remove()
        }
        let archive = directory.path + "/fleet.tar.gz"
        try F.bashArchive(archive, molts: [F.CraftedMolt(name: name, port: 19001, entries: [
            .file(".molt-info", "MOLT_NAME=\(name)\nMOLT_PORT=19001\n"), .dir(".openclaw/", mode: 0o700),
            .file(".openclaw/.env", "KEY=synthetic\n", mode: 0o600),
            // The molt user's own setuid tool is allowed: it grants nothing beyond that user.
            .file("tool", "#!/bin/sh\n", mode: 0o4755),
        ])])
        let summary = try FleetRestore(options: RestoreOptions(archive: archive, baseDir: directory.path + "/molts")).run()
        #expect(summary.molts.first?.userCreated == true)
        let account = try #require(UserAccounts.user(named: name))
        let snapshot = F.snapshot(directory.path + "/molts/" + name)
        #expect(snapshot.count == 5)
        #expect(snapshot["tool"]?.mode == 0o4755)
        for (path, record) in snapshot {
            #expect(record.owner == name && record.group == name, "\(path) is \(record.owner):\(record.group)")
        }
        #expect(snapshot[".openclaw/.env"]?.mode == 0o600)
        #expect(account.home == directory.path + "/molts/" + name)
    }

    @Test func aRefusedArchiveDeletesTheUsersItCreated() throws {
        let directory = try TemporaryDirectory(prefix: "clmnt-restore-rollback")
        let good = F.uniqueName("g")
        let bad = F.uniqueName("h")
        defer {
            F.removeUsers([good, bad])
            directory.remove()
        }
        let archive = directory.path + "/fleet.tar.gz"
        // The hostile entry comes last, after the users were created and a molt was staged.
        try F.clmntArchive(archive, molts: [
            F.CraftedMolt(name: good, port: 19001, entries: [.file(".molt-info", "x\n")]),
            F.CraftedMolt(name: bad, port: 19021, entries: [.file(".molt-info", "y\n"), .symlink("etc", to: "/etc")]),
        ])
        #expect(throws: RestoreError.self) {
            _ = try FleetRestore(options: RestoreOptions(archive: archive, baseDir: directory.path + "/molts")).run()
        }
        #expect(UserAccounts.user(named: good) == nil)
        #expect(UserAccounts.user(named: bad) == nil)
        #expect(UserAccounts.groupID(named: good) == nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path + "/molts").isEmpty)
    }

    @Test func anInterruptLeavesEveryMoltAsItWas() throws {
        let directory = try TemporaryDirectory(prefix: "clmnt-restore-interrupt")
        let name = F.uniqueName("i")
        defer {
            F.removeUsers([name])
            directory.remove()
        }
        let base = directory.path + "/molts"
        try F.write("\(base)/\(name)/.molt-info", "MOLT_NAME=\(name)\nMOLT_PORT=19001\n")
        try F.write("\(base)/\(name)/precious.txt", "keep\n")
        let archive = directory.path + "/fleet.tar.gz"
        let files = (0..<400).map { F.Entry.file("f\($0).txt", "file \($0)\n") }
        try F.clmntArchive(archive, molts: [F.CraftedMolt(name: name, port: 19001, entries: files)])
        var options = RestoreOptions(archive: archive, baseDir: base)
        options.force = true
        var restore = FleetRestore(options: options)
        let cancellation = RestoreCancellation()
        restore.cancellation = cancellation
        restore.onProgress = { progress in if progress.filesWritten > 0 { cancellation.cancel() } }
        #expect(throws: RestoreError.interrupted) { _ = try restore.run() }
        #expect(F.read("\(base)/\(name)/precious.txt") == "keep\n")
        #expect(!F.exists("\(base)/\(name)/f1.txt"))
        #expect(F.stagingLeftovers(base).isEmpty)
        #expect(UserAccounts.user(named: name) == nil, "the user created for the restore was removed")
    }

    @Test func aFullDiskLeavesEveryMoltAsItWas() throws {
        let directory = try TemporaryDirectory(prefix: "clmnt-restore-full")
        defer { directory.remove() }
        let base = directory.path + "/small"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        // A 2 MiB file system; the archive holds 3 MiB.
        do { try F.run("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", base]) } catch {
            Issue.record("cannot mount a tmpfs to fill up: \(error)")
            return
        }
        defer { _ = try? F.run("umount", [base]) }
        let name = F.uniqueName("f")
        try F.write("\(base)/\(name)/.molt-info", "MOLT_NAME=\(name)\nMOLT_PORT=19001\n")
        try F.write("\(base)/\(name)/precious.txt", "keep\n")
        let archive = directory.path + "/fleet.tar.gz"
        let big = String(repeating: "x", count: 3 << 20)
        try F.clmntArchive(archive, molts: [F.CraftedMolt(name: name, port: 19001, entries: [.file("big.bin", big)])])
        var options = RestoreOptions(archive: archive, baseDir: base)
        options.force = true
        options.skipUsers = true
        #expect {
            _ = try FleetRestore(options: options).run()
        } throws: { error in
            "\(error)".contains("not enough space")
        }
        #expect(F.read("\(base)/\(name)/precious.txt") == "keep\n")
        #expect(!F.exists("\(base)/\(name)/big.bin"))
        #expect(F.stagingLeftovers(base).isEmpty)
    }

    @Test func aSystemAccountIsNeverUsedForAMolt() throws {
        let directory = try TemporaryDirectory(prefix: "clmnt-restore-system")
        defer { directory.remove() }
        let archive = directory.path + "/fleet.tar.gz"
        try F.clmntArchive(archive, molts: [F.CraftedMolt(name: "daemon", port: 19001, entries: [.file(".molt-info", "x\n")])])
        let plan = try FleetRestore(options: RestoreOptions(archive: archive, baseDir: directory.path + "/molts")).plan()
        #expect(plan.molts[0].user == .systemAccount)
        #expect(plan.refusals.contains { $0.contains("system account") })
    }
}
