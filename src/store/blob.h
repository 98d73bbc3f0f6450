/*
 * blob: content-addressed file storage (originals, thumbnails, previews).
 * A key is a relative path built by blob_key(); the local backend (blob_local.c)
 * keeps files under ROOT/KEY, written to a temporary name, fsynced and renamed,
 * so a key either names a complete file or nothing. S3-compatible storage can
 * come later behind the same vtable. Thread-safe; several processes may share it.
 */
#ifndef SHOEBOX_STORE_BLOB_H
#define SHOEBOX_STORE_BLOB_H

#include <stddef.h>

#include "base/err.h"

#define BLOB_KEY_MAX 160

enum blob_kind { BLOB_ORIGINAL, BLOB_THUMB, BLOB_PREVIEW };

struct blob_store;

struct blob_ops {
    void (*close)(struct blob_store *bs);
    /* Stores the file at src_path under key. move: rename it when possible (same file
     * system), else copy. An existing key is left as is (same content by construction)
     * and src is removed when move. */
    int (*put_file)(struct blob_store *bs, const char *key, const char *src_path, int move,
                    struct err *err);
    int (*put_data)(struct blob_store *bs, const char *key, const void *data, size_t len,
                    struct err *err);
    /* Local path of key into out (for sendfile/serving). 0 when it exists, -1 otherwise. */
    int (*path)(struct blob_store *bs, const char *key, char *out, size_t n);
    int (*remove)(struct blob_store *bs, const char *key, struct err *err);
    /* Calls cb for every stored key (for the orphan sweep). */
    int (*list)(struct blob_store *bs, void (*cb)(void *ctx, const char *key), void *ctx,
                struct err *err);
    /* Removes the temporary files of writes a crash cut short; *removed counts them.
     * pid 0: all of them, only while no writer runs (the startup sweep); otherwise
     * those of that (dead) process, whose pid is in their names. */
    int (*remove_temps)(struct blob_store *bs, long pid, size_t *removed, struct err *err);
};

struct blob_store {
    const struct blob_ops *ops;
};

/* Key for sha256 hex and kind: "o/ab/<sha>", "t/ab/<sha>.jpg", "p/ab/<sha>.jpg". */
void blob_key(const char *sha256, enum blob_kind kind, char out[BLOB_KEY_MAX]);

/* Local directory backend rooted at root (created if missing). Free with ops->close. */
int blob_local_open(const char *root, struct blob_store **out, struct err *err);

#endif
