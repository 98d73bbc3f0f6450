/* Unit tests for src/http/range.c: single byte ranges (RFC 9110 14.1.2, 14.2). */
#include "http/range.h"

#include <check.h>

struct range_case {
    const char *hdr;
    int64_t size;
    enum range_result res;
    int64_t start, len;
};

static const struct range_case cases[] = {
    {NULL, 100, RANGE_NONE, 0, 0},
    {"", 100, RANGE_NONE, 0, 0},
    {"bytes=0-0", 100, RANGE_PARTIAL, 0, 1},
    {"bytes=0-99", 100, RANGE_PARTIAL, 0, 100},
    {"bytes=10-", 100, RANGE_PARTIAL, 10, 90},
    {"bytes=99-", 100, RANGE_PARTIAL, 99, 1},
    {"bytes=-10", 100, RANGE_PARTIAL, 90, 10},
    {"bytes=-1000", 100, RANGE_PARTIAL, 0, 100},
    /* an end past the file is clamped (RFC 9110 14.1.2), however many digits */
    {"bytes=0-100", 100, RANGE_PARTIAL, 0, 100},
    {"bytes=50-1000000", 100, RANGE_PARTIAL, 50, 50},
    {"bytes=0-999999999999999999", 100, RANGE_PARTIAL, 0, 100},
    {"bytes=0-9999999999999999999", 100, RANGE_PARTIAL, 0, 100},
    {"bytes=0-99999999999999999999999999", 100, RANGE_PARTIAL, 0, 100},
    {"bytes=-99999999999999999999999999", 100, RANGE_PARTIAL, 0, 100},
    {"bytes=100-", 100, RANGE_UNSATISFIABLE, 0, 0},
    {"bytes=100-200", 100, RANGE_UNSATISFIABLE, 0, 0},
    {"bytes=99999999999999999999-", 100, RANGE_UNSATISFIABLE, 0, 0},
    {"bytes=-0", 100, RANGE_UNSATISFIABLE, 0, 0},
    {"bytes=0-", 0, RANGE_UNSATISFIABLE, 0, 0},
    {"bytes=5-4", 100, RANGE_NONE, 0, 0},
    {"bytes=a-4", 100, RANGE_NONE, 0, 0},
    {"bytes=1-2,4-5", 100, RANGE_NONE, 0, 0},
    {"bytes=+1-2", 100, RANGE_NONE, 0, 0},
    {"bytes=-", 100, RANGE_NONE, 0, 0},
    {"items=0-1", 100, RANGE_NONE, 0, 0},
    {"bytes=0-9", 100, RANGE_PARTIAL, 0, 10},
    {"bytes=90-200", 100, RANGE_PARTIAL, 90, 10},
    {"bytes=99-99", 100, RANGE_PARTIAL, 99, 1},
    {"bytes=-200", 100, RANGE_PARTIAL, 0, 100},
    {"bytes= 1-2", 100, RANGE_NONE, 0, 0},
};

START_TEST(test_cases)
{
    const struct range_case *c = &cases[_i];
    int64_t start = -1, len = -1;
    enum range_result r = range_parse(c->hdr, c->size, &start, &len);

    ck_assert_msg(r == c->res, "'%s' size %lld: result %d, want %d", c->hdr ? c->hdr : "(null)",
                  (long long)c->size, r, c->res);
    if (r == RANGE_PARTIAL) {
        ck_assert_int_eq(start, c->start);
        ck_assert_int_eq(len, c->len);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("range");
    TCase *tc = tcase_create("parse");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, test_cases, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
