/*
 * blob: content-addressed object storage as byte streams (originals,
 * thumbnails, previews). A key is a relative name built by blob_key(); nothing
 * in the interface is a path, so a backend may keep its objects anywhere:
 * the local directory (blob_local.c: ROOT/KEY, the default) or an
 * S3-compatible object store (blob_s3.c). A key names the complete bytes or
 * nothing: writers publish atomically on commit.
 *
 * Helpers written once over the ops live in blob.c (blob_put_data,
 * blob_copy_fd, blob_put_file, blob_open). Every op is thread-safe; several
 * processes (and machines, for S3) may share one store.
 */
#ifndef SHOEBOX_STORE_BLOB_H
#define SHOEBOX_STORE_BLOB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"

#define BLOB_KEY_MAX 160

enum blob_kind { BLOB_ORIGINAL, BLOB_THUMB, BLOB_PREVIEW };

struct blob_store;
struct blob_reader;
struct blob_writer;

struct blob_info {
    uint64_t size;
    char etag[72];    /* quoted strong validator, e.g. "\"<hex>\"" */
    int64_t mtime_ms; /* last modification, ms since epoch (0 if unknown) */
};

struct blob_ops {
    void (*close)(struct blob_store *bs);
    /* 0 and *info when key exists; 1 when it does not; -1 + err on failure. */
    int (*stat)(struct blob_store *bs, const char *key, struct blob_info *info, struct err *err);
    /* Opens key for reading (1 when it does not exist, like stat; *r stays NULL). The reader
     * reads at any offset (pread-like): read returns bytes read (0 at end), -1 + err.
     * info may be NULL. Free with reader_close. A reader is used by one thread at a time. */
    int (*reader_open)(struct blob_store *bs, const char *key, struct blob_reader **r,
                       struct blob_info *info, struct err *err);
    ssize_t (*reader_read)(struct blob_reader *r, uint64_t off, void *buf, size_t n,
                           struct err *err);
    /* A file descriptor of the whole object when the backend is local (sendfile, mmap,
     * libvips from a file), else -1. Owned by the reader: valid until reader_close. */
    int (*reader_fd)(struct blob_reader *r);
    void (*reader_close)(struct blob_reader *r);
    /* Writes key: begin, write any number of times, commit publishes it atomically (the key
     * names the complete bytes or nothing; an existing key is kept, same content by
     * construction); abort drops everything written. commit and abort free w. */
    int (*writer_begin)(struct blob_store *bs, const char *key, struct blob_writer **w,
                        struct err *err);
    int (*writer_write)(struct blob_writer *w, const void *p, size_t n, struct err *err);
    int (*writer_commit)(struct blob_writer *w, struct err *err);
    void (*writer_abort)(struct blob_writer *w);
    /* Removes key; a missing key is not an error. */
    int (*remove)(struct blob_store *bs, const char *key, struct err *err);
    /* Calls cb for every stored key with its modification time (orphan sweep, grace age). */
    int (*list)(struct blob_store *bs, void (*cb)(void *ctx, const char *key, int64_t mtime_ms),
                void *ctx, struct err *err);
    /* Removes what writes cut short by a crash left behind (local: temp files; S3: incomplete
     * multipart uploads older than an hour); *removed counts them. Local backend: pid 0 =
     * all of them, only while no writer runs (the one-server startup sweep); otherwise
     * those of that (dead) process, whose pid is in their names. */
    int (*remove_temps)(struct blob_store *bs, long pid, size_t *removed, struct err *err);

    /* Optional (NULL unless the backend is the local directory): stores key as a second
     * name of the durable local file at src_path (a hard link, no copy; src stays). 0 on
     * success (also when key already existed: kept, its modification time refreshed), 1
     * when the file system cannot (another device, no hard links): copy instead, -1 + err. */
    int (*put_link)(struct blob_store *bs, const char *key, const char *src_path,
                    struct err *err);

    /* Optional (NULL unless the backend is S3): a URL from which anyone holding it may GET
     * key straight from the object store for the next expires_s seconds, no credentials
     * needed (a presigned URL, SigV4 query signing); the answer carries content_type and
     * disposition (Content-Disposition) when not NULL. Nothing is sent to the store.
     * 0 and out, or -1 + err (the URL does not fit in n bytes, expires_s out of range). */
    int (*presign_get)(struct blob_store *bs, const char *key, int expires_s,
                       const char *content_type, const char *disposition, char *out, size_t n,
                       struct err *err);
};

struct blob_store {
    const struct blob_ops *ops;
};

/* Key for sha256 hex and kind: "o/ab/<sha>", "t/ab/<sha>.jpg", "p/ab/<sha>.jpg"; "" when
 * sha256 is too short or kind unknown. */
void blob_key(const char *sha256, enum blob_kind kind, char out[BLOB_KEY_MAX]);

/* ---- helpers over the ops (blob.c) ---- */

/* Writes len bytes of data as key (begin, write, commit; abort on failure). */
int blob_put_data(struct blob_store *bs, const char *key, const void *data, size_t len,
                  struct err *err);
/* Copies the whole content of the open local file fd (from offset 0, pread: the file
 * offset is untouched) into key. */
int blob_copy_fd(struct blob_store *bs, const char *key, int fd, struct err *err);
/* Stores the durable local file at path as key: a link where the backend has put_link
 * and the file system allows it, else a copy (blob_copy_fd). path stays. */
int blob_put_file(struct blob_store *bs, const char *key, const char *path, struct err *err);
/* Reads up to n bytes of key from offset 0 until the end or n; *got gets the count.
 * 1 when key does not exist, -1 + err. */
int blob_read_all(struct blob_store *bs, const char *key, void *buf, size_t n, size_t *got,
                  struct err *err);

/*
 * Opens the blob store named by spec: "s3://bucket/prefix?endpoint=URL&region=R" (S3,
 * blob_s3.c; keys from the environment, config_s3_keys()), "file:///dir" or a plain
 * directory path (the local backend, created if missing). Free with (*out)->ops->close. -1 + err on a bad spec.
 */
int blob_open(const char *spec, struct blob_store **out, struct err *err);

/* Local directory backend rooted at root (created if missing). Free with ops->close. */
int blob_local_open(const char *root, struct blob_store **out, struct err *err);

#endif
