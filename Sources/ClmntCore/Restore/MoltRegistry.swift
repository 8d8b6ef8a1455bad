import Foundation

/// `<base-dir>/molts.json`, the fleet's registry: restored molts are added or
/// updated; everything else in it is kept.
enum MoltRegistry {
    struct Record {
        var name: String
        var port: Int?
        var home: String
        var created: String?
    }

    /// Checks that an existing registry can be read, so a restore never fails at its last step.
    static func check(baseDir: String) throws(RestoreError) {
        _ = try load(baseDir: baseDir)
    }

    private static func load(baseDir: String) throws(RestoreError) -> [String: Any] {
        let path = baseDir + "/molts.json"
        guard FileManager.default.fileExists(atPath: path) else { return [:] }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .registry(path: path, reason: "cannot be read")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data), let registry = object as? [String: Any] else {
            throw .registry(path: path, reason: "is not a JSON object")
        }
        if let molts = registry["molts"], !(molts is [String: Any]) {
            throw .registry(path: path, reason: "\"molts\" is not an object")
        }
        return registry
    }

    /// Adds or updates `records` and writes the registry atomically.
    static func update(baseDir: String, baseDirectory: Int32, records: [Record], now: String) throws(RestoreError) {
        var registry = try load(baseDir: baseDir)
        var molts = registry["molts"] as? [String: Any] ?? [:]
        for record in records {
            var entry = molts[record.name] as? [String: Any] ?? [:]
            entry["name"] = record.name
            entry["home"] = record.home
            if let port = record.port { entry["port"] = port }
            if let created = record.created { entry["created"] = created }
            molts[record.name] = entry
        }
        registry["molts"] = molts
        if registry["version"] == nil { registry["version"] = "1" }
        registry["updated"] = now
        let path = baseDir + "/molts.json"
        let data: Data
        do {
            data = try JSONSerialization.data(withJSONObject: registry,
                                              options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) + Data("\n".utf8)
        } catch {
            throw .registry(path: path, reason: describeFileError(error))
        }
        let existing = SafeFileSystem.status(at: baseDirectory, "molts.json")
        try RestoreError.step { () throws(SystemError) in
            try SafeFileSystem.writeFile(at: baseDirectory, "molts.json", data: data,
                                         uid: existing?.st_uid ?? geteuid(), gid: existing?.st_gid ?? getegid(),
                                         mode: existing.map { $0.st_mode & 0o7777 } ?? 0o644, displayPath: path)
        }
        SafeFileSystem.syncDirectory(baseDirectory)
    }
}
