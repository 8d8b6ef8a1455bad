import Foundation

/// `.users` in a staging container: the accounts a restore created, so the
/// next run can delete them when this one is killed (SIGKILL gives no chance
/// to) before any molt arrived.
enum CreatedUsers {
    static let fileName = ".users"

    static func note(_ names: [String], container: Int32, displayPath: String) throws(RestoreError) {
        try RestoreError.step { () throws(SystemError) in
            try SafeFileSystem.writeFile(at: container, fileName, data: Data((names.joined(separator: "\n") + "\n").utf8),
                                         uid: 0, gid: 0, mode: 0o600, displayPath: displayPath + "/" + fileName)
        }
    }

    /// Deletes the users noted in the open `container` whose molt is not at its
    /// home (`<baseDir>/<name>`, as the killed run created them); returns what it did.
    static func removeStale(container: Int32, baseDirectory: Int32, baseDir: String) -> [String] {
        guard let file = try? SafeFileSystem.readFile(at: container, fileName, displayPath: fileName) else { return [] }
        var notes: [String] = []
        for user in String(decoding: file.data, as: UTF8.self).split(separator: "\n").map(String.init).filter(MoltName.isValid)
        where UserAccounts.user(named: user)?.home == baseDir + "/" + user && SafeFileSystem.status(at: baseDirectory, user) == nil {
            do {
                try UserAccounts.delete(name: user)
                notes.append("deleted user \(user), created by an interrupted restore whose molt never arrived")
            } catch {
                notes.append("could not delete user \(user), created by an interrupted restore: \(error)")
            }
        }
        return notes
    }
}
