/* Unit tests for src/store/migrations.c: versions, idempotence, failure, and
 * several openers of a new database at once. */
#include <check.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/migrations.h"
#include "store/store.h"
#include "testdir.h"

static char dir[64];
static char dbpath[128];
static sqlite3 *db;           /* the test's own look at the file */
static struct sql_conn *conn; /* what the runner migrates through (the SQLite driver) */

static void setup(void)
{
    testdir_make(dir, sizeof(dir));
    snprintf(dbpath, sizeof(dbpath), "%s/m.db", dir);
    ck_assert_int_eq(sql_sqlite_driver.open(dbpath, 0, &conn, NULL), 0);
    ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
}

static void teardown(void)
{
    sqlite3_close(db);
    db = NULL;
    sql_sqlite_driver.close(conn);
    conn = NULL;
    testdir_remove(dir);
}

static int64_t user_version(void)
{
    sqlite3_stmt *st = NULL;
    int64_t v;

    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int64_t count_rows(const char *table)
{
    char sql[128];
    sqlite3_stmt *st = NULL;
    int64_t n;

    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

START_TEST(test_builtin_once)
{
    struct err err = {0};
    int64_t v = -1;

    ck_assert_int_ge(migrations_latest(), 1);
    ck_assert_int_eq(migrations_apply(conn, &v, &err), 0);
    ck_assert_int_eq(v, migrations_latest());
    ck_assert_int_eq(user_version(), migrations_latest());
    ck_assert_int_eq(count_rows("users"), 0);
    ck_assert_int_eq(count_rows("photos"), 0);
    /* again: nothing to do, no error (CREATE TABLE would fail if it ran twice) */
    v = -1;
    ck_assert_int_eq(migrations_apply(conn, &v, &err), 0);
    ck_assert_int_eq(v, migrations_latest());
}
END_TEST

static const char *const two_steps[] = {
    "CREATE TABLE t (a INTEGER)",
    "ALTER TABLE t ADD COLUMN b TEXT NOT NULL DEFAULT 'x'; INSERT INTO t (a) VALUES (1)",
};

/* Table: steps known to the program, version before, version after, rc. */
static const struct {
    size_t from_steps, to_steps;
    int64_t after;
    int rc;
} step_rows[] = {
    {0, 1, 1, 0},   /* new database, first step */
    {1, 2, 2, 0},   /* one step pending */
    {0, 2, 2, 0},   /* two steps in one run */
    {2, 2, 2, 0},   /* up to date */
    {2, 1, 2, -1},  /* the database is newer than the program */
};

START_TEST(test_steps)
{
    struct err err = {0};
    int64_t v = -1;

    if (step_rows[_i].from_steps > 0)
        ck_assert_int_eq(migrations_run(conn, two_steps, step_rows[_i].from_steps, &v, &err), 0);
    ck_assert_int_eq(migrations_run(conn, two_steps, step_rows[_i].to_steps, &v, &err),
                     step_rows[_i].rc);
    ck_assert_int_eq(user_version(), step_rows[_i].after);
    if (step_rows[_i].rc) {
        ck_assert_int_eq(err.cls, ERR_PERMANENT);
        ck_assert_ptr_nonnull(strstr(err.msg, "newer"));
    } else {
        ck_assert_int_eq(v, step_rows[_i].after);
    }
    if (step_rows[_i].after == 2)
        ck_assert_int_eq(count_rows("t"), 1);
}
END_TEST

/* A failing step keeps nothing of the run. */
START_TEST(test_failed_step_rolls_back)
{
    static const char *const bad[] = {"CREATE TABLE t (a INTEGER)", "CREATE TABLE t (a)"};
    struct err err = {0};
    sqlite3_stmt *st = NULL;

    ck_assert_int_eq(migrations_run(conn, bad, 2, NULL, &err), -1);
    ck_assert_str_eq(err.stage, "store");
    ck_assert_ptr_nonnull(strstr(err.msg, "migration 2"));
    ck_assert_int_eq(user_version(), 0);
    ck_assert_int_ne(sqlite3_prepare_v2(db, "SELECT * FROM t", -1, &st, NULL), SQLITE_OK);
    sqlite3_finalize(st);
    ck_assert(!conn->drv->in_transaction(conn));
}
END_TEST

static void *open_store(void *arg)
{
    struct store *st = NULL;
    struct err err = {0};
    int64_t v = 0;

    (void)arg;
    if (store_open(dbpath, &st, &err))
        return (void *)1;
    if (st->ops->schema_version(st, &v, &err) || v != migrations_latest()) {
        st->ops->close(st);
        return (void *)1;
    }
    st->ops->close(st);
    return NULL;
}

/* Like several processes starting on a new data directory at once. */
START_TEST(test_concurrent_open)
{
    pthread_t t[8];
    void *r;

    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, open_store, NULL), 0);
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], &r);
        ck_assert_ptr_null(r);
    }
    ck_assert_int_eq(user_version(), migrations_latest());
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("migrations");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_builtin_once);
    tcase_add_loop_test(tc, test_steps, 0, sizeof(step_rows) / sizeof(step_rows[0]));
    tcase_add_test(tc, test_failed_step_rolls_back);
    tcase_add_test(tc, test_concurrent_open);
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
