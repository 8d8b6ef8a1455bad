/// What the backup needs of one molt's scan before its turn comes: the manifest's
/// counts and sizes, and what the scan warned of (what it missed the backup takes at once).
struct ScanSummary {
    let regularBytes: Int64
    let plannedFileCount: Int
    let plannedEntryCount: Int
    let warnings: [String]

    init(_ tree: ScannedTree) {
        regularBytes = tree.regularBytes
        plannedFileCount = tree.plannedFileCount
        plannedEntryCount = tree.plannedEntryCount
        warnings = tree.warnings
    }
}

/// Every molt's scan, set aside in a `SpillFile` until its molt is written: the
/// manifest (first in the archive) needs all the counts before any molt is
/// archived, but only one molt's entries need be in memory at a time.
struct ScanSpool {
    private let file: SpillFile
    /// Per molt: where its entries start, how many there are, and its name arena's size.
    private var places: [(offset: Int, entryCount: Int, nameBytes: Int)] = []
    private(set) var summaries: [ScanSummary] = []

    init(scratchDirectory: String) { file = SpillFile(directory: scratchDirectory) }

    /// Sets `tree` aside as the next molt's.
    mutating func add(_ tree: ScannedTree) throws(SystemError) {
        places.append((file.byteCount, tree.entries.count, tree.names.count))
        summaries.append(ScanSummary(tree))
        // A scanned entry holds numbers only: its bytes are the whole of it.
        try file.append(raw: tree.entries)
        try file.append(tree.names)
    }

    /// The entries and names of molt `index`, as scanned.
    func tree(at index: Int) throws(SystemError) -> ScannedTree {
        let place = places[index]
        let entryBytes = place.entryCount * MemoryLayout<ScannedEntry>.stride
        let stored = try file.read(at: place.offset, count: entryBytes + place.nameBytes)
        var tree = ScannedTree()
        tree.entries = Array(unsafeUninitializedCapacity: place.entryCount) { entries, count in
            stored.withUnsafeBytes { raw in
                UnsafeMutableRawBufferPointer(entries).copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[0..<entryBytes]))
            }
            count = place.entryCount
        }
        tree.names = Array(stored[entryBytes...])
        return tree
    }
}
