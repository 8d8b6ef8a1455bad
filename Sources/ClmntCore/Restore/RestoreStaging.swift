import Foundation

/// The root-only container (`<base-dir>/.clmnt-restore-XXXXXX`) that holds one
/// staged home per molt, so no molt user can reach into them before they are
/// swapped in; afterwards it holds the old trees swapped out, and the journal.
final class RestoreStaging {
    /// The base dir, owned by the caller's lock; the container is in it.
    let baseDirectory: Int32
    let baseDir: String
    let name: String
    let directory: FileDescriptor
    /// The users this run created, in order (rolled back if it fails before the swaps).
    var createdUsers: [String] = []

    var path: String { baseDir + "/" + name }

    init(baseDirectory: Int32, baseDir: String) throws(RestoreError) {
        self.baseDirectory = baseDirectory
        self.baseDir = baseDir
        var template = Array((baseDir + "/" + FleetRestore.stagingPrefix + "XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw .fileSystem(path: baseDir, reason: SystemError.text()) }
        let name = (String(cString: made) as NSString).lastPathComponent
        self.name = name
        do { directory = try SafeFileSystem.openDirectory(at: baseDirectory, name, path: baseDir + "/" + name) } catch {
            try? SafeFileSystem.removeTree(at: baseDirectory, name, displayPath: baseDir + "/" + name)
            throw RestoreError(error)
        }
    }

    /// Removes the container and everything staged in it (a failure before the swaps).
    func discard() {
        try? SafeFileSystem.removeTree(at: baseDirectory, name, displayPath: path)
    }

    /// Removes the old tree of `molt`, swapped out into the container.
    func removeOldTree(_ molt: String) {
        try? SafeFileSystem.removeTree(at: directory.rawValue, molt, displayPath: path + "/" + molt)
    }

    /// Removes the container once the restore is done; a warning when it cannot.
    func finish() -> [String] {
        do throws(SystemError) {
            try SafeFileSystem.removeTree(at: baseDirectory, name, displayPath: path)
            return []
        } catch {
            return ["could not remove the old trees in \(baseDir)/\(name): \(error)"]
        }
    }
}
