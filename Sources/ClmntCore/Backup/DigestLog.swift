/// The SHA-256 of every file a backup archives, in archive order, for the
/// trailing `SHA256SUMS`. A molt file's path is not held: it is named by its
/// scan position and rebuilt at the end (a large fleet has 200,000 of them).
struct DigestLog {
    /// Raw 32-byte digests, in the order of `owners`.
    private var digests: [UInt8] = []
    private var owners: [DigestPosition] = []
    private var namedPaths: [PathBytes] = []
    /// The molt entry being written, while a molt is: its digest is named by position.
    var currentOwner: DigestPosition?

    /// Takes `hasher`'s digest (which resets it) for the entry at `archivePath`.
    mutating func record(_ hasher: SHA256Hasher, archivePath: PathBytes) {
        hasher.finalize(appendingTo: &digests)
        if let currentOwner {
            owners.append(currentOwner)
        } else {
            namedPaths.append(archivePath)
            owners.append(DigestPosition(section: nil, index: Int32(namedPaths.count - 1)))
        }
    }

    /// Every `sha256sum` line, in order. `trees` and `moltNames` are by molt index,
    /// as given to `StreamingSession.writeMolt`.
    func forEachLine<Failure: Error>(trees: [ScannedTree], moltNames: [String],
                                     _ body: ([UInt8]) throws(Failure) -> Void) throws(Failure) {
        var builders: [Int32: (builder: TreePathBuilder, next: Int)] = [:]
        for (number, owner) in owners.enumerated() {
            let path: PathBytes
            if let section = owner.section {
                // Owners of one molt come in scan order: walk its tree forward to each.
                var state = builders[section] ?? (TreePathBuilder(), 0)
                let tree = trees[Int(section)]
                var relative = PathBytes([])
                while state.next <= Int(owner.index) {
                    relative = state.builder.relativePath(of: tree.entries[state.next], in: tree)
                    state.next += 1
                }
                builders[section] = state
                path = PathBytes(moltNames[Int(section)]).appending(relative)
            } else {
                path = namedPaths[Int(owner.index)]
            }
            try body(ChecksumList.line(digest: digests[(number * 32)..<(number * 32 + 32)], path: path))
        }
    }
}

/// Whose a digest is: entry `index` of molt `section`, or `namedPaths[index]` when `section` is nil.
struct DigestPosition {
    let section: Int32?
    let index: Int32
}
