/*
 * Unit tests for src/intake/ingest.c. Most tests use a recording fake store (to
 * see every call and to make the store fail); test_real_store runs the same
 * path against store_open() on a SQLite file in a temporary directory.
 */
#include "intake/ingest.h"

#include <check.h>
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/fault.h"
#include "base/limits.h"
#include "base/log.h"
#include "base/sha256.h"
#include "http/multipart.h"
#include "store/blob.h"
#include "store/store.h"

/* ------------------------------------------------------------ fake store */

#define FAKE_MAX 16

struct fake_file {
    int64_t upload_id, user_id;
    char name[STORE_FILENAME_MAX], sha256[65], format[16], spool[STORE_PATH_MAX];
    int64_t size;
    bool failed;
    char stage[32], msg[STORE_MSG_MAX];
};

struct fake_store {
    struct store base;
    struct fake_file files[FAKE_MAX];
    int nfiles;
    int64_t bytes;
    int byte_calls;
    bool fail_add_file;
    bool exists;  /* the store has the file already (sent again): STORE_EXISTS, id 42 */
};

static int fake_add_bytes(struct store *st, int64_t id, int64_t bytes, int64_t now, struct err *err)
{
    struct fake_store *f = (struct fake_store *)st;

    ck_assert_int_eq(id, 7);
    ck_assert_int_gt(bytes, 0);
    f->bytes += bytes;
    f->byte_calls++;
    return 0;
}

static int fake_add_file(struct store *st, const struct store_file_new *n, int64_t now,
                         int64_t *file_id, struct err *err)
{
    struct fake_store *f = (struct fake_store *)st;
    struct fake_file *r;

    if (f->fail_add_file)
        return err_set(err, ERR_TRANSIENT, "store", "database is locked");
    if (f->exists) {
        *file_id = 42;
        return STORE_EXISTS;
    }
    ck_assert_int_lt(f->nfiles, FAKE_MAX);
    ck_assert_ptr_nonnull(n->name);
    ck_assert_ptr_nonnull(n->sha256);
    ck_assert_ptr_nonnull(n->format);
    ck_assert_ptr_nonnull(n->spool);
    r = &f->files[f->nfiles++];
    r->upload_id = n->upload_id;
    r->user_id = n->user_id;
    snprintf(r->name, sizeof(r->name), "%s", n->name);
    snprintf(r->sha256, sizeof(r->sha256), "%s", n->sha256);
    snprintf(r->format, sizeof(r->format), "%s", n->format);
    snprintf(r->spool, sizeof(r->spool), "%s", n->spool);
    r->size = n->size;
    r->failed = n->failed;
    if (n->failed) {
        ck_assert_ptr_nonnull(n->error);
        snprintf(r->stage, sizeof(r->stage), "%s", n->error->stage);
        snprintf(r->msg, sizeof(r->msg), "%s", n->error->msg);
    }
    *file_id = 100 + f->nfiles;
    return 0;
}

static const struct store_ops fake_ops = {
    .upload_add_bytes = fake_add_bytes,
    .upload_add_file = fake_add_file,
};

/* ------------------------------------------------------------- fixtures */

static char tmpdir[64];
static struct fake_store fake;
static struct blob_store *blobs; /* a real local store under tmpdir/blobs */

static void setup(void)
{
    char root[128];
    struct err e = {0};

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_ingest.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(root, sizeof(root), "%s/blobs", tmpdir);
    ck_assert_msg(blob_local_open(root, &blobs, &e) == 0, "%s", e.msg);
    memset(&fake, 0, sizeof(fake));
    fake.base.ops = &fake_ops;
    log_init(LOG_ERROR, NULL);
    fault_arm(NULL);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void teardown(void)
{
    blobs->ops->close(blobs);
    blobs = NULL;
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static struct ingest *new_ingest(int64_t max)
{
    struct ingest_opts o = {&fake.base, tmpdir, 7, 3, max, blobs};
    struct err e = {0};
    struct ingest *ing = ingest_new(&o, &e);

    ck_assert_msg(ing != NULL, "ingest_new: %s", e.msg);
    return ing;
}

/* Files in tmpdir/spool. */
static int spool_count(void)
{
    char path[128];
    DIR *d;
    struct dirent *e;
    int n = 0;

    snprintf(path, sizeof(path), "%s/spool", tmpdir);
    d = opendir(path);
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void count_key(void *ctx, const char *key, int64_t mtime_ms)
{
    (void)key;
    (void)mtime_ms;
    (*(int *)ctx)++;
}

/* Keys in the blob store (originals handed off). */
static int blob_count(void)
{
    struct err e = {0};
    int n = 0;

    ck_assert_int_eq(blobs->ops->list(blobs, count_key, &n, &e), 0);
    return n;
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n;
}

/* A JPEG-looking body of n bytes (n >= 4). */
static unsigned char *jpeg_bytes(size_t n)
{
    unsigned char *b = malloc(n);

    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(i * 31 + 7);
    memcpy(b, "\xff\xd8\xff\xe0", 4);
    return b;
}

/* Feeds data in chunks of `chunk`; returns the last data result. */
static int feed(struct ingest *ing, const void *data, size_t n, size_t chunk)
{
    const char *p = data;
    int rc = 0;

    for (size_t off = 0; off < n; off += chunk) {
        size_t len = n - off < chunk ? n - off : chunk;
        rc = ingest_part_data(ing, p + off, len);
        if (rc != 0)
            return rc;
    }
    return rc;
}

static void read_file(const char *rel, unsigned char **out, size_t *len, mode_t *mode)
{
    char path[1024];
    struct stat st;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
    ck_assert_int_eq(stat(path, &st), 0);
    *mode = st.st_mode & 0777;
    *len = (size_t)st.st_size;
    *out = malloc(*len + 1);
    f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fread(*out, 1, *len, f), *len);
    fclose(f);
}

/* ---------------------------------------------------------------- tests */

START_TEST(test_received)
{
    size_t sizes[] = {4, 100, 4096, 4097, 200000};
    int fds = open_fds();

    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        struct ingest *ing = new_ingest(1 << 20);
        unsigned char *b = jpeg_bytes(sizes[k]), *got;
        char hex[SHA256_HEX_LEN + 1], rel[STORE_PATH_MAX + 8];
        struct fake_file *r;
        struct ingest_stats s;
        size_t len, nids;
        mode_t mode;

        memset(&fake.files, 0, sizeof(fake.files));
        fake.nfiles = 0;
        ck_assert_int_eq(ingest_part_begin(ing, "IMG_0042.JPG", "image/jpeg"), 0);
        ck_assert_int_eq(feed(ing, b, sizes[k], 1000), 0);
        ck_assert_int_eq(ingest_part_end(ing), 0);
        ck_assert_int_eq(ingest_finish(ing), 0);
        ck_assert_int_eq(fake.nfiles, 1);
        r = &fake.files[0];
        ck_assert(!r->failed);
        ck_assert_str_eq(r->name, "IMG_0042.JPG");
        ck_assert_str_eq(r->format, "jpeg");
        ck_assert_int_eq(r->size, (int64_t)sizes[k]);
        ck_assert_int_eq(r->upload_id, 7);
        ck_assert_int_eq(r->user_id, 3);
        sha256_hex(b, sizes[k], hex);
        ck_assert_str_eq(r->sha256, hex);
        /* handed off: the file holds its original's blob key */
        ck_assert_msg(strncmp(r->spool, "o/", 2) == 0 && strstr(r->spool, hex),
                      "spool '%s'", r->spool);
        snprintf(rel, sizeof(rel), "blobs/%s", r->spool);
        read_file(rel, &got, &len, &mode);
        ck_assert_uint_eq(len, sizes[k]);
        ck_assert(memcmp(got, b, len) == 0);
        ck_assert_uint_eq(mode, 0600);
        ingest_get_stats(ing, &s);
        ck_assert_int_eq(s.received, 1);
        ck_assert_int_eq(s.failed, 0);
        ck_assert_int_eq(s.bytes, (int64_t)sizes[k]);
        ck_assert_int_eq(ingest_file_ids(ing, &nids)[0], 101);
        ck_assert_uint_eq(nids, 1);
        ingest_free(ing);
        free(b);
        free(got);
    }
    ck_assert_int_eq(spool_count(), 0); /* the spool is a buffer */
    ck_assert_int_eq(blob_count(), 5);
    ck_assert_int_eq(open_fds(), fds);
}
END_TEST

/* Limit: exactly max_file_size is accepted, one byte more is not. */
START_TEST(test_size_limit)
{
    unsigned char *b = jpeg_bytes(1537);
    struct ingest *ing = new_ingest(1536);
    struct ingest_stats s;

    ck_assert_int_eq(ingest_part_begin(ing, "fits.jpg", NULL), 0);
    ck_assert_int_eq(feed(ing, b, 1536, 100), 0);
    ck_assert_int_eq(ingest_part_end(ing), 0);

    ck_assert_int_eq(ingest_part_begin(ing, "big.jpg", NULL), 0);
    ck_assert_int_eq(feed(ing, b, 1537, 100), INGEST_SKIP);
    ck_assert_int_eq(ingest_part_data(ing, b, 10), INGEST_SKIP);
    ck_assert_int_eq(spool_count(), 0); /* the big file's spool went at once */
    ck_assert_int_eq(blob_count(), 1);
    ck_assert_int_eq(ingest_part_end(ing), 0);

    /* a following part still works */
    ck_assert_int_eq(ingest_part_begin(ing, "next.jpg", NULL), 0);
    ck_assert_int_eq(feed(ing, b, 200, 7), 0);
    ck_assert_int_eq(ingest_part_end(ing), 0);

    ck_assert_int_eq(fake.nfiles, 3);
    ck_assert(!fake.files[0].failed);
    ck_assert_int_eq(fake.files[0].size, 1536);
    ck_assert(fake.files[1].failed);
    ck_assert_str_eq(fake.files[1].stage, "receive");
    ck_assert_str_eq(fake.files[1].msg, "'big.jpg' is larger than 1.5 KB");
    ck_assert_str_eq(fake.files[1].spool, "");
    ck_assert(!fake.files[2].failed);
    ck_assert_int_eq(spool_count(), 0);
    ck_assert_int_eq(blob_count(), 2);
    ingest_get_stats(ing, &s);
    ck_assert_int_eq(s.received, 2);
    ck_assert_int_eq(s.failed, 1);
    ingest_free(ing);
    free(b);
}
END_TEST

START_TEST(test_empty_parts)
{
    struct ingest *ing = new_ingest(1000);
    struct ingest_stats s;
    size_t n;

    /* file input left empty: filename "" (or NULL) and no bytes */
    ck_assert_int_eq(ingest_part_begin(ing, "", "application/octet-stream"), 0);
    ck_assert_int_eq(ingest_part_end(ing), 0);
    ck_assert_int_eq(ingest_part_begin(ing, NULL, NULL), 0);
    ck_assert_int_eq(ingest_part_end(ing), 0);
    ck_assert_int_eq(fake.nfiles, 0);
    /* an empty file with a name (zero-length data calls create nothing) */
    ck_assert_int_eq(ingest_part_begin(ing, "zero.jpg", NULL), 0);
    ck_assert_int_eq(ingest_part_data(ing, "", 0), 0);
    ck_assert_int_eq(spool_count(), 0);
    ck_assert_int_eq(ingest_part_end(ing), 0);
    ck_assert_int_eq(fake.nfiles, 1);
    ck_assert(fake.files[0].failed);
    ck_assert_str_eq(fake.files[0].stage, "sniff");
    ck_assert_str_eq(fake.files[0].msg, "unsupported format: empty file");
    ck_assert_int_eq(fake.files[0].size, 0);
    ingest_get_stats(ing, &s);
    ck_assert_int_eq(s.ignored, 2);
    ck_assert_int_eq(s.failed, 1);
    ck_assert_uint_eq((ingest_file_ids(ing, &n), n), 1);
    ck_assert_int_eq(spool_count(), 0);
    ingest_free(ing);
}
END_TEST

START_TEST(test_unsupported)
{
    static const char pdf[] = "%PDF-1.4\n1 0 obj\n<<>>\nendobj\n";
    struct ingest *ing = new_ingest(1 << 20);
    char *big = malloc(50000);

    ck_assert_int_eq(ingest_part_begin(ing, "doc.jpg", "image/jpeg"), 0);
    ck_assert_int_eq(ingest_part_data(ing, pdf, sizeof(pdf) - 1), 0);
    ck_assert_int_eq(ingest_part_end(ing), 0);
    ck_assert(fake.files[0].failed);
    ck_assert_str_eq(fake.files[0].stage, "sniff");
    ck_assert_str_eq(fake.files[0].msg, "unsupported format: PDF document");
    ck_assert_int_eq(spool_count(), 0);

    /* a long unsupported file is dropped once its head has been seen */
    memcpy(big, pdf, sizeof(pdf) - 1);
    memset(big + sizeof(pdf) - 1, 'x', 50000 - (sizeof(pdf) - 1));
    ck_assert_int_eq(ingest_part_begin(ing, "big.pdf", NULL), 0);
    ck_assert_int_eq(ingest_part_data(ing, big, 4000), 0);
    ck_assert_int_eq(ingest_part_data(ing, big + 4000, 1000), INGEST_SKIP);
    ck_assert_int_eq(spool_count(), 0);
    ck_assert_int_eq(ingest_part_end(ing), 0);
    ck_assert_int_eq(fake.nfiles, 2);
    ck_assert_str_eq(fake.files[1].msg, "unsupported format: PDF document");
    ingest_free(ing);
    free(big);
}
END_TEST

START_TEST(test_write_fault)
{
    unsigned char *b = jpeg_bytes(5000);
    struct ingest *ing = new_ingest(1 << 20);

    /* Small files reach the disk in one write, when the part ends. */
    ck_assert_int_eq(fault_arm("write=1"), 0);
    ck_assert_int_eq(ingest_part_begin(ing, "x.jpg", NULL), 0);
    ck_assert_int_eq(feed(ing, b, 5000, 1000), 0);
    ck_assert_int_eq(ingest_part_end(ing), 0);
    ck_assert_int_eq(spool_count(), 0);
    ck_assert(fake.files[0].failed);
    ck_assert_str_eq(fake.files[0].stage, "receive");
    ck_assert_str_eq(fake.files[0].msg, "cannot store 'x.jpg': disk full");

    ck_assert_int_eq(ingest_part_begin(ing, "y.jpg", NULL), 0);
    ck_assert_int_eq(feed(ing, b, 5000, 1000), 0);
    ck_assert_int_eq(ingest_part_end(ing), 0);
    ck_assert(!fake.files[1].failed);
    ck_assert_int_eq(spool_count(), 0);
    ck_assert_int_eq(blob_count(), 1);
    ingest_free(ing);
    free(b);
}
END_TEST

START_TEST(test_fsync_fault)
{
    unsigned char *b = jpeg_bytes(300);
    struct ingest *ing = new_ingest(1 << 20);
    int fds = open_fds();

    ck_assert_int_eq(fault_arm("fsync=1"), 0);
    ck_assert_int_eq(ingest_part_begin(ing, "x.jpg", NULL), 0);
    ck_assert_int_eq(feed(ing, b, 300, 64), 0);
    ck_assert_int_eq(ingest_part_end(ing), 0);
    ck_assert(fake.files[0].failed);
    ck_assert_str_eq(fake.files[0].stage, "receive");
    ck_assert_str_eq(fake.files[0].msg, "cannot store 'x.jpg': Input/output error");
    ck_assert_int_eq(spool_count(), 0);

    ck_assert_int_eq(ingest_part_begin(ing, "y.jpg", NULL), 0);
    ck_assert_int_eq(feed(ing, b, 300, 64), 0);
    ck_assert_int_eq(ingest_part_end(ing), 0);
    ck_assert(!fake.files[1].failed);
    ck_assert_int_eq(spool_count(), 0);
    ck_assert_int_eq(blob_count(), 1);
    ck_assert_int_eq(open_fds(), fds);
    ingest_free(ing);
    free(b);
}
END_TEST

START_TEST(test_store_failure_sticky)
{
    unsigned char *b = jpeg_bytes(300);
    struct ingest *ing = new_ingest(1 << 20);

    fake.fail_add_file = true;
    ck_assert_int_eq(ingest_part_begin(ing, "x.jpg", NULL), 0);
    ck_assert_int_eq(feed(ing, b, 300, 64), 0);
    ck_assert_int_eq(ingest_part_end(ing), -1);
    ck_assert_ptr_nonnull(ingest_error(ing));
    ck_assert_str_eq(ingest_error(ing)->msg, "cannot record 'x.jpg': database is locked");
    ck_assert_int_eq(spool_count(), 0);
    fake.fail_add_file = false;
    ck_assert_int_eq(ingest_part_begin(ing, "y.jpg", NULL), -1);
    ck_assert_int_eq(ingest_part_data(ing, b, 10), -1);
    ck_assert_int_eq(ingest_part_end(ing), -1);
    ck_assert_int_eq(ingest_finish(ing), -1);
    ck_assert_int_eq(fake.nfiles, 0);
    ingest_free(ing);
    free(b);
}
END_TEST

/* A file the store already has (a request sent again): no new record, the copy's
 * spool file is removed, the file counts as received under the existing id. */
START_TEST(test_file_sent_again)
{
    unsigned char *b = jpeg_bytes(300);
    struct ingest *ing = new_ingest(1 << 20);
    struct ingest_stats stats;
    const int64_t *ids;
    size_t n = 0;

    fake.exists = true;
    ck_assert_int_eq(ingest_part_begin(ing, "x.jpg", NULL), 0);
    ck_assert_int_eq(feed(ing, b, 300, 64), 0);
    ck_assert_int_eq(ingest_part_end(ing), 0);
    fake.exists = false;
    ck_assert_int_eq(fake.nfiles, 0);
    ck_assert_int_eq(spool_count(), 0);
    ingest_get_stats(ing, &stats);
    ck_assert_int_eq(stats.received, 1);
    ids = ingest_file_ids(ing, &n);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(ids[0], 42);
    ck_assert_int_eq(ingest_finish(ing), 0);
    ingest_free(ing);
    free(b);
}
END_TEST

START_TEST(test_abort)
{
    unsigned char *b = jpeg_bytes(3000);
    struct ingest *ing = new_ingest(1 << 20);
    int fds = open_fds();

    ck_assert_int_eq(ingest_part_begin(ing, "kept.jpg", NULL), 0);
    ck_assert_int_eq(feed(ing, b, 3000, 512), 0);
    ck_assert_int_eq(ingest_part_end(ing), 0);
    ck_assert_int_eq(ingest_part_begin(ing, "lost.jpg", NULL), 0);
    for (int i = 0; i * 3000 <= INGEST_WRITE_BUF; i++) /* past one write buffer */
        ck_assert_int_eq(feed(ing, b, 3000, 512), 0);
    ck_assert_int_eq(spool_count(), 1); /* kept.jpg is in the blob store */
    ck_assert_int_eq(blob_count(), 1);
    ingest_abort(ing);
    ingest_abort(ing);
    ck_assert_int_eq(spool_count(), 0);
    ck_assert_int_eq(fake.nfiles, 1);
    /* every byte received is counted */
    ck_assert_int_eq(fake.bytes, 3000 + 3000 * (INGEST_WRITE_BUF / 3000 + 1));
    ck_assert_int_eq(ingest_part_data(ing, b, 1), -1); /* no part open */
    ingest_free(ing);
    ck_assert_int_eq(open_fds(), fds);

    /* free with a part open removes its spool too */
    ing = new_ingest(1 << 20);
    ck_assert_int_eq(ingest_part_begin(ing, "lost.jpg", NULL), 0);
    ck_assert_int_eq(feed(ing, b, 3000, 512), 0);
    ingest_free(ing);
    ck_assert_int_eq(spool_count(), 0);
    ck_assert_int_eq(blob_count(), 1);
    ck_assert_int_eq(open_fds(), fds);
    free(b);
}
END_TEST

START_TEST(test_bytes_reported_rarely)
{
    unsigned char *b = jpeg_bytes(100000);
    struct ingest *ing = new_ingest(1 << 20);

    ck_assert_int_eq(ingest_part_begin(ing, "a.jpg", NULL), 0);
    ck_assert_int_eq(feed(ing, b, 100000, 10), 0); /* 10000 data calls */
    ck_assert_int_eq(ingest_part_end(ing), 0);
    ck_assert_int_eq(ingest_finish(ing), 0);
    ck_assert_int_eq(fake.bytes, 100000);
    /* one report per 250 ms elapsed plus the final one */
    ck_assert_int_le(fake.byte_calls, 5);
    ingest_free(ing);
    free(b);
}
END_TEST

/* A hostile name is display text: it never reaches the spool path. */
START_TEST(test_hostile_name)
{
    unsigned char *b = jpeg_bytes(100);
    struct ingest *ing = new_ingest(1 << 20);

    ck_assert_int_eq(ingest_part_begin(ing, "../../etc/pass\x01wd\x1b[31m", NULL), 0);
    ck_assert_int_eq(feed(ing, b, 100, 100), 0);
    ck_assert_int_eq(ingest_part_end(ing), 0);
    ck_assert_str_eq(fake.files[0].name, "pass?wd?[31m");
    ck_assert_ptr_null(strstr(fake.files[0].spool, ".."));
    ck_assert_ptr_null(strstr(fake.files[0].spool, "pass"));
    ingest_free(ing);
    free(b);
}
END_TEST

/* begin without end: the open part is finished first */
START_TEST(test_begin_ends_open_part)
{
    unsigned char *b = jpeg_bytes(100);
    struct ingest *ing = new_ingest(1 << 20);

    ck_assert_int_eq(ingest_part_begin(ing, "a.jpg", NULL), 0);
    ck_assert_int_eq(feed(ing, b, 100, 100), 0);
    ck_assert_int_eq(ingest_part_begin(ing, "b.jpg", NULL), 0);
    ck_assert_int_eq(feed(ing, b, 100, 100), 0);
    ck_assert_int_eq(ingest_part_end(ing), 0);
    ck_assert_int_eq(ingest_part_end(ing), 0); /* nothing open: no-op */
    ck_assert_int_eq(fake.nfiles, 2);
    ck_assert_str_eq(fake.files[0].name, "a.jpg");
    ck_assert_str_eq(fake.files[1].name, "b.jpg");
    ingest_free(ing);
    free(b);
}
END_TEST

START_TEST(test_bad_opts)
{
    struct ingest_opts o = {&fake.base, tmpdir, 7, 3, 0, blobs};
    struct err e = {0};
    char path[128];

    ck_assert_ptr_null(ingest_new(&o, &e));
    ck_assert_str_eq(e.stage, "receive");
    o.max_file_size = 10;
    o.data_dir = NULL;
    ck_assert_ptr_null(ingest_new(&o, &e));
    /* data dir is a file: spool cannot be made */
    snprintf(path, sizeof(path), "%s/file", tmpdir);
    fclose(fopen(path, "w"));
    o.data_dir = path;
    err_clear(&e);
    ck_assert_ptr_null(ingest_new(&o, &e));
    ck_assert(err_is_set(&e));
    ingest_free(NULL);
}
END_TEST

/* ------------------------------------------------------------- helpers */

struct name_case {
    const char *in;
    const char *out;
};

static const struct name_case names[] = {
    {"IMG_0042.JPG", "IMG_0042.JPG"},
    {"", "unnamed"},
    {NULL, "unnamed"},
    {"a\tb\nc\rd.jpg", "a?b?c?d.jpg"},
    {"del\x7f.jpg", "del?.jpg"},
    {"c1\xc2\x85.jpg", "c1?.jpg"},
    {"gpj.\xe2\x80\xae"
     "exe",
     "gpj.?exe"},
    {"bad\xff\xfe.jpg", "bad??.jpg"},
    {"overlong\xc0\xaf.jpg", "overlong??.jpg"},
    {"surrogate\xed\xa0\x80.jpg", "surrogate???.jpg"},
    {"cut\xe2\x82", "cut??"},
    {"f\xc3\xbcr \xe2\x82\xac \xf0\x9f\x93\xb7.jpg",
     "f\xc3\xbcr \xe2\x82\xac \xf0\x9f\x93\xb7.jpg"},
    {"C:\\fakepath\\photo.jpg", "photo.jpg"},
    {"dir/sub/photo.jpg", "photo.jpg"},
    {"trailing/", "trailing/"},
    {"say \"hi\" <b>&.jpg", "say \"hi\" <b>&.jpg"},
};

START_TEST(test_display_name)
{
    char out[LIMIT_FILENAME_BYTES + 1];

    ingest_display_name(names[_i].in, out, sizeof(out));
    ck_assert_str_eq(out, names[_i].out);
}
END_TEST

START_TEST(test_display_name_cut)
{
    char in[1024], out[LIMIT_FILENAME_BYTES + 1], small[6];

    /* "a" + 300 x "é": the cut lands inside a character */
    in[0] = 'a';
    for (int i = 0; i < 300; i++)
        memcpy(in + 1 + 2 * i, "\xc3\xa9", 2);
    in[601] = '\0';
    ingest_display_name(in, out, sizeof(out));
    ck_assert_uint_eq(strlen(out), LIMIT_FILENAME_BYTES); /* 1 + 127 * 2 */
    memset(in, 'x', LIMIT_FILENAME_BYTES + 1);
    in[LIMIT_FILENAME_BYTES + 1] = '\0';
    ingest_display_name(in, out, sizeof(out));
    ck_assert_uint_eq(strlen(out), LIMIT_FILENAME_BYTES);
    in[LIMIT_FILENAME_BYTES] = '\0';
    ingest_display_name(in, out, sizeof(out));
    ck_assert_uint_eq(strlen(out), LIMIT_FILENAME_BYTES);
    ingest_display_name("ab\xc3\xa9\xc3\xa9", small, sizeof(small));
    ck_assert_str_eq(small, "ab\xc3\xa9");
}
END_TEST

/* ------------------------------------------- driven by the multipart parser */

/* How the upload handler wires the two: plain fields are collected (csrf,
 * upload, expected), "photos" file parts go to ingest, anything else is skipped. */
struct drive {
    struct ingest *ing;
    bool in_file;
    char field[64];
    char csrf[LIMIT_FIELD_BYTES + 1];
    size_t csrf_len;
};

static int drv_begin(void *ctx, const char *name, const char *filename, const char *ct)
{
    struct drive *d = ctx;

    d->in_file = false;
    snprintf(d->field, sizeof(d->field), "%s", name);
    if (!filename)
        return MULTIPART_OK;
    if (strcmp(name, "photos") != 0 || d->csrf_len == 0)
        return MULTIPART_SKIP; /* the real handler aborts without a verified token */
    d->in_file = true;
    return ingest_part_begin(d->ing, filename, ct) ? MULTIPART_ABORT : MULTIPART_OK;
}

static int drv_data(void *ctx, const char *data, size_t len)
{
    struct drive *d = ctx;
    int rc;

    if (!d->in_file) {
        if (strcmp(d->field, "csrfmiddlewaretoken") != 0)
            return MULTIPART_OK;
        if (len > LIMIT_FIELD_BYTES - d->csrf_len)
            return MULTIPART_ABORT;
        memcpy(d->csrf + d->csrf_len, data, len);
        d->csrf_len += len;
        return MULTIPART_OK;
    }
    rc = ingest_part_data(d->ing, data, len);
    return rc == INGEST_SKIP ? MULTIPART_SKIP : rc ? MULTIPART_ABORT : MULTIPART_OK;
}

static int drv_end(void *ctx)
{
    struct drive *d = ctx;

    if (!d->in_file)
        return MULTIPART_OK;
    d->in_file = false;
    return ingest_part_end(d->ing) ? MULTIPART_ABORT : MULTIPART_OK;
}

START_TEST(test_with_multipart)
{
    static const struct multipart_cb cb = {drv_begin, drv_data, drv_end};
    unsigned char *jpg = jpeg_bytes(3000);
    struct buf body = BUF_INIT;
    size_t chunks[] = {1, 13, 4096, 1 << 20};

    buf_init(&body);
    buf_adds(&body, "--b0undary\r\nContent-Disposition: form-data; name=\"csrfmiddlewaretoken\""
                    "\r\n\r\ntok\r\n");
    buf_adds(&body, "--b0undary\r\nContent-Disposition: form-data; name=\"photos\"; "
                    "filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n");
    buf_add(&body, jpg, 3000);
    buf_adds(&body, "\r\n--b0undary\r\nContent-Disposition: form-data; name=\"photos\"; "
                    "filename=\"big.jpg\"\r\n\r\n");
    buf_add(&body, jpg, 3000);
    buf_add(&body, jpg, 3000);
    buf_adds(&body, "\r\n--b0undary\r\nContent-Disposition: form-data; name=\"photos\"; "
                    "filename=\"\"\r\n\r\n\r\n");
    buf_adds(&body, "--b0undary\r\nContent-Disposition: form-data; name=\"photos\"; "
                    "filename=\"c.jpg\"\r\n\r\n");
    buf_add(&body, jpg, 100);
    buf_adds(&body, "\r\n--b0undary\r\nContent-Disposition: form-data; name=\"expected\""
                    "\r\n\r\n3\r\n--b0undary--\r\n");

    for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
        struct drive d = {0};
        struct multipart *m;
        struct ingest_stats s;
        int rc = 0;

        memset(&fake.files, 0, sizeof(fake.files));
        fake.nfiles = 0;
        d.ing = new_ingest(5000);
        m = multipart_new("b0undary", &cb, &d);
        for (size_t off = 0; off < body.len && rc == 0; off += chunks[k]) {
            size_t n = body.len - off < chunks[k] ? body.len - off : chunks[k];
            rc = multipart_feed(m, body.data + off, n);
        }
        ck_assert_msg(rc == 0 && multipart_finish(m) == 0, "%s", multipart_error(m));
        ck_assert_int_eq(ingest_finish(d.ing), 0);
        ingest_get_stats(d.ing, &s);
        ck_assert_int_eq(s.received, 2);
        ck_assert_int_eq(s.failed, 1);
        ck_assert_int_eq(s.ignored, 1);
        ck_assert_int_eq(fake.nfiles, 3);
        ck_assert_str_eq(fake.files[0].name, "a.jpg");
        ck_assert_int_eq(fake.files[0].size, 3000);
        ck_assert_str_eq(fake.files[1].msg, "'big.jpg' is larger than 4.9 KB");
        ck_assert_str_eq(fake.files[2].name, "c.jpg");
        ck_assert_int_eq(fake.files[2].size, 100);
        ck_assert_str_eq(d.csrf, "tok");
        multipart_free(m);
        ingest_free(d.ing);
    }
    ck_assert_int_eq(spool_count(), 0);
    ck_assert_int_eq(blob_count(), 2); /* a.jpg and c.jpg: the same bytes each round */
    buf_release(&body);
    free(jpg);
}
END_TEST

/* ------------------------------------------------------------ real store */

struct files_seen {
    int n;
    struct store_file f[4];
};

static void collect(void *ctx, const struct store_file *f)
{
    struct files_seen *s = ctx;
    if (s->n < 4)
        s->f[s->n++] = *f;
}

START_TEST(test_real_store)
{
    char db[128];
    struct store *st = NULL;
    struct err e = {0};
    int64_t user = 0, upload = 0;
    struct store_upload up;
    struct files_seen seen = {0};
    unsigned char *b = jpeg_bytes(10000);
    struct ingest_opts o;
    struct ingest *ing;

    snprintf(db, sizeof(db), "%s/shoebox.db", tmpdir);
    ck_assert_msg(store_open(db, &st, &e) == 0, "store_open: %s", e.msg);
    ck_assert_int_eq(st->ops->user_create(st, "ann", "x", 1, &user, &e), 0);
    ck_assert_int_eq(st->ops->upload_create(st, user, 2, 10, 1, &upload, &e), 0);
    ck_assert_int_eq(st->ops->upload_request_begin(st, upload, 2, 0, 1, &e), 0);
    o = (struct ingest_opts){st, tmpdir, upload, user, 5000, blobs};
    ing = ingest_new(&o, &e);
    ck_assert_ptr_nonnull(ing);
    ck_assert_int_eq(ingest_part_begin(ing, "ok.jpg", NULL), 0);
    ck_assert_int_eq(feed(ing, b, 4000, 333), 0);
    ck_assert_int_eq(ingest_part_end(ing), 0);
    ck_assert_int_eq(ingest_part_begin(ing, "huge.jpg", NULL), 0);
    ck_assert_int_eq(feed(ing, b, 10000, 333), INGEST_SKIP);
    ck_assert_int_eq(ingest_part_end(ing), 0);
    ck_assert_int_eq(ingest_finish(ing), 0);
    ingest_free(ing);

    ck_assert_int_eq(st->ops->upload_files(st, upload, collect, &seen, &e), 0);
    ck_assert_int_eq(seen.n, 2);
    ck_assert_int_eq(seen.f[0].state, FILE_RECEIVED);
    ck_assert_str_eq(seen.f[0].name, "ok.jpg");
    ck_assert_str_eq(seen.f[0].format, "jpeg");
    ck_assert_int_eq(seen.f[0].size, 4000);
    ck_assert(strncmp(seen.f[0].spool, "o/", 2) == 0);
    ck_assert_int_eq(seen.f[1].state, FILE_FAILED);
    ck_assert_str_eq(seen.f[1].error_stage, "receive");
    ck_assert_str_eq(seen.f[1].error_msg, "'huge.jpg' is larger than 4.9 KB");
    ck_assert_int_eq(st->ops->upload_get(st, upload, user, &up, &e), 0);
    ck_assert_int_eq(up.total, 2);
    ck_assert_int_eq(up.failed, 1);
    ck_assert_int_eq(up.bytes_received, 4000 + 5328); /* 16 chunks of 333 reached the limit */
    st->ops->close(st);
    free(b);
}
END_TEST

static Suite *ingest_suite(void)
{
    Suite *s = suite_create("ingest");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_received);
    tcase_add_test(tc, test_size_limit);
    tcase_add_test(tc, test_empty_parts);
    tcase_add_test(tc, test_unsupported);
    tcase_add_test(tc, test_write_fault);
    tcase_add_test(tc, test_fsync_fault);
    tcase_add_test(tc, test_store_failure_sticky);
    tcase_add_test(tc, test_file_sent_again);
    tcase_add_test(tc, test_abort);
    tcase_add_test(tc, test_bytes_reported_rarely);
    tcase_add_test(tc, test_hostile_name);
    tcase_add_test(tc, test_begin_ends_open_part);
    tcase_add_test(tc, test_bad_opts);
    tcase_add_loop_test(tc, test_display_name, 0, (int)(sizeof(names) / sizeof(names[0])));
    tcase_add_test(tc, test_display_name_cut);
    tcase_add_test(tc, test_with_multipart);
    tcase_add_test(tc, test_real_store);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ingest_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
