import CSQLite
import Foundation

/// A SQLite failure with its result code kept (as GRDB's `DatabaseError`):
/// busy is retried, "not a database" is archived as it is, the rest reported.
struct SQLiteError: Error, CustomStringConvertible {
    /// The extended result code.
    let code: Int32
    let message: String
    /// What was being done: "open", "backup", ...
    let operation: String

    init(code: Int32, message: String, operation: String) {
        self.code = code
        self.message = message
        self.operation = operation
    }

    /// A failure that is not SQLite's own (credentials, scratch file).
    init(_ message: String, operation: String) {
        self.init(code: SQLITE_ERROR, message: message, operation: operation)
    }

    var isBusy: Bool { code & 0xff == SQLITE_BUSY || code & 0xff == SQLITE_LOCKED }
    var isNotADatabase: Bool { code & 0xff == SQLITE_NOTADB }
    /// A hot journal (a writer died mid-transaction) that a read-only reader may not roll back.
    var isHotJournal: Bool { code == SQLITE_READONLY | (3 << 8) }  // SQLITE_READONLY_ROLLBACK, a macro Swift cannot import

    var description: String { "SQLite error \(code): \(message) - while \(operation)" }
}

/// Where a database lives and as whom to read it: the name inside a directory
/// descriptor opened with O_NOFOLLOW, and the database owner's credentials.
struct SQLiteSource {
    let directory: Int32
    let name: String
    let owner: OwnerCredentials
    /// The header says WAL mode and no `-wal` file exists: see `openFlags`.
    let needsWriteAccessToCleanUp: Bool
}

/// Takes a consistent copy of a live SQLite database with SQLite's online
/// backup API, so a gateway writing meanwhile never yields a torn database.
///
/// Root never lets SQLite near a molt's home: the source is opened, read and
/// closed on a thread holding the owner's credentials (`OwnerCredentials`),
/// and by a name anchored at the directory descriptor the scan verified
/// (`/proc/self/fd/N/name` through a VFS that does not rewrite it), so every
/// `-wal`, `-shm` or `-journal` SQLite opens or creates is the owner's own
/// doing, in that very directory, as the owner's gateway would do it.
enum SQLiteSnapshot {
    /// The first 16 bytes of every SQLite 3 database file.
    static let magic: [UInt8] = Array("SQLite format 3".utf8) + [0]
    /// The smallest database file (one page of the smallest size is 512 bytes; the header is 100).
    static let minimumSize: Int64 = 100

    /// What the first 20 bytes of the open file `fd` say.
    enum Header { case notDatabase, rollbackJournal, writeAheadLog }

    static func header(of fd: Int32, size: Int64) -> Header {
        guard size >= minimumSize else { return .notDatabase }
        var bytes = [UInt8](repeating: 0, count: 20)
        guard pread(fd, &bytes, 20, 0) == 20, Array(bytes[0..<16]) == magic else { return .notDatabase }
        // Bytes 18 and 19 are the write and read format versions: 2 means WAL mode.
        return bytes[18] == 2 && bytes[19] == 2 ? .writeAheadLog : .rollbackJournal
    }

    /// The database as the bytes of one consistent database file.
    static func capture(_ source: SQLiteSource, busyTimeout: Duration) throws(SQLiteError) -> [UInt8] {
        try onOwnerThread(source) { () throws(SQLiteError) -> [UInt8] in
            let copy = try Connection(path: ":memory:", flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs: nil)
            try backup(source, into: copy, busyTimeout: busyTimeout)
            return try copy.serialized()
        }
    }

    /// Writes a consistent copy into the empty file at `destination` (created by
    /// the caller, root, beside the archive): for databases too large for memory.
    /// Root opens it; the owner's thread only writes pages into that open handle.
    static func capture(_ source: SQLiteSource, intoFile destination: String, busyTimeout: Duration) throws(SQLiteError) {
        let copy = try Connection(path: destination, flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, vfs: nil)
        // No journal and no sync: the owner's thread could not create a journal in
        // root's directory, and a scratch copy that dies with a crash needs neither.
        try copy.execute("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF")
        try onOwnerThread(source) { () throws(SQLiteError) in
            try backup(source, into: copy, busyTimeout: busyTimeout)
        }
        try copy.close()
    }

    private static func onOwnerThread<T>(_ source: SQLiteSource, _ body: () throws(SQLiteError) -> T) throws(SQLiteError) -> T {
        let result: Result<T, SQLiteError>
        do {
            result = try source.owner.run { () -> Result<T, SQLiteError> in
                do throws(SQLiteError) { return .success(try body()) } catch { return .failure(error) }
            }
        } catch {
            throw SQLiteError(error.description, operation: "open")
        }
        return try result.get()
    }

    /// Copies every page of the source into `copy`, retrying a busy or locked
    /// source with a growing pause until `busyTimeout` has passed.
    private static func backup(_ source: SQLiteSource, into copy: Connection, busyTimeout: Duration) throws(SQLiteError) {
        // Read-only where that leaves the directory as it was. A WAL database
        // without its -wal needs a -wal and -shm even to be read; only a
        // read-write connection may remove them again on close (it needs the
        // exclusive lock), as the owner's gateway does when it closes last.
        var flags = SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        flags |= source.needsWriteAccessToCleanUp ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY
        let path = "/proc/self/fd/\(source.directory)/\(source.name)"
        guard let vfs = AnchoredVFS.nameIfRegistered else { throw SQLiteError("cannot register the anchored VFS", operation: "open") }
        let database = try Connection(path: path, flags: flags, vfs: vfs)
        // SQLite's own busy handler waits up to 100 ms per attempt; the loop below spaces attempts out.
        sqlite3_busy_timeout(database.handle, 100)
        guard let backup = sqlite3_backup_init(copy.handle, "main", database.handle, "main") else {
            throw copy.error(operation: "backup")
        }
        let deadline = ContinuousClock.now + busyTimeout
        var pauseMilliseconds: UInt32 = 20
        var status = sqlite3_backup_step(backup, -1)
        while status & 0xff == SQLITE_BUSY || status & 0xff == SQLITE_LOCKED,
              ContinuousClock.now + .milliseconds(pauseMilliseconds) < deadline {
            usleep(pauseMilliseconds * 1000)
            pauseMilliseconds = min(pauseMilliseconds * 2, 1000)
            status = sqlite3_backup_step(backup, -1)
        }
        let finishStatus = sqlite3_backup_finish(backup)
        if status != SQLITE_DONE {
            let message = status & 0xff == SQLITE_BUSY || status & 0xff == SQLITE_LOCKED
                ? "still locked after \(busyTimeout)" : String(cString: sqlite3_errstr(status))
            throw SQLiteError(code: database.extendedCode(or: status), message: message, operation: "backup")
        }
        guard finishStatus == SQLITE_OK else { throw copy.error(operation: "backup") }
        try database.close()
    }
}

/// One open SQLite connection; closed in `deinit` unless `close()` was called.
private final class Connection {
    let handle: OpaquePointer
    private var isOpen = true

    init(path: String, flags: Int32, vfs: String?) throws(SQLiteError) {
        var handle: OpaquePointer?
        let status = sqlite3_open_v2(path, &handle, flags, vfs)
        guard status == SQLITE_OK, let handle else {
            let code = handle.map { sqlite3_extended_errcode($0) } ?? status
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(status))
            sqlite3_close_v2(handle)
            throw SQLiteError(code: code, message: message, operation: "open")
        }
        self.handle = handle
    }

    deinit { if isOpen { sqlite3_close_v2(handle) } }

    func error(operation: String) -> SQLiteError {
        SQLiteError(code: sqlite3_extended_errcode(handle), message: String(cString: sqlite3_errmsg(handle)), operation: operation)
    }

    /// The connection's extended code when it refines `status`, else `status`.
    func extendedCode(or status: Int32) -> Int32 {
        let extended = sqlite3_extended_errcode(handle)
        return extended & 0xff == status & 0xff ? extended : status
    }

    func execute(_ sql: String) throws(SQLiteError) {
        guard sqlite3_exec(handle, sql, nil, nil, nil) == SQLITE_OK else { throw error(operation: "execute \(sql)") }
    }

    func serialized() throws(SQLiteError) -> [UInt8] {
        var size: Int64 = 0
        guard let bytes = sqlite3_serialize(handle, "main", &size, 0) else {
            throw SQLiteError("cannot serialize the snapshot", operation: "serialize")
        }
        defer { sqlite3_free(bytes) }
        return Array(UnsafeBufferPointer(start: bytes, count: Int(size)))
    }

    func close() throws(SQLiteError) {
        isOpen = false
        let status = sqlite3_close(handle)
        guard status == SQLITE_OK else {
            sqlite3_close_v2(handle)
            throw SQLiteError(code: status, message: String(cString: sqlite3_errstr(status)), operation: "close")
        }
    }
}

/// SQLite's unix VFS with one change: names are used exactly as given. The
/// stock `xFullPathname` resolves symlinks into a path string, which would
/// turn `/proc/self/fd/N/name` back into a path the molt user can swap; kept
/// as it is, every open goes through the directory descriptor N itself.
private enum AnchoredVFS {
    static let name = "clmnt-anchored"

    /// Registered once, on first use.
    private static let registered: Bool = {
        guard let unix = sqlite3_vfs_find("unix") else { return false }
        let vfs = UnsafeMutablePointer<sqlite3_vfs>.allocate(capacity: 1)  // lives as long as the process
        vfs.initialize(to: unix.pointee)
        vfs.pointee.zName = UnsafePointer(strdup(name))
        vfs.pointee.xFullPathname = { _, name, size, output in
            guard let name, let output, name.pointee == CChar(UInt8(ascii: "/")) else { return SQLITE_CANTOPEN }
            let length = strlen(name)
            guard length < Int(size) else { return SQLITE_CANTOPEN }
            memcpy(output, name, length + 1)
            return SQLITE_OK
        }
        return sqlite3_vfs_register(vfs, 0) == SQLITE_OK
    }()

    static var nameIfRegistered: String? { registered ? name : nil }
}
