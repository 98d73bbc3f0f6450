/* Unit tests for src/store/blob_s3.c (the byte-stream blob interface over S3) against
 * the run's RADOS Gateway (SHOEBOX_TEST_S3...; exit 77 without it). Each test has its
 * own key prefix. The part size is S3's minimum (5 MB) so that multipart uploads stay
 * small. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/blob_s3.h"

#define SKIP 77

static char base_url[1024];
static const char *access_key, *secret_key;
static struct blob_store *B;
static struct s3_config cfg;

static struct blob_store *open_store(int64_t stale_ms)
{
    static unsigned serial;
    char url[1400];
    const char *q = strchr(base_url, '?');
    struct err err = {0};
    struct blob_store *bs = NULL;

    snprintf(url, sizeof(url), "%.*s/b%ld-%ld-%u%s", (int)(q - base_url), base_url,
             (long)getpid(), (long)time(NULL), ++serial, q);
    ck_assert_msg(s3_config_parse(&cfg, url, access_key, secret_key, &err) == 0, "%s", err.msg);
    cfg.part_size = S3_PART_SIZE_MIN;
    ck_assert_msg(blob_s3_open(&cfg, stale_ms, &bs, &err) == 0, "%s", err.msg);
    return bs;
}

static void setup(void)
{
    B = open_store(BLOB_S3_STALE_UPLOAD_MS);
}

static void teardown(void)
{
    if (B)
        B->ops->close(B);
    B = NULL;
}

static unsigned char pattern(uint64_t i)
{
    uint32_t x = (uint32_t)(i / 4) * 2654435761u ^ 0x5eed;

    x ^= x >> 13;
    return (unsigned char)(x >> (8 * (i % 4)));
}

/* Writes size bytes of pattern() under key in chunks of chunk bytes; commit or abort. */
static int write_blob(const char *key, size_t size, size_t chunk, int commit, struct err *err)
{
    struct blob_writer *w;
    unsigned char *buf = malloc(chunk);

    ck_assert_int_eq(B->ops->writer_begin(B, key, &w, err), 0);
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;

        for (size_t i = 0; i < n; i++)
            buf[i] = pattern(off + i);
        if (B->ops->writer_write(w, buf, n, err)) {
            free(buf);
            B->ops->writer_abort(w);
            return -1;
        }
    }
    free(buf);
    if (!commit) {
        B->ops->writer_abort(w);
        return 0;
    }
    return B->ops->writer_commit(w, err);
}

/* Reads [off, off+n) through r and checks the bytes; returns bytes read. */
static ssize_t read_check(struct blob_reader *r, uint64_t off, size_t n)
{
    unsigned char *buf = malloc(n ? n : 1);
    struct err err = {0};
    ssize_t got = B->ops->reader_read(r, off, buf, n, &err);

    ck_assert_msg(got >= 0, "%s", err.msg);
    for (ssize_t i = 0; i < got; i++) {
        if (buf[i] != pattern(off + (uint64_t)i))
            ck_abort_msg("byte %llu differs", (unsigned long long)(off + (uint64_t)i));
    }
    free(buf);
    return got;
}

START_TEST(test_small_blob)
{
    struct blob_reader *r;
    struct blob_info info = {0}, st = {0};
    struct err err = {0};

    ck_assert_msg(write_blob("o/ab/small", 1000, 333, 1, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(B->ops->stat(B, "o/ab/small", &st, &err), 0);
    ck_assert_uint_eq(st.size, 1000);
    ck_assert_int_eq(st.etag[0], '"');
    ck_assert_int_eq(B->ops->reader_open(B, "o/ab/small", &r, &info, &err), 0);
    ck_assert_str_eq(info.etag, st.etag);
    ck_assert_int_eq(B->ops->reader_fd(r), -1);
    ck_assert_int_eq(read_check(r, 0, 1000), 1000);
    ck_assert_int_eq(read_check(r, 990, 100), 10);   /* short only at the end */
    ck_assert_int_eq(read_check(r, 1000, 10), 0);
    ck_assert_int_eq(read_check(r, 5000, 10), 0);
    B->ops->reader_close(r);
    /* empty blob */
    ck_assert_msg(write_blob("o/ab/empty", 0, 1, 1, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(B->ops->stat(B, "o/ab/empty", &st, &err), 0);
    ck_assert_uint_eq(st.size, 0);
}
END_TEST

START_TEST(test_large_blob_multipart_and_readahead)
{
    struct blob_reader *r;
    struct blob_info info = {0};
    struct err err = {0};
    size_t size = 2 * S3_PART_SIZE_MIN + 4097;

    ck_assert_msg(write_blob("o/cd/large", size, 1000003, 1, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(B->ops->reader_open(B, "o/cd/large", &r, &info, &err), 0);
    ck_assert_uint_eq(info.size, size);
    ck_assert_msg(strstr(info.etag, "-3\""), "etag %s", info.etag);
    /* small reads in order (served from the window), one across the window's edge,
     * backwards, a big one straight through, the tail */
    for (uint64_t off = 0; off < 3 * 65536; off += 65536)
        ck_assert_int_eq(read_check(r, off, 65536), 65536);
    ck_assert_int_eq(read_check(r, BLOB_S3_READAHEAD - 10, 20), 20);
    ck_assert_int_eq(read_check(r, 5, 7), 7);
    ck_assert_int_eq(read_check(r, 100, S3_PART_SIZE_MIN + 1), S3_PART_SIZE_MIN + 1);
    ck_assert_int_eq(read_check(r, size - 3, 65536), 3);
    B->ops->reader_close(r);
}
END_TEST

START_TEST(test_exactly_one_part)
{
    struct blob_info st = {0};
    struct err err = {0};

    ck_assert_msg(write_blob("p", S3_PART_SIZE_MIN, 1 << 20, 1, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(B->ops->stat(B, "p", &st, &err), 0);
    ck_assert_uint_eq(st.size, S3_PART_SIZE_MIN);
    ck_assert_msg(!strchr(st.etag, '-'), "one full part is one PutObject: %s", st.etag);
}
END_TEST

static size_t seen;

static void count(void *ctx, const char *key, int64_t mtime_ms)
{
    (void)ctx;
    (void)key;
    ck_assert_int_gt(mtime_ms, 0);
    seen++;
}

static void count_uploads(void *ctx, const char *key, const char *id, int64_t initiated)
{
    (void)ctx, (void)key, (void)id, (void)initiated;
    seen++;
}

START_TEST(test_abort_leaves_nothing)
{
    struct blob_info st;
    struct err err = {0};
    struct s3 *s3;

    ck_assert_int_eq(write_blob("a/small", 10, 10, 0, &err), 0);
    ck_assert_int_eq(write_blob("a/large", S3_PART_SIZE_MIN + 10, 1 << 20, 0, &err), 0);
    ck_assert_int_eq(B->ops->stat(B, "a/small", &st, &err), 1);
    ck_assert_int_eq(B->ops->stat(B, "a/large", &st, &err), 1);
    ck_assert_int_eq(s3_open(&cfg, &s3, &err), 0);
    seen = 0;
    ck_assert_int_eq(s3_mpu_list(s3, "", count_uploads, NULL, &err), 0);
    ck_assert_int_eq(seen, 0);
    s3_free(s3);
}
END_TEST

START_TEST(test_missing_remove_list)
{
    struct blob_reader *r = (void *)1;
    struct blob_info st;
    struct err err = {0};

    ck_assert_int_eq(B->ops->stat(B, "nope", &st, &err), 1);
    ck_assert_int_eq(B->ops->reader_open(B, "nope", &r, &st, &err), 1);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(write_blob("k/1", 5, 5, 1, &err), 0);
    ck_assert_int_eq(write_blob("k/2", 5, 5, 1, &err), 0);
    seen = 0;
    ck_assert_int_eq(B->ops->list(B, count, NULL, &err), 0);
    ck_assert_int_eq(seen, 2);
    ck_assert_int_eq(B->ops->remove(B, "k/1", &err), 0);
    ck_assert_int_eq(B->ops->remove(B, "k/1", &err), 0);  /* gone already: fine */
    ck_assert_int_eq(B->ops->stat(B, "k/1", &st, &err), 1);
    seen = 0;
    ck_assert_int_eq(B->ops->list(B, count, NULL, &err), 0);
    ck_assert_int_eq(seen, 1);
}
END_TEST

/* A writer cut short by a crash leaves a multipart upload: remove_temps aborts it once
 * it is older than the store's stale age (0 here, so at once), never a young one. */
START_TEST(test_remove_temps)
{
    char id[S3_UPLOAD_ID_MAX];
    struct blob_store *eager;
    struct err err = {0};
    struct s3 *s3;
    size_t removed = 99;

    ck_assert_int_eq(s3_open(&cfg, &s3, &err), 0);
    ck_assert_int_eq(s3_mpu_create(s3, "crashed", id, &err), 0);
    ck_assert_int_eq(B->ops->remove_temps(B, 0, &removed, &err), 0);
    ck_assert_uint_eq(removed, 0);  /* an hour has not passed */
    ck_assert_int_eq(blob_s3_open(&cfg, 0, &eager, &err), 0);
    ck_assert_msg(eager->ops->remove_temps(eager, 0, &removed, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(removed, 1);
    eager->ops->close(eager);
    seen = 0;
    ck_assert_int_eq(s3_mpu_list(s3, "", count_uploads, NULL, &err), 0);
    ck_assert_int_eq(seen, 0);
    s3_free(s3);
}
END_TEST

START_TEST(test_bad_keys_fail_at_commit)
{
    struct blob_store *bad;
    struct blob_writer *w;
    struct s3_config c = cfg;
    struct err err = {0};

    snprintf(c.secret_key, sizeof(c.secret_key), "wrong");
    c.retries = 0;
    ck_assert_int_eq(blob_s3_open(&c, 0, &bad, &err), 0);
    ck_assert_int_eq(bad->ops->writer_begin(bad, "x", &w, &err), 0);
    ck_assert_int_eq(bad->ops->writer_write(w, "abc", 3, &err), 0);
    ck_assert_int_eq(bad->ops->writer_commit(w, &err), -1);
    ck_assert_msg(strstr(err.msg, "SignatureDoesNotMatch"), "%s", err.msg);
    bad->ops->close(bad);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("blob_s3");
    TCase *tc = tcase_create("blob_s3");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_small_blob);
    tcase_add_test(tc, test_large_blob_multipart_and_readahead);
    tcase_add_test(tc, test_exactly_one_part);
    tcase_add_test(tc, test_abort_leaves_nothing);
    tcase_add_test(tc, test_missing_remove_list);
    tcase_add_test(tc, test_remove_temps);
    tcase_add_test(tc, test_bad_keys_fail_at_commit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    const char *url = getenv("SHOEBOX_TEST_S3");
    SRunner *sr;
    int failed;

    access_key = getenv("SHOEBOX_TEST_S3_ACCESS_KEY");
    secret_key = getenv("SHOEBOX_TEST_S3_SECRET_KEY");
    if (!url || !*url || !access_key || !secret_key || !strchr(url, '?')) {
        fprintf(stderr, "SHOEBOX_TEST_S3 is not set (no Ceph here): skipped\n");
        return SKIP;
    }
    snprintf(base_url, sizeof(base_url), "%s", url);
    sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
