/*
 * Unit tests for the savable SHA-256 state (base/sha256.c) that tus keeps in
 * its info file, and for intake/tus.c against a real SQLite store in a
 * temporary data directory: resume after a "restart" (tus_free + tus_new),
 * a broken-off PATCH keeping its bytes, checksum mismatch, takeover by a
 * second PATCH, the expiry sweep.
 */
#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/sha256.h"
#include "base/timeutil.h"
#include "intake/tus.h"
#include "store/blob.h"
#include "store/store.h"

/* Hashing in pieces with the state saved to text and read back between each
 * piece gives the same digest as hashing the whole at once. */
START_TEST(test_saved_state_resumes)
{
    size_t n = 300000;
    unsigned char *data = malloc(n);
    char want[SHA256_HEX_LEN + 1], got[SHA256_HEX_LEN + 1];
    char text[2 * SHA256_STATE_BYTES + 1];
    struct sha256_saved s, back;
    size_t cuts[] = {0, 1, 63, 64, 65, 4096, 100001, 299999, 300000};

    for (size_t i = 0; i < n; i++)
        data[i] = (unsigned char)(i * 7 + (i >> 9));
    sha256_hex(data, n, want);
    sha256s_init(&s);
    for (size_t c = 1; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
        sha256s_update(&s, data + cuts[c - 1], cuts[c] - cuts[c - 1]);
        sha256s_to_hex(&s, text);
        memset(&back, 0xAB, sizeof(back));
        ck_assert_int_eq(sha256s_from_hex(&back, text), 0);
        s = back;
    }
    sha256s_peek_hex(&s, got);
    ck_assert_str_eq(got, want);
    /* peek does not change the state */
    sha256s_peek_hex(&s, got);
    ck_assert_str_eq(got, want);
    free(data);
}
END_TEST

START_TEST(test_saved_state_rejects_bad_text)
{
    struct sha256_saved s;
    char text[2 * SHA256_STATE_BYTES + 1];

    sha256s_init(&s);
    sha256s_to_hex(&s, text);
    ck_assert_int_eq(sha256s_from_hex(&s, text), 0);
    ck_assert_int_eq(sha256s_from_hex(&s, "abc"), -1);
    text[5] = 'x';
    ck_assert_int_eq(sha256s_from_hex(&s, text), -1);
    ck_assert_int_eq(sha256s_from_hex(&s, NULL), -1);
}
END_TEST

START_TEST(test_digests)
{
    unsigned char out[DIGEST_MAX];
    struct digest *d = digest_new("sha1");

    ck_assert_ptr_nonnull(d);
    digest_update(d, "abc", 3);
    ck_assert_uint_eq(digest_final(d, out), 20);
    ck_assert_uint_eq(out[0], 0xa9);
    ck_assert_uint_eq(out[1], 0x99);
    digest_free(d);
    d = digest_new("md5");
    digest_update(d, "abc", 3);
    ck_assert_uint_eq(digest_final(d, out), 16);
    ck_assert_uint_eq(out[0], 0x90);
    digest_free(d);
    ck_assert_ptr_null(digest_new("crc32"));
    ck_assert_ptr_null(digest_new("SHA1"));
}
END_TEST

START_TEST(test_id_ok)
{
    ck_assert(tus_id_ok("0123456789abcdef0123456789abcdef"));
    ck_assert(!tus_id_ok("0123456789abcdef0123456789abcde"));
    ck_assert(!tus_id_ok("0123456789ABCDEF0123456789abcdef"));
    ck_assert(!tus_id_ok("../3456789abcdef0123456789abcdef"));
    ck_assert(!tus_id_ok(""));
}
END_TEST

/* ------------------------------------------------- tus with a real store */

static char tmpdir[64];
static struct store *st;
static struct blob_store *blobs; /* tmpdir/blobs: completed files are handed off here */
static int64_t user;

static void setup(void)
{
    char db[128];
    struct err e = {0};

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_tus.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    log_init(LOG_ERROR, NULL);
    snprintf(db, sizeof(db), "%s/shoebox.db", tmpdir);
    ck_assert_msg(store_open(db, &st, &e) == 0, "store_open: %s", e.msg);
    ck_assert_int_eq(st->ops->user_create(st, "ann", "x", 1, &user, &e), 0);
    snprintf(db, sizeof(db), "%s/blobs", tmpdir);
    ck_assert_msg(blob_local_open(db, &blobs, &e) == 0, "blob_local_open: %s", e.msg);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void teardown(void)
{
    st->ops->close(st);
    blobs->ops->close(blobs);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static struct tus *new_tus(int64_t expire_ms)
{
    struct tus_opts o = {.store = st, .blobs = blobs, .data_dir = tmpdir, .max_file_size = 1 << 20,
                         .batch_size = 10, .expire_ms = expire_ms, .sweep_ms = 3600000};
    struct err e = {0};
    struct tus *t = tus_new(&o, &e);

    ck_assert_msg(t != NULL, "tus_new: %s", e.msg);
    return t;
}

static unsigned char *jpeg_bytes(size_t n)
{
    unsigned char *b = malloc(n);

    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(i * 31 + 7 + (i >> 8));
    memcpy(b, "\xff\xd8\xff\xe0", 4);
    return b;
}

static enum tus_result patch(struct tus *t, const char *id, int64_t off, const void *d,
                             size_t n, int64_t *new_off)
{
    struct tus_write *w;
    struct tus_info i;
    struct err e = {0};
    enum tus_result r = tus_patch_begin(t, id, user, off, -1, NULL, NULL, 0, &w, &i, &e);

    if (r != TUS_OK)
        return r;
    tus_patch_data(w, d, n);
    r = tus_patch_end(w, &i, &e);
    *new_off = i.offset;
    return r;
}

struct one_file {
    int n;
    struct store_file f;
};

static void collect(void *ctx, const struct store_file *f)
{
    struct one_file *s = ctx;
    s->n++;
    s->f = *f;
}

static void file_content(const char *rel, unsigned char *out, size_t n)
{
    char path[1024];
    int fd;

    snprintf(path, sizeof(path), "%s/blobs/%s", tmpdir, rel); /* the handed-off original */
    fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(read(fd, out, n + 1), (ssize_t)n);
    close(fd);
}

static bool exists(const char *id, const char *ext)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/tus/%s%s", tmpdir, id, ext);
    return access(path, F_OK) == 0;
}

/* The node tag: made once in DATA/tus/node, kept by a restart, the prefix of
 * every id this node makes; an id with another node's tag is 404 naming that
 * node, an unknown one of this node (or another user's) is a plain 404. */
START_TEST(test_node_tag)
{
    struct tus *t = new_tus(3600000);
    struct tus_info info, i2;
    struct err e = {0};
    char node[TUS_NODE_LEN + 1], other[TUS_ID_LEN + 1], want[160], path[128];
    FILE *f;

    ck_assert_uint_eq(strlen(tus_node(t)), TUS_NODE_LEN);
    snprintf(node, sizeof(node), "%s", tus_node(t));
    ck_assert_int_eq(tus_create(t, user, 10, 0, "a.jpg", "image/jpeg", &info, &e), TUS_OK);
    ck_assert(tus_id_ok(info.id));
    ck_assert(strncmp(info.id, node, TUS_NODE_LEN) == 0);
    tus_free(t);
    t = new_tus(3600000); /* restart: the same node */
    ck_assert_str_eq(tus_node(t), node);
    ck_assert_int_eq(tus_head(t, info.id, user, &i2, &e), TUS_OK);
    /* an id this node could have made but did not: a plain 404 */
    snprintf(other, sizeof(other), "%s", info.id);
    other[TUS_ID_LEN - 1] = other[TUS_ID_LEN - 1] == '0' ? '1' : '0';
    memset(&e, 0, sizeof(e));
    ck_assert_int_eq(tus_head(t, other, user, &i2, &e), TUS_NOT_FOUND);
    ck_assert_str_eq(e.msg, "");
    /* another user's upload here: a plain 404 too */
    ck_assert_int_eq(tus_head(t, info.id, user + 1, &i2, &e), TUS_NOT_FOUND);
    ck_assert_str_eq(e.msg, "");
    /* another node's id: 404 naming it, for HEAD, PATCH and DELETE */
    memcpy(other, node[0] == 'f' ? "00000000" : "ffffffff", TUS_NODE_LEN);
    snprintf(want, sizeof(want), "upload %s is held by web node %.8s, not this one (%s)", other,
             other, node);
    ck_assert_int_eq(tus_head(t, other, user, &i2, &e), TUS_NOT_FOUND);
    ck_assert_msg(strstr(e.msg, want), "%s", e.msg);
    int64_t off = -1;
    ck_assert_int_eq(patch(t, other, 0, "x", 1, &off), TUS_NOT_FOUND);
    memset(&e, 0, sizeof(e));
    ck_assert_int_eq(tus_delete(t, other, user, &e), TUS_NOT_FOUND);
    ck_assert_msg(strstr(e.msg, want), "%s", e.msg);
    tus_free(t);
    /* a damaged tag file is replaced by a new tag */
    snprintf(path, sizeof(path), "%s/tus/node", tmpdir);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("zz\n", f);
    fclose(f);
    t = new_tus(3600000);
    ck_assert_uint_eq(strlen(tus_node(t)), TUS_NODE_LEN);
    ck_assert(strcmp(tus_node(t), "zz") != 0);
    tus_free(t);
}
END_TEST

/* Three PATCHes, one broken off, a restart between them: the file is
 * recorded once, whole, with the SHA-256 of all its bytes. */
START_TEST(test_resume_across_restart)
{
    size_t n = 50000;
    unsigned char *b = jpeg_bytes(n), *back = malloc(n + 1);
    char want[SHA256_HEX_LEN + 1];
    struct tus *t = new_tus(3600000);
    struct tus_info info, i2;
    struct tus_write *w;
    struct err e = {0};
    int64_t off = 0;
    struct one_file seen = {0};

    sha256_hex(b, n, want);
    ck_assert_int_eq(tus_create(t, user, (int64_t)n, 0, "a.jpg", "image/jpeg", &info, &e), TUS_OK);
    ck_assert(tus_id_ok(info.id));
    ck_assert_int_eq(patch(t, info.id, 0, b, 10000, &off), TUS_OK);
    ck_assert_int_eq(off, 10000);
    /* broken off after 5000 more bytes: they are kept */
    ck_assert_int_eq(tus_patch_begin(t, info.id, user, 10000, -1, NULL, NULL, 0, &w, &i2, &e),
                     TUS_OK);
    ck_assert_int_eq(tus_patch_data(w, b + 10000, 5000), TUS_OK);
    tus_patch_abort(w);
    tus_free(t); /* "restart": nothing in memory survives */
    t = new_tus(3600000);
    ck_assert_int_eq(tus_head(t, info.id, user, &i2, &e), TUS_OK);
    ck_assert_int_eq(i2.offset, 15000);
    ck_assert_str_eq(i2.name, "a.jpg");
    ck_assert_int_eq(patch(t, info.id, 14000, b + 14000, 10, &off), TUS_CONFLICT);
    ck_assert_int_eq(patch(t, info.id, 15000, b + 15000, n - 15000, &off), TUS_OK);
    ck_assert_int_eq(off, (int64_t)n);
    ck_assert_int_eq(tus_head(t, info.id, user, &i2, &e), TUS_OK);
    ck_assert_int_gt(i2.file_id, 0);
    ck_assert(!exists(info.id, ".bin"));
    ck_assert_int_eq(st->ops->upload_files(st, info.upload_id, collect, &seen, &e), 0);
    ck_assert_int_eq(seen.n, 1);
    ck_assert_int_eq(seen.f.state, FILE_RECEIVED);
    ck_assert_str_eq(seen.f.sha256, want);
    ck_assert_str_eq(seen.f.format, "jpeg");
    file_content(seen.f.spool, back, n);
    ck_assert(memcmp(back, b, n) == 0);
    /* another user sees nothing */
    ck_assert_int_eq(tus_head(t, info.id, user + 1, &i2, &e), TUS_NOT_FOUND);
    tus_free(t);
    free(b);
    free(back);
}
END_TEST

START_TEST(test_checksum_mismatch_keeps_offset)
{
    unsigned char *b = jpeg_bytes(3000), bad[20] = {0};
    struct tus *t = new_tus(3600000);
    struct tus_info info, i2;
    struct tus_write *w;
    struct err e = {0};
    int64_t off;

    ck_assert_int_eq(tus_create(t, user, 3000, 0, "c.jpg", "", &info, &e), TUS_OK);
    ck_assert_int_eq(patch(t, info.id, 0, b, 1000, &off), TUS_OK);
    ck_assert_int_eq(tus_patch_begin(t, info.id, user, 1000, -1, "sha1", bad, 20, &w, &i2, &e),
                     TUS_OK);
    tus_patch_data(w, b + 1000, 2000);
    ck_assert_int_eq(tus_patch_end(w, &i2, &e), TUS_CHECKSUM);
    ck_assert_int_eq(i2.offset, 1000);
    ck_assert_int_eq(i2.file_id, 0);
    ck_assert_int_eq(tus_head(t, info.id, user, &i2, &e), TUS_OK);
    ck_assert_int_eq(i2.offset, 1000);
    tus_free(t);
    free(b);
}
END_TEST

/* A second PATCH takes over: the first's bytes so far count, its later
 * bytes and its end are refused; the file is right. */
START_TEST(test_takeover)
{
    size_t n = 20000;
    unsigned char *b = jpeg_bytes(n);
    char want[SHA256_HEX_LEN + 1];
    struct tus *t = new_tus(3600000);
    struct tus_info info, i1, i2;
    struct tus_write *w1, *w2;
    struct err e = {0};
    struct one_file seen = {0};

    sha256_hex(b, n, want);
    ck_assert_int_eq(tus_create(t, user, (int64_t)n, 0, "t.jpg", "", &info, &e), TUS_OK);
    ck_assert_int_eq(tus_patch_begin(t, info.id, user, 0, -1, NULL, NULL, 0, &w1, &i1, &e),
                     TUS_OK);
    ck_assert_int_eq(tus_patch_data(w1, b, 4000), TUS_OK);
    /* the second starts at the offset the first reached */
    ck_assert_int_eq(tus_patch_begin(t, info.id, user, 4000, -1, NULL, NULL, 0, &w2, &i2, &e),
                     TUS_OK);
    ck_assert_int_eq(i2.offset, 4000);
    ck_assert_int_eq(tus_patch_data(w1, "garbage!", 8), TUS_SUPERSEDED);
    ck_assert_int_eq(tus_patch_data(w2, b + 4000, n - 4000), TUS_OK);
    ck_assert_int_eq(tus_patch_end(w1, &i1, &e), TUS_SUPERSEDED);
    ck_assert_int_eq(tus_patch_end(w2, &i2, &e), TUS_OK);
    ck_assert_int_eq(i2.offset, (int64_t)n);
    ck_assert_int_eq(st->ops->upload_files(st, info.upload_id, collect, &seen, &e), 0);
    ck_assert_int_eq(seen.n, 1);
    ck_assert_str_eq(seen.f.sha256, want);
    tus_free(t);
    free(b);
}
END_TEST

START_TEST(test_sweep_removes_expired)
{
    struct tus *t = new_tus(1000);
    struct tus_info a, b2;
    struct err e = {0};
    int64_t off;
    int removed = -1;

    ck_assert_int_eq(tus_create(t, user, 100, 0, "a.jpg", "", &a, &e), TUS_OK);
    ck_assert_int_eq(patch(t, a.id, 0, "\xff\xd8\xff\xe0", 4, &off), TUS_OK);
    ck_assert_int_eq(tus_sweep(t, a.expires_ms - 1, &removed), 0);
    ck_assert_int_eq(removed, 0);
    ck_assert(exists(a.id, ".bin"));
    ck_assert_int_eq(tus_head(t, a.id, user, &b2, &e), TUS_OK);
    ck_assert_int_eq(tus_sweep(t, b2.expires_ms + 1, &removed), 0);
    ck_assert_int_eq(removed, 1);
    ck_assert(!exists(a.id, ".bin"));
    ck_assert(!exists(a.id, ".info"));
    ck_assert_int_eq(tus_head(t, a.id, user, &b2, &e), TUS_NOT_FOUND);
    tus_free(t);
}
END_TEST

/* The files of upload id and the one that failed (the last, if several). */
static int failed_files(int64_t upload_id, struct store_file *last)
{
    struct one_file seen = {0};
    struct err e = {0};
    int n = 0;

    ck_assert_int_eq(st->ops->upload_errors(st, upload_id, collect, &seen, &e), 0);
    n = seen.n;
    if (last)
        *last = seen.f;
    return n;
}

/* A deferred length declared over the limit, or reached by the bytes: the tus
 * upload ends at once (404 after) and is a FAILED file of its upload, once,
 * saying the size and the limit. */
START_TEST(test_deferred_over_limit_fails_the_file)
{
    struct tus *t = new_tus(3600000);
    struct tus_info a, b, i2;
    struct tus_write *w;
    struct store_file f;
    struct err e = {0};
    unsigned char *big = jpeg_bytes((1 << 20) + 1);
    int64_t off;

    ck_assert_int_eq(tus_create(t, user, -1, 0, "a.jpg", "", &a, &e), TUS_OK);
    ck_assert_int_eq(patch(t, a.id, 0, "\xff\xd8\xff\xe0", 4, &off), TUS_OK);
    ck_assert_int_eq(tus_patch_begin(t, a.id, user, 4, (1 << 20) * 2, NULL, NULL, 0, &w, &i2, &e),
                     TUS_TOO_LARGE);
    ck_assert_str_eq(e.msg, "the file is 2 MB, larger than 1 MB");
    ck_assert(!exists(a.id, ".bin") && !exists(a.id, ".info"));
    ck_assert_int_eq(tus_head(t, a.id, user, &i2, &e), TUS_NOT_FOUND);
    ck_assert_int_eq(failed_files(a.upload_id, &f), 1);
    ck_assert_str_eq(f.name, "a.jpg");
    ck_assert_str_eq(f.error_msg, "the file is 2 MB, larger than 1 MB");
    ck_assert_int_eq(f.size, (1 << 20) * 2);
    /* just over the limit: in bytes, where the rounded sizes would look the same */
    memset(&e, 0, sizeof(e));
    ck_assert_int_eq(tus_create(t, user, -1, 0, "j.jpg", "", &a, &e), TUS_OK);
    ck_assert_int_eq(tus_patch_begin(t, a.id, user, 0, (1 << 20) + 1, NULL, NULL, 0, &w, &i2, &e),
                     TUS_TOO_LARGE);
    ck_assert_str_eq(e.msg, "the file is 1048577 bytes, larger than 1048576 bytes");
    ck_assert_int_eq(failed_files(a.upload_id, NULL), 1);

    memset(&e, 0, sizeof(e));
    ck_assert_int_eq(tus_create(t, user, -1, 0, "b.jpg", "", &b, &e), TUS_OK);
    ck_assert_int_eq(patch(t, b.id, 0, big, 1000, &off), TUS_OK);
    ck_assert_int_eq(tus_patch_begin(t, b.id, user, 1000, -1, NULL, NULL, 0, &w, &i2, &e), TUS_OK);
    ck_assert_int_eq(tus_patch_data(w, big + 1000, (1 << 20)), TUS_TOO_LARGE);
    ck_assert_int_eq(tus_patch_data(w, "x", 1), TUS_TOO_LARGE);  /* sticky */
    ck_assert_int_eq(tus_patch_end(w, &i2, &e), TUS_TOO_LARGE);
    ck_assert_str_eq(e.msg, "the file is larger than 1 MB: more than that was sent");
    ck_assert_int_eq(tus_head(t, b.id, user, &i2, &e), TUS_NOT_FOUND);
    ck_assert_int_eq(failed_files(b.upload_id, &f), 1);
    ck_assert_str_eq(f.error_msg, "the file is larger than 1 MB: more than that was sent");
    /* a known length is not this case: bytes past it are refused, the upload stays */
    memset(&e, 0, sizeof(e));
    ck_assert_int_eq(tus_create(t, user, 10, 0, "c.jpg", "", &a, &e), TUS_OK);
    ck_assert_int_eq(patch(t, a.id, 0, big, 11, &off), TUS_TOO_LARGE);
    ck_assert_int_eq(tus_head(t, a.id, user, &i2, &e), TUS_OK);
    ck_assert_int_eq(failed_files(a.upload_id, NULL), 0);
    tus_free(t);
    free(big);
}
END_TEST

/* An expired partial upload is a FAILED file of its upload with the reason,
 * recorded once: a second sweep, and a second process sharing DATA/tus/, find
 * nothing to do. A complete upload, a terminated one, and a half whose file
 * arrived through another tus upload record nothing. */
START_TEST(test_expired_partial_fails_the_file_once)
{
    struct tus *t = new_tus(1000), *t2 = new_tus(1000);
    struct tus_info a, c, d, h, i2;
    struct store_file f;
    struct err e = {0};
    unsigned char *b = jpeg_bytes(3000);
    int64_t off, up;
    int removed = -1;

    ck_assert_int_eq(st->ops->upload_create(st, user, 5, 10, time_now_ms(), &up, &e), 0);
    ck_assert_int_eq(tus_create(t, user, 3000, up, "a.jpg", "", &a, &e), TUS_OK);
    ck_assert_int_eq(patch(t, a.id, 0, b, 1500, &off), TUS_OK);
    ck_assert_int_eq(tus_create(t, user, 3000, up, "c.jpg", "", &c, &e), TUS_OK);
    ck_assert_int_eq(patch(t, c.id, 0, b, 3000, &off), TUS_OK);          /* complete */
    ck_assert_int_eq(tus_create(t, user, 3000, up, "d.jpg", "", &d, &e), TUS_OK);
    ck_assert_int_eq(patch(t, d.id, 0, b, 100, &off), TUS_OK);
    ck_assert_int_eq(tus_delete(t, d.id, user, &e), TUS_OK);             /* terminated */
    ck_assert_int_eq(tus_create(t, user, 3000, up, "h.jpg", "", &h, &e), TUS_OK);
    ck_assert_int_eq(patch(t, h.id, 0, b, 100, &off), TUS_OK);           /* a half left */
    ck_assert_int_eq(tus_create(t2, user, 3000, up, "h.jpg", "", &i2, &e), TUS_OK);
    ck_assert_int_eq(patch(t2, i2.id, 0, b, 3000, &off), TUS_OK);        /* sent again */
    ck_assert_int_eq(failed_files(up, NULL), 0);

    ck_assert_int_eq(tus_sweep(t, time_now_ms() + 3600000, &removed), 0);
    ck_assert_int_eq(removed, 4);   /* a, c, h and the complete second h */
    ck_assert_int_eq(tus_sweep(t, time_now_ms() + 3600000, &removed), 0);
    ck_assert_int_eq(removed, 0);
    ck_assert_int_eq(tus_sweep(t2, time_now_ms() + 3600000, &removed), 0);
    ck_assert_int_eq(removed, 0);
    ck_assert_int_eq(failed_files(up, &f), 1);
    ck_assert_str_eq(f.name, "a.jpg");
    ck_assert_str_eq(f.error_stage, "receive");
    ck_assert_str_eq(f.error_msg, "the upload stopped at 1.5 KB of 2.9 KB and was not resumed "
                                  "within 1 s; send the file again");
    ck_assert_int_eq(tus_head(t, a.id, user, &i2, &e), TUS_NOT_FOUND);
    tus_free(t);
    tus_free(t2);
    free(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tus");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_saved_state_resumes);
    tcase_add_test(tc, test_saved_state_rejects_bad_text);
    tcase_add_test(tc, test_digests);
    tcase_add_test(tc, test_id_ok);
    suite_add_tcase(s, tc);
    tc = tcase_create("store");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_node_tag);
    tcase_add_test(tc, test_resume_across_restart);
    tcase_add_test(tc, test_checksum_mismatch_keeps_offset);
    tcase_add_test(tc, test_takeover);
    tcase_add_test(tc, test_sweep_removes_expired);
    tcase_add_test(tc, test_deferred_over_limit_fails_the_file);
    tcase_add_test(tc, test_expired_partial_fails_the_file_once);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
