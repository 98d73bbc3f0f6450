/* Unit tests for base/str and base/buf. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/str.h"

struct size_case {
    const char *in;
    int rc;
    uint64_t out;
};

static const struct size_case size_cases[] = {
    {"0", 0, 0},
    {"1", 0, 1},
    {"100MB", 0, 100ULL << 20},
    {"100mb", 0, 100ULL << 20},
    {"64k", 0, 64ULL << 10},
    {"2G", 0, 2ULL << 30},
    {"2GB", 0, 2ULL << 30},
    {"", -1, 0},
    {"MB", -1, 0},
    {"-1", -1, 0},
    {" 1", -1, 0},
    {"1 MB", -1, 0},
    {"1T", -1, 0},
    {"18446744073709551615", 0, UINT64_MAX},
    {"18446744073709551616", -1, 0},   /* overflow */
    {"17179869184G", -1, 0},           /* overflow after the multiplier */
};

START_TEST(sizes)
{
    const struct size_case *c = &size_cases[_i];
    uint64_t v = 12345;

    ck_assert_msg(str_to_size(c->in, &v) == c->rc, "'%s'", c->in);
    if (c->rc == 0)
        ck_assert_msg(v == c->out, "'%s' gave %llu", c->in, (unsigned long long)v);
}
END_TEST

/* str_format_size: what messages say of a size. */
static const struct {
    int64_t bytes;
    const char *out;
} shown_sizes[] = {
    {0, "0 bytes"},
    {10, "10 bytes"},
    {1023, "1023 bytes"},
    {1024, "1 KB"},
    {1536, "1.5 KB"},
    {512 * 1024, "512 KB"},
    {100LL * 1024 * 1024, "100 MB"},
    {1536LL * 1024 * 1024, "1.5 GB"},
    {2LL * 1024 * 1024 * 1024 * 1024, "2 TB"},
    {5000LL * 1024 * 1024 * 1024 * 1024, "5000 TB"},
};

START_TEST(format_sizes)
{
    char out[32];

    str_format_size(shown_sizes[_i].bytes, out, sizeof(out));
    ck_assert_str_eq(out, shown_sizes[_i].out);
}
END_TEST

START_TEST(ints)
{
    int64_t v;

    ck_assert_int_eq(str_to_int64("42", &v), 0);
    ck_assert_int_eq(v, 42);
    ck_assert_int_eq(str_to_int64("-7", &v), 0);
    ck_assert_int_eq(v, -7);
    ck_assert_int_eq(str_to_int64("9223372036854775807", &v), 0);
    ck_assert_int_eq(str_to_int64("9223372036854775808", &v), -1);
    ck_assert_int_eq(str_to_int64("12abc", &v), -1);
    ck_assert_int_eq(str_to_int64("", &v), -1);
    ck_assert_int_eq(str_to_int64(NULL, &v), -1);
}
END_TEST

START_TEST(doubles)
{
    double d;

    ck_assert_int_eq(str_to_double("0.5", &d), 0);
    ck_assert_double_eq(d, 0.5);
    ck_assert_int_eq(str_to_double("nan", &d), -1);
    ck_assert_int_eq(str_to_double("inf", &d), -1);
    ck_assert_int_eq(str_to_double("1e999", &d), -1);
    ck_assert_int_eq(str_to_double("1.5s", &d), -1);
}
END_TEST

START_TEST(helpers)
{
    char hex[9];
    unsigned char in[4] = {0xde, 0xad, 0x00, 0x0f};

    str_hex(in, 4, hex);
    ck_assert_str_eq(hex, "dead000f");
    ck_assert(str_starts_with("/static/app.css", "/static/"));
    ck_assert(!str_starts_with("/stat", "/static/"));
    ck_assert(str_ends_with("a.jpg", ".jpg"));
    ck_assert(!str_ends_with("g", ".jpg"));
    ck_assert(str_equal_ct("abc", "abc"));
    ck_assert(!str_equal_ct("abc", "abd"));
    ck_assert(!str_equal_ct("abc", "abcd"));
    ck_assert(!str_equal_ct("", "a"));
}
END_TEST

START_TEST(from_int64)
{
    char d[STR_INT64_LEN];

    ck_assert_str_eq(str_from_int64(0, d), "0");
    ck_assert_str_eq(str_from_int64(7, d), "7");
    ck_assert_str_eq(str_from_int64(-42, d), "-42");
    ck_assert_str_eq(str_from_int64(1234567890123LL, d), "1234567890123");
    ck_assert_str_eq(str_from_int64(INT64_MAX, d), "9223372036854775807");
    ck_assert_str_eq(str_from_int64(INT64_MIN, d), "-9223372036854775808");
}
END_TEST

/* Appends up to the room, always NUL-terminated, and never past cap. */
START_TEST(append)
{
    char out[8];
    size_t len = 0;

    memset(out, 'x', sizeof(out));
    out[0] = '\0';
    str_append(out, sizeof(out), &len, "ab");
    str_append(out, sizeof(out), &len, "");
    str_append(out, sizeof(out), &len, "cd");
    ck_assert_str_eq(out, "abcd");
    ck_assert_uint_eq(len, 4);
    str_append(out, sizeof(out), &len, "efghij");
    ck_assert_str_eq(out, "abcdefg");
    ck_assert_uint_eq(len, 7);
    str_append(out, sizeof(out), &len, "k");
    ck_assert_str_eq(out, "abcdefg");
    str_append(out, 6, (len = 3, &len), "zzzz"); /* a smaller room: cut at 5 */
    ck_assert_str_eq(out, "abczz");
}
END_TEST

START_TEST(from_tenths)
{
    char d[STR_TENTHS_LEN];

    ck_assert_str_eq(str_from_tenths(0.0, d), "0.0");
    ck_assert_str_eq(str_from_tenths(0.04, d), "0.0");
    ck_assert_str_eq(str_from_tenths(0.05, d), "0.1");
    ck_assert_str_eq(str_from_tenths(12.34, d), "12.3");
    ck_assert_str_eq(str_from_tenths(99.96, d), "100.0");
    ck_assert_str_eq(str_from_tenths(1234567.25, d), "1234567.3");
}
END_TEST

START_TEST(unhex)
{
    ck_assert_int_eq(str_unhex2("00"), 0);
    ck_assert_int_eq(str_unhex2("2f"), 0x2f);
    ck_assert_int_eq(str_unhex2("Fa"), 0xfa);
    ck_assert_int_eq(str_unhex2("ff"), 255);
    ck_assert_int_eq(str_unhex2("g0"), -1);
    ck_assert_int_eq(str_unhex2("0g"), -1);
    ck_assert_int_eq(str_unhex2("1"), -1);   /* ends after one digit */
    ck_assert_int_eq(str_unhex2(""), -1);    /* p[1] is past the end: not read */
}
END_TEST

START_TEST(buffers)
{
    struct buf b;
    char *s;
    size_t len;

    buf_init(&b);
    ck_assert_str_eq(b.data, "");
    for (int i = 0; i < 1000; i++)
        buf_addf(&b, "%d,", i);
    ck_assert_uint_eq(b.len, strlen(b.data));
    ck_assert(str_starts_with(b.data, "0,1,2,"));
    ck_assert(str_ends_with(b.data, "998,999,"));
    buf_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    buf_add(&b, "a\0b", 3);
    ck_assert_uint_eq(b.len, 3);
    s = buf_detach(&b, &len);
    ck_assert_uint_eq(len, 3);
    ck_assert_int_eq(memcmp(s, "a\0b", 4), 0);
    ck_assert_uint_eq(b.len, 0);
    free(s);
    buf_release(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("str");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, sizes, 0, sizeof(size_cases) / sizeof(size_cases[0]));
    tcase_add_loop_test(tc, format_sizes, 0, sizeof(shown_sizes) / sizeof(shown_sizes[0]));
    tcase_add_test(tc, ints);
    tcase_add_test(tc, doubles);
    tcase_add_test(tc, helpers);
    tcase_add_test(tc, unhex);
    tcase_add_test(tc, from_int64);
    tcase_add_test(tc, from_tenths);
    tcase_add_test(tc, append);
    tcase_add_test(tc, buffers);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
