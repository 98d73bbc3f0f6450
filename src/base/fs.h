/*
 * fs: file-system calls with their errors checked, copied into `err` at once,
 * and fault points (fault.h) on write, fsync and rename.
 * Durable publish = write to a temporary name in the target directory, fsync
 * the file, rename over the final name, fsync the directory (git lockfile).
 */
#ifndef SHOEBOX_BASE_FS_H
#define SHOEBOX_BASE_FS_H

#include <stddef.h>
#include <sys/types.h>

#include "base/err.h"

/* Write all len bytes (retries short writes and EINTR). Fault point "write" fails as ENOSPC. */
int fs_write_all(int fd, const void *data, size_t len, struct err *err);
/* fsync(fd). Fault point "fsync". */
int fs_fsync(int fd, struct err *err);
/* Open dir and fsync it, so a rename or create in it is durable. */
int fs_fsync_dir(const char *dir, struct err *err);
/* rename(from, to). Fault point "rename". */
int fs_rename(const char *from, const char *to, struct err *err);
/* unlink; a missing file is not an error. */
int fs_unlink(const char *path, struct err *err);
/* Ask the kernel to drop path's cached pages (POSIX_FADV_DONTNEED): for data
 * that is durable and will not be read again soon. Advisory: errors ignored. */
void fs_drop_cache(const char *path);
/* mkdir -p with mode for each created level. */
int fs_mkdir_p(const char *path, mode_t mode, struct err *err);
/* mkdir -p path with mode 0700, then make path itself private (0700) if
 * this process's user owns it and others may read or enter it (a directory
 * made by hand or by an installer with 0755). A directory owned by someone
 * else is left as it is. Shoebox keeps photos, the database and its secrets
 * under it: nobody else on the machine has any business there. */
int fs_private_dir(const char *path, struct err *err);
/* rm -r path (files, directories, no symlink followed); a missing path is fine. */
int fs_remove_tree(const char *path, struct err *err);
/* Durably replace path with data (temp name, fsync, rename, fsync dir). */
int fs_write_file_atomic(const char *path, const void *data, size_t len, struct err *err);
/* Durably copy an open file's content (from offset 0) to a new path. */
int fs_copy_fd_atomic(int src_fd, const char *path, struct err *err);

#endif
