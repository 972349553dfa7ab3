#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
#include "CAirlockSystem.h"

int airlock_syncfs(int fd) { return syncfs(fd); }

int airlock_rename_exchange(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    return renameat2(olddirfd, oldpath, newdirfd, newpath, RENAME_EXCHANGE);
}

int airlock_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

int airlock_malloc_mmap_threshold(int bytes) { return mallopt(M_MMAP_THRESHOLD, bytes); }

int airlock_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC); }

int airlock_o_path(void) { return O_PATH; }

int airlock_malloc_trim(void) { return malloc_trim(0); }

int airlock_insert_range(int fd, long long length) {
    return fallocate(fd, FALLOC_FL_INSERT_RANGE, 0, (off_t)length);
}

long long airlock_copy_file_range(int in, long long in_offset, int out, long long length) {
    loff_t off = (loff_t)in_offset;
    return copy_file_range(in, &off, out, NULL, (size_t)length, 0);
}

int airlock_o_direct(void) { return O_DIRECT; }
