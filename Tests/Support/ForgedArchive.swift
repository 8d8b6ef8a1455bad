import ClmntCore
import Foundation

/// What an attacker plants in a backup dir: a gzip'd tar holding only a `manifest.json`
/// that says `tool: clmnt`, names `baseDir` and carries `timestamp` (about 330 bytes).
/// Old retention took it for an archive of the fleet and ranked it by that timestamp.
public func writeForgedArchive(to path: String, baseDir: String, timestamp: String, molts: [String] = ["alpha"]) throws {
    var manifest = Manifest(timestamp: timestamp, hostname: "forged",
                            molts: molts.map {
        Manifest.MoltRecord(name: $0, port: nil, created: nil, backupSizeBytes: 0, home: nil, owner: nil, fileCount: 0, entryCount: 0)
    }, totalSizeBytes: 0)
    manifest.baseDir = baseDir
    let scratch = try TemporaryDirectory(prefix: "clmnt-forge")
    defer { scratch.remove() }
    try manifest.encoded().write(to: URL(fileURLWithPath: scratch.path + "/manifest.json"))
    try ProgramRunner.run("tar", ["-czf", path, "-C", scratch.path, "manifest.json"])
}
