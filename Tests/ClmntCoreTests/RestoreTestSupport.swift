import ClmntTestSupport
import Foundation
import Testing
@testable import ClmntCore

/// Helpers for the restore tests: crafted archives, molt trees, users, snapshots.
enum RestoreFixture {
    /// A name valid as a molt and a Linux user, unique to this run: `ct` + 8 random letters + tag.
    static func uniqueName(_ tag: String = "") -> String {
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        return "ct" + String((0..<8).map { _ in letters.randomElement()! }) + tag
    }

    @discardableResult
    static func run(_ program: String, _ arguments: [String], input: Data? = nil) throws -> String {
        try ProgramRunner.run(program, arguments, input: input, timeout: 120).stdout
    }

    static func write(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
        chmod(path, mode)
    }

    static func read(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// Names in `dir` that start with the staging prefix (must be none after any restore).
    static func stagingLeftovers(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix(FleetRestore.stagingPrefix) }
    }

    // MARK: - crafted archives

    /// One entry of a crafted archive.
    struct Entry {
        var name: String
        var type = "file"
        var data = ""
        var link: String?
        var mode: Int = 0o644
        var uname = "root"
        var gname = "root"
        var uid = 0
        var gid = 0
        var mtime = 1_764_000_000
        /// A sparse file (pax GNU.sparse 1.0): this apparent size, one 512-byte data block at 0.
        var realSize: Int64?
        /// Binary content (a real executable, say): replaces `data` when set.
        var bytes: [UInt8]?

        /// What the file holds: `bytes` when set, else `data` as UTF-8.
        var payload: [UInt8] { bytes ?? Array(data.utf8) }

        static func file(_ name: String, _ data: String = "", mode: Int = 0o644, owner: String = "root") -> Entry {
            Entry(name: name, data: data, mode: mode, uname: owner, gname: owner)
        }
        static func dir(_ name: String, mode: Int = 0o755, owner: String = "root") -> Entry {
            Entry(name: name, type: "dir", mode: mode, uname: owner, gname: owner)
        }
        static func symlink(_ name: String, to target: String) -> Entry {
            Entry(name: name, type: "symlink", link: target, mode: 0o777)
        }
        static func hardlink(_ name: String, to target: String) -> Entry {
            Entry(name: name, type: "hardlink", link: target)
        }
        static func sparse(_ name: String, size: Int64, owner: String = "root") -> Entry {
            Entry(name: name, type: "sparse", uname: owner, gname: owner, realSize: size)
        }

        var json: [String: Any] {
            var object: [String: Any] = ["name": name, "type": type, "data": data, "mode": mode, "uname": uname,
                                         "gname": gname, "uid": uid, "gid": gid, "mtime": mtime]
            if let link { object["link"] = link }
            if let realSize { object["realsize"] = realSize }
            if let bytes { object["b64"] = Data(bytes).base64EncodedString() }
            return object
        }
    }

    private static let tarScript = """
    import base64, io, json, sys, tarfile
    spec = json.load(sys.stdin)
    with tarfile.open(spec["out"], "w:gz" if spec["gzip"] else "w", format=tarfile.PAX_FORMAT) as tf:
        for e in spec["entries"]:
            ti = tarfile.TarInfo(e["name"])
            ti.mode = e["mode"]; ti.uid = e["uid"]; ti.gid = e["gid"]
            ti.uname = e["uname"]; ti.gname = e["gname"]; ti.mtime = e["mtime"]
            data = None
            t = e["type"]
            if t == "file":
                data = base64.b64decode(e["b64"]) if "b64" in e else e["data"].encode(); ti.size = len(data)
            elif t == "dir": ti.type = tarfile.DIRTYPE
            elif t == "symlink": ti.type = tarfile.SYMTYPE; ti.linkname = e["link"]
            elif t == "hardlink": ti.type = tarfile.LNKTYPE; ti.linkname = e["link"]
            elif t == "fifo": ti.type = tarfile.FIFOTYPE
            elif t == "chardev": ti.type = tarfile.CHRTYPE; ti.devmajor = 1; ti.devminor = 3
            elif t == "sparse":
                # GNU sparse 1.0 as pax: a map (one 512-byte region at 0), then that region's data.
                dirname, _, base = e["name"].rpartition("/")
                ti.name = (dirname + "/" if dirname else "") + "GNUSparseFile.0/" + base
                ti.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                                  "GNU.sparse.name": e["name"], "GNU.sparse.realsize": str(e["realsize"])}
                data = b"1\\n0\\n512\\n".ljust(512, b"\\0") + b"x" * 512
                ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    """

    /// Writes `entries`, in order, as a pax tar (gzip unless `gzip` is false) with Python's tarfile.
    static func tar(_ path: String, _ entries: [Entry], gzip: Bool = true) throws {
        let spec: [String: Any] = ["out": path, "gzip": gzip, "entries": entries.map(\.json)]
        let input = try JSONSerialization.data(withJSONObject: spec)
        try run("python3", ["-c", tarScript], input: input)
    }

    /// A molt of a crafted archive.
    struct CraftedMolt {
        var name: String
        var port: Int? = nil
        var home: String? = nil
        /// Entries below the molt's home, paths relative to it (the home entry is added).
        var entries: [Entry] = []
        var owner = "root"
    }

    /// A complete clmnt-layout archive: manifest, molts, global/, report and SHA256SUMS
    /// (all consistent unless the caller edits `tamper`).
    static func clmntArchive(_ path: String, molts: [CraftedMolt], baseDir: String = "/srv/old-molts",
                             hostname: String = "old-host", warnings: [String] = [],
                             extra: [Entry] = [], gzip: Bool = true, tamper: ((inout [Entry]) -> Void)? = nil) throws {
        var body: [Entry] = []
        var stats: [String: Manifest.SectionStats] = [:]
        var records: [Manifest.MoltRecord] = []
        var sums = ""
        for molt in molts {
            var section = Manifest.SectionStats()
            var moltEntries = [Entry.dir(molt.name + "/", mode: 0o750, owner: molt.owner)]
            moltEntries += molt.entries.map { entry in
                var entry = entry
                entry.name = molt.name + "/" + entry.name
                if entry.type == "hardlink", let link = entry.link { entry.link = molt.name + "/" + link }
                return entry
            }
            for entry in moltEntries {
                section.entryCount += 1
                if entry.type != "dir" { section.fileCount += 1 }
                if entry.type == "file" {
                    section.backupSizeBytes += Int64(entry.payload.count)
                    sums += "\(sha256(entry.payload))  \(entry.name)\n"
                }
                if entry.type == "sparse", let size = entry.realSize {
                    section.backupSizeBytes += size
                }
            }
            body += moltEntries
            stats[molt.name] = section
            records.append(Manifest.MoltRecord(
                name: molt.name, port: molt.port, created: "2026-01-15T10:00:00Z", backupSizeBytes: section.backupSizeBytes,
                home: molt.home ?? baseDir + "/" + molt.name,
                owner: Manifest.Owner(user: molt.owner, uid: 4242, group: molt.owner, gid: 4242),
                fileCount: section.fileCount, entryCount: section.entryCount))
        }
        body += extra
        let registry = Entry.file("global/molts.json", "{\"version\":\"1\",\"molts\":{}}\n")
        body += [Entry.dir("global/"), registry]
        var manifest = Manifest(timestamp: "2026-11-29T10:30:00Z", hostname: hostname, molts: records,
                                totalSizeBytes: records.reduce(0) { $0 + $1.backupSizeBytes })
        manifest.baseDir = baseDir
        manifest.compression = "gzip"
        let entryCount = 1 + body.count + 2
        manifest.entryCount = entryCount
        let report = BackupReport(entryCount: entryCount, molts: stats,
                                  global: Manifest.SectionStats(backupSizeBytes: Int64(registry.data.utf8.count), fileCount: 1, entryCount: 2),
                                  warnings: warnings)
        let manifestText = String(decoding: manifest.encoded(), as: UTF8.self)
        let reportText = String(decoding: report.encoded(), as: UTF8.self)
        // As the backup does: every file with data has a line, the manifest and the report included.
        for (path, text) in [("manifest.json", manifestText), (registry.name, registry.data), ("backup-report.json", reportText)] {
            sums += "\(sha256(text))  \(path)\n"
        }
        var entries = [Entry.file("manifest.json", manifestText)] + body
        entries.append(Entry.file("backup-report.json", reportText))
        entries.append(Entry.file("SHA256SUMS", sums))
        tamper?(&entries)
        try tar(path, entries, gzip: gzip)
    }

    static func sha256(_ text: String) -> String {
        sha256(Array(text.utf8))
    }

    static func sha256(_ bytes: [UInt8]) -> String {
        let hasher = SHA256Hasher()
        hasher.update(bytes)
        return hasher.finalizeHex()
    }

    /// The bash tool's layout: `./`-prefixed names, manifest in the middle, no checksums, root's files.
    static func bashArchive(_ path: String, molts: [CraftedMolt], timestamp: String = "2026-02-02T10:30:00Z") throws {
        var entries = [Entry.dir("./")]
        let manifest: [String: Any] = [
            "version": "1.0", "timestamp": timestamp, "hostname": "claw-mountain",
            "molts": molts.map { ["name": $0.name, "port": $0.port.map { String($0) } ?? NSNull(), "created": NSNull(),
                                  "backup_size_bytes": 10] as [String: Any] },
            "total_size_bytes": 10,
        ]
        let manifestText = String(decoding: try JSONSerialization.data(withJSONObject: manifest), as: UTF8.self)
        for (index, molt) in molts.enumerated() {
            entries.append(Entry.dir("./" + molt.name + "/", mode: 0o755))
            entries += molt.entries.map { entry in
                var entry = entry
                entry.name = "./" + molt.name + "/" + entry.name
                if entry.type == "hardlink", let link = entry.link { entry.link = "./" + molt.name + "/" + link }
                return entry
            }
            if index == 0 { entries.append(Entry.file("./manifest.json", manifestText)) }
        }
        entries += [Entry.dir("./global/"), Entry.file("./global/molts.json", "{}")]
        try tar(path, entries)
    }

    // MARK: - users

    /// Creates a plain user (no home made), optionally with a given uid.
    static func addUser(_ name: String, uid: UInt32? = nil, home: String = "/nonexistent") throws -> UserAccount {
        var arguments = ["-M", "-U", "-d", home, "-s", "/usr/sbin/nologin"]
        if let uid { arguments += ["-u", String(uid)] }
        try run("useradd", arguments + [name])
        return try #require(UserAccounts.user(named: name))
    }

    static func removeUsers(_ names: [String]) {
        for name in names { try? UserAccounts.delete(name: name) }
    }

    // MARK: - molt trees on disk

    /// Writes a molt home at `<base>/<name>` with every kind of thing a restore must bring back:
    /// nested dirs, an empty dir, modes, a relative and a dangling symlink, a hard-link pair, an
    /// xattr, an ACL naming the molt user, a sparse file, a non-ASCII name, and root-owned files
    /// among files owned by `user` (mixed ownership). Times are fixed and distinct.
    static func buildMolt(base: String, name: String, port: Int, user: UserAccount?) throws {
        let home = base + "/" + name
        let fm = FileManager.default
        try fm.createDirectory(atPath: home, withIntermediateDirectories: true)
        chmod(home, 0o750)
        try write("\(home)/.molt-info", "MOLT_NAME=\(name)\nMOLT_PORT=\(port)\nMOLT_HOME=\(home)\nCREATED=2026-01-15T10:00:00Z\n")
        try write("\(home)/.openclaw/openclaw.json", """
            {
              "gateway": { "port": \(port), "bind": "lan", "auth": { "token": "synthetic-\(name)" } },
              "agents": { "defaults": { "workspace": "\(home)/.openclaw/workspace" } },
              "hooks": { "enabled": true, "path": "/hooks" }
            }

            """, mode: 0o600)
        chmod("\(home)/.openclaw", 0o700)
        try write("\(home)/.openclaw/.env", "ANTHROPIC_API_KEY=sk-ant-synthetic-\(name)\n", mode: 0o600)
        try write("\(home)/.openclaw/workspace/SOUL.md", "# Soul of \(name)\n")
        _ = setXattr("\(home)/.openclaw/workspace/SOUL.md", "user.comment", "soul of \(name)")
        try write("\(home)/.openclaw/workspace/todo.md", "- [ ] restore me\n")
        try fm.createDirectory(atPath: "\(home)/.openclaw/workspace/notes", withIntermediateDirectories: true)
        try fm.linkItem(atPath: "\(home)/.openclaw/workspace/todo.md", toPath: "\(home)/.openclaw/workspace/notes/todo.md")
        try write("\(home)/.openclaw/workspace/notes/Réunion à Zürich – notes 🗓.md", "ordre du jour\n")
        try write("\(home)/.openclaw/workspace/memory/.gitkeep", "")
        try fm.createDirectory(atPath: "\(home)/.openclaw/workspace/canvas", withIntermediateDirectories: true)
        try write("\(home)/.openclaw/skills/mail/scripts/send.sh", "#!/bin/sh\necho sent\n", mode: 0o755)
        try write("\(home)/gogcli/bin/gog", "#!/bin/sh\n", mode: 0o755)
        try fm.createDirectory(atPath: "\(home)/.local/bin", withIntermediateDirectories: true)
        try fm.createSymbolicLink(atPath: "\(home)/.local/bin/gog", withDestinationPath: "../../gogcli/bin/gog")
        try fm.createDirectory(atPath: "\(home)/.openclaw/workspace/exports", withIntermediateDirectories: true)
        try fm.createSymbolicLink(atPath: "\(home)/.openclaw/workspace/exports/latest.tar.gz",
                                  withDestinationPath: "2026-10-30-export.tar.gz")
        try write("\(home)/.msmtprc", "account default\npassword synthetic\n", mode: 0o600)
        try write("\(home)/Maildir/inbox/cur/1764000000.M1P1.host,S=20:2,S", "Subject: hi\n\nhello\n")
        try fm.createDirectory(atPath: "\(home)/Maildir/inbox/tmp", withIntermediateDirectories: true)
        // A sparse file: 8 MiB apparent, two small data regions.
        let sparse = "\(home)/.openclaw/workspace/scratch/disk.img"
        try fm.createDirectory(atPath: (sparse as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let fd = open(sparse, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        _ = "head".withCString { pwrite(fd, $0, 4, 0) }
        _ = "middle".withCString { pwrite(fd, $0, 6, 4 << 20) }
        ftruncate(fd, 8 << 20)
        close(fd)
        // Files root keeps (mixed ownership).
        try write("\(home)/.openclaw/gateway.log.1", "old log\n", mode: 0o640)
        try write("\(home)/.molt-state/cron.log", "cron\n", mode: 0o644)
        try write("\(home)/.molt-state/health-status.json", "{\"status\":\"healthy\"}\n")
        let rootOwned: Set<String> = [".openclaw/gateway.log.1", ".molt-state/cron.log"]

        var paths: [String] = [""]
        if let enumerator = fm.enumerator(atPath: home) {
            while let path = enumerator.nextObject() as? String { paths.append(path) }
        }
        if let user {
            for path in paths where !rootOwned.contains(path) {
                lchown(path.isEmpty ? home : home + "/" + path, user.uid, user.gid)
            }
            if ProgramRunner.locate("setfacl") != nil {
                try run("setfacl", ["-m", "u:\(user.name):r--", "\(home)/.msmtprc"])
            }
        }
        // Deepest first, so a directory's time is set after its children are in place.
        let ordered = paths.sorted { $0.split(separator: "/").count > $1.split(separator: "/").count }
        for (index, path) in ordered.enumerated() {
            // Whole seconds: pax_restricted archives (GNU tar's default too) keep no fractions.
            setTime(path.isEmpty ? home : home + "/" + path, seconds: 1_790_000_000 + index * 37)
        }
    }

    /// `getfacl` of `path` without the header (names, not numbers); nil without `getfacl`.
    static func acl(_ path: String) -> String? {
        guard ProgramRunner.locate("getfacl") != nil else { return nil }
        return try? run("getfacl", ["-p", "-c", path])
    }

    // MARK: - snapshots

    /// What a restore must bring back for one path.
    struct Record: Equatable, CustomStringConvertible {
        var type: String
        var mode: UInt32
        var owner: String
        var group: String
        var mtime: Int
        var mtimeNanoseconds: Int
        var size: Int64
        var digest: String?
        var link: String?
        /// The first path (in sorted order) of this file's inode, for hard links.
        var inode: String?
        var xattrs: [String: String]

        var description: String {
            "\(type) \(String(mode, radix: 8)) \(owner):\(group) \(mtime).\(mtimeNanoseconds) \(size) \(digest?.prefix(12) ?? "") \(link ?? "") \(inode ?? "") \(xattrs)"
        }
    }

    /// Every path below `root` (relative; "" for root itself) with what a restore must preserve.
    static func snapshot(_ root: String) -> [String: Record] {
        var result: [String: Record] = [:]
        var inodes: [String: String] = [:]
        var paths = [""]
        if let enumerator = FileManager.default.enumerator(atPath: root) {
            while let path = enumerator.nextObject() as? String { paths.append(path) }
        }
        for relative in paths.sorted() {
            let full = relative.isEmpty ? root : root + "/" + relative
            var st = stat()
            guard lstat(full, &st) == 0 else { continue }
            var record = Record(
                type: "other", mode: UInt32(st.st_mode & 0o7777),
                owner: UserAccounts.user(uid: st.st_uid)?.name ?? "#\(st.st_uid)",
                group: UserAccounts.groupName(gid: st.st_gid) ?? "#\(st.st_gid)",
                mtime: st.st_mtim.tv_sec, mtimeNanoseconds: st.st_mtim.tv_nsec, size: Int64(st.st_size),
                digest: nil, link: nil, inode: nil, xattrs: xattrs(full))
            switch st.st_mode & S_IFMT {
            case S_IFREG:
                record.type = "file"
                let hasher = SHA256Hasher()
                if let data = FileManager.default.contents(atPath: full) { data.withUnsafeBytes { hasher.update($0) } }
                record.digest = hasher.finalizeHex()
                if st.st_nlink > 1 {
                    let key = "\(st.st_dev):\(st.st_ino)"
                    if inodes[key] == nil { inodes[key] = relative }
                    record.inode = inodes[key]
                }
            case S_IFDIR:
                record.type = "dir"
                record.size = 0
            case S_IFLNK:
                record.type = "symlink"
                record.link = try? FileManager.default.destinationOfSymbolicLink(atPath: full)
            default:
                break
            }
            result[relative] = record
        }
        return result
    }

    private typealias ListXattr = @convention(c) (UnsafePointer<CChar>, UnsafeMutablePointer<CChar>?, Int) -> Int
    private typealias GetXattr = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>, UnsafeMutableRawPointer?, Int) -> Int
    // <sys/xattr.h> is not part of Swift's Glibc module.
    private static let llistxattr = unsafeBitCast(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "llistxattr")!, to: ListXattr.self)
    private static let lgetxattr = unsafeBitCast(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "lgetxattr")!, to: GetXattr.self)
    private typealias SetXattr = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>, UnsafeRawPointer?, Int, Int32) -> Int32
    private static let lsetxattr = unsafeBitCast(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "lsetxattr")!, to: SetXattr.self)

    static func setXattr(_ path: String, _ name: String, _ value: String) -> Bool {
        let bytes = Array(value.utf8)
        return lsetxattr(path, name, bytes, bytes.count, 0) == 0
    }

    static func xattrs(_ path: String) -> [String: String] {
        var names = [CChar](repeating: 0, count: 4096)
        let length = llistxattr(path, &names, names.count)
        guard length > 0 else { return [:] }
        var result: [String: String] = [:]
        let list = names[0..<length].split(separator: 0).map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        for name in list where name.hasPrefix("user.") {
            var value = [UInt8](repeating: 0, count: 4096)
            let size = lgetxattr(path, name, &value, value.count)
            if size >= 0 { result[name] = String(decoding: value[0..<size], as: UTF8.self) }
        }
        return result
    }

    /// Sets a file's mtime (and atime) without following symlinks.
    static func setTime(_ path: String, seconds: Int, nanoseconds: Int = 0) {
        var times = [timespec(tv_sec: seconds, tv_nsec: nanoseconds), timespec(tv_sec: seconds, tv_nsec: nanoseconds)]
        utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW)
    }
}
