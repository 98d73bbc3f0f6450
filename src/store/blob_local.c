/*
 * blob_local: the local-directory backend of blob.h.
 * A key names ROOT/KEY. Writers write "KEY.tmp.<pid>.XXXXXX" beside it and
 * commit with fsync + rename + fsync of the directory, so a key is a complete
 * file or nothing; temporary names contain ".tmp." and list() skips them.
 * Readers are an open descriptor (reader_fd: sendfile, libvips). put_link is
 * the intake hand-off without a copy (same file system). No state is shared
 * between calls beyond the root path (immutable): any thread may call anything.
 */
#include "store/blob.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/xalloc.h"

/* Directory depth of keys ("o/ab/<sha>"): the walk goes no deeper. */
#define KEY_DEPTH 3
#define PATH_BYTES 4096

struct local {
    struct blob_store base;
    char *root;  /* immutable after open */
};

/* Keys come from blob_key(): relative, lower-case hex, '/', '.', letters. No "..". */
static bool key_ok(const char *key)
{
    size_t len = strlen(key);

    if (len == 0 || len >= BLOB_KEY_MAX || key[0] == '/' || strstr(key, "..") ||
        strstr(key, ".tmp."))
        return false;
    for (const char *p = key; *p; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '/' ||
                  *p == '.' || *p == '_' || *p == '-';
        if (!ok)
            return false;
    }
    return true;
}

static int key_path(struct local *l, const char *key, char *out, size_t n, struct err *err)
{
    if (!key_ok(key))
        return err_set(err, ERR_PERMANENT, "blob", "invalid blob key '%s'", key);
    if ((size_t)snprintf(out, n, "%s/%s", l->root, key) >= n)
        return err_set(err, ERR_PERMANENT, "blob", "blob path for '%s' is too long", key);
    return 0;
}

/* Creates the key's directory; *dir gets it (for the directory fsync). */
static int make_parent(const char *path, char *dir, size_t n, struct err *err)
{
    const char *slash = strrchr(path, '/');
    size_t len = slash ? (size_t)(slash - path) : 0;

    if (len == 0 || len >= n)
        return err_set(err, ERR_PERMANENT, "blob", "bad blob path '%s'", path);
    memcpy(dir, path, len);
    dir[len] = '\0';
    return fs_mkdir_p(dir, 0700, err);
}

static bool exists(const char *path)
{
    struct stat sb;

    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int64_t mtime_ms_of(const struct stat *sb)
{
    return (int64_t)sb->st_mtim.tv_sec * 1000 + sb->st_mtim.tv_nsec / 1000000;
}

static void fill_info(const struct stat *sb, struct blob_info *info)
{
    if (!info)
        return;
    info->size = (uint64_t)sb->st_size;
    info->mtime_ms = mtime_ms_of(sb);
    snprintf(info->etag, sizeof(info->etag), "\"%llx-%llx-%lx\"", (unsigned long long)sb->st_ino,
             (unsigned long long)sb->st_size, (unsigned long)sb->st_mtim.tv_sec);
}

static int lb_stat(struct blob_store *bs, const char *key, struct blob_info *info,
                   struct err *err)
{
    struct local *l = (struct local *)bs;
    char path[PATH_BYTES];
    struct stat sb;

    if (key_path(l, key, path, sizeof(path), err))
        return -1;
    if (stat(path, &sb) < 0)
        return errno == ENOENT || errno == ENOTDIR
                   ? 1
                   : err_sys(err, errno, "blob", "cannot read '%s'", key);
    if (!S_ISREG(sb.st_mode))
        return 1;
    fill_info(&sb, info);
    return 0;
}

/* ---- reading ---- */

struct blob_reader {
    int fd;
};

static int lb_reader_open(struct blob_store *bs, const char *key, struct blob_reader **r,
                          struct blob_info *info, struct err *err)
{
    struct local *l = (struct local *)bs;
    char path[PATH_BYTES];
    struct stat sb;
    int fd;

    *r = NULL;
    if (key_path(l, key, path, sizeof(path), err))
        return -1;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR
                   ? 1
                   : err_sys(err, errno, "blob", "cannot open '%s'", key);
    if (fstat(fd, &sb) < 0) {
        int e = errno;
        close(fd);
        return err_sys(err, e, "blob", "cannot read '%s'", key);
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return 1;
    }
    fill_info(&sb, info);
    *r = xcalloc(1, sizeof(**r));
    (*r)->fd = fd;
    return 0;
}

static ssize_t lb_reader_read(struct blob_reader *r, uint64_t off, void *buf, size_t n,
                              struct err *err)
{
    for (;;) {
        ssize_t got = pread(r->fd, buf, n, (off_t)off);
        if (got >= 0)
            return got;
        if (errno != EINTR)
            return err_sys(err, errno, "blob", "cannot read a stored file");
    }
}

static int lb_reader_fd(struct blob_reader *r)
{
    return r->fd;
}

static void lb_reader_close(struct blob_reader *r)
{
    if (!r)
        return;
    close(r->fd); /* read-only: nothing to lose */
    free(r);
}

/* ---- writing: temp name beside the key, fsync, rename, fsync the directory ---- */

struct blob_writer {
    int fd;
    char path[PATH_BYTES];
    char dir[PATH_BYTES];
    char tmp[PATH_BYTES + 40];
    struct err error; /* sticky: the first failure */
};

/* An existing key is kept; touching it tells the orphan sweep it was just wanted. */
static void refresh(const char *path)
{
    utimensat(AT_FDCWD, path, NULL, 0);
}

static int lb_writer_begin(struct blob_store *bs, const char *key, struct blob_writer **out,
                           struct err *err)
{
    struct local *l = (struct local *)bs;
    struct blob_writer *w = xcalloc(1, sizeof(*w));

    *out = NULL;
    w->fd = -1;
    if (key_path(l, key, w->path, sizeof(w->path), err) ||
        make_parent(w->path, w->dir, sizeof(w->dir), err))
        goto fail;
    /* The pid in the name lets a supervisor clear what a dead process left. */
    snprintf(w->tmp, sizeof(w->tmp), "%s.tmp.%ld.XXXXXX", w->path, (long)getpid());
    w->fd = mkostemp(w->tmp, O_CLOEXEC);
    if (w->fd < 0) {
        err_sys(err, errno, "blob", "cannot create a file for '%s'", key);
        goto fail;
    }
    *out = w;
    return 0;
fail:
    free(w);
    return -1;
}

static int lb_writer_write(struct blob_writer *w, const void *p, size_t n, struct err *err)
{
    if (err_is_set(&w->error) || fs_write_all(w->fd, p, n, &w->error)) {
        if (err)
            *err = w->error;
        return -1;
    }
    return 0;
}

static void lb_writer_abort(struct blob_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    unlink(w->tmp);
    free(w);
}

static int publish(struct blob_writer *w, struct err *err)
{
    if (err_is_set(&w->error)) {
        if (err)
            *err = w->error;
        return -1;
    }
    if (exists(w->path)) {
        refresh(w->path); /* content-addressed: the same bytes are already there */
        return 0;
    }
    if (fs_fsync(w->fd, err))
        return -1;
    if (close(w->fd) < 0) {
        w->fd = -1;
        return err_sys(err, errno, "blob", "cannot close '%s'", w->tmp);
    }
    w->fd = -1;
    if (fs_rename(w->tmp, w->path, err))
        return -1;
    return fs_fsync_dir(w->dir, err);
}

static int lb_writer_commit(struct blob_writer *w, struct err *err)
{
    int rc = publish(w, err);

    lb_writer_abort(w); /* after a rename the temp name is gone: unlink finds nothing */
    return rc;
}

/* ---- the local-only link (the intake hand-off) ---- */

static int lb_put_link(struct blob_store *bs, const char *key, const char *src_path,
                       struct err *err)
{
    struct local *l = (struct local *)bs;
    char path[PATH_BYTES], dir[PATH_BYTES], tmp[PATH_BYTES + 32];

    if (key_path(l, key, path, sizeof(path), err))
        return -1;
    if (exists(path)) {
        refresh(path);
        return 0;
    }
    if (make_parent(path, dir, sizeof(dir), err))
        return -1;
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    unlink(tmp);
    if (link(src_path, tmp) < 0) {
        if (errno == EXDEV || errno == EPERM || errno == EMLINK || errno == ENOTSUP)
            return 1;
        return err_sys(err, errno, "blob", "cannot link '%s'", key);
    }
    if (fs_rename(tmp, path, err)) {
        unlink(tmp);
        return -1;
    }
    return fs_fsync_dir(dir, err);
}

static int lb_remove(struct blob_store *bs, const char *key, struct err *err)
{
    struct local *l = (struct local *)bs;
    char path[PATH_BYTES];

    if (key_path(l, key, path, sizeof(path), err))
        return -1;
    return fs_unlink(path, err);
}

struct walk {
    void (*cb)(void *ctx, const char *path, int64_t mtime_ms);
    void *ctx;
    struct err *err;
    size_t root_len;
    bool temps;  /* report temporary files (".tmp.") instead of keys */
};

static int walk_dir(struct walk *w, char *path, size_t len, int depth);

/* One directory entry: recurse into directories, report complete files (or temporary ones). */
static int walk_entry(struct walk *w, char *path, size_t len, int depth, const char *name)
{
    struct stat sb;
    size_t n = strlen(name);
    bool tmp = strstr(name, ".tmp.") != NULL;

    if (name[0] == '.' || (tmp && !w->temps))
        return 0;
    if (len + 1 + n >= PATH_BYTES)
        return 0;  /* not one of our keys */
    path[len] = '/';
    memcpy(path + len + 1, name, n + 1);
    if (lstat(path, &sb) < 0)
        return errno == ENOENT ? 0 : err_sys(w->err, errno, "blob", "cannot read '%s'", path);
    if (S_ISDIR(sb.st_mode) && depth < KEY_DEPTH && !tmp)
        return walk_dir(w, path, len + 1 + n, depth + 1);
    if (S_ISREG(sb.st_mode) && depth == KEY_DEPTH && tmp == w->temps)
        w->cb(w->ctx, path, mtime_ms_of(&sb));
    return 0;
}

static int walk_dir(struct walk *w, char *path, size_t len, int depth)
{
    DIR *d;
    int rc = 0;

    path[len] = '\0';
    d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : err_sys(w->err, errno, "blob", "cannot list '%s'", path);
    for (;;) {
        struct dirent *de;
        errno = 0;
        de = readdir(d);
        if (!de) {
            if (errno)
                rc = err_sys(w->err, errno, "blob", "cannot list '%s'", path);
            break;
        }
        rc = walk_entry(w, path, len, depth, de->d_name);
        path[len] = '\0';
        if (rc)
            break;
    }
    closedir(d);
    return rc;
}

/* Walks the tree under the root; the callback gets each file's full path. */
static int walk_root(struct local *l, struct walk *w)
{
    char path[PATH_BYTES];

    w->root_len = strlen(l->root);
    if (w->root_len >= sizeof(path))
        return err_set(w->err, ERR_PERMANENT, "blob", "blob root path is too long");
    memcpy(path, l->root, w->root_len + 1);
    return walk_dir(w, path, w->root_len, 1);
}

struct list_ctx {
    void (*cb)(void *ctx, const char *key, int64_t mtime_ms);
    void *ctx;
    size_t root_len;
};

static void list_one(void *ctx, const char *path, int64_t mtime_ms)
{
    struct list_ctx *lc = ctx;

    lc->cb(lc->ctx, path + lc->root_len + 1, mtime_ms);
}

static int lb_list(struct blob_store *bs, void (*cb)(void *ctx, const char *key, int64_t mtime_ms),
                   void *ctx, struct err *err)
{
    struct local *l = (struct local *)bs;
    struct list_ctx lc = {cb, ctx, strlen(l->root)};
    struct walk w = {.cb = list_one, .ctx = &lc, .err = err};

    return walk_root(l, &w);
}

struct temps {
    char mark[32];  /* ".tmp.<pid>" of the writer, "" for every writer */
    size_t removed;
};

static void remove_temp(void *ctx, const char *path, int64_t mtime_ms)
{
    struct temps *t = ctx;
    const char *at = t->mark[0] ? strstr(path, t->mark) : NULL;
    size_t n = strlen(t->mark);

    (void)mtime_ms;
    /* "NAME.tmp.<pid>" (a link) or "NAME.tmp.<pid>.XXXXXX" (a write). */
    if (t->mark[0] && (!at || (at[n] != '\0' && at[n] != '.')))
        return;
    if (fs_unlink(path, NULL) == 0)
        t->removed++;
}

static int lb_remove_temps(struct blob_store *bs, long pid, size_t *removed, struct err *err)
{
    struct temps t = {.removed = 0};
    struct walk w = {.cb = remove_temp, .ctx = &t, .err = err, .temps = true};
    int rc;

    if (pid > 0)
        snprintf(t.mark, sizeof(t.mark), ".tmp.%ld", pid);
    rc = walk_root((struct local *)bs, &w);
    *removed = t.removed;
    return rc;
}

static void lb_close(struct blob_store *bs)
{
    struct local *l = (struct local *)bs;

    if (!l)
        return;
    free(l->root);
    free(l);
}

static const struct blob_ops local_ops = {
    .close = lb_close,
    .stat = lb_stat,
    .reader_open = lb_reader_open,
    .reader_read = lb_reader_read,
    .reader_fd = lb_reader_fd,
    .reader_close = lb_reader_close,
    .writer_begin = lb_writer_begin,
    .writer_write = lb_writer_write,
    .writer_commit = lb_writer_commit,
    .writer_abort = lb_writer_abort,
    .remove = lb_remove,
    .list = lb_list,
    .remove_temps = lb_remove_temps,
    .put_link = lb_put_link,
};

int blob_local_open(const char *root, struct blob_store **out, struct err *err)
{
    struct local *l;
    size_t len = root ? strlen(root) : 0;

    *out = NULL;
    while (len > 1 && root[len - 1] == '/')
        len--;
    if (len == 0 || len >= PATH_BYTES - BLOB_KEY_MAX - 2)
        return err_set(err, ERR_PERMANENT, "blob", "bad blob directory");
    l = xcalloc(1, sizeof(*l));
    l->root = xstrndup(root, len);
    if (fs_mkdir_p(l->root, 0700, err)) {
        lb_close(&l->base);
        return -1;
    }
    l->base.ops = &local_ops;
    *out = &l->base;
    return 0;
}
