/* Unit tests for base/fault: the spec grammar and when points fire. */
#include <check.h>
#include <stdlib.h>

#include "base/fault.h"

START_TEST(nth_call)
{
    ck_assert_int_eq(fault_arm("fsync=3"), 0);
    ck_assert(!fault_hit("fsync", NULL));
    ck_assert(!fault_hit("fsync", NULL));
    ck_assert(fault_hit("fsync", NULL));   /* the 3rd */
    ck_assert(!fault_hit("fsync", NULL));  /* once */
    ck_assert(!fault_hit("commit", NULL));
}
END_TEST

START_TEST(from_on)
{
    ck_assert_int_eq(fault_arm("write=2+,commit=1"), 0);
    ck_assert(!fault_hit("write", NULL));
    ck_assert(fault_hit("write", NULL));
    ck_assert(fault_hit("write", NULL));
    ck_assert(fault_hit("commit", NULL));
    ck_assert(!fault_hit("commit", NULL));
}
END_TEST

START_TEST(by_subject)
{
    ck_assert_int_eq(fault_arm("decode_crash@boom"), 0);
    ck_assert(!fault_hit("decode_crash", "fine.jpg"));
    ck_assert(fault_hit("decode_crash", "a-boom.jpg"));
    ck_assert(fault_hit("decode_crash", "a-boom.jpg"));  /* every time */
    ck_assert(!fault_hit("decode_crash", NULL));
}
END_TEST

START_TEST(roles)
{
    ck_assert_int_eq(fault_arm_role("worker:commit=1,serve:fsync=1,write=1", "serve"), 0);
    ck_assert(!fault_hit("commit", NULL));  /* the worker's rule is not armed here */
    ck_assert(fault_hit("fsync", NULL));
    ck_assert(fault_hit("write", NULL));    /* no role: everyone */
    ck_assert_int_eq(fault_arm_role("worker:commit=1", "worker"), 0);
    ck_assert(fault_hit("commit", NULL));
    ck_assert_int_eq(fault_arm_role("worker:", "worker"), -1);
}
END_TEST

START_TEST(disarmed_and_malformed)
{
    ck_assert_int_eq(fault_arm(""), 0);
    ck_assert(!fault_hit("fsync", NULL));
    ck_assert_int_eq(fault_arm("fsync"), -1);
    ck_assert_int_eq(fault_arm("fsync=0"), -1);
    ck_assert_int_eq(fault_arm("fsync=x"), -1);
    ck_assert_int_eq(fault_arm("=3"), -1);
    ck_assert_int_eq(fault_arm("a@"), -1);
    ck_assert_int_eq(fault_arm(NULL), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fault");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, nth_call);
    tcase_add_test(tc, from_on);
    tcase_add_test(tc, by_subject);
    tcase_add_test(tc, roles);
    tcase_add_test(tc, disarmed_and_malformed);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
