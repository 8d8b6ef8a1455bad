import Foundation

/// A file written under a temporary name beside its target, flushed, then
/// renamed into place; removed if anything fails or a signal arrives first.
/// Created mode 0600 whatever the umask: archives hold secrets.
///
/// The temporary name is `.<name>.partial-<pid>-<random>`, and the writer holds
/// an exclusive `flock` on it until it is committed: a SIGKILL leaves the file,
/// but no lock, so the next backup can tell it from one being written
/// (`PartialFiles`).
final class AtomicOutputFile {
    private(set) var finalPath: String
    let temporaryPath: String
    /// Open until `commit` or `discard`.
    private var file: FileDescriptor?
    /// The descriptor the archive is written to (-1 once committed or discarded).
    var fileDescriptor: Int32 { file?.rawValue ?? -1 }

    /// Throws with the directory's path when the temporary file cannot be created there.
    init(finalPath: String, mode: mode_t = 0o600) throws(SystemError) {
        self.finalPath = finalPath
        let directory = (finalPath as NSString).deletingLastPathComponent
        let base = (finalPath as NSString).lastPathComponent
        let shownDirectory = directory.isEmpty ? "." : directory
        temporaryPath = shownDirectory + "/" + PartialFiles.partialName(for: base)
        let created: FileDescriptor
        do { created = try FileDescriptor.open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL, mode: mode) } catch {
            throw SystemError(path: shownDirectory, code: error.code)
        }
        fchmod(created.rawValue, mode)
        // Cannot fail on a file we just created: no one else has it open.
        flock(created.rawValue, LOCK_EX | LOCK_NB)
        file = consume created
        SignalCleanup.shared.register(temporaryPath)
    }

    deinit { discard() }

    /// fsyncs, renames into place (refusing to replace an existing file unless
    /// `replace`), and fsyncs the directory so the rename survives a crash.
    /// When `finalPath` was taken meanwhile (another run finished in the same
    /// second), the first free name of `alternatives` is used instead: `finalPath`
    /// then tells which. Errors carry `finalPath`; EEXIST means every name was taken.
    func commit(replace: Bool, alternatives: [String] = []) throws(SystemError) {
        guard let written = file.take() else { return }
        do {
            try written.sync()
            try written.close()
        } catch {
            discardClosed()
            throw SystemError(path: finalPath, code: error.code)
        }
        if replace {
            guard rename(temporaryPath, finalPath) == 0 else {
                let code = errno
                discardClosed()
                throw SystemError(path: finalPath, code: code)
            }
        } else {
            // link() fails with EEXIST rather than replacing a backup that appeared meanwhile.
            var names = alternatives[...]
            while link(temporaryPath, finalPath) != 0 {
                let code = errno
                if code == EEXIST, let next = names.popFirst() {
                    finalPath = next
                    continue
                }
                discardClosed()
                throw SystemError(path: finalPath, code: code)
            }
            unlink(temporaryPath)
        }
        SignalCleanup.shared.unregister(temporaryPath)
        syncDirectory(of: finalPath)
    }

    /// Removes the partial file.
    func discard() {
        guard file.take() != nil else { return }
        discardClosed()
    }

    private func discardClosed() {
        unlink(temporaryPath)
        SignalCleanup.shared.unregister(temporaryPath)
    }
}
