/* Unit tests for base/log: client data is quoted, escaped and cut. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

START_TEST(quote_plain)
{
    ck_assert_str_eq(LOG_Q("IMG_0001.JPG"), "\"IMG_0001.JPG\"");
    ck_assert_str_eq(LOG_Q(""), "\"\"");
    ck_assert_str_eq(LOG_Q(NULL), "\"\"");
}
END_TEST

START_TEST(quote_escapes)
{
    /* A forged log line must stay inside one value. */
    ck_assert_str_eq(LOG_Q("a\nlevel=error x=\"y\""), "\"a\\x0alevel=error x=\\\"y\\\"\"");
    ck_assert_str_eq(LOG_Q("back\\slash\t"), "\"back\\\\slash\\x09\"");
}
END_TEST

START_TEST(quote_cut)
{
    char longer[LOG_VALUE_MAX + 50];
    const char *q;

    memset(longer, 'a', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    q = LOG_Q(longer);
    ck_assert_uint_eq(strlen(q), LOG_VALUE_MAX + 2 + 3);  /* quotes and "..." */
    ck_assert(strstr(q, "...\"") != NULL);
}
END_TEST

START_TEST(levels)
{
    log_init(LOG_WARN, "jobs,http");
    ck_assert(!log_enabled(LOG_INFO, "store"));
    ck_assert(log_enabled(LOG_ERROR, "store"));
    ck_assert(log_enabled(LOG_DEBUG, "http"));
    ck_assert(!log_enabled(LOG_DEBUG, "htt"));
    log_init(LOG_INFO, "all");
    ck_assert(log_enabled(LOG_DEBUG, "anything"));
    log_init(LOG_INFO, NULL);
    ck_assert(!log_enabled(LOG_DEBUG, "jobs"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, quote_plain);
    tcase_add_test(tc, quote_escapes);
    tcase_add_test(tc, quote_cut);
    tcase_add_test(tc, levels);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
