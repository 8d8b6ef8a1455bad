import Foundation

/// Adjusts a staged molt for the host it lands on: home paths in `.molt-info`
/// and `.openclaw/openclaw.json`, a reassigned port, and `RESTORED=`.
/// Works through descriptors from the staged home, never following symlinks.
enum HomeRewriter {
    struct Outcome {
        var rewrites: [String] = []
        var created: String?
        var port: Int?
    }

    /// `home` is the open staged home directory; `target` where it will live.
    static func apply(home: Int32, moltName: String, target: String, sourceHome: String?, port: Int?, newPort: Int?,
                      ownerUID: UInt32, ownerGID: UInt32, restoredAt: String) throws(RestoreError) -> Outcome {
        var outcome = Outcome()
        let infoPath = target + "/.molt-info"
        let existing = try SafeFileSystem.readFile(at: home, ".molt-info", displayPath: infoPath, limit: 1 << 20)
        let text = existing.map { String(decoding: $0.data, as: UTF8.self) } ?? ""
        let info = MoltInfo(parsing: text)
        let oldHome = info.home ?? sourceHome
        let oldPort = info.port ?? port
        // The port the plan checked for conflicts is the one the molt gets,
        // whatever its own .molt-info claims.
        let plannedPort = newPort ?? port
        if plannedPort == nil, let claimed = info.port {
            throw .hostileEntry(path: infoPath, reason: "declares port \(claimed), which the manifest does not list, so the plan could not check it")
        }
        outcome.created = info.created
        outcome.port = plannedPort

        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        func key(of line: String) -> String? {
            var trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("export ") { trimmed.removeFirst("export ".count) }
            guard let equals = trimmed.firstIndex(of: "=") else { return nil }
            return trimmed[..<equals].trimmingCharacters(in: .whitespaces)
        }
        func set(_ name: String, _ value: String) {
            if let index = lines.firstIndex(where: { key(of: $0) == name }) {
                lines[index] = "\(name)=\(value)"
            } else {
                lines.append("\(name)=\(value)")
            }
        }
        if existing == nil {
            lines = ["MOLT_NAME=\(moltName)"]
            if let oldPort { lines.append("MOLT_PORT=\(oldPort)") }
            outcome.rewrites.append(".molt-info was missing: written anew")
        }
        if oldHome != target || existing == nil {
            set("MOLT_HOME", target)
            if existing != nil { outcome.rewrites.append("MOLT_HOME \(oldHome ?? "(unset)") → \(target)") }
        }
        if let plannedPort, plannedPort != oldPort || info.port == nil && existing != nil {
            set("MOLT_PORT", String(plannedPort))
            if plannedPort != oldPort {
                outcome.rewrites.append("port \(oldPort.map(String.init) ?? "(unset)") → \(plannedPort)"
                    + (newPort == nil ? " (.molt-info disagreed with the manifest)" : ""))
            }
        }
        lines.removeAll { key(of: $0) == "RESTORED" }
        lines.append("RESTORED=\(restoredAt)")
        let newInfo = Data((lines.joined(separator: "\n") + "\n").utf8)
        try SafeFileSystem.writeFile(at: home, ".molt-info", data: newInfo,
                                     uid: existing.map { $0.status.st_uid } ?? ownerUID,
                                     gid: existing.map { $0.status.st_gid } ?? ownerGID,
                                     mode: existing.map { $0.status.st_mode & 0o7777 } ?? 0o644, displayPath: infoPath)

        // openclaw.json: the workspace path and any other path under the old home, and the port.
        let stateDir = SafeFileSystem.openDirectory(at: home, ".openclaw")
        guard stateDir >= 0 else {
            if errno == ELOOP || errno == ENOTDIR {
                throw .hostileEntry(path: target + "/.openclaw", reason: "is not a directory")
            }
            return outcome
        }
        defer { close(stateDir) }
        let configPath = target + "/.openclaw/openclaw.json"
        guard let config = try SafeFileSystem.readFile(at: stateDir, "openclaw.json", displayPath: configPath) else {
            return outcome
        }
        var configText = String(decoding: config.data, as: UTF8.self)
        var changes: [String] = []
        if let oldHome, oldHome != target {
            let count = replacePathPrefix(in: &configText, old: oldHome, new: target)
            if count > 0 { changes.append("\(count) path\(count == 1 ? "" : "s") under \(oldHome) → \(target)") }
        }
        if let plannedPort, let oldPort, plannedPort != oldPort {
            let count = replacePort(in: &configText, old: oldPort, new: plannedPort)
            if count > 0 { changes.append("gateway port \(oldPort) → \(plannedPort)") }
        }
        if !changes.isEmpty {
            try SafeFileSystem.writeFile(at: stateDir, "openclaw.json", data: Data(configText.utf8),
                                         uid: config.status.st_uid, gid: config.status.st_gid,
                                         mode: config.status.st_mode & 0o7777, displayPath: configPath)
            outcome.rewrites.append("openclaw.json: " + changes.joined(separator: ", "))
        }
        return outcome
    }

    /// Replaces `old` where it is a whole path or a path prefix (followed by
    /// `/`, a quote, a backslash or the end) with `new`. Returns the count.
    static func replacePathPrefix(in text: inout String, old: String, new: String) -> Int {
        guard !old.isEmpty else { return 0 }
        var result = ""
        var count = 0
        var rest = Substring(text)
        while let range = rest.range(of: old) {
            let next = rest[range.upperBound...].first
            result += rest[..<range.lowerBound]
            if next == nil || next == "/" || next == "\"" || next == "'" || next == "\\" {
                result += new
                count += 1
            } else {
                result += rest[range]
            }
            rest = rest[range.upperBound...]
        }
        result += rest
        if count > 0 { text = result }
        return count
    }

    /// Replaces the value `old` of `port` keys (JSON or JSON5 spelling) with `new`.
    static func replacePort(in text: inout String, old: Int, new: Int) -> Int {
        let pattern = #"((?:"port"|'port'|\bport)\s*:\s*["']?)"# + String(old) + #"(?![0-9])"#
        guard let regex = try? NSRegularExpression(pattern: pattern) else { return 0 }
        let range = NSRange(text.startIndex..., in: text)
        let count = regex.numberOfMatches(in: text, range: range)
        if count > 0 {
            text = regex.stringByReplacingMatches(in: text, range: range, withTemplate: "$1" + String(new))
        }
        return count
    }
}

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
        try SafeFileSystem.writeFile(at: baseDirectory, "molts.json", data: data,
                                     uid: existing?.st_uid ?? geteuid(), gid: existing?.st_gid ?? getegid(),
                                     mode: existing.map { $0.st_mode & 0o7777 } ?? 0o644, displayPath: path)
        SafeFileSystem.syncDirectory(baseDirectory)
    }
}
