/* testdir: a fresh temporary directory per test, removed afterwards. */
#ifndef SHOEBOX_TESTS_UNIT_STORE_TESTDIR_H
#define SHOEBOX_TESTS_UNIT_STORE_TESTDIR_H

#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef TESTDIR_PG
#include "pg_fixture.h"
#endif

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

/* The store location a test opens: a SQLite file `name` in dir; built with
 * -DTESTDIR_PG (test_store_pg, the same tests as test_store_sqlite), a fresh
 * database on the PostgreSQL server SHOEBOX_TEST_PG names (tests/pgserver.py,
 * through tests/unit/pg_fixture.h), dropped by testdir_remove(). Such a
 * program returns PG_FIXTURE_SKIP when SHOEBOX_TEST_PG is unset.
 * SHOEBOX_TEST_BACKEND=pg asks the same of a program built without
 * TESTDIR_PG: it fails (use test_store_pg); unset or "sqlite" changes nothing,
 * nor does SHOEBOX_TEST_PG alone. */
#ifdef TESTDIR_PG
static char testdir_pg_url[1024]; /* the database of the running test, "" none */
#endif

static inline void testdir_location(char *out, size_t n, const char *dir, const char *name)
{
#ifdef TESTDIR_PG
    char *url = pg_fixture_create_db();

    (void)dir, (void)name;
    ck_assert_ptr_nonnull(url);
    snprintf(out, n, "%s", url);
    snprintf(testdir_pg_url, sizeof(testdir_pg_url), "%s", url);
    free(url);
#else
    const char *backend = getenv("SHOEBOX_TEST_BACKEND");

    if (backend && *backend && strcmp(backend, "sqlite") != 0)
        ck_abort_msg("store tests: backend '%s' is built as its own program (test_store_pg)",
                     backend);
    snprintf(out, n, "%s/%s", dir, name);
#endif
}

static void testdir_remove(const char *dir)
{
#ifdef TESTDIR_PG
    if (testdir_pg_url[0]) {
        pg_fixture_drop_db(strdup(testdir_pg_url));
        testdir_pg_url[0] = '\0';
    }
#endif
    if (dir[0])
        nftw(dir, testdir_rm, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
