/* testdir: a fresh temporary directory per test, removed afterwards. */
#ifndef SHOEBOX_TESTS_UNIT_STORE_TESTDIR_H
#define SHOEBOX_TESTS_UNIT_STORE_TESTDIR_H

#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int testdir_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Creates a new directory into dir (at least 32 bytes). */
static void testdir_make(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/shoebox-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* The store location a test opens: a SQLite file `name` in dir, or, when
 * SHOEBOX_TEST_PG holds a PostgreSQL URL (the server tests/pgserver.py starts,
 * branch pg-harness), that URL; tests/unit/pg_fixture.h is to give each test a
 * fresh database there. Until the PostgreSQL driver is built, store_open()
 * refuses the URL and the tests fail rather than skip. */
static inline void testdir_location(char *out, size_t n, const char *dir, const char *name)
{
    const char *pg = getenv("SHOEBOX_TEST_PG");

    if (pg && *pg)
        snprintf(out, n, "%s", pg);
    else
        snprintf(out, n, "%s/%s", dir, name);
}

static void testdir_remove(const char *dir)
{
    if (dir[0])
        nftw(dir, testdir_rm, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
