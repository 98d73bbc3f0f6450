/* assets: see assets.h. The embedded table is immutable; disk reads are per call. */
#include "http/assets.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/str.h"

/* Template files are small; a bigger one on disk is a mistake, not an asset. */
#define ASSET_DISK_MAX (4 * 1024 * 1024)

static const struct {
    const char *ext, *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".jpg", "image/jpeg"},
    {".webp", "image/webp"},
    {".woff2", "font/woff2"},
    {".txt", "text/plain; charset=utf-8"},
};

const char *assets_content_type(const char *path)
{
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (str_ends_with(path, types[i].ext))
            return types[i].type;
    return "application/octet-stream";
}

const struct asset *assets_find(const char *path)
{
    size_t lo = 0, hi = assets_embedded_count;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(path, assets_embedded[mid].path);
        if (c == 0)
            return &assets_embedded[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

bool assets_path_safe(const char *path)
{
    const char *seg = path;

    if (!path || !*path || *path == '/')
        return false;
    for (const char *p = path;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '/' || c == '\0') {
            size_t len = (size_t)(p - seg);
            if (len == 0 || (len == 2 && seg[0] == '.' && seg[1] == '.') ||
                (len == 1 && seg[0] == '.'))
                return false;
            if (c == '\0')
                return true;
            seg = p + 1;
        } else if (c < 0x20 || c == 0x7f || c == '\\') {
            return false;
        }
    }
}

static int read_disk(const char *dir, const char *path, struct buf *out, struct err *err)
{
    char full[4096];
    struct stat stbuf;
    int fd = -1, rc = -1;
    int n = snprintf(full, sizeof(full), "%s/%s", dir, path);

    if (n < 0 || (size_t)n >= sizeof(full))
        return err_set(err, ERR_PERMANENT, "assets", "path too long: '%s'", path);
    fd = open(full, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_sys(err, errno, "assets", "cannot open '%s'", full);
        goto out;
    }
    if (fstat(fd, &stbuf) < 0 || !S_ISREG(stbuf.st_mode) || stbuf.st_size > ASSET_DISK_MAX) {
        err_set(err, ERR_PERMANENT, "assets", "'%s' is not a regular file under 4 MB", full);
        goto out;
    }
    for (;;) {
        char chunk[8192];
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            err_sys(err, errno, "assets", "cannot read '%s'", full);
            goto out;
        }
        if (r == 0)
            break;
        buf_add(out, chunk, (size_t)r);
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

int assets_read(const char *dir, const char *path, struct buf *out, struct err *err)
{
    const struct asset *a;

    if (!assets_path_safe(path))
        return err_set(err, ERR_PERMANENT, "assets", "unsafe asset path '%s'", path);
    if (dir && *dir)
        return read_disk(dir, path, out, err);
    a = assets_find(path);
    if (!a)
        return err_set(err, ERR_PERMANENT, "assets", "no embedded asset '%s'", path);
    buf_add(out, a->data, a->len);
    return 0;
}
