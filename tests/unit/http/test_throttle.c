/* Unit tests for src/http/throttle.c: the login throttle, with times passed in. */
#include "http/throttle.h"

#include <check.h>
#include <stdio.h>

#include "base/limits.h"

#define T0 INT64_C(1000000)
#define FREE LIMIT_LOGIN_FREE_FAILURES

static struct throttle *t;

static void setup(void)
{
    t = throttle_new();
}
static void teardown(void)
{
    throttle_free(t);
}

static void fail_n(const char *addr, const char *name, int n, int64_t now)
{
    for (int i = 0; i < n; i++)
        throttle_failed(t, addr, name, now);
}

START_TEST(free_failures_then_doubling_to_the_cap)
{
    int64_t want = LIMIT_LOGIN_DELAY_MS;

    for (int i = 1; i < FREE; i++)
        ck_assert_int_eq(throttle_failed(t, "1.1.1.1", "ann", T0), 0);
    ck_assert_int_eq(throttle_wait_ms(t, "1.1.1.1", "ann", T0), 0);   /* the limit - 1 */
    ck_assert_int_eq(throttle_failed(t, "1.1.1.1", "ann", T0), want); /* the limit */
    ck_assert_int_eq(throttle_wait_ms(t, "1.1.1.1", "ann", T0), want);
    ck_assert_int_eq(throttle_wait_ms(t, "1.1.1.1", "ann", T0 + 400), want - 400);
    ck_assert_int_eq(throttle_wait_ms(t, "1.1.1.1", "ann", T0 + want), 0);
    for (int i = 0; i < 20; i++) {
        want = want * 2 > LIMIT_LOGIN_DELAY_MAX_MS ? LIMIT_LOGIN_DELAY_MAX_MS : want * 2;
        ck_assert_int_eq(throttle_failed(t, "1.1.1.1", "ann", T0), want);
    }
    ck_assert_int_eq(want, LIMIT_LOGIN_DELAY_MAX_MS);
}
END_TEST

START_TEST(per_address_and_per_name)
{
    fail_n("1.1.1.1", "ann", FREE, T0);
    /* the address waits for any name; another address may try other names */
    ck_assert_int_gt(throttle_wait_ms(t, "1.1.1.1", "bob", T0), 0);
    ck_assert_int_eq(throttle_wait_ms(t, "2.2.2.2", "bob", T0), 0);
    /* the name waits for any address that never logged in as it */
    ck_assert_int_gt(throttle_wait_ms(t, "2.2.2.2", "ann", T0), 0);
}
END_TEST

START_TEST(known_address_spared_for_its_name)
{
    char addr[32];

    throttle_succeeded(t, "9.9.9.9", "ann", T0);
    for (int i = 0; i < FREE * 3; i++) { /* a spread attack on ann, one try per address */
        snprintf(addr, sizeof(addr), "10.0.0.%d", i);
        throttle_failed(t, addr, "ann", T0);
    }
    ck_assert_int_gt(throttle_wait_ms(t, "2.2.2.2", "ann", T0), 0);
    ck_assert_int_eq(throttle_wait_ms(t, "9.9.9.9", "ann", T0), 0);
    ck_assert_int_eq(throttle_wait_ms(t, "10.0.0.1", "bob", T0), 0);
}
END_TEST

START_TEST(success_resets_and_failures_are_forgotten)
{
    fail_n("1.1.1.1", "ann", FREE, T0);
    ck_assert_int_gt(throttle_wait_ms(t, "1.1.1.1", "ann", T0), 0);
    throttle_succeeded(t, "1.1.1.1", "ann", T0 + LIMIT_LOGIN_DELAY_MS);
    ck_assert_int_eq(throttle_wait_ms(t, "1.1.1.1", "ann", T0 + LIMIT_LOGIN_DELAY_MS), 0);
    ck_assert_int_eq(throttle_failed(t, "1.1.1.1", "ann", T0 + LIMIT_LOGIN_DELAY_MS), 0);

    fail_n("3.3.3.3", "bob", FREE - 1, T0);
    /* after the forget time the count starts again: one more is free */
    ck_assert_int_eq(throttle_failed(t, "3.3.3.3", "bob", T0 + LIMIT_LOGIN_FORGET_MS + 1), 0);
}
END_TEST

START_TEST(table_full_reuses_the_idlest)
{
    char addr[32];

    fail_n("1.1.1.1", "ann", FREE, T0 + 10);
    ck_assert_int_gt(throttle_wait_ms(t, "1.1.1.1", "bob", T0 + 20), 0);
    /* a table's worth of newer entries: ann's, idle the longest, are reused */
    for (int i = 0; i < LIMIT_LOGIN_TRACKED; i++) {
        snprintf(addr, sizeof(addr), "10.%d.%d.1", i / 256, i % 256);
        throttle_failed(t, addr, NULL, T0 + 20);
    }
    ck_assert_int_eq(throttle_wait_ms(t, "1.1.1.1", "bob", T0 + 20), 0);
    ck_assert_int_eq(throttle_wait_ms(t, "2.2.2.2", "ann", T0 + 20), 0);
    /* a full table still throttles */
    fail_n("3.3.3.3", "cy", FREE, T0 + 30);
    ck_assert_int_gt(throttle_wait_ms(t, "3.3.3.3", "cy", T0 + 30), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("throttle");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, free_failures_then_doubling_to_the_cap);
    tcase_add_test(tc, per_address_and_per_name);
    tcase_add_test(tc, known_address_spared_for_its_name);
    tcase_add_test(tc, success_resets_and_failures_are_forgotten);
    tcase_add_test(tc, table_full_reuses_the_idlest);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
