import Foundation

/// Decides which paths of a molt tree a backup leaves out. Paths are relative
/// to the molt's home (`Maildir/work/cur/1.eml`).
public struct ExclusionRules: Sendable, Equatable {
    /// Regenerable caches, skipped unless `includeCaches`.
    public static let cachePaths = [".cache", ".npm", ".bun/install/cache", ".openclaw/tmp", ".openclaw/npm"]
    public static let cacheDirectoryNames = ["node_modules"]
    /// Runtime files that are meaningless on another host or at another time.
    public static let runtimeFilePatterns = ["*.pid", "*.lock", "*.tmp"]
    public static let logPatterns = ["*.log", "*.log.[0-9]*"]

    public var excludeMaildir = false
    public var excludeLogs = false
    public var includeCaches = false
    /// `--exclude` patterns: with a `/`, matched against the whole relative path;
    /// without, against each file or directory name (as GNU tar does).
    public var patterns: [String] = []

    public init(excludeMaildir: Bool = false, excludeLogs: Bool = false, includeCaches: Bool = false, patterns: [String] = []) {
        self.excludeMaildir = excludeMaildir
        self.excludeLogs = excludeLogs
        self.includeCaches = includeCaches
        self.patterns = patterns
    }

    /// The patterns in effect, for the manifest.
    public var effectivePatterns: [String] {
        var all = Self.runtimeFilePatterns
        if !includeCaches { all += Self.cachePaths.map { $0 + "/" } + Self.cacheDirectoryNames.map { $0 + "/" } }
        if excludeMaildir { all.append("Maildir/") }
        if excludeLogs { all += Self.logPatterns }
        return all + patterns
    }

    /// Whether `relativePath` (named `name`, a directory when `isDirectory`) is left out.
    public func excludes(relativePath: PathBytes, name: PathBytes, isDirectory: Bool) -> Bool {
        rule(excluding: relativePath, name: name, isDirectory: isDirectory) != nil
    }

    public func excludes(relativePath: String, name: String, isDirectory: Bool) -> Bool {
        excludes(relativePath: PathBytes(relativePath), name: PathBytes(name), isDirectory: isDirectory)
    }

    /// The rule that leaves `relativePath` out, as the manifest's `excludes` writes it
    /// (`.cache/`, `node_modules/`, `*.pid`, `Maildir/`, `*.log`, an `--exclude` pattern); nil: archived.
    /// Names are bytes: a pattern matches them as `fnmatch` matches bytes.
    public func rule(excluding relativePath: PathBytes, name: PathBytes, isDirectory: Bool) -> String? {
        if isDirectory {
            if !includeCaches {
                if let path = Self.cachePaths.first(where: { PathBytes($0) == relativePath }) { return path + "/" }
                if let cache = Self.cacheDirectoryNames.first(where: { PathBytes($0) == name }) { return cache + "/" }
            }
            if excludeMaildir && relativePath == "Maildir" { return "Maildir/" }
        } else {
            if let pattern = Self.runtimeFilePatterns.first(where: { matches($0, name) }) { return pattern }
            if excludeLogs, let pattern = Self.logPatterns.first(where: { matches($0, name) }) { return pattern }
        }
        return patterns.first { pattern in
            let trimmed = pattern.hasSuffix("/") ? String(pattern.dropLast()) : pattern
            if pattern.hasSuffix("/") && !isDirectory { return false }
            return trimmed.contains("/") ? matches(trimmed, relativePath) : matches(trimmed, name)
        }
    }

    private func matches(_ pattern: String, _ text: PathBytes) -> Bool {
        text.withCString { fnmatch(pattern, $0, 0) == 0 }
    }
}
