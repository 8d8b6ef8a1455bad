import Foundation

/// The one place clmnt handles SIGINT, SIGTERM and SIGHUP.
///
/// By default a signal removes the registered partial files, runs the registered
/// cleanup actions, and exits with the conventional 128 + signal status.
///
/// While a cancellable operation runs (a restore, `cancelling(with:)`), a signal asks it
/// to stop and clean up instead. Signals within `repeatWindow` of the first are the same
/// request arriving twice (`timeout` and `kill` of a process group signal the child and its
/// group; a double key press) and the cleanup goes on; one later exits at once (the next
/// run removes what was left).
public final class SignalCleanup: @unchecked Sendable {
    public static let shared = SignalCleanup()
    /// Seconds after the first signal during which more signals do not cut a cancellation short.
    public static let repeatWindow: UInt64 = 2
    private let lock = NSLock()
    private var paths: Set<String> = []
    private var sources: [DispatchSourceSignal] = []
    private var cleanupActions: [String: @Sendable () -> Void] = [:]
    private var cancel: (@Sendable () -> Void)?
    private var firstSignal: Int32 = 0
    private var firstSignalAt: UInt64 = 0

    /// Installs the handlers once; call early in a command that writes.
    public func install() {
        lock.lock(); defer { lock.unlock() }
        guard sources.isEmpty else { return }
        for signalNumber in [SIGINT, SIGTERM, SIGHUP] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [unowned self] in self.handle(signalNumber) }
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

    /// Until `endCancelling()`, a signal calls `cancel` (the operation stops and cleans up)
    /// rather than exiting. Installs the handlers if needed.
    public func cancelling(with cancel: @escaping @Sendable () -> Void) {
        install()
        lock.withLock { self.cancel = cancel }
    }

    /// Back to exiting on a signal, unless one already arrived: the run is then on its way out
    /// with 128+N, and a repeat of the same request must not kill it by another path first.
    public func endCancelling() {
        lock.withLock { if firstSignal == 0 { cancel = nil } }
    }

    /// The first signal received while cancelling (SIGINT when none was): the exit status is 128 + it.
    public var receivedSignal: Int32 { lock.withLock { firstSignal == 0 ? SIGINT : firstSignal } }

    private func handle(_ signalNumber: Int32) {
        let now = DispatchTime.now().uptimeNanoseconds
        let (cancel, exitNow) = lock.withLock { () -> ((@Sendable () -> Void)?, Bool) in
            guard let cancel = self.cancel else { return (nil, true) }
            guard firstSignal != 0 else {
                firstSignal = signalNumber
                firstSignalAt = now
                return (cancel, false)
            }
            return (cancel, now - firstSignalAt >= Self.repeatWindow * 1_000_000_000)
        }
        guard let cancel else { return cleanUpAndExit(signalNumber) }
        if exitNow { _exit(128 + signalNumber) }
        cancel()
    }

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
