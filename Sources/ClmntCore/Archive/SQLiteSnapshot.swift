import CSQLite
import Foundation

/// Takes a consistent copy of a live SQLite database with SQLite's online
/// backup API, so a gateway writing meanwhile never yields a torn database.
enum SQLiteSnapshot {
    /// The first 16 bytes of every SQLite 3 database file.
    static let magic: [UInt8] = Array("SQLite format 3".utf8) + [0]

    struct Failure: Error { let message: String }

    /// The database at `path` as the bytes of one consistent database file.
    /// Throws when `path` is not a database (only its header looked like one).
    static func capture(path: String) throws(Failure) -> [UInt8] {
        let copy = try open(":memory:", flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        defer { sqlite3_close(copy) }
        try backup(from: path, into: copy)
        var size: Int64 = 0
        guard let bytes = sqlite3_serialize(copy, "main", &size, 0) else {
            throw Failure(message: "cannot serialize the snapshot")
        }
        defer { sqlite3_free(bytes) }
        return Array(UnsafeBufferPointer(start: bytes, count: Int(size)))
    }

    /// Writes a consistent copy of the database at `path` into the empty file
    /// `destination`: for databases too large to hold in memory.
    static func capture(path: String, intoFile destination: String) throws(Failure) {
        let copy = try open(destination, flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW)
        defer { sqlite3_close(copy) }
        try backup(from: path, into: copy)
    }

    private static func open(_ path: String, flags: Int32) throws(Failure) -> OpaquePointer {
        var handle: OpaquePointer?
        guard sqlite3_open_v2(path, &handle, flags, nil) == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(handle)
            throw Failure(message: message)
        }
        return handle
    }

    /// Copies every page of `path` into `copy` in one step of the online backup API.
    private static func backup(from path: String, into copy: OpaquePointer) throws(Failure) {
        // NOFOLLOW: the molt user may have swapped the file for a symlink since the walk.
        let source = try open(path, flags: SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX)
        defer { sqlite3_close(source) }
        sqlite3_busy_timeout(source, 5000)
        guard let backup = sqlite3_backup_init(copy, "main", source, "main") else {
            throw Failure(message: String(cString: sqlite3_errmsg(copy)))
        }
        let stepStatus = sqlite3_backup_step(backup, -1)
        let finishStatus = sqlite3_backup_finish(backup)
        guard stepStatus == SQLITE_DONE, finishStatus == SQLITE_OK else {
            throw Failure(message: String(cString: sqlite3_errstr(stepStatus == SQLITE_DONE ? finishStatus : stepStatus)))
        }
    }
}
