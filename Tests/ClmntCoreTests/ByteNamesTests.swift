import ClmntTestSupport
@testable import ClmntCore
import Foundation
import Testing

/// Names are bytes: what Linux allows in a name (not UTF-8, 255 bytes,
/// backslashes, newlines) and in a path (any depth) goes through the real
/// binary into the archive, through `verify`, GNU tar and `fleet restore`,
/// and comes back byte for byte, owner for owner.
@Suite("names as bytes, through the binary", .serialized)
struct ByteNamesTests {
    let clmnt = clmntExecutable()

    /// Makes `name` (bytes) in the directory `fd`: a directory (returned open), a file, or a symlink.
    enum Node { case directory(mode: mode_t), file(String, mode: mode_t), symlink(PathBytes), hardlink(PathBytes) }

    @discardableResult
    static func make(_ fd: Int32, _ name: PathBytes, _ node: Node, owner: (UInt32, UInt32)) throws -> Int32 {
        switch node {
        case .directory(let mode):
            guard name.withCString({ mkdirat(fd, $0, mode) }) == 0 else { throw TestFailure("mkdir \(name): \(errno)") }
            let child = name.withCString { openat(fd, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW) }
            guard child >= 0 else { throw TestFailure("open \(name): \(errno)") }
            fchown(child, owner.0, owner.1)
            fchmod(child, mode)
            return child
        case .file(let text, let mode):
            let file = name.withCString { openat(fd, $0, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode) }
            guard file >= 0 else { throw TestFailure("create \(name): \(errno)") }
            _ = text.withCString { write(file, $0, strlen($0)) }
            fchown(file, owner.0, owner.1)
            fchmod(file, mode)
            close(file)
        case .symlink(let target):
            guard target.withCString({ t in name.withCString { symlinkat(t, fd, $0) } }) == 0 else { throw TestFailure("symlink \(name): \(errno)") }
            _ = name.withCString { fchownat(fd, $0, owner.0, owner.1, AT_SYMLINK_NOFOLLOW) }
        case .hardlink(let existing):
            guard existing.withCString({ e in name.withCString { linkat(fd, e, fd, $0, 0) } }) == 0 else { throw TestFailure("link \(name): \(errno)") }
        }
        return -1
    }

    static let latin1 = PathBytes([0x63, 0x61, 0x66, 0xE9, 0x2E, 0x74, 0x78, 0x74])      // caf\xE9.txt
    static let badDir = PathBytes([0x64, 0x69, 0x72, 0x2D, 0xFF])                         // dir-\xFF
    static let longName = PathBytes([UInt8](repeating: 0x6E, count: 250) + [0xE9, 0xE9, 0xE9, 0xE9, 0xE9])  // 255 bytes
    static let deepLevels = 270

    /// The name of level `level` of the deep tree: 30 bytes, one of them not UTF-8.
    static func deepName(_ level: Int) -> PathBytes {
        PathBytes(Array(String(format: "%03d-", level).utf8) + [UInt8](repeating: 0x78, count: 25) + [0xE9])
    }

    /// `<home>/odd`: every kind of awkward name, owned by `owner`, with varied modes,
    /// and a 270-level tree of 30-byte names (8.4 KB paths, past PATH_MAX).
    static func buildOddTree(home: String, owner: (UInt32, UInt32)) throws {
        let homeFd = open(home, O_RDONLY | O_DIRECTORY)
        defer { close(homeFd) }
        let odd = try make(homeFd, "odd", .directory(mode: 0o750), owner: owner)
        defer { close(odd) }
        try make(odd, latin1, .file("latin-1 name\n", mode: 0o640), owner: owner)
        try make(odd, longName, .file("255 bytes\n", mode: 0o604), owner: owner)
        try make(odd, "back\\slash", .file("backslash\n", mode: 0o600), owner: owner)
        try make(odd, "new\nline", .file("newline\n", mode: 0o600), owner: owner)
        try make(odd, PathBytes([0x68, 0x61, 0x72, 0x64, 0xFE]), .hardlink(latin1), owner: owner)
        try make(odd, PathBytes([0x6C, 0x69, 0x6E, 0x6B, 0xFE]), .symlink(latin1), owner: owner)
        try make(odd, "to-bad-dir", .symlink(badDir.appending(latin1)), owner: owner)
        let dir = try make(odd, badDir, .directory(mode: 0o710), owner: owner)
        try make(dir, latin1, .file("inside a non-UTF-8 directory\n", mode: 0o644), owner: owner)
        try make(dir, "root-owned", .file("root's\n", mode: 0o644), owner: (0, 0))
        close(dir)
        close(try make(odd, "acl-dir", .directory(mode: 0o750), owner: owner))
        var level = try make(odd, deepName(0), .directory(mode: 0o755), owner: owner)
        for index in 1..<deepLevels {
            // Modes vary with depth so a level that lost its metadata shows.
            let next = try make(level, deepName(index), .directory(mode: index % 2 == 0 ? 0o750 : 0o711), owner: owner)
            if index % 50 == 0 { try make(next, PathBytes("at-\(index)"), .file("level \(index)\n", mode: 0o640), owner: owner) }
            close(level)
            level = next
        }
        try make(level, latin1, .file("the bottom\n", mode: 0o640), owner: owner)
        close(level)
    }

    /// Runs GNU tar with its listing written to a file, so names come back as bytes.
    static func gnuTarList(_ archive: String, scratch: String) throws -> [PathBytes] {
        let index = scratch + "/tar-index"
        try run("/bin/tar", ["-tf", archive, "--quoting-style=literal", "--warning=no-unknown-keyword", "--index-file=" + index])
        let data = try Data(contentsOf: URL(fileURLWithPath: index))
        return data.split(separator: 0x0A).map { PathBytes(bytes: $0) }
    }

    @Test("non-UTF-8, 255-byte, backslash and newline names and 8 KB paths: backup, verify, GNU tar, restore")
    func oddNamesRoundTrip() throws {
        let name = RestoreFixture.uniqueName("b")
        let user = try RestoreFixture.addUser(name)
        defer { RestoreFixture.removeUsers([name]) }
        let fixture = try FleetFixture(molts: [name])
        defer { fixture.remove() }
        let home = fixture.home(name)
        try run("/bin/chown", ["-R", "\(name):\(name)", home])
        try Self.buildOddTree(home: home, owner: (user.uid, user.gid))
        // A directory with an access and a default ACL naming the molt user (set by descriptor on restore).
        try run("/usr/bin/setfacl", ["-m", "u:\(name):rwx,d:u:\(name):r-x", home + "/odd/acl-dir"])
        let aclBefore = try run("/usr/bin/getfacl", ["-c", home + "/odd/acl-dir"])
        let archive = fixture.root.path + "/fleet.tar.gz"

        let backup = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "-o", archive, "-q"])
        #expect(backup.status == 0, "\(backup.stderr)")
        #expect(!backup.stderr.contains("/odd/"), "no odd name is skipped or warned about: \(backup.stderr)")
        let verify = try runCapturing(clmnt, ["fleet", "verify", archive])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")

        // GNU tar lists exactly the names, as bytes, the deepest path included.
        let listed = Set(try Self.gnuTarList(archive, scratch: fixture.root.path))
        let moltDir = PathBytes(name)
        var deepest = moltDir.appending("odd")
        for level in 0..<Self.deepLevels { deepest = deepest.appending(Self.deepName(level)) }
        deepest = deepest.appending(Self.latin1)
        #expect(deepest.count > 8000)
        for expected in [moltDir.appending("odd").appending(Self.latin1), moltDir.appending("odd").appending(Self.longName),
                         moltDir.appending("odd").appending(Self.badDir) + "/", deepest] {
            #expect(listed.contains(expected), "GNU tar does not list \(expected)")
        }
        // SHA256SUMS holds the raw bytes, so `sha256sum -c` works in a tree GNU tar extracted.
        let extracted = fixture.root.path + "/gnu"
        try FileManager.default.createDirectory(atPath: extracted, withIntermediateDirectories: true)
        // GNU tar 1.34 cannot create paths past PATH_MAX ("File name too long"): the deep tree is left to clmnt.
        try run("/bin/tar", ["-xpf", archive, "-C", extracted, "--warning=no-unknown-keyword", "--numeric-owner", "--acls",
                             "--exclude=\(name)/odd/000-*"])
        let notDeep = { (path: String) in path.hasPrefix("odd/000-") }
        let gnuDiff = differences(try snapshotTree(home + "/odd") { notDeep("odd/" + $0) },
                                  try snapshotTree(extracted + "/" + name + "/odd"))
        #expect(gnuDiff.isEmpty, "\(gnuDiff.prefix(5).joined(separator: "\n"))")

        // clmnt restores everything, at every depth, owner for owner, mode for mode.
        let newBase = fixture.root.path + "/restored"
        let restore = try ProgramRunner.capture(clmnt, ["fleet", "restore", "--from", archive, "-d", newBase, "--yes", "--adopt-existing-users",
                                                        "--allow-outside-symlinks"], timeout: 300)
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect(!restore.stderr.contains("Can't set"), "\(restore.stderr.prefix(300))")
        let before = try snapshotTree(home + "/odd")
        let after = try snapshotTree(newBase + "/" + name + "/odd")
        #expect(before.count == after.count && before.count > Self.deepLevels)
        let diff = differences(before, after)
        #expect(diff.isEmpty, "\(diff.count) differences: \(diff.prefix(5).joined(separator: "\n"))")
        let aclAfter = try run("/usr/bin/getfacl", ["-c", newBase + "/" + name + "/odd/acl-dir"])
        #expect(aclAfter == aclBefore && aclBefore.contains("default:user:\(name):r-x"), "\(aclBefore) vs \(aclAfter)")
    }

    @Test("restore --force over a molt holding 5,000 names that are not UTF-8 ends, and replaces it")
    func forceRestoreRemovesNonUTF8Names() throws {
        let name = RestoreFixture.uniqueName("f")
        let fixture = try FleetFixture(molts: [name])
        defer { fixture.remove() }
        let archive = fixture.root.path + "/fleet.tar.zst"
        let backup = try runCapturing(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "--compress", "zstd", "-o", archive, "-q"])
        #expect(backup.status == 0, "\(backup.stderr)")
        let expected = try snapshotTree(fixture.home(name)) { isSkippedByDefault(name + "/" + $0) }

        // Debris the archive does not hold: 5,000 Latin-1 names in one directory, and a deep one.
        let homeFd = open(fixture.home(name), O_RDONLY | O_DIRECTORY)
        defer { close(homeFd) }
        let junk = try Self.make(homeFd, "junk", .directory(mode: 0o755), owner: (0, 0))
        for index in 0..<5000 {
            try Self.make(junk, PathBytes(Array("f\(index)-".utf8) + [0xE9, 0xFF]), .file("x", mode: 0o644), owner: (0, 0))
        }
        var level = try Self.make(junk, Self.badDir, .directory(mode: 0o755), owner: (0, 0))
        for index in 0..<Self.deepLevels {
            let next = try Self.make(level, Self.deepName(index), .directory(mode: 0o755), owner: (0, 0))
            close(level)
            level = next
        }
        close(level)
        close(junk)

        let restore = try ProgramRunner.capture(clmnt, ["fleet", "restore", "--from", archive, "-d", fixture.baseDir, "--force",
                                                        "--yes", "--skip-users", "--allow-outside-symlinks"], timeout: 120)
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect(!RestoreFixture.exists(fixture.home(name) + "/junk"))
        #expect(RestoreFixture.stagingLeftovers(fixture.baseDir).isEmpty)
        let restored = try snapshotTree(fixture.home(name)) { isSkippedByDefault(name + "/" + $0) }
        // The molt comes back as archived (.molt-info gains RESTORED=, owners go to the invoker with --skip-users).
        let same = { (path: String) in path != ".molt-info" }
        #expect(Set(restored.keys.filter(same)) == Set(expected.keys.filter(same)))
    }

    @Test("100,000 files with names that are not UTF-8 in one directory: backup, verify, restore, byte for byte, owner for owner")
    func hundredThousandFilesInOneDirectory() throws {
        let name = RestoreFixture.uniqueName("h")
        let user = try RestoreFixture.addUser(name)
        defer { RestoreFixture.removeUsers([name]) }
        let fixture = try FleetFixture(molts: [name])
        defer { fixture.remove() }
        let homeFd = open(fixture.home(name), O_RDONLY | O_DIRECTORY)
        let many = try Self.make(homeFd, "many", .directory(mode: 0o750), owner: (user.uid, user.gid))
        close(homeFd)
        for index in 0..<100_000 {
            // Every 7th file root's, the rest the molt user's: owners must come back one by one.
            let owner = index % 7 == 0 ? (UInt32(0), UInt32(0)) : (user.uid, user.gid)
            try Self.make(many, PathBytes(Array("m\(index)-".utf8) + [0xE9]), .file("\(index)", mode: 0o640), owner: owner)
        }
        close(many)
        let archive = fixture.root.path + "/fleet.tar.zst"
        let backup = try ProgramRunner.capture(clmnt, ["fleet", "backup", "-d", fixture.baseDir, "--compress", "zstd", "-o", archive, "-q"],
                                               timeout: 600)
        #expect(backup.status == 0, "\(backup.stderr.prefix(500))")
        let verify = try ProgramRunner.capture(clmnt, ["fleet", "verify", archive], timeout: 600)
        #expect(verify.status == 0, "\(verify.stdout.prefix(500))")
        let newBase = fixture.root.path + "/restored"
        let restore = try ProgramRunner.capture(clmnt, ["fleet", "restore", "--from", archive, "-d", newBase, "--yes", "--adopt-existing-users",
                                                        "--allow-outside-symlinks"], timeout: 600)
        #expect(restore.status == 0, "\(restore.stderr.prefix(500))")
        let before = try snapshotTree(fixture.home(name) + "/many")
        let after = try snapshotTree(newBase + "/" + name + "/many")
        #expect(before.count == 100_000)
        let diff = differences(before, after)
        #expect(diff.isEmpty, "\(diff.count) differences: \(diff.prefix(5).joined(separator: "\n"))")
    }
}
