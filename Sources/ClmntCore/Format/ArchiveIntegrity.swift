import Foundation

/// Why a file is not a sound fleet archive. `hostile` entries are ones no
/// restore may write; `damaged` means the content disagrees with the manifest,
/// the report or `SHA256SUMS` (corrupt, truncated or tampered with).
public enum IntegrityProblem: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(ArchiveError)
    case noManifest
    case badManifest(String)
    case hostile(path: String, reason: String)
    case damaged(String)

    public var description: String {
        switch self {
        case .unreadable(let error): return "\(error)"
        case .noManifest: return "no manifest.json (not a fleet backup)"
        case .badManifest(let reason): return "manifest.json is not a valid manifest: \(reason)"
        case .hostile(let path, let reason): return "entry '\(path)' \(reason)"
        case .damaged(let reason): return reason
        }
    }
}

/// The manifest of an archive, and what the archive therefore is.
public struct LocatedManifest: Sendable {
    public var manifest: Manifest
    /// Decided from the archive's layout, not from the manifest's `tool` field.
    public var format: ArchiveFormat
    /// SHA-256 of the manifest's bytes.
    public var digest: String
    public var compression: String
}

/// The one set of rules deciding what a fleet archive is and whether it is
/// intact, shared by `fleet verify`, `fleet restore` and `list-backups`:
/// where the manifest may be, clmnt or bash-tool layout, entry placement,
/// per-molt counts and sizes (manifest, report and content must agree), and
/// every file's SHA-256.
public enum ArchiveIntegrity {
    static let manifestSizeLimit = 16 << 20
    static let reportSizeLimit = 64 << 20
    static let checksumsSizeLimit = 4 << 30
    /// Files may grow between the scan (the manifest) and their reading (the
    /// report): a molt may hold this much more than its manifest says before
    /// its data is refused as a bomb (10 % plus 64 MiB).
    static func byteAllowance(declared: Int64) -> Int64 { declared + declared / 10 + (64 << 20) }

    /// The manifest: entry 0 named exactly `manifest.json` makes a clmnt archive
    /// (whatever its `tool` field says, so a stripped field cannot switch the
    /// checks off); `./manifest.json` anywhere makes a bash-tool archive. Only
    /// the first entry is read for clmnt archives.
    public static func locateManifest(archive: String) throws(IntegrityProblem) -> LocatedManifest {
        let reader: ArchiveReader
        do { reader = try ArchiveReader(path: archive, blockSize: 64 << 10) } catch { throw .unreadable(error) }
        var index = 0
        do {
            while let entry = try reader.next() {
                defer { index += 1 }
                let clmntLayout = index == 0 && entry.path == PathBytes(ArchiveLayout.manifestPath)
                guard clmntLayout || entry.path == PathBytes("./" + ArchiveLayout.manifestPath) else {
                    if index == 0, entry.path.hasPrefix("/") {
                        throw IntegrityProblem.hostile(path: entry.path.description, reason: "is an absolute path")
                    }
                    // A clmnt archive always starts with its manifest; a bash-tool one with `./`.
                    if index == 0, !entry.path.hasPrefix("./") {
                        throw IntegrityProblem.noManifest
                    }
                    continue
                }
                guard entry.kind == .regular else { throw IntegrityProblem.badManifest("manifest.json is not a regular file") }
                let data = try reader.readAll(limit: manifestSizeLimit)
                let manifest: Manifest
                do { manifest = try Manifest.decode(data) } catch { throw IntegrityProblem.badManifest(describeDecodingError(error)) }
                if !clmntLayout && manifest.isClmntArchive {
                    throw IntegrityProblem.damaged("a clmnt manifest.json must be the first entry")
                }
                let hasher = SHA256Hasher()
                data.withUnsafeBytes { hasher.update($0) }
                return LocatedManifest(manifest: manifest, format: clmntLayout ? .clmnt : .bash,
                                       digest: hasher.finalizeHex(), compression: reader.compressionName)
            }
        } catch let problem as IntegrityProblem {
            throw problem
        } catch let error as ArchiveError {
            if index == 0 { throw .unreadable(error) }
            throw .damaged(error.message)
        } catch {
            throw .badManifest("\(error)")
        }
        throw .noManifest
    }

    static func describeDecodingError(_ error: any Error) -> String {
        switch error as? DecodingError {
        case .keyNotFound(let key, _)?: return "missing \"\(key.stringValue)\""
        case .typeMismatch(_, let context)?, .valueNotFound(_, let context)?:
            return "wrong type at \"\(context.codingPath.map(\.stringValue).joined(separator: "."))\""
        case .dataCorrupted?: return "not valid JSON"
        default: return "\(error)"
        }
    }
}
