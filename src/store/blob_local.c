/*
 * blob_local: the local-directory backend of blob.h, and blob_key().
 * A key names ROOT/KEY. Writers publish with temp name + fsync + rename +
 * fsync of the directory, so a key is a complete file or nothing; temporary
 * names contain ".tmp." and list() skips them. No state is shared between
 * calls beyond the root path (immutable), so any thread may call anything.
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

static const char *const kind_prefix[] = {[BLOB_ORIGINAL] = "o", [BLOB_THUMB] = "t",
                                          [BLOB_PREVIEW] = "p"};
static const char *const kind_suffix[] = {[BLOB_ORIGINAL] = "", [BLOB_THUMB] = ".jpg",
                                          [BLOB_PREVIEW] = ".jpg"};

void blob_key(const char *sha256, enum blob_kind kind, char out[BLOB_KEY_MAX])
{
    out[0] = '\0';
    if (!sha256 || strlen(sha256) < 2 || (unsigned)kind > BLOB_PREVIEW)
        return;
    snprintf(out, BLOB_KEY_MAX, "%s/%.2s/%s%s", kind_prefix[kind], sha256, sha256,
             kind_suffix[kind]);
}

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

static int lb_put_data(struct blob_store *bs, const char *key, const void *data, size_t len,
                       struct err *err)
{
    struct local *l = (struct local *)bs;
    char path[PATH_BYTES], dir[PATH_BYTES];

    if (key_path(l, key, path, sizeof(path), err))
        return -1;
    if (exists(path))
        return 0;  /* content-addressed: the same bytes are already there */
    if (make_parent(path, dir, sizeof(dir), err))
        return -1;
    return fs_write_file_atomic(path, data, len, err);
}

/* Same file system: make src durable, rename it into place, sync the directory.
 * Returns 1 when the rename cannot work across file systems (EXDEV). */
static int move_into(const char *src, const char *path, const char *dir, struct err *err)
{
    struct err e = {0};
    int fd = open(src, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return err_sys(err, errno, "blob", "cannot open '%s'", src);
    if (fs_fsync(fd, err)) {
        close(fd);
        return -1;
    }
    if (close(fd) < 0)
        return err_sys(err, errno, "blob", "cannot close '%s'", src);
    if (fs_rename(src, path, &e)) {
        if (e.sys_errno == EXDEV)
            return 1;
        if (err)
            *err = e;
        return -1;
    }
    return fs_fsync_dir(dir, err);
}

/* A second name for src under path (no copy): 0, 1 when the file system cannot
 * (another device, no hard links), -1 on error. src must already be durable. */
static int link_into(const char *src, const char *path, const char *dir, struct err *err)
{
    char tmp[PATH_BYTES + 32];

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= sizeof(tmp))
        return err_set(err, ERR_PERMANENT, "blob", "path too long");
    unlink(tmp);
    if (link(src, tmp) < 0) {
        if (errno == EXDEV || errno == EPERM || errno == EMLINK || errno == ENOTSUP)
            return 1;
        return err_sys(err, errno, "blob", "cannot link '%s'", src);
    }
    if (fs_rename(tmp, path, err)) {
        unlink(tmp);
        return -1;
    }
    return fs_fsync_dir(dir, err);
}

static int copy_into(const char *src, const char *path, struct err *err)
{
    int fd = open(src, O_RDONLY | O_CLOEXEC);
    int rc;

    if (fd < 0)
        return err_sys(err, errno, "blob", "cannot open '%s'", src);
    rc = fs_copy_fd_atomic(fd, path, err);
    close(fd);  /* read-only: nothing to lose */
    return rc;
}

static int lb_put_file(struct blob_store *bs, const char *key, const char *src_path, int move,
                       struct err *err)
{
    struct local *l = (struct local *)bs;
    char path[PATH_BYTES], dir[PATH_BYTES];
    int r;

    if (key_path(l, key, path, sizeof(path), err))
        return -1;
    if (exists(path))
        return move ? fs_unlink(src_path, err) : 0;
    if (make_parent(path, dir, sizeof(dir), err))
        return -1;
    /* Moving renames; keeping the source links (the spool file stays until the
     * caller has recorded the blob). Either falls back to a copy across devices. */
    r = move ? move_into(src_path, path, dir, err) : link_into(src_path, path, dir, err);
    if (r <= 0)
        return r;
    if (copy_into(src_path, path, err))
        return -1;
    return move ? fs_unlink(src_path, err) : 0;
}

static int lb_path(struct blob_store *bs, const char *key, char *out, size_t n)
{
    struct local *l = (struct local *)bs;

    if (key_path(l, key, out, n, NULL))
        return -1;
    return exists(out) ? 0 : -1;
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
    void (*cb)(void *ctx, const char *key);
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
        w->cb(w->ctx, path);
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
    void (*cb)(void *ctx, const char *key);
    void *ctx;
    size_t root_len;
};

static void list_one(void *ctx, const char *path)
{
    struct list_ctx *lc = ctx;

    lc->cb(lc->ctx, path + lc->root_len + 1);
}

static int lb_list(struct blob_store *bs, void (*cb)(void *ctx, const char *key), void *ctx,
                   struct err *err)
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

static void remove_temp(void *ctx, const char *path)
{
    struct temps *t = ctx;
    const char *at = t->mark[0] ? strstr(path, t->mark) : NULL;
    size_t n = strlen(t->mark);

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
    .put_file = lb_put_file,
    .put_data = lb_put_data,
    .path = lb_path,
    .remove = lb_remove,
    .list = lb_list,
    .remove_temps = lb_remove_temps,
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
