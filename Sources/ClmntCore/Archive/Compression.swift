/// The compression of a fleet archive.
public enum Compression: String, CaseIterable, Sendable, Codable {
    case gzip, zstd, xz, bzip2, none

    /// The name, or the bash tool's and tar's short spellings: `gz`, `tgz`, `bz2`, `zst`.
    public init?(spelling: String) {
        switch spelling.lowercased() {
        case "gz", "tgz": self = .gzip
        case "bz2": self = .bzip2
        case "zst": self = .zstd
        default: self.init(rawValue: spelling.lowercased())
        }
    }

    public var fileExtension: String {
        switch self {
        case .gzip: return "tar.gz"
        case .zstd: return "tar.zst"
        case .xz: return "tar.xz"
        case .bzip2: return "tar.bz2"
        case .none: return "tar"
        }
    }

    public var defaultLevel: Int? {
        switch self {
        case .gzip: return 6
        case .zstd: return 3
        case .xz: return 6
        case .bzip2: return 9
        case .none: return nil
        }
    }

    /// Valid levels (libdeflate's gzip goes to 12).
    public var levels: ClosedRange<Int>? {
        switch self {
        case .gzip: return 1...12
        case .zstd: return 1...19
        case .xz: return 0...9
        case .bzip2: return 1...9
        case .none: return nil
        }
    }

    /// All archive file endings clmnt recognises, longest first.
    public static let plainArchiveExtensions = ["tar.gz", "tgz", "tar.zst", "tar.xz", "tar.bz2", "tar"]
    /// Every ending a fleet archive may have: plain, or age-encrypted (`.tar.zst.age`).
    public static let archiveExtensions = plainArchiveExtensions + plainArchiveExtensions.map { $0 + ".age" }
}
