/*
 * blob: the helpers of blob.h written once over the ops (any backend), and
 * blob_open(), which picks the backend from a --blobs spec. Stateless: any
 * thread may call anything.
 */
#include "store/blob.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "base/xalloc.h"
#include "store/blob_s3.h"

/* Bytes moved per read/write when copying a file into a writer: large enough
 * that an S3 part fills in a few calls, small enough for a worker's stack. */
#define COPY_CHUNK (256 * 1024)

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

int blob_put_data(struct blob_store *bs, const char *key, const void *data, size_t len,
                  struct err *err)
{
    struct blob_writer *w = NULL;

    if (bs->ops->writer_begin(bs, key, &w, err))
        return -1;
    if (len > 0 && bs->ops->writer_write(w, data, len, err)) {
        bs->ops->writer_abort(w);
        return -1;
    }
    return bs->ops->writer_commit(w, err);
}

int blob_copy_fd(struct blob_store *bs, const char *key, int fd, struct err *err)
{
    struct blob_writer *w = NULL;
    unsigned char *chunk = xmalloc(COPY_CHUNK);
    off_t off = 0;
    int rc = -1;

    if (bs->ops->writer_begin(bs, key, &w, err))
        goto out;
    for (;;) {
        ssize_t n = pread(fd, chunk, COPY_CHUNK, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err_sys(err, errno, "blob", "cannot read the file for '%s'", key);
            goto out;
        }
        if (n == 0)
            break;
        if (bs->ops->writer_write(w, chunk, (size_t)n, err))
            goto out;
        off += n;
    }
    rc = bs->ops->writer_commit(w, err);
    w = NULL; /* commit freed it */
out:
    if (w)
        bs->ops->writer_abort(w);
    free(chunk);
    return rc;
}

int blob_put_file(struct blob_store *bs, const char *key, const char *path, struct err *err)
{
    int fd, rc;

    if (bs->ops->put_link) {
        rc = bs->ops->put_link(bs, key, path, err);
        if (rc <= 0)
            return rc;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_sys(err, errno, "blob", "cannot open the file for '%s'", key);
    rc = blob_copy_fd(bs, key, fd, err);
    close(fd); /* read-only: nothing to lose */
    return rc;
}

int blob_read_all(struct blob_store *bs, const char *key, void *buf, size_t n, size_t *got,
                  struct err *err)
{
    struct blob_reader *r = NULL;
    int rc = bs->ops->reader_open(bs, key, &r, NULL, err);

    *got = 0;
    if (rc)
        return rc;
    while (*got < n) {
        ssize_t k = bs->ops->reader_read(r, *got, (char *)buf + *got, n - *got, err);
        if (k < 0) {
            rc = -1;
            break;
        }
        if (k == 0)
            break;
        *got += (size_t)k;
    }
    bs->ops->reader_close(r);
    return rc;
}

/* s3://bucket/prefix?endpoint=URL&region=R, keys from the environment (config.h). */
static int open_s3(const char *spec, struct blob_store **out, struct err *err)
{
    struct s3_config cfg;
    const char *access_key, *secret_key;

    config_s3_keys(&access_key, &secret_key);
    if (s3_config_parse(&cfg, spec, access_key, secret_key, err))
        return -1;
    return blob_s3_open(&cfg, BLOB_S3_STALE_UPLOAD_MS, out, err);
}

int blob_open(const char *spec, struct blob_store **out, struct err *err)
{
    *out = NULL;
    if (!spec || !spec[0])
        return err_set(err, ERR_PERMANENT, "blob", "no blob store given (--blobs)");
    if (!strncmp(spec, "s3://", 5))
        return open_s3(spec, out, err);
    if (!strncmp(spec, "file://", 7))
        spec += 7;
    else if (strstr(spec, "://"))
        return err_set(err, ERR_PERMANENT, "blob",
                       "unknown blob store '%.64s': use a directory or s3://bucket/prefix", spec);
    return blob_local_open(spec, out, err);
}
