import Foundation

/// For tests only: `CLMNT_TEST_STOP_AT=<point>` makes the process stop itself
/// (SIGSTOP) when it reaches that point, so a test can change the tree, start a
/// rival run, or SIGKILL it at an exact stage, then SIGCONT it. The points are
/// `after-scan` and `before-commit` (backup), `before-swap-<n>` (restore,
/// before the n-th molt, from 1) and `before-registry` (restore, after the swaps). Unset in any real run, it does nothing.
enum TestHook {
    static func stop(at point: String) {
        guard let wanted = ProcessInfo.processInfo.environment["CLMNT_TEST_STOP_AT"], wanted == point else { return }
        raise(SIGSTOP)
    }

    /// `CLMNT_TEST_SPILL_BYTES=<n>`: spill files (`SpillFile`) leave memory after n bytes instead
    /// of 4 MiB, so a test fleet of a few files takes the path a million files would.
    static var spillMemoryLimit: Int? {
        ProcessInfo.processInfo.environment["CLMNT_TEST_SPILL_BYTES"].flatMap { Int($0) }
    }
}
