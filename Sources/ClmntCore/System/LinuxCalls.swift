import CLinux
import Foundation

/// Linux calls that glibc declares only under _GNU_SOURCE, through the CLinux
/// shim (compiled with it), so the compiler checks them against the headers.
enum LinuxCalls {
    static let renameExchange: UInt32 = clmnt_RENAME_EXCHANGE
    static let renameNoReplace: UInt32 = clmnt_RENAME_NOREPLACE
    /// O_NOATIME: reading a backup should not touch every file's access time.
    /// Root may use it on any file; others only on their own (EPERM otherwise).
    static let noAccessTime: Int32 = clmnt_O_NOATIME
    static let unnamedFile: Int32 = clmnt_O_TMPFILE

    /// Starts the writeback of `count` bytes from `offset` without waiting (`sync_file_range(2)`,
    /// `SYNC_FILE_RANGE_WRITE`); false where `fd` is no file (a pipe).
    static func startWriteback(_ fd: Int32, offset: Int64, count: Int64) -> Bool {
        clmnt_start_writeback(fd, offset, count) == 0
    }

    /// `renameat2(2)`; fails with EINVAL or ENOSYS where the kernel or file system lacks a flag.
    static func renameat2(_ fromDirectory: Int32, _ from: String, _ toDirectory: Int32, _ to: String, _ flags: UInt32) -> Int32 {
        clmnt_renameat2(fromDirectory, from, toDirectory, to, flags)
    }

    /// Makes a `posix_spawn` close every descriptor from `lowest` up in the child.
    static func spawnClosesFrom(_ actions: inout posix_spawn_file_actions_t, _ lowest: Int32) -> Int32 {
        clmnt_spawn_close_from(&actions, lowest)
    }

    /// Gives the calling thread its own working directory and umask (`unshare(CLONE_FS)`).
    static func unshareFileSystem() -> Bool {
        clmnt_unshare_filesystem() == 0
    }

    /// Flushes the whole file system holding `fd` (`syncfs(2)`).
    static func syncFileSystem(_ fd: Int32) -> Bool {
        clmnt_syncfs(fd) == 0
    }
}
