// The few Linux calls Swift's Glibc module does not declare (they need _GNU_SOURCE or are
// glibc extensions), each behind a function of our own so Swift calls a declared prototype.
#ifndef AIRLOCK_CAIRLOCKSYSTEM_H
#define AIRLOCK_CAIRLOCKSYSTEM_H
#include <spawn.h>
#include <stddef.h>
#include <stdint.h>

/// syncfs(2): flushes the file system that holds `fd`.
int airlock_syncfs(int fd);

/// renameat2(2) with RENAME_EXCHANGE: swaps two paths atomically.
int airlock_rename_exchange(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);

/// posix_spawn_file_actions_addclosefrom_np (glibc 2.34+): the child closes every descriptor
/// from `from` up.
int airlock_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int from);

/// mallopt(M_MMAP_THRESHOLD, bytes): allocations of `bytes` and more get a mapping of their own.
int airlock_malloc_mmap_threshold(int bytes);

/// memfd_create(2) with MFD_CLOEXEC: an anonymous file in memory, gone with its last
/// descriptor (a command's stdin and output, with no name anyone else could open).
int airlock_memfd(const char *name);

/// malloc_trim(0): gives the heap's free memory back to the system (after a large replay).
int airlock_malloc_trim(void);

/// The O_PATH flag of open(2) (a descriptor that names a file without opening it for I/O).
int airlock_o_path(void);

/// The O_DIRECT flag of open(2) and fcntl(2) (I/O that bypasses the page cache).
int airlock_o_direct(void);

/// fallocate(2) with FALLOC_FL_INSERT_RANGE at offset 0: shifts the whole file up by `length`
/// bytes (a multiple of the file system's block size) and leaves a hole in front, without
/// copying a byte. -1 with EOPNOTSUPP or EINVAL where the file system cannot.
int airlock_insert_range(int fd, long long length);

/// copy_file_range(2) of up to `length` bytes from `in` at `in_offset` to `out` at its file
/// offset: the kernel copies, no user-space buffer. Bytes copied, or -1 with errno.
long long airlock_copy_file_range(int in, long long in_offset, int out, long long length);

/// libFuzzer's driver (airlock-fuzz, built with -sanitize=fuzzer): runs the fuzzing loop with
/// `callback` as the entry point. Defined by libFuzzer's runtime; only that build calls it.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
