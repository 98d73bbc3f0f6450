/* Unit tests for src/store/blob_local.c: keys, put/move/copy, remove, list,
 * and the fs fault points (nothing half-written becomes a key). */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fault.h"
#include "store/blob.h"
#include "testdir.h"

#define SHA "ab12000000000000000000000000000000000000000000000000000000000000"
#define SHA2 "cd34000000000000000000000000000000000000000000000000000000000000"

static char dir[64];
static char root[128];
static struct blob_store *B;

static void setup(void)
{
    struct err err = {0};

    fault_arm("");
    testdir_make(dir, sizeof(dir));
    snprintf(root, sizeof(root), "%s/blobs", dir);
    ck_assert_msg(blob_local_open(root, &B, &err) == 0, "%s", err.msg);
}

static void teardown(void)
{
    fault_arm("");
    if (B)
        B->ops->close(B);
    B = NULL;
    testdir_remove(dir);
}

static void write_src(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

/* The content of key through a reader, or "" when absent. */
static const char *content(const char *key)
{
    static char buf[256];
    struct err err = {0};
    size_t n = 0;
    int rc = blob_read_all(B, key, buf, sizeof(buf) - 1, &n, &err);

    ck_assert_msg(rc >= 0, "%s", err.msg);
    buf[rc == 0 ? n : 0] = '\0';
    return buf;
}

static bool file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static const struct {
    const char *sha;
    enum blob_kind kind;
    const char *key;
} key_rows[] = {
    {SHA, BLOB_ORIGINAL, "o/ab/" SHA},
    {SHA, BLOB_THUMB, "t/ab/" SHA ".jpg"},
    {SHA, BLOB_PREVIEW, "p/ab/" SHA ".jpg"},
    {"x", BLOB_ORIGINAL, ""},  /* too short to be a digest */
};

START_TEST(test_blob_key)
{
    char key[BLOB_KEY_MAX];

    blob_key(key_rows[_i].sha, key_rows[_i].kind, key);
    ck_assert_str_eq(key, key_rows[_i].key);
}
END_TEST

START_TEST(test_put_data)
{
    struct err err = {0};
    struct blob_info info = {0};
    char key[BLOB_KEY_MAX];

    blob_key(SHA, BLOB_THUMB, key);
    ck_assert_int_eq(B->ops->stat(B, key, &info, &err), 1);
    ck_assert_int_eq(blob_put_data(B, key, "thumb", 5, &err), 0);
    ck_assert_str_eq(content(key), "thumb");
    ck_assert_int_eq(B->ops->stat(B, key, &info, &err), 0);
    ck_assert_uint_eq(info.size, 5);
    ck_assert_int_gt(info.mtime_ms, 0);
    ck_assert(info.etag[0] == '"');
    /* an existing key is kept */
    ck_assert_int_eq(blob_put_data(B, key, "other", 5, &err), 0);
    ck_assert_str_eq(content(key), "thumb");
}
END_TEST

/* Writer: many writes make one object, nothing is visible before commit,
 * abort leaves nothing; a reader reads at any offset; local readers have an fd. */
START_TEST(test_stream)
{
    struct err err = {0};
    struct blob_writer *w = NULL;
    struct blob_reader *r = NULL;
    struct blob_info info = {0};
    char key[BLOB_KEY_MAX], buf[16];

    blob_key(SHA, BLOB_ORIGINAL, key);
    ck_assert_int_eq(B->ops->writer_begin(B, key, &w, &err), 0);
    ck_assert_int_eq(B->ops->writer_write(w, "hello ", 6, &err), 0);
    ck_assert_int_eq(B->ops->writer_write(w, "world", 5, &err), 0);
    ck_assert_int_eq(B->ops->stat(B, key, &info, &err), 1);
    ck_assert_int_eq(B->ops->writer_commit(w, &err), 0);
    ck_assert_str_eq(content(key), "hello world");
    ck_assert_int_eq(B->ops->reader_open(B, key, &r, &info, &err), 0);
    ck_assert_uint_eq(info.size, 11);
    ck_assert_int_eq(B->ops->reader_read(r, 6, buf, sizeof(buf), &err), 5);
    ck_assert(memcmp(buf, "world", 5) == 0);
    ck_assert_int_eq(B->ops->reader_read(r, 11, buf, sizeof(buf), &err), 0);
    ck_assert_int_ge(B->ops->reader_fd(r), 0);
    B->ops->reader_close(r);

    blob_key(SHA2, BLOB_ORIGINAL, key);
    ck_assert_int_eq(B->ops->writer_begin(B, key, &w, &err), 0);
    ck_assert_int_eq(B->ops->writer_write(w, "half", 4, &err), 0);
    B->ops->writer_abort(w);
    ck_assert_int_eq(B->ops->reader_open(B, key, &r, NULL, &err), 1);
    ck_assert_ptr_null(r);
}
END_TEST

/* blob_put_file: a link on the same file system (the source stays, same inode),
 * a copy through a writer otherwise; an existing key is kept. blob_copy_fd reads
 * from offset 0 whatever the descriptor's position. */
START_TEST(test_put_file)
{
    struct err err = {0};
    struct stat a, b;
    char key[BLOB_KEY_MAX], src[128], path[512];
    int fd;

    blob_key(SHA, BLOB_ORIGINAL, key);
    snprintf(src, sizeof(src), "%s/spool-1", dir);
    write_src(src, "new bytes");
    ck_assert_msg(blob_put_file(B, key, src, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(content(key), "new bytes");
    snprintf(path, sizeof(path), "%s/%s", root, key);
    ck_assert_int_eq(stat(src, &a), 0);
    ck_assert_int_eq(stat(path, &b), 0);
    ck_assert(a.st_ino == b.st_ino); /* linked, not copied */
    write_src(src, "changed");
    ck_assert_int_eq(blob_put_file(B, key, src, &err), 0);

    blob_key(SHA2, BLOB_ORIGINAL, key);
    fd = open(src, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(lseek(fd, 3, SEEK_SET), 3);
    ck_assert_int_eq(blob_copy_fd(B, key, fd, &err), 0);
    close(fd);
    ck_assert_str_eq(content(key), "changed");
    snprintf(path, sizeof(path), "%s/%s", root, key);
    ck_assert_int_eq(stat(path, &b), 0);
    ck_assert(a.st_ino != b.st_ino); /* a copy */
}
END_TEST

/* From another file system (when the machine has one at hand): a copy. */
START_TEST(test_put_file_cross_fs)
{
    struct err err = {0};
    struct stat a, b;
    char key[BLOB_KEY_MAX], src[128];

    snprintf(src, sizeof(src), "/dev/shm/shoebox-test-%d", (int)getpid());
    if (stat("/dev/shm", &a) || stat(root, &b) || a.st_dev == b.st_dev)
        return;  /* nothing to cross */
    write_src(src, "far bytes");
    blob_key(SHA2, BLOB_ORIGINAL, key);
    ck_assert_msg(blob_put_file(B, key, src, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(content(key), "far bytes");
    ck_assert(file_exists(src));
    unlink(src);
}
END_TEST

/* blob_open picks the backend from the spec. */
static const struct {
    const char *spec;
    int rc;
    const char *msg;
} open_rows[] = {
    {"s3://bucket/prefix?endpoint=ftp://127.0.0.1:1", -1, "must start with http"},
    {"ftp://host/x", -1, "unknown blob store"},
    {"", -1, "no blob store"},
    {"file://", -1, "bad blob directory"},
    {"DIR", 0, ""},
    {"file://DIR", 0, ""},
};

START_TEST(test_open_spec)
{
    struct err err = {0};
    struct blob_store *bs = NULL;
    char spec[256];
    const char *at = strstr(open_rows[_i].spec, "DIR");

    snprintf(spec, sizeof(spec), "%.*s%s%s", at ? (int)(at - open_rows[_i].spec) : 0,
             open_rows[_i].spec, at ? dir : open_rows[_i].spec, at ? "/other" : "");
    ck_assert_int_eq(blob_open(spec, &bs, &err), open_rows[_i].rc);
    if (open_rows[_i].rc == 0) {
        ck_assert_int_eq(blob_put_data(bs, "o/ab/x", "x", 1, &err), 0);
        bs->ops->close(bs);
        return;
    }
    ck_assert_ptr_null(bs);
    ck_assert_msg(strstr(err.msg, open_rows[_i].msg), "%s", err.msg);
}
END_TEST

START_TEST(test_remove)
{
    struct err err = {0};
    char key[BLOB_KEY_MAX];

    blob_key(SHA, BLOB_PREVIEW, key);
    ck_assert_int_eq(blob_put_data(B, key, "p", 1, &err), 0);
    ck_assert_int_eq(B->ops->remove(B, key, &err), 0);
    ck_assert_str_eq(content(key), "");
    ck_assert_int_eq(B->ops->remove(B, key, &err), 0);  /* missing is fine */
}
END_TEST

static const char *const bad_keys[] = {"", "../etc/passwd", "/etc/passwd", "o/ab/../../x",
                                       "o/ab/X Y", "o/ab/x.tmp.123"};

START_TEST(test_bad_keys)
{
    struct err err = {0};
    struct blob_reader *r = NULL;

    ck_assert_int_eq(blob_put_data(B, bad_keys[_i], "x", 1, &err), -1);
    ck_assert_int_eq(err.cls, ERR_PERMANENT);
    ck_assert_int_eq(B->ops->reader_open(B, bad_keys[_i], &r, NULL, &err), -1);
    ck_assert_int_eq(B->ops->stat(B, bad_keys[_i], NULL, &err), -1);
    ck_assert_int_eq(B->ops->remove(B, bad_keys[_i], &err), -1);
}
END_TEST

struct keys {
    char k[8][BLOB_KEY_MAX];
    int n;
};

static void collect(void *ctx, const char *key, int64_t mtime_ms)
{
    struct keys *k = ctx;

    ck_assert_int_gt(mtime_ms, 0);
    ck_assert_int_lt(k->n, 8);
    snprintf(k->k[k->n++], BLOB_KEY_MAX, "%s", key);
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(a, b);
}

START_TEST(test_list)
{
    struct err err = {0};
    struct keys keys = {0};
    char key[3][BLOB_KEY_MAX], junk[256];

    ck_assert_int_eq(B->ops->list(B, collect, &keys, &err), 0);
    ck_assert_int_eq(keys.n, 0);
    for (int k = 0; k < 3; k++) {
        blob_key(SHA, (enum blob_kind)k, key[k]);
        ck_assert_int_eq(blob_put_data(B, key[k], "x", 1, &err), 0);
    }
    /* a writer's leftover temp file and a stray dot file are not keys */
    snprintf(junk, sizeof(junk), "%s/o/ab/%s.tmp.AbCdEf", root, SHA);
    write_src(junk, "half");
    snprintf(junk, sizeof(junk), "%s/o/ab/.hidden", root);
    write_src(junk, "x");
    ck_assert_int_eq(B->ops->list(B, collect, &keys, &err), 0);
    ck_assert_int_eq(keys.n, 3);
    qsort(keys.k, (size_t)keys.n, BLOB_KEY_MAX, cmp_key);
    ck_assert_str_eq(keys.k[0], "o/ab/" SHA);
    ck_assert_str_eq(keys.k[1], "p/ab/" SHA ".jpg");
    ck_assert_str_eq(keys.k[2], "t/ab/" SHA ".jpg");
}
END_TEST

/* A dead writer's temp files go by its pid; the startup sweep takes them all. */
START_TEST(test_remove_temps)
{
    struct err err = {0};
    struct keys keys = {0};
    char key[BLOB_KEY_MAX], junk[256];
    const char *const names[] = {".tmp.123.AbCdEf", ".tmp.123", ".tmp.1234.XyZ012"};
    size_t removed = 0;

    blob_key(SHA, BLOB_ORIGINAL, key);
    ck_assert_int_eq(blob_put_data(B, key, "x", 1, &err), 0);
    for (size_t i = 0; i < 3; i++) {
        snprintf(junk, sizeof(junk), "%s/o/ab/%s%s", root, SHA, names[i]);
        write_src(junk, "half");
    }
    ck_assert_int_eq(B->ops->remove_temps(B, 123, &removed, &err), 0);
    ck_assert_uint_eq(removed, 2);   /* pid 1234's write is not pid 123's */
    ck_assert_int_eq(B->ops->remove_temps(B, 0, &removed, &err), 0);
    ck_assert_uint_eq(removed, 1);
    ck_assert_int_eq(B->ops->list(B, collect, &keys, &err), 0);
    ck_assert_int_eq(keys.n, 1);     /* the key itself stays */
}
END_TEST

/* Files in dir/o/ab other than complete keys (temp names). */
static int leftovers(void)
{
    char path[256];
    DIR *d;
    struct dirent *de;
    int n = 0;

    snprintf(path, sizeof(path), "%s/o/ab", root);
    d = opendir(path);
    if (!d)
        return 0;
    for (;;) {
        de = readdir(d);
        if (!de)
            break;
        if (de->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n;
}

/* An injected fsync, rename or write failure leaves no key and no temp file; a
 * failed write is sticky (commit fails too). The source of a failed link stays. */
static const char *const fault_rows[] = {"fsync=1", "rename=1", "write=1"};

START_TEST(test_faults)
{
    struct err err = {0};
    char key[BLOB_KEY_MAX], src[128];

    blob_key(SHA, BLOB_ORIGINAL, key);
    ck_assert_int_eq(fault_arm(fault_rows[_i]), 0);
    ck_assert_int_eq(blob_put_data(B, key, "x", 1, &err), -1);
    ck_assert_str_eq(content(key), "");
    ck_assert_int_eq(leftovers(), 0);

    snprintf(src, sizeof(src), "%s/spool-2", dir);
    write_src(src, "bytes");
    ck_assert_int_eq(fault_arm(fault_rows[_i]), 0);
    if (!strcmp(fault_rows[_i], "rename=1")) {  /* a same-fs link only renames */
        ck_assert_int_eq(blob_put_file(B, key, src, &err), -1);
        ck_assert_str_eq(content(key), "");
        ck_assert(file_exists(src));
    }
    ck_assert_int_eq(fault_arm(""), 0);
    ck_assert_int_eq(blob_put_file(B, key, src, &err), 0);
    ck_assert_str_eq(content(key), "bytes");
    ck_assert_int_eq(leftovers(), 1);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("blob_local");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_blob_key, 0, sizeof(key_rows) / sizeof(key_rows[0]));
    tcase_add_test(tc, test_put_data);
    tcase_add_test(tc, test_stream);
    tcase_add_test(tc, test_put_file);
    tcase_add_loop_test(tc, test_open_spec, 0, sizeof(open_rows) / sizeof(open_rows[0]));
    tcase_add_test(tc, test_put_file_cross_fs);
    tcase_add_test(tc, test_remove);
    tcase_add_loop_test(tc, test_bad_keys, 0, sizeof(bad_keys) / sizeof(bad_keys[0]));
    tcase_add_test(tc, test_list);
    tcase_add_test(tc, test_remove_temps);
    tcase_add_loop_test(tc, test_faults, 0, sizeof(fault_rows) / sizeof(fault_rows[0]));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
