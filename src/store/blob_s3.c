/*
 * blob_s3: the S3 backend of the byte-stream blob interface (blob.h), over s3.c.
 * Keys are object keys under the configured prefix. A writer holds up to one part in
 * memory: a blob that fits is one PutObject at commit; a bigger one becomes a multipart
 * upload whose parts go out as they fill, completed at commit (S3 publishes the object
 * then, whole, or never) and aborted on abort or on any failure. A reader fetches
 * ranges of at least BLOB_S3_READAHEAD bytes and serves later reads inside that window
 * from memory. presign_get hands out presigned GET URLs (s3_presign_get). Not here: caching between readers, and local file descriptors (reader_fd
 * is always -1).
 *
 * Threads: the store holds only the s3 client (thread-safe) and stale_ms (immutable);
 * readers and writers are per caller, one thread at a time.
 */
#include "store/blob_s3.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/timeutil.h"
#include "base/xalloc.h"

struct s3blob {
    struct blob_store base;
    struct s3 *s3;
    int64_t stale_ms;
};

struct blob_reader {
    struct s3blob *bs;
    char *key;
    struct blob_info info;
    char *win;            /* BLOB_S3_READAHEAD bytes, allocated at the first read */
    uint64_t win_off;     /* object offset of win[0] */
    size_t win_len;       /* valid bytes in win */
};

/*
 * Writer states (the sticky error ends any of them in FAILED):
 *
 *   BUFFERING --write fills a part--> MULTIPART (s3_mpu_create, s3_mpu_part)
 *   BUFFERING --commit--> s3_put, freed          MULTIPART --commit--> last part,
 *   any --abort or failure--> s3_mpu_abort when MULTIPART, freed    s3_mpu_complete
 */
struct blob_writer {
    struct s3blob *bs;
    char *key;
    char *buf;            /* grows to part_size as bytes come (most blobs are small) */
    size_t len, cap;
    bool multipart;
    char upload_id[S3_UPLOAD_ID_MAX];
    struct s3_part *parts;
    size_t nparts;
    struct err sticky;    /* the first failure; later calls return it */
    bool failed;
};

static struct s3blob *of(struct blob_store *bs)
{
    return (struct s3blob *)bs;
}

static void info_from(struct blob_info *info, const struct s3_object *o)
{
    info->size = o->size;
    memcpy(info->etag, o->etag, sizeof(info->etag));
    info->mtime_ms = o->mtime_ms;
}

static int bs_stat(struct blob_store *bs, const char *key, struct blob_info *info,
                   struct err *err)
{
    struct s3_object o = {0};
    int rc = s3_head(of(bs)->s3, key, &o, err);

    if (rc == 0 && info)
        info_from(info, &o);
    return rc;
}

/* --- readers ------------------------------------------------------------------------- */

static int reader_open(struct blob_store *bs, const char *key, struct blob_reader **out,
                       struct blob_info *info, struct err *err)
{
    struct blob_info got;
    struct blob_reader *r;
    int rc;

    *out = NULL;
    rc = bs_stat(bs, key, &got, err);
    if (rc != 0)
        return rc;
    r = xcalloc(1, sizeof(*r));
    r->bs = of(bs);
    r->key = xstrdup(key);
    r->info = got;
    if (info)
        *info = got;
    *out = r;
    return 0;
}

struct sink {
    char *p;
    size_t cap, len;
};

static int to_sink(void *ctx, const void *p, size_t n)
{
    struct sink *s = ctx;

    if (n > s->cap - s->len)
        return -1;  /* more than asked for: the object changed under us */
    memcpy(s->p + s->len, p, n);
    s->len += n;
    return 0;
}

/* Bytes [off, off+n) of the object into dst (n bytes available there): bytes got. */
static ssize_t fetch(struct blob_reader *r, uint64_t off, char *dst, size_t n, struct err *err)
{
    struct sink s = {dst, n, 0};
    int rc = s3_get(r->bs->s3, r->key, off, n, to_sink, &s, NULL, err);

    if (rc == 1)
        return err_set(err, ERR_TRANSIENT, "store", "blob '%s' disappeared while read", r->key);
    return rc == 0 ? (ssize_t)s.len : -1;
}

static ssize_t reader_read(struct blob_reader *r, uint64_t off, void *buf, size_t n,
                           struct err *err)
{
    uint64_t size = r->info.size;
    ssize_t got;

    if (off >= size || n == 0)
        return 0;
    if (n > size - off)
        n = (size_t)(size - off);
    if (off >= r->win_off && off + n <= r->win_off + r->win_len) {
        memcpy(buf, r->win + (off - r->win_off), n);
        return (ssize_t)n;
    }
    if (n >= BLOB_S3_READAHEAD)
        return fetch(r, off, buf, n, err);  /* big reads go straight to the caller */
    if (!r->win)
        r->win = xmalloc(BLOB_S3_READAHEAD);
    r->win_len = 0;
    got = fetch(r, off, r->win, size - off < BLOB_S3_READAHEAD ? (size_t)(size - off)
                                                                : BLOB_S3_READAHEAD, err);
    if (got < 0)
        return -1;
    r->win_off = off;
    r->win_len = (size_t)got;
    if (n > r->win_len)
        n = r->win_len;
    memcpy(buf, r->win, n);
    return (ssize_t)n;
}

static int reader_fd(struct blob_reader *r)
{
    (void)r;
    return -1;
}

static void reader_close(struct blob_reader *r)
{
    if (!r)
        return;
    free(r->win);
    free(r->key);
    free(r);
}

/* --- writers --------------------------------------------------------------------------- */

static int writer_begin(struct blob_store *bs, const char *key, struct blob_writer **out,
                        struct err *err)
{
    struct blob_writer *w = xcalloc(1, sizeof(*w));

    (void)err;
    w->bs = of(bs);
    w->key = xstrdup(key);
    *out = w;
    return 0;
}

/* Sends the buffer as the next part (starting the multipart upload first). */
static int flush_part(struct blob_writer *w)
{
    struct s3 *s3 = w->bs->s3;

    if (!w->multipart) {
        if (s3_mpu_create(s3, w->key, w->upload_id, &w->sticky))
            return -1;
        w->multipart = true;
        w->parts = xcalloc(S3_PARTS_MAX, sizeof(*w->parts));
    }
    if (w->nparts == S3_PARTS_MAX)
        return err_set(&w->sticky, ERR_PERMANENT, "store", "blob '%s': over %d parts", w->key,
                       S3_PARTS_MAX);
    w->parts[w->nparts].number = (int)w->nparts + 1;
    if (s3_mpu_part(s3, w->key, w->upload_id, &w->parts[w->nparts], w->buf, w->len,
                    &w->sticky))
        return -1;
    w->nparts++;
    w->len = 0;
    return 0;
}

static int sticky(struct blob_writer *w, struct err *err)
{
    if (err)
        *err = w->sticky;
    return -1;
}

/* Room for need bytes in w->buf: doubling from 64 KB, at most part bytes. */
static void grow(struct blob_writer *w, size_t need, size_t part)
{
    size_t cap = w->cap ? w->cap : 64 * 1024;

    if (need <= w->cap)
        return;
    while (cap < need)
        cap *= 2;
    if (cap > part)
        cap = part;
    w->buf = xrealloc(w->buf, cap);
    w->cap = cap;
}

static int writer_write(struct blob_writer *w, const void *p, size_t n, struct err *err)
{
    size_t part = s3_config(w->bs->s3)->part_size;
    const char *src = p;

    if (w->failed)
        return sticky(w, err);
    while (n > 0) {
        size_t k = part - w->len < n ? part - w->len : n;

        grow(w, w->len + k, part);
        memcpy(w->buf + w->len, src, k);
        w->len += k;
        src += k;
        n -= k;
        /* a full part goes out only when more follows: the last one may be the only one */
        if (w->len == part && n > 0 && flush_part(w)) {
            w->failed = true;
            return sticky(w, err);
        }
    }
    return 0;
}

static void writer_free(struct blob_writer *w)
{
    free(w->parts);
    free(w->buf);
    free(w->key);
    free(w);
}

static void writer_abort(struct blob_writer *w)
{
    if (!w)
        return;
    if (w->multipart)
        s3_mpu_abort(w->bs->s3, w->key, w->upload_id, NULL);
    writer_free(w);
}

static int writer_commit(struct blob_writer *w, struct err *err)
{
    struct s3 *s3 = w->bs->s3;
    int rc = -1;

    if (w->failed)
        goto out;
    if (!w->multipart) {
        rc = s3_put(s3, w->key, w->buf, w->len, &w->sticky);
    } else if (w->len == 0 || flush_part(w) == 0) {
        rc = s3_mpu_complete(s3, w->key, w->upload_id, w->parts, w->nparts, &w->sticky);
    }
out:
    if (rc != 0) {
        sticky(w, err);
        writer_abort(w);
        return -1;
    }
    writer_free(w);
    return 0;
}

/* --- keys ------------------------------------------------------------------------------- */

static int bs_remove(struct blob_store *bs, const char *key, struct err *err)
{
    return s3_delete(of(bs)->s3, key, err);
}

struct list_ctx {
    void (*cb)(void *ctx, const char *key, int64_t mtime_ms);
    void *ctx;
};

static void on_object(void *ctx, const char *key, const struct s3_object *o)
{
    struct list_ctx *l = ctx;

    l->cb(l->ctx, key, o->mtime_ms);
}

static int bs_list(struct blob_store *bs, void (*cb)(void *ctx, const char *key, int64_t mtime_ms),
                   void *ctx, struct err *err)
{
    struct list_ctx l = {cb, ctx};

    return s3_list(of(bs)->s3, "", on_object, &l, err);
}

struct stale {
    int64_t before;
    size_t n, cap;
    char **keys, **ids;
};

static void on_upload(void *ctx, const char *key, const char *upload_id, int64_t initiated_ms)
{
    struct stale *s = ctx;

    if (initiated_ms > s->before)
        return;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->keys = xrealloc(s->keys, s->cap * sizeof(*s->keys));
        s->ids = xrealloc(s->ids, s->cap * sizeof(*s->ids));
    }
    s->keys[s->n] = xstrdup(key);
    s->ids[s->n] = xstrdup(upload_id);
    s->n++;
}

/* Aborts the multipart uploads older than stale_ms (listed first, aborted after, so the
 * listing's markers never point at something gone). */
static int remove_temps(struct blob_store *bs, long pid, size_t *removed, struct err *err)
{
    struct s3blob *b = of(bs);
    struct stale s = {time_now_ms() - b->stale_ms, 0, 0, NULL, NULL};
    int rc;

    (void)pid;
    if (removed)
        *removed = 0;
    rc = s3_mpu_list(b->s3, "", on_upload, &s, err);
    for (size_t i = 0; i < s.n; i++) {
        if (rc == 0 && s3_mpu_abort(b->s3, s.keys[i], s.ids[i], err) == 0 && removed)
            (*removed)++;
        else
            rc = -1;
        free(s.keys[i]);
        free(s.ids[i]);
    }
    free(s.keys);
    free(s.ids);
    return rc;
}

static int presign_get(struct blob_store *bs, const char *key, int expires_s,
                       const char *content_type, const char *disposition, char *out, size_t n,
                       struct err *err)
{
    return s3_presign_get(of(bs)->s3, key, time_now_ms() / 1000, expires_s, content_type,
                          disposition, out, n, err);
}

static void bs_close(struct blob_store *bs)
{
    if (!bs)
        return;
    s3_free(of(bs)->s3);
    free(bs);
}

static const struct blob_ops s3_ops = {
    .close = bs_close,
    .stat = bs_stat,
    .reader_open = reader_open,
    .reader_read = reader_read,
    .reader_fd = reader_fd,
    .reader_close = reader_close,
    .writer_begin = writer_begin,
    .writer_write = writer_write,
    .writer_commit = writer_commit,
    .writer_abort = writer_abort,
    .remove = bs_remove,
    .list = bs_list,
    .remove_temps = remove_temps,
    .presign_get = presign_get,
};

int blob_s3_open(const struct s3_config *cfg, int64_t stale_ms, struct blob_store **out,
                 struct err *err)
{
    struct s3blob *b;
    struct s3 *s3;

    *out = NULL;
    if (s3_open(cfg, &s3, err))
        return -1;
    b = xcalloc(1, sizeof(*b));
    b->base.ops = &s3_ops;
    b->s3 = s3;
    b->stale_ms = stale_ms;
    *out = &b->base;
    return 0;
}
