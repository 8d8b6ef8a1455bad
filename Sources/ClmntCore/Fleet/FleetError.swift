/// Errors of fleet discovery: each prints as one line an admin can act on.
public enum FleetError: Error, Equatable, CustomStringConvertible {
    case baseDirMissing(path: String)
    case baseDirUnreadable(path: String, reason: String)
    case noMolts(baseDir: String)
    case unknownMolt(name: String, known: [String])
    case invalidName(String)

    public var description: String {
        switch self {
        case .baseDirMissing(let path):
            return "base dir \(path) does not exist (set -d/--base-dir or CLMNT_BASE_DIR)"
        case .baseDirUnreadable(let path, let reason):
            return "cannot read base dir \(path): \(reason)"
        case .noMolts(let baseDir):
            return "no molts found in \(baseDir) (a molt is a directory holding .molt-info)"
        case .unknownMolt(let name, let known):
            let list = known.isEmpty ? "none" : known.joined(separator: ", ")
            return "unknown molt '\(name)' (molts here: \(list))"
        case .invalidName(let name):
            return "invalid molt name '\(name)' (lower-case letters, digits, '-' and '_', starting with a letter, at most 32)"
        }
    }
}
