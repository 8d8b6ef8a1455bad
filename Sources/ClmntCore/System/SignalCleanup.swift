import Foundation

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
