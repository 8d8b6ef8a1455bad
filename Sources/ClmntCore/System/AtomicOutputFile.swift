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
    let fileDescriptor: Int32
    private var isFinished = false

    init(finalPath: String, mode: mode_t = 0o600) throws(BackupError) {
        self.finalPath = finalPath
        let directory = (finalPath as NSString).deletingLastPathComponent
        let base = (finalPath as NSString).lastPathComponent
        temporaryPath = (directory.isEmpty ? "." : directory) + "/.\(base).partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else {
            throw .outputDirectory(path: directory.isEmpty ? "." : directory, reason: String(cString: strerror(errno)))
        }
        fchmod(fd, mode)
        // Cannot fail on a file we just created: no one else has it open.
        flock(fd, LOCK_EX | LOCK_NB)
        fileDescriptor = fd
        SignalCleanup.shared.register(temporaryPath)
    }

    deinit { discard() }

    /// fsyncs, renames into place (refusing to replace an existing file unless
    /// `replace`), and fsyncs the directory so the rename survives a crash.
    /// When `finalPath` was taken meanwhile (another run finished in the same
    /// second), the first free name of `alternatives` is used instead: `finalPath`
    /// then tells which.
    func commit(replace: Bool, alternatives: [String] = []) throws(BackupError) {
        guard !isFinished else { return }
        guard fsync(fileDescriptor) == 0 else {
            let reason = String(cString: strerror(errno))
            discard()
            throw .outputDirectory(path: finalPath, reason: reason)
        }
        close(fileDescriptor)
        if replace {
            guard rename(temporaryPath, finalPath) == 0 else {
                let reason = String(cString: strerror(errno))
                discardClosed()
                throw .outputDirectory(path: finalPath, reason: reason)
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
                if code == EEXIST { throw .outputExists(path: finalPath) }
                throw .outputDirectory(path: finalPath, reason: String(cString: strerror(code)))
            }
            unlink(temporaryPath)
        }
        isFinished = true
        SignalCleanup.shared.unregister(temporaryPath)
        syncDirectory(of: finalPath)
    }

    /// Removes the partial file.
    func discard() {
        guard !isFinished else { return }
        close(fileDescriptor)
        discardClosed()
    }

    private func discardClosed() {
        isFinished = true
        unlink(temporaryPath)
        SignalCleanup.shared.unregister(temporaryPath)
    }
}

/// fsyncs the directory holding `path`.
func syncDirectory(of path: String) {
    let directory = (path as NSString).deletingLastPathComponent
    let fd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { return }
    fsync(fd)
    close(fd)
}

/// Removes registered partial files when SIGINT or SIGTERM arrives, then exits
/// with the conventional 128 + signal status.
public final class SignalCleanup: @unchecked Sendable {
    public static let shared = SignalCleanup()
    private let lock = NSLock()
    private var paths: Set<String> = []
    private var sources: [DispatchSourceSignal] = []
    private var cleanupActions: [String: @Sendable () -> Void] = [:]

    /// Installs the handlers once; call early in a command that writes.
    public func install() {
        lock.lock(); defer { lock.unlock() }
        guard sources.isEmpty else { return }
        for signalNumber in [SIGINT, SIGTERM, SIGHUP] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [unowned self] in self.cleanUpAndExit(signalNumber) }
            source.resume()
            sources.append(source)
        }
    }

    func register(_ path: String) { lock.lock(); paths.insert(path); lock.unlock() }
    func unregister(_ path: String) { lock.lock(); paths.remove(path); lock.unlock() }

    /// An extra action to run on a signal (e.g. removing a staging directory).
    public func register(key: String, action: @escaping @Sendable () -> Void) {
        lock.lock(); cleanupActions[key] = action; lock.unlock()
    }

    public func unregister(key: String) { lock.lock(); cleanupActions[key] = nil; lock.unlock() }

    private func cleanUpAndExit(_ signalNumber: Int32) {
        lock.lock()
        for path in paths { unlink(path) }
        let actions = Array(cleanupActions.values)
        lock.unlock()
        for action in actions { action() }
        let message = "clmnt: interrupted; partial output removed\n"
        _ = message.withCString { write(2, $0, strlen($0)) }
        _exit(128 + signalNumber)
    }
}
