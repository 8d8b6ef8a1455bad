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
        let infoPath = target + "/.molt-info"
        let existing = try RestoreError.step { () throws(SystemError) in
            try SafeFileSystem.readFile(at: home, ".molt-info", displayPath: infoPath, limit: 1 << 20)
        }
        let text = existing.map { String(decoding: $0.data, as: UTF8.self) } ?? ""
        let info = MoltInfo(parsing: text)
        // The port the plan checked for conflicts is the one the molt gets,
        // whatever its own .molt-info claims.
        let plannedPort = newPort ?? port
        if plannedPort == nil, let claimed = info.port {
            throw .hostileEntry(path: infoPath, reason: "declares port \(claimed), which the manifest does not list, so the plan could not check it")
        }
        var outcome = Outcome(created: info.created, port: plannedPort)
        let change = InfoChange(moltName: moltName, target: target, oldHome: info.home ?? sourceHome, oldPort: info.port ?? port,
                                plannedPort: plannedPort, newPort: newPort, restoredAt: restoredAt)
        let (newInfo, rewrites) = change.rewrite(text, existed: existing != nil, declaredPort: info.port)
        outcome.rewrites = rewrites
        try RestoreError.step { () throws(SystemError) in
            try SafeFileSystem.writeFile(at: home, ".molt-info", data: newInfo,
                                         uid: existing.map { $0.status.st_uid } ?? ownerUID,
                                         gid: existing.map { $0.status.st_gid } ?? ownerGID,
                                         mode: existing.map { $0.status.st_mode & 0o7777 } ?? 0o644, displayPath: infoPath)
        }
        if let configChange = try rewriteConfig(home: home, target: target, change: change) {
            outcome.rewrites.append(configChange)
        }
        return outcome
    }

    /// What `.molt-info` and `openclaw.json` change from and to.
    private struct InfoChange {
        let moltName: String
        let target: String
        let oldHome: String?
        let oldPort: Int?
        let plannedPort: Int?
        let newPort: Int?
        let restoredAt: String

        /// The new `.molt-info` text and what changed in it.
        func rewrite(_ text: String, existed: Bool, declaredPort: Int?) -> (Data, [String]) {
            var rewrites: [String] = []
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
            if !existed {
                lines = ["MOLT_NAME=\(moltName)"]
                if let oldPort { lines.append("MOLT_PORT=\(oldPort)") }
                rewrites.append(".molt-info was missing: written anew")
            }
            if oldHome != target || !existed {
                set("MOLT_HOME", target)
                if existed { rewrites.append("MOLT_HOME \(oldHome ?? "(unset)") → \(target)") }
            }
            if let plannedPort, plannedPort != oldPort || declaredPort == nil && existed {
                set("MOLT_PORT", String(plannedPort))
                if plannedPort != oldPort {
                    rewrites.append("port \(oldPort.map(String.init) ?? "(unset)") → \(plannedPort)"
                        + (newPort == nil ? " (.molt-info disagreed with the manifest)" : ""))
                }
            }
            lines.removeAll { key(of: $0) == "RESTORED" }
            lines.append("RESTORED=\(restoredAt)")
            return (Data((lines.joined(separator: "\n") + "\n").utf8), rewrites)
        }
    }

    /// openclaw.json: the workspace path and any other path under the old home, and the port.
    /// Returns the line saying what changed, nil when nothing did.
    private static func rewriteConfig(home: Int32, target: String, change: InfoChange) throws(RestoreError) -> String? {
        return try RestoreError.step { () throws(SystemError) -> String? in
            let stateDir: FileDescriptor
            do throws(SystemError) { stateDir = try SafeFileSystem.openDirectory(at: home, ".openclaw", path: target + "/.openclaw") } catch {
                if error.code == ELOOP || error.code == ENOTDIR {
                    throw SystemError(path: target + "/.openclaw", refusal: .notDirectory)
                }
                return nil
            }
            let configPath = target + "/.openclaw/openclaw.json"
            guard let config = try SafeFileSystem.readFile(at: stateDir.rawValue, "openclaw.json", displayPath: configPath) else {
                return nil
            }
            var configText = String(decoding: config.data, as: UTF8.self)
            var changes: [String] = []
            if let oldHome = change.oldHome, oldHome != target {
                let count = replacePathPrefix(in: &configText, old: oldHome, new: target)
                if count > 0 { changes.append("\(count) path\(count == 1 ? "" : "s") under \(oldHome) → \(target)") }
            }
            if let plannedPort = change.plannedPort, let oldPort = change.oldPort, plannedPort != oldPort {
                let count = replacePort(in: &configText, old: oldPort, new: plannedPort)
                if count > 0 { changes.append("gateway port \(oldPort) → \(plannedPort)") }
            }
            guard !changes.isEmpty else { return nil }
            try SafeFileSystem.writeFile(at: stateDir.rawValue, "openclaw.json", data: Data(configText.utf8),
                                         uid: config.status.st_uid, gid: config.status.st_gid,
                                         mode: config.status.st_mode & 0o7777, displayPath: configPath)
            return "openclaw.json: " + changes.joined(separator: ", ")
        }
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
