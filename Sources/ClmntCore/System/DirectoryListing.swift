import Foundation

/// The UTF-8 names in the open directory `fd` (without `.` and `..`),
/// byte-sorted: for directories whose names clmnt chose itself (the base dir's
/// staging containers, archives, journals). A name that is not UTF-8 is none
/// of those and is left out; a molt's tree is listed by `directoryEntryNames`.
/// `path` names the directory in errors.
public func directoryNames(_ fd: Int32, path: String = "directory") throws(SystemError) -> [String] {
    try directoryEntryNames(fd, path: path).compactMap(\.string)
}

/// The UTF-8 names in the directory at `path` (followed if a symlink: for directories the
/// admin names, such as the base dir and the backup dir), byte-sorted.
public func directoryNames(atPath path: String) throws(SystemError) -> [String] {
    let directory = try FileDescriptor.open(path, O_RDONLY | O_DIRECTORY)
    return try directoryNames(directory.rawValue, path: path)
}

/// The names in the open directory `fd` (without `.` and `..`), as bytes, byte-sorted.
func directoryEntryNames(_ fd: Int32, path: String = "directory") throws(SystemError) -> [PathBytes] {
    var names: [PathBytes] = []
    try forEachDirectoryEntry(fd, path: path) { names.append($0) }
    return names.sorted()
}

/// Calls `body` with each name in the open directory `fd` (without `.` and `..`), in
/// the directory's order, reading from the top through a copy of the descriptor (the
/// caller's descriptor stays open and usable).
func forEachDirectoryEntry(_ fd: Int32, path: String,
                           _ body: (PathBytes) throws(SystemError) -> Void) throws(SystemError) {
    let duplicate = dup(fd)
    guard duplicate >= 0, let directory = fdopendir(duplicate) else {
        let code = errno
        if duplicate >= 0 { _ = FileDescriptor(adopting: duplicate, path: path) }
        throw SystemError(path: path, code: code)
    }
    defer { closedir(directory) }
    // The copy shares the descriptor's position: start from the top even if it was listed before.
    rewinddir(directory)
    while true {
        errno = 0
        guard let entry = readdir(directory) else {
            if errno != 0 { throw SystemError(path: path) }
            return
        }
        // The name is read in place, up to its NUL: a record is only as long as its name, so
        // copying the whole `dirent` (`entry.pointee`) would read past the last one in the buffer.
        let name = PathBytes(cString: (UnsafeRawPointer(entry) + direntNameOffset).assumingMemoryBound(to: CChar.self))
        if name != "." && name != ".." { try body(name) }
    }
}

private let direntNameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
