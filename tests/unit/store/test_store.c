/* Unit tests for src/store/store.c: backend choice and state names. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

static const struct {
    const char *location;
    const char *msg_part;  /* NULL: opens */
    enum err_class cls;
} open_rows[] = {
    /* nothing listens on port 1: the server may come back, so transient */
    {"postgres://shoebox:secret@127.0.0.1:1/shoebox", "cannot connect to PostgreSQL 'postgres://shoebox:***@127.0.0.1:1/shoebox'", ERR_TRANSIENT},
    {"postgresql://127.0.0.1:1/shoebox", "cannot connect to PostgreSQL", ERR_TRANSIENT},
    {"postgres://shoebox:secret@127.0.0.1:1/shoebox?sslmode=bogus", "invalid sslmode", ERR_PERMANENT},
    {"", "no database location", ERR_PERMANENT},
};

START_TEST(test_open_refused)
{
    struct store *st = (struct store *)1;
    struct err err = {0};

    ck_assert_int_eq(store_open(open_rows[_i].location, &st, &err), -1);
    ck_assert_ptr_null(st);
    ck_assert_msg(err.cls == open_rows[_i].cls, "%s", err.msg);
    ck_assert_str_eq(err.stage, "store");
    ck_assert_msg(strstr(err.msg, open_rows[_i].msg_part), "%s", err.msg);
    ck_assert_ptr_null(strstr(err.msg, "secret"));  /* never echo the URL */
}
END_TEST

static const struct {
    enum store_file_state s;
    const char *name;
} state_rows[] = {
    {FILE_RECEIVED, "received"}, {FILE_QUEUED, "queued"},       {FILE_PROCESSING, "processing"},
    {FILE_DONE, "done"},         {FILE_DUPLICATE, "duplicate"}, {FILE_FAILED, "failed"},
    {(enum store_file_state)99, "unknown"},
};

START_TEST(test_state_names)
{
    ck_assert_str_eq(store_file_state_name(state_rows[_i].s), state_rows[_i].name);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_open_refused, 0, sizeof(open_rows) / sizeof(open_rows[0]));
    tcase_add_loop_test(tc, test_state_names, 0, sizeof(state_rows) / sizeof(state_rows[0]));
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
