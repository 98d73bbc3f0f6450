/* Unit tests for src/store/sql.c and the SQLite driver (sql_sqlite.c): the seam's
 * promises in sql.h, on real SQLite files in a fresh directory per test. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/fault.h"
#include "store/sql.h"
#include "store/sql_pg.h"
#include "testdir.h"

static char dir[64];
static char dbpath[128];
static struct sql_pool *P;
static struct sql_conn *C;

static const char create_t[] =
    "CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, d REAL, "
    "n INTEGER NOT NULL CHECK (n >= 0))";
static const char insert_t[] = "INSERT INTO t (k, d, n) VALUES (?1, ?2, ?3) RETURNING id";
static const char count_t[] = "SELECT count(*) FROM t";

static void setup(void)
{
    struct err err = {0};

    fault_arm("");
    testdir_make(dir, sizeof(dir));
    snprintf(dbpath, sizeof(dbpath), "%s/sql.db", dir);
    ck_assert_msg(sql_pool_new(&sql_sqlite_driver, dbpath, 0, 2, &P, &err) == 0, "%s", err.msg);
    C = sql_pool_borrow(P, &err);
    ck_assert_ptr_nonnull(C);
    ck_assert_int_eq(C->drv->exec(C, create_t, "create t", &err), 0);
}

static void teardown(void)
{
    fault_arm("");
    sql_pool_give_back(P, C);
    C = NULL;
    sql_pool_free(P);
    P = NULL;
    testdir_remove(dir);
}

static int64_t count(void)
{
    int64_t n = -1;

    ck_assert_int_eq(sql_scalar(C, &n, "count", count_t, SQL_NOARGS, NULL), 1);
    return n;
}

/* Values bound and read back: NaN is NULL both ways, NULL text binds ''. */
static const struct {
    const char *k;
    double d;
    int64_t n;
} vals[] = {
    {"a", 1.5, 0},
    {"", NAN, INT64_MAX},
    {NULL, -0.25, 1},
};

START_TEST(test_bind_and_read)
{
    struct sql_stmt *s = NULL;
    int64_t id = 0;

    ck_assert_int_eq(sql_scalar(C, &id, "insert", insert_t,
                                SQL_ARGS(SQL_VT(vals[_i].k), SQL_VD(vals[_i].d),
                                         SQL_VI(vals[_i].n)),
                                NULL),
                     1);
    ck_assert_int_gt(id, 0);
    ck_assert_int_eq(sql_row1(C, &s, "read", "SELECT k, d, n, d IS NULL FROM t WHERE id = ?1",
                              SQL_ARGS(SQL_VI(id)), NULL),
                     1);
    ck_assert_str_eq(sql_col_text(s, 0), vals[_i].k ? vals[_i].k : "");
    if (isnan(vals[_i].d))
        ck_assert(isnan(sql_col_double(s, 1)));
    else
        ck_assert(sql_col_double(s, 1) == vals[_i].d);
    ck_assert_int_eq(sql_col_int64(s, 2), vals[_i].n);
    ck_assert_int_eq(sql_col_int64(s, 3), isnan(vals[_i].d));
    ck_assert_int_eq(sql_col_count(s), 4);
    sql_reset(s);
}
END_TEST

/* The cache keys on the text's address: one statement object per call site. */
START_TEST(test_statement_cache)
{
    struct sql_stmt *a = C->drv->prepare(C, count_t, "count", NULL);
    struct sql_stmt *b = C->drv->prepare(C, count_t, "count", NULL);

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_eq(a, b);
    ck_assert_ptr_eq(a->conn, C);
}
END_TEST

/* Failures carry their kind and the operation's name; nothing is written. */
static const struct {
    const char *k;
    int64_t n;
    enum sql_fail kind;
} fails[] = {
    {"dup", 1, SQL_FAIL_UNIQUE},
    {"neg", -1, SQL_FAIL_CONSTRAINT},
};

START_TEST(test_failure_kinds)
{
    struct err err = {0};
    bool unique = true;

    ck_assert_int_eq(sql_run(C, "insert", insert_t, SQL_ARGS(SQL_VT("dup"), SQL_VD(0), SQL_VI(1)),
                             &err),
                     1);
    ck_assert_int_eq(sql_run_unique(C, &unique, "add the row", insert_t,
                                    SQL_ARGS(SQL_VT(fails[_i].k), SQL_VD(0), SQL_VI(fails[_i].n)),
                                    &err),
                     -1);
    ck_assert_int_eq(C->drv->fail_kind(C), fails[_i].kind);
    ck_assert_int_eq(unique, fails[_i].kind == SQL_FAIL_UNIQUE);
    ck_assert_int_eq(err.cls, ERR_PERMANENT);
    ck_assert_str_eq(err.stage, "store");
    ck_assert_ptr_nonnull(strstr(err.msg, "cannot add the row"));
    ck_assert_int_eq(count(), 1);
}
END_TEST

/* ON CONFLICT DO NOTHING RETURNING: an existing key is no row, not a failure. */
START_TEST(test_on_conflict_no_row)
{
    int64_t id = 0;
    struct err err = {0};

    ck_assert_int_eq(sql_scalar(C, &id, "insert", "INSERT INTO t (k, n) VALUES (?1, 0) "
                                "ON CONFLICT (k) DO NOTHING RETURNING id",
                                SQL_ARGS(SQL_VT("x")), &err),
                     1);
    ck_assert_int_eq(sql_scalar(C, &id, "insert", "INSERT INTO t (k, n) VALUES (?1, 0) "
                                "ON CONFLICT (k) DO NOTHING RETURNING id",
                                SQL_ARGS(SQL_VT("x")), &err),
                     0);
    ck_assert_int_eq(count(), 1);
}
END_TEST

/* A transaction an early exit left open is rolled back when the pool takes the
 * connection back, and the connection is usable again. */
START_TEST(test_give_back_rolls_back)
{
    struct sql_conn *c;
    struct err err = {0};

    ck_assert_int_eq(sql_begin(C, &err), 0);
    ck_assert(C->drv->in_transaction(C));
    ck_assert_int_eq(sql_run(C, "insert", insert_t, SQL_ARGS(SQL_VT("a"), SQL_VD(0), SQL_VI(0)),
                             &err),
                     1);
    sql_pool_give_back(P, C);
    c = sql_pool_borrow(P, &err);
    ck_assert_ptr_eq(c, C);  /* the free list is last in, first out */
    ck_assert(!C->drv->in_transaction(C));
    ck_assert_int_eq(count(), 0);
}
END_TEST

/* The "commit" fault point rolls back and fails as transient, whatever the driver. */
START_TEST(test_commit_fault)
{
    struct err err = {0};

    ck_assert_int_eq(fault_arm("commit=1"), 0);
    ck_assert_int_eq(sql_begin(C, &err), 0);
    ck_assert_int_eq(sql_run(C, "insert", insert_t, SQL_ARGS(SQL_VT("a"), SQL_VD(0), SQL_VI(0)),
                             &err),
                     1);
    ck_assert_int_eq(sql_commit(C, &err), -1);
    ck_assert_int_eq(err.cls, ERR_TRANSIENT);
    ck_assert(!C->drv->in_transaction(C));
    ck_assert_int_eq(count(), 0);
    /* the next commit goes through */
    ck_assert_int_eq(sql_write1(P, SQL_MISSING_OK, "insert", insert_t,
                                SQL_ARGS(SQL_VT("b"), SQL_VD(0), SQL_VI(0)), &err),
                     0);
    ck_assert_int_eq(count(), 1);
}
END_TEST

/* write1's three answers for a statement that changed no row. */
START_TEST(test_write1_missing)
{
    static const char upd[] = "UPDATE t SET n = 1 WHERE k = ?1";
    struct err err = {0};

    ck_assert_int_eq(sql_write1(P, SQL_MISSING_OK, "update", upd, SQL_ARGS(SQL_VT("z")), &err),
                     0);
    ck_assert_int_eq(sql_write1(P, SQL_MISSING_NOT_FOUND, "update", upd, SQL_ARGS(SQL_VT("z")),
                                &err),
                     1);
    ck_assert_int_eq(sql_write1(P, "row 'z' does not exist", "update the row", upd,
                                SQL_ARGS(SQL_VT("z")), &err),
                     -1);
    ck_assert_str_eq(err.msg, "cannot update the row: row 'z' does not exist");
}
END_TEST

struct waiter {
    struct sql_conn *got;
};

static void *borrow_one(void *arg)
{
    struct waiter *w = arg;

    w->got = sql_pool_borrow(P, NULL);
    return NULL;
}

/* The pool holds at most max connections: a third borrower waits (it has not
 * returned half a second later; with no bound it would open a third connection
 * at once) until one comes back, and then gets that one. */
START_TEST(test_pool_bound)
{
    struct sql_conn *second = sql_pool_borrow(P, NULL);
    struct waiter w = {NULL};
    struct timespec until;
    pthread_t t;

    ck_assert_ptr_nonnull(second);
    ck_assert_ptr_ne(second, C);
    ck_assert_int_eq(pthread_create(&t, NULL, borrow_one, &w), 0);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 500 * 1000 * 1000;
    if (until.tv_nsec >= 1000 * 1000 * 1000) {
        until.tv_sec++;
        until.tv_nsec -= 1000 * 1000 * 1000;
    }
    ck_assert_int_ne(pthread_timedjoin_np(t, NULL, &until), 0);  /* still waiting */
    sql_pool_give_back(P, second);
    pthread_join(t, NULL);
    ck_assert_ptr_eq(w.got, second);
    sql_pool_give_back(P, w.got);
}
END_TEST

/* Locations: SQLite paths go to the SQLite driver, postgres:// and
 * postgresql:// URLs to the PostgreSQL driver (sql_pg.c). */
START_TEST(test_driver_for)
{
    struct err err = {0};

    ck_assert_ptr_eq(sql_driver_for("/tmp/x.db", &err), &sql_sqlite_driver);
    ck_assert_ptr_null(sql_driver_for("", &err));
    ck_assert_ptr_eq(sql_driver_for("postgres://u:secret@h/db", &err), &sql_pg_driver);
    ck_assert_ptr_eq(sql_driver_for("postgresql://h/db", &err), &sql_pg_driver);
    ck_assert_str_eq(sql_pg_driver.name, "postgres");
    ck_assert_int_eq(sql_pg_driver.dialect, SQL_POSTGRES);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("sql");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_bind_and_read, 0, sizeof(vals) / sizeof(vals[0]));
    tcase_add_test(tc, test_statement_cache);
    tcase_add_loop_test(tc, test_failure_kinds, 0, sizeof(fails) / sizeof(fails[0]));
    tcase_add_test(tc, test_on_conflict_no_row);
    tcase_add_test(tc, test_give_back_rolls_back);
    tcase_add_test(tc, test_commit_fault);
    tcase_add_test(tc, test_write1_missing);
    tcase_add_test(tc, test_pool_bound);
    tcase_add_test(tc, test_driver_for);
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
