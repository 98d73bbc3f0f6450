/* Unit tests for tests/unit/pg_fixture.h: a database on the run's throwaway PostgreSQL
 * (SHOEBOX_TEST_PG) is created, answers SELECT 1 through libpq, and is dropped. */
#include <check.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "pg_fixture.h"

static PGconn *connect_ok(const char *url)
{
    PGconn *conn = PQconnectdb(url);

    ck_assert_msg(PQstatus(conn) == CONNECTION_OK, "connect: %s", PQerrorMessage(conn));
    return conn;
}

START_TEST(test_create_select_drop)
{
    char *url = pg_fixture_create_db();
    const char *name;
    PGconn *conn;
    PGresult *res;

    ck_assert_ptr_nonnull(url);
    ck_assert_ptr_nonnull(strstr(url, "postgres://shoebox:"));
    name = strrchr(url, '/') + 1;

    conn = connect_ok(url);
    res = PQexec(conn, "SELECT 1, current_database(), current_user");
    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    ck_assert_str_eq(PQgetvalue(res, 0, 0), "1");
    ck_assert_str_eq(PQgetvalue(res, 0, 1), name);
    ck_assert_str_eq(PQgetvalue(res, 0, 2), "shoebox");
    PQclear(res);

    /* the test's user owns the database: it can make tables in public */
    res = PQexec(conn, "CREATE TABLE t (id bigint PRIMARY KEY); INSERT INTO t VALUES (1)");
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQerrorMessage(conn));
    PQclear(res);
    /* left open on purpose: the drop closes it (WITH (FORCE)) */

    {
        char *again = malloc(strlen(url) + 1);

        memcpy(again, url, strlen(url) + 1);
        ck_assert_int_eq(pg_fixture_drop_db(url), 0);
        PQfinish(conn);
        conn = PQconnectdb(again);
        ck_assert_int_eq(PQstatus(conn), CONNECTION_BAD);
        ck_assert_ptr_nonnull(strstr(PQerrorMessage(conn), "does not exist"));
        PQfinish(conn);
        free(again);
    }
}
END_TEST

START_TEST(test_names_are_unique)
{
    char *a = pg_fixture_create_db();
    char *b = pg_fixture_create_db();

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(pg_fixture_drop_db(a), 0);
    ck_assert_int_eq(pg_fixture_drop_db(b), 0);
    ck_assert_int_eq(pg_fixture_drop_db(NULL), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("pg_fixture");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_create_select_drop);
    tcase_add_test(tc, test_names_are_unique);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr;
    int failed;

    if (!pg_fixture_available())
        return PG_FIXTURE_SKIP; /* no PostgreSQL on this machine: tests/run.py says skipped */
    sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
