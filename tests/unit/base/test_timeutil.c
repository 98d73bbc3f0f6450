/* Unit tests for src/base/timeutil.c. */
#include "base/timeutil.h"

#include <check.h>
#include <string.h>

static int64_t ts_ms(struct timespec ts)
{
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A deadline is normalised (tv_nsec < 1e9) and lies ms after now, on the clock asked for. */
START_TEST(after_ms)
{
    static const int64_t steps[] = {0, 1, 250, 999, 1000, 1001, 1999, 123456};
    const clockid_t clocks[] = {CLOCK_MONOTONIC, CLOCK_REALTIME};

    for (size_t c = 0; c < 2; c++) {
        for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
            struct timespec now, t;
            clock_gettime(clocks[c], &now);
            t = time_after_ms(clocks[c], steps[i]);
            ck_assert(t.tv_nsec >= 0 && t.tv_nsec < 1000000000L);
            ck_assert_int_ge(ts_ms(t) - ts_ms(now), steps[i]);
            ck_assert_int_le(ts_ms(t) - ts_ms(now), steps[i] + 1000);  /* a slow machine */
        }
    }
}
END_TEST

START_TEST(iso8601)
{
    char out[32];

    time_iso8601(0, out, sizeof(out));
    ck_assert_str_eq(out, "1970-01-01T00:00:00.000Z");
    time_iso8601(1795000000123LL, out, sizeof(out));
    ck_assert_str_eq(out, "2026-11-18T11:06:40.123Z");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("timeutil");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, after_ms);
    tcase_add_test(tc, iso8601);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
