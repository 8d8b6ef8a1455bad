import CLinux
import Foundation

/// Why work could not be done with a user's credentials.
struct CredentialFailure: Error, CustomStringConvertible {
    let uid: UInt32
    let reason: String
    var description: String { "cannot take the credentials of uid \(uid): \(reason)" }
}

/// The credentials of a file's owner (uid, primary gid, supplementary groups),
/// taken by one dedicated thread so that work inside a molt's home happens
/// with exactly that user's rights while the rest of the process stays root.
struct OwnerCredentials: Sendable, Equatable {
    let uid: UInt32
    let gid: UInt32
    let groups: [UInt32]

    /// The credentials of `uid`: its passwd entry's groups, or for a uid
    /// without an account, `gid` alone (no supplementary groups).
    static func of(uid: UInt32, gid: UInt32) -> OwnerCredentials {
        guard let account = UserAccounts.user(uid: uid) else { return OwnerCredentials(uid: uid, gid: gid, groups: [gid]) }
        return OwnerCredentials(uid: uid, gid: account.gid, groups: UserAccounts.groupIDs(of: account))
    }

    /// Runs `body` on a new thread whose effective (and so file-system) uid,
    /// gid and groups are these; waits for it and returns its result.
    ///
    /// Only that thread changes: the raw system calls of the CLinux shim, not
    /// glibc's wrappers, which would switch every thread of the process. The
    /// real and saved uid stay 0, so the thread can return to root and the
    /// user can neither signal nor ptrace it; with a non-zero effective uid
    /// the kernel drops every effective capability, so the kernel checks each
    /// open, create and chown exactly as for the user. The thread goes back to
    /// root before it ends, and ends: it is never reused for other work.
    /// `body` must not start threads (they would inherit these credentials).
    func run<T>(_ body: () -> T) throws(CredentialFailure) -> T {
        // Not root: nothing to drop, the kernel already checks everything as this process's user.
        guard geteuid() == 0 else { return body() }
        let box = ThreadResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        let credentials = self
        let rootGroups = OwnerCredentials.currentGroups()
        withoutActuallyEscaping(body) { escapable in
            box.body = escapable
            let thread = Thread {
                defer { done.signal() }
                if let problem = credentials.enter() {
                    box.failure = problem
                } else {
                    box.result = box.body?()
                }
                // Back to root before the thread ends, checked: a thread that stayed
                // unprivileged must not look like a finished job.
                if let problem = OwnerCredentials.leave(groups: rootGroups) { fatalError("clmnt: cannot return a thread to root: \(problem)") }
            }
            thread.name = "clmnt-as-\(uid)"
            thread.stackSize = 4 << 20
            thread.start()
            done.wait()
            box.body = nil
        }
        if let failure = box.failure { throw CredentialFailure(uid: uid, reason: failure) }
        guard let result = box.result else { throw CredentialFailure(uid: uid, reason: "the worker thread ended without a result") }
        return result
    }

    /// Takes these credentials on the calling thread; nil when done, else why not.
    private func enter() -> String? {
        let unchanged = UInt32.max  // -1: leave the real and saved id as they are (root)
        let groupsResult = groups.withUnsafeBufferPointer { clmnt_thread_setgroups($0.count, $0.baseAddress) }
        guard groupsResult == 0 else { return "setgroups: \(String(cString: strerror(errno)))" }
        guard clmnt_thread_setresgid(unchanged, gid, unchanged) == 0 else { return "setresgid: \(String(cString: strerror(errno)))" }
        guard clmnt_thread_setresuid(unchanged, uid, unchanged) == 0 else { return "setresuid: \(String(cString: strerror(errno)))" }
        guard geteuid() == uid, getegid() == gid else { return "the thread's ids did not change" }
        return nil
    }

    /// The supplementary groups of the calling thread.
    private static func currentGroups() -> [UInt32] {
        var groups = [gid_t](repeating: 0, count: Int(getgroups(0, nil)))
        let count = getgroups(Int32(groups.count), &groups)
        return Array(groups.prefix(max(0, Int(count))))
    }

    /// Returns the calling thread to root: uid and gid 0, the process's groups.
    private static func leave(groups: [UInt32]) -> String? {
        let unchanged = UInt32.max
        guard clmnt_thread_setresuid(unchanged, 0, unchanged) == 0 else { return "setresuid: \(String(cString: strerror(errno)))" }
        guard clmnt_thread_setresgid(unchanged, 0, unchanged) == 0 else { return "setresgid: \(String(cString: strerror(errno)))" }
        let groupsResult = groups.withUnsafeBufferPointer { clmnt_thread_setgroups($0.count, $0.baseAddress) }
        guard groupsResult == 0 else { return "setgroups: \(String(cString: strerror(errno)))" }
        return geteuid() == 0 && getegid() == 0 ? nil : "the thread's ids did not change back"
    }
}

/// What the worker thread of `OwnerCredentials.run` hands back; only one
/// thread touches it at a time (the caller waits on a semaphore meanwhile).
private final class ThreadResultBox<T>: @unchecked Sendable {
    var body: (() -> T)?
    var result: T?
    var failure: String?
}
