/* Unit tests for base/fs: durable writes and their fault points. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "base/fault.h"
#include "base/fs.h"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/shoebox-fs-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    fault_arm("");
}

static int count_entries(const char *d)
{
    DIR *h = opendir(d);
    struct dirent *e;
    int n = 0;

    while (h && (e = readdir(h)))
        n += e->d_name[0] != '.';
    if (h)
        closedir(h);
    return n;
}

static void read_file(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "rb");
    size_t got;

    ck_assert_ptr_nonnull(f);
    got = fread(out, 1, n - 1, f);
    out[got] = '\0';
    fclose(f);
}

START_TEST(atomic_write)
{
    char path[128], got[64];
    struct err err = {0};

    snprintf(path, sizeof(path), "%s/a/b/c", dir);
    ck_assert_int_eq(fs_mkdir_p(path, 0700, &err), 0);
    ck_assert_int_eq(fs_mkdir_p(path, 0700, &err), 0);  /* exists: fine */
    snprintf(path, sizeof(path), "%s/a/file", dir);
    ck_assert_int_eq(fs_write_file_atomic(path, "one", 3, &err), 0);
    ck_assert_int_eq(fs_write_file_atomic(path, "two", 3, &err), 0);
    read_file(path, got, sizeof(got));
    ck_assert_str_eq(got, "two");
}
END_TEST

START_TEST(fsync_fault_keeps_old_content)
{
    char path[128], sub[128], got[64];
    struct err err = {0};

    snprintf(path, sizeof(path), "%s/f", dir);
    snprintf(sub, sizeof(sub), "%s", dir);
    ck_assert_int_eq(fs_write_file_atomic(path, "old", 3, &err), 0);
    fault_arm("fsync=1");
    ck_assert_int_eq(fs_write_file_atomic(path, "new", 3, &err), -1);
    ck_assert_int_eq(err.cls, ERR_TRANSIENT);
    ck_assert_str_eq(err.stage, "fsync");
    read_file(path, got, sizeof(got));
    ck_assert_str_eq(got, "old");
    ck_assert_int_eq(count_entries(sub), 1);  /* no temporary left behind */
}
END_TEST

START_TEST(disk_full)
{
    char path[128];
    struct err err = {0};

    snprintf(path, sizeof(path), "%s/g", dir);
    fault_arm("write=1");
    ck_assert_int_eq(fs_write_file_atomic(path, "x", 1, &err), -1);
    ck_assert_int_eq(err.sys_errno, ENOSPC);
    ck_assert_ptr_nonnull(strstr(err.msg, "No space left"));
    ck_assert_int_eq(access(path, F_OK), -1);
    ck_assert_int_eq(count_entries(dir), 0);
}
END_TEST

START_TEST(copy_and_unlink)
{
    char src[128], dst[128], got[64];
    struct err err = {0};
    int fd;

    snprintf(src, sizeof(src), "%s/src", dir);
    snprintf(dst, sizeof(dst), "%s/dst", dir);
    ck_assert_int_eq(fs_write_file_atomic(src, "payload", 7, &err), 0);
    fd = open(src, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fs_copy_fd_atomic(fd, dst, &err), 0);
    close(fd);
    read_file(dst, got, sizeof(got));
    ck_assert_str_eq(got, "payload");
    ck_assert_int_eq(fs_unlink(dst, &err), 0);
    ck_assert_int_eq(fs_unlink(dst, &err), 0);  /* already gone: fine */
    ck_assert_int_eq(fs_rename("/nonexistent/x", dst, &err), -1);
    ck_assert_int_eq(err.sys_errno, ENOENT);
}
END_TEST

/* Pages of path in the page cache (mincore over a mapping of it). */
static size_t resident_pages(const char *path, size_t len)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t n = (len + (size_t)page - 1) / (size_t)page, count = 0;
    unsigned char *vec = calloc(n, 1);
    int fd = open(path, O_RDONLY);
    void *map;

    ck_assert_ptr_nonnull(vec);
    ck_assert_int_ge(fd, 0);
    map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    ck_assert_ptr_ne(map, MAP_FAILED);
    ck_assert_int_eq(mincore(map, len, vec), 0);
    for (size_t i = 0; i < n; i++)
        count += vec[i] & 1;
    munmap(map, len);
    close(fd);
    free(vec);
    return count;
}

/* A durable file's pages leave the page cache; its content stays. */
START_TEST(drop_cache)
{
    char path[128];
    struct err err = {0};
    struct statfs sf;
    size_t len = 1024 * 1024;
    char *data = malloc(len), got[16];

    ck_assert_ptr_nonnull(data);
    memset(data, 'x', len);
    snprintf(path, sizeof(path), "%s/cached", dir);
    ck_assert_int_eq(fs_write_file_atomic(path, data, len, &err), 0);
    ck_assert_uint_gt(resident_pages(path, len), 0);
    fs_drop_cache(path);
    ck_assert_int_eq(statfs(dir, &sf), 0);
    if (sf.f_type != 0x01021994) /* TMPFS_MAGIC: its pages are the file */
        ck_assert_uint_eq(resident_pages(path, len), 0);
    read_file(path, got, sizeof(got));
    ck_assert_str_eq(got, "xxxxxxxxxxxxxxx");
    fs_drop_cache("/nonexistent/file"); /* advisory: nothing happens */
    free(data);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fs");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, atomic_write);
    tcase_add_test(tc, fsync_fault_keeps_old_content);
    tcase_add_test(tc, disk_full);
    tcase_add_test(tc, copy_and_unlink);
    tcase_add_test(tc, drop_cache);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
