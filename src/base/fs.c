/* fs: see fs.h. */
#include "base/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fault.h"

int fs_write_all(int fd, const void *data, size_t len, struct err *err)
{
    const char *p = data;

    if (fault_hit("write", NULL))
        return err_sys(err, ENOSPC, "write", "cannot write");
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return err_sys(err, errno, "write", "cannot write");
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int fs_fsync(int fd, struct err *err)
{
    if (fault_hit("fsync", NULL))
        return err_sys(err, EIO, "fsync", "cannot fsync");
    if (fsync(fd) < 0)
        return err_sys(err, errno, "fsync", "cannot fsync");
    return 0;
}

int fs_fsync_dir(const char *dir, struct err *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc;

    if (fd < 0)
        return err_sys(err, errno, "fsync", "cannot open directory '%s'", dir);
    rc = fs_fsync(fd, err);
    close(fd);
    return rc;
}

int fs_rename(const char *from, const char *to, struct err *err)
{
    if (fault_hit("rename", to))
        return err_sys(err, EIO, "rename", "cannot rename to '%s'", to);
    if (rename(from, to) < 0)
        return err_sys(err, errno, "rename", "cannot rename to '%s'", to);
    return 0;
}

int fs_unlink(const char *path, struct err *err)
{
    if (unlink(path) < 0 && errno != ENOENT)
        return err_sys(err, errno, "unlink", "cannot remove '%s'", path);
    return 0;
}

void fs_drop_cache(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return;
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

int fs_mkdir_p(const char *path, mode_t mode, struct err *err)
{
    char tmp[4096];
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof(tmp))
        return err_set(err, ERR_PERMANENT, "mkdir", "bad directory path");
    memcpy(tmp, path, len + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) < 0 && errno != EEXIST)
            return err_sys(err, errno, "mkdir", "cannot create '%s'", tmp);
        *p = '/';
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST)
        return err_sys(err, errno, "mkdir", "cannot create '%s'", tmp);
    return 0;
}

int fs_private_dir(const char *path, struct err *err)
{
    struct stat st;

    if (fs_mkdir_p(path, 0700, err))
        return -1;
    if (stat(path, &st) < 0)
        return err_sys(err, errno, "mkdir", "cannot inspect '%s'", path);
    if (!S_ISDIR(st.st_mode))
        return err_set(err, ERR_PERMANENT, "mkdir", "'%s' is not a directory", path);
    if (st.st_uid != geteuid() || (st.st_mode & 077) == 0)
        return 0;
    if (chmod(path, st.st_mode & 07700) < 0)
        return err_sys(err, errno, "mkdir", "cannot make '%s' private", path);
    return 0;
}

static int open_temp_beside(const char *path, char *tmp, size_t n, struct err *err)
{
    int fd;

    /* The pid in the name lets a supervisor clear what a dead process left. */
    if ((size_t)snprintf(tmp, n, "%s.tmp.%ld.XXXXXX", path, (long)getpid()) >= n)
        return err_set(err, ERR_PERMANENT, "write", "path too long");
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return err_sys(err, errno, "write", "cannot create '%s'", tmp);
    return fd;
}

static int publish(int fd, const char *tmp, const char *path, struct err *err)
{
    char dir[4096];

    if (fs_fsync(fd, err) || fs_rename(tmp, path, err))
        return -1;
    snprintf(dir, sizeof(dir), "%s", path);
    return fs_fsync_dir(dirname(dir), err);
}

int fs_write_file_atomic(const char *path, const void *data, size_t len, struct err *err)
{
    char tmp[4096];
    int fd = open_temp_beside(path, tmp, sizeof(tmp), err);
    int rc = -1;

    if (fd < 0)
        return -1;
    if (fs_write_all(fd, data, len, err) == 0 && publish(fd, tmp, path, err) == 0)
        rc = 0;
    close(fd);
    if (rc)
        unlink(tmp);
    return rc;
}

int fs_copy_fd_atomic(int src_fd, const char *path, struct err *err)
{
    char tmp[4096], chunk[65536];
    int fd = open_temp_beside(path, tmp, sizeof(tmp), err);
    int rc = -1;
    off_t off = 0;

    if (fd < 0)
        return -1;
    for (;;) {
        ssize_t n = pread(src_fd, chunk, sizeof(chunk), off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err_sys(err, errno, "read", "cannot read");
            goto out;
        }
        if (n == 0)
            break;
        if (fs_write_all(fd, chunk, (size_t)n, err))
            goto out;
        off += n;
    }
    if (publish(fd, tmp, path, err))
        goto out;
    rc = 0;
out:
    close(fd);
    if (rc)
        unlink(tmp);
    return rc;
}

static int remove_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (type == FTW_DP)
        return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
    return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

int fs_remove_tree(const char *path, struct err *err)
{
    if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
        return err_sys(err, errno, "rmdir", "cannot remove '%s'", path);
    return 0;
}
