import Foundation

/// The last good off-host copy (`--to`, `--copy-to`), recorded by root in the backup dir as
/// `.offhost-last-success.json` so `fleet doctor`, the dashboard and `/metrics` can tell how
/// old the newest copy off this host is. Believed only when root (or the invoking user) wrote
/// it, with one link, in a backup dir no one else can write (`BackupDirectory`).
public enum OffHostStatus {
    public static let fileName = ".offhost-last-success.json"

    /// Records `copy` (a successful one) in `directory`, creating the directory 0700 if it is
    /// missing. Returns why it could not, or nil.
    @discardableResult
    public static func record(_ copy: OffHostCopy, completed: Date = Date(), in directory: String) -> String? {
        guard copy.succeeded else { return nil }
        if mkdir(directory, 0o700) != 0 && errno != EEXIST { return "cannot create \(directory): \(String(cString: strerror(errno)))" }
        if let problem = BackupDirectory.trustProblem(path: directory) { return "backup dir \(directory): \(problem)" }
        let opened: FileDescriptor
        do { opened = try FileDescriptor.open(directory, O_RDONLY | O_DIRECTORY) } catch { return "cannot open \(error)" }
        let fd = opened.rawValue
        let record = Record(target: copy.target, completed: Timestamp.format(completed), bytes: copy.bytes)
        do {
            let data = Data(try JSONStyle.encode(record).utf8)
            try SafeFileSystem.writeFile(at: fd, fileName, data: data, uid: geteuid(), gid: getegid(), mode: 0o600,
                                         displayPath: directory + "/" + fileName)
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// The last good off-host copy recorded in `directory`, if one is and it can be believed.
    public static func last(in directory: String) -> Record? {
        guard BackupDirectory.trustProblem(path: directory) == nil else { return nil }
        guard let opened = try? FileDescriptor.open(directory, O_RDONLY | O_DIRECTORY),
              let file = try? SafeFileSystem.readFile(at: opened.rawValue, fileName, displayPath: fileName, limit: 64 << 10),
              file.status.st_uid == 0 || file.status.st_uid == geteuid(), file.status.st_nlink == 1 else { return nil }
        return try? JSONDecoder().decode(Record.self, from: file.data)
    }

    public struct Record: Sendable, Codable, Equatable {
        /// `s3://bucket/key` of the copy.
        public var target: String
        /// When the copy completed (ISO 8601, UTC).
        public var completed: String
        public var bytes: Int64?

        public var completedDate: Date? { Timestamp.parse(completed) }
    }
}
