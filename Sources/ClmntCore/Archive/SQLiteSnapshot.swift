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
        var source: OpaquePointer?
        // NOFOLLOW: the molt user may have swapped the file for a symlink since the walk.
        let flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX
        guard sqlite3_open_v2(path, &source, flags, nil) == SQLITE_OK, let source else {
            let message = source.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(source)
            throw Failure(message: message)
        }
        defer { sqlite3_close(source) }
        sqlite3_busy_timeout(source, 5000)

        var copy: OpaquePointer?
        guard sqlite3_open_v2(":memory:", &copy, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nil) == SQLITE_OK, let copy else {
            sqlite3_close(copy)
            throw Failure(message: "cannot open an in-memory database")
        }
        defer { sqlite3_close(copy) }

        guard let backup = sqlite3_backup_init(copy, "main", source, "main") else {
            throw Failure(message: String(cString: sqlite3_errmsg(copy)))
        }
        let stepStatus = sqlite3_backup_step(backup, -1)
        let finishStatus = sqlite3_backup_finish(backup)
        guard stepStatus == SQLITE_DONE, finishStatus == SQLITE_OK else {
            throw Failure(message: String(cString: sqlite3_errstr(stepStatus == SQLITE_DONE ? finishStatus : stepStatus)))
        }
        var size: Int64 = 0
        guard let bytes = sqlite3_serialize(copy, "main", &size, 0) else {
            throw Failure(message: "cannot serialize the snapshot")
        }
        defer { sqlite3_free(bytes) }
        return Array(UnsafeBufferPointer(start: bytes, count: Int(size)))
    }
}
