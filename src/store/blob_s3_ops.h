/*
 * blob_s3_ops: the byte-stream blob interface as agreed for the new store/blob.h
 * (/work/notes/blob-interface.h), copied here so that blob_s3.c can be written and
 * tested while blob.h is being rewritten elsewhere. NEEDSWORK(#10): at merge, blob_s3.c
 * includes store/blob.h instead and this header goes; the declarations below are the
 * contract's, unchanged, plus blob_s3_open().
 */
#ifndef SHOEBOX_STORE_BLOB_S3_OPS_H
#define SHOEBOX_STORE_BLOB_S3_OPS_H

#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"
#include "store/s3.h"

struct blob_store;
struct blob_reader;
struct blob_writer;

struct blob_info {
    uint64_t size;
    char etag[72];        /* quoted strong validator, e.g. "\"<hex>\"" */
    int64_t mtime_ms;     /* last modification, ms since epoch (0 if unknown) */
};

struct blob_ops {
    void (*close)(struct blob_store *bs);
    int (*stat)(struct blob_store *bs, const char *key, struct blob_info *info, struct err *err);
    int (*reader_open)(struct blob_store *bs, const char *key, struct blob_reader **r,
                       struct blob_info *info, struct err *err);
    ssize_t (*reader_read)(struct blob_reader *r, uint64_t off, void *buf, size_t n,
                           struct err *err);
    int (*reader_fd)(struct blob_reader *r);
    void (*reader_close)(struct blob_reader *r);
    int (*writer_begin)(struct blob_store *bs, const char *key, struct blob_writer **w,
                        struct err *err);
    int (*writer_write)(struct blob_writer *w, const void *p, size_t n, struct err *err);
    int (*writer_commit)(struct blob_writer *w, struct err *err);
    void (*writer_abort)(struct blob_writer *w);
    int (*remove)(struct blob_store *bs, const char *key, struct err *err);
    int (*list)(struct blob_store *bs, void (*cb)(void *ctx, const char *key, int64_t mtime_ms),
                void *ctx, struct err *err);
    int (*remove_temps)(struct blob_store *bs, long pid, size_t *removed, struct err *err);
};

struct blob_store {
    const struct blob_ops *ops;
};

/* Incomplete multipart uploads older than this are a crashed writer's (remove_temps):
 * an 8 MB part takes well under a minute even on a slow uplink, so an upload an hour
 * old is no live writer's. */
#define BLOB_S3_STALE_UPLOAD_MS (3600 * 1000)
/* Bytes a reader fetches at once (and keeps) when asked for less: thumbnailing reads a
 * JPEG in 64 KB pieces, and one request per piece would cost a round trip each. */
#define BLOB_S3_READAHEAD (4u * 1024 * 1024)

/* The S3 backend over a client for cfg: writers buffer one part (cfg->part_size) and
 * switch to a multipart upload past it; readers do ranged GETs with read-ahead;
 * remove_temps aborts multipart uploads initiated more than stale_ms ago (pid is not
 * used: S3 uploads carry no pid). 0 and *out (free with ops->close), or -1 + err.
 * Thread-safe like s3.h: any thread may use the store; a reader or writer is used by one
 * thread at a time. */
int blob_s3_open(const struct s3_config *cfg, int64_t stale_ms, struct blob_store **out,
                 struct err *err);

#endif
