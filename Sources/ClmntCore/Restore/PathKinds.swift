/// The paths of one molt a restore has read, and what kind each is, kept as 64-bit keyed
/// hashes: 8 bytes a path however long. The key is Swift's per-process random seed
/// (SipHash), which an archive cannot know, so no archive can make two of its paths
/// collide on purpose; by chance, among a million paths, once in 30 million restores,
/// and then a sound archive is refused ("appears twice"), never a hostile one let in.
struct PathKinds {
    private struct Kind: OptionSet {
        let rawValue: UInt8
        /// A symlink or file: nothing may lie below it.
        static let nonDirectory = Kind(rawValue: 1)
        /// A regular file or a hard link to one: a hard link may point at it.
        static let regularFile = Kind(rawValue: 2)
    }

    private var kinds: [UInt64: Kind] = [:]

    /// Records `path`; false when it was already there.
    mutating func insert(_ path: PathBytes, _ kind: EntryKind) -> Bool {
        var recorded: Kind = []
        if kind != .directory { recorded.insert(.nonDirectory) }
        if kind == .regular || kind == .hardlink { recorded.insert(.regularFile) }
        return kinds.updateValue(recorded, forKey: Self.key(path)) == nil
    }

    func isNonDirectory(_ path: PathBytes) -> Bool { kinds[Self.key(path)]?.contains(.nonDirectory) == true }

    func isRegularFile(_ path: PathBytes) -> Bool { kinds[Self.key(path)]?.contains(.regularFile) == true }

    private static func key(_ path: PathBytes) -> UInt64 {
        var hasher = Hasher()
        path.bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
        return UInt64(bitPattern: Int64(hasher.finalize()))
    }
}
