#ifndef _GNU_SOURCE
#error CLinux must be compiled with _GNU_SOURCE (see Package.swift)
#endif

#include "shim.h"
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

int clmnt_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags) {
    return renameat2(olddirfd, oldpath, newdirfd, newpath, flags);
}

int clmnt_start_writeback(int fd, long long offset, long long count) {
    return sync_file_range(fd, offset, count, SYNC_FILE_RANGE_WRITE);
}

const unsigned int clmnt_RENAME_NOREPLACE = RENAME_NOREPLACE;
const unsigned int clmnt_RENAME_EXCHANGE = RENAME_EXCHANGE;

int clmnt_unshare_filesystem(void) {
    return unshare(CLONE_FS);
}

const int clmnt_O_NOATIME = O_NOATIME;
const int clmnt_O_TMPFILE = O_TMPFILE;

int clmnt_thread_setresuid(uid_t ruid, uid_t euid, uid_t suid) {
    return (int)syscall(SYS_setresuid, ruid, euid, suid);
}

int clmnt_thread_setresgid(gid_t rgid, gid_t egid, gid_t sgid) {
    return (int)syscall(SYS_setresgid, rgid, egid, sgid);
}

int clmnt_thread_setgroups(size_t count, const gid_t *groups) {
    return (int)syscall(SYS_setgroups, count, groups);
}

int clmnt_syncfs(int fd) {
    return syncfs(fd);
}

int clmnt_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}
