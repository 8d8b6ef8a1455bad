// Linux calls and constants that glibc declares only under _GNU_SOURCE, which
// Swift's Glibc module is built without. They are defined in shim.c, compiled
// with _GNU_SOURCE (as swift-nio's CNIOLinux does), so the compiler checks
// every signature and constant against the real headers: no dlsym, no copied
// octal numbers.
#ifndef CLMNT_CLINUX_SHIM_H
#define CLMNT_CLINUX_SHIM_H

#include <stddef.h>
#include <sys/types.h>

// renameat2(2) and its flags: the restore swaps a molt in atomically.
int clmnt_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);

// sync_file_range(2) with SYNC_FILE_RANGE_WRITE: start writeback of a range without waiting.
int clmnt_start_writeback(int fd, long long offset, long long count);
extern const unsigned int clmnt_RENAME_NOREPLACE;
extern const unsigned int clmnt_RENAME_EXCHANGE;

// unshare(CLONE_FS): gives the calling thread its own working directory and umask.
int clmnt_unshare_filesystem(void);

// syncfs(2): a restore flushes the file system of its staged trees before any swap.
int clmnt_syncfs(int fd);

// O_NOATIME: reading a backup should not touch every file's access time.
extern const int clmnt_O_NOATIME;
// O_TMPFILE: an unnamed scratch file (spilled digests, scans), which no one can race by name.
extern const int clmnt_O_TMPFILE;

// Credentials of the calling thread only. glibc's setresuid() and friends
// change every thread of the process (they signal each one); the raw system
// calls change just the caller, which is what a thread that works inside a
// molt's home with the molt user's rights needs while the others stay root.
int clmnt_thread_setresuid(uid_t ruid, uid_t euid, uid_t suid);
int clmnt_thread_setresgid(gid_t rgid, gid_t egid, gid_t sgid);
int clmnt_thread_setgroups(size_t count, const gid_t *groups);

// posix_spawn_file_actions_addclosefrom_np (glibc 2.34): a spawned program gets
// descriptors 0-2 only, never one of clmnt's (ProgramRunner).
#include <spawn.h>
int clmnt_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest);

// fgetxattr/fsetxattr: the completeness mark on an archive (Backup/BackupStatusMark.swift).
// Swift's Glibc module does not export <sys/xattr.h>.
#include <sys/xattr.h>

#endif
