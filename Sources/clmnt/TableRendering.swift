import ClmntCore

/// Left-aligned columns separated by two spaces, the last one not padded: every table clmnt
/// prints (list-backups, prune, the dry run, the restore plan, health) comes from here.
func renderTable(_ rows: [[String]], indent: String = "") -> String {
    // Cells hold values from archives, state files and file names: one line each, escaped.
    let rows = rows.map { $0.map(TerminalText.line) }
    guard let columns = rows.first?.count else { return "" }
    var widths = [Int](repeating: 0, count: columns)
    for row in rows { for (index, cell) in row.enumerated() where index < columns - 1 { widths[index] = max(widths[index], cell.count) } }
    return rows.map { row in
        let line = row.enumerated().map { index, cell in
            index == columns - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
        return indent + String(line.reversed().drop(while: { $0 == " " }).reversed())
    }.joined(separator: "\n")
}
