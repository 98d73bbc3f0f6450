/* Unit tests for src/http/cursor.c: a page cursor in a URL, parsed and written back. */
#include "http/cursor.h"

#include <check.h>
#include <string.h>

struct cursor_case {
    const char *text;
    int ok;
    const char *sort_at;
    int64_t created_at, id;
};

static const struct cursor_case cases[] = {
    {"2024-06-01T12:00:00_1764600000000_42", 0, "2024-06-01T12:00:00", 1764600000000, 42},
    {"2024-06-01T12:00:00_0_1", 0, "2024-06-01T12:00:00", 0, 1},
    /* the sort time is taken as stored, '_' included: the numbers are the last fields */
    {"a_b_7_9", 0, "a_b", 7, 9},
    {"x_9223372036854775807_9223372036854775807", 0, "x", INT64_MAX, INT64_MAX},
    {NULL, -1, NULL, 0, 0},
    {"", -1, NULL, 0, 0},
    {"nonsense", -1, NULL, 0, 0},
    {"2024_42", -1, NULL, 0, 0},
    {"_1_2", -1, NULL, 0, 0},
    {"x_1_0", -1, NULL, 0, 0},       /* no photo has id 0 */
    {"x_-1_5", -1, NULL, 0, 0},
    {"x_1_-5", -1, NULL, 0, 0},
    {"x_1_", -1, NULL, 0, 0},
    {"x__5", -1, NULL, 0, 0},
    {"x_1a_5", -1, NULL, 0, 0},
    {"x_1_5 ", -1, NULL, 0, 0},
    {"x_99999999999999999999_5", -1, NULL, 0, 0},
    {"a b_1_5", -1, NULL, 0, 0},     /* no spaces or control bytes in a sort time */
    {"a\tb_1_5", -1, NULL, 0, 0},
    {"\xc3\xa9_1_5", -1, NULL, 0, 0},
    {"0123456789012345678901234567890_1_5", 0, "0123456789012345678901234567890", 1, 5},
    {"01234567890123456789012345678901_1_5", -1, NULL, 0, 0},  /* longer than sort_at holds */
};

START_TEST(test_parse)
{
    const struct cursor_case *c = &cases[_i];
    struct store_photo_key k;
    int r = cursor_parse(c->text, &k);

    ck_assert_msg(r == c->ok, "'%s': %d, want %d", c->text ? c->text : "(null)", r, c->ok);
    if (r == 0) {
        ck_assert_str_eq(k.sort_at, c->sort_at);
        ck_assert_int_eq(k.created_at, c->created_at);
        ck_assert_int_eq(k.id, c->id);
    }
}
END_TEST

START_TEST(test_round_trip)
{
    struct store_photo_key k = {"2024-06-01T12:00:00", 1764600000000, 42}, back;
    struct buf b = BUF_INIT;

    buf_init(&b);
    cursor_add(&b, &k);
    /* percent-encoded for a query string (':' is), as a server decodes it back */
    ck_assert_str_eq(b.data, "2024-06-01T12%3A00%3A00_1764600000000_42");
    ck_assert_int_eq(cursor_parse("2024-06-01T12:00:00_1764600000000_42", &back), 0);
    ck_assert_int_eq(memcmp(&k, &back, sizeof(k)), 0);
    buf_release(&b);
}
END_TEST

START_TEST(test_request)
{
    struct store_page pg;
    char msg[160];

    ck_assert_int_eq(cursor_request(NULL, NULL, &pg, msg, sizeof(msg)), 0);
    ck_assert_int_eq(pg.from, STORE_PAGE_OFFSET);
    ck_assert_int_eq(cursor_request("t_1_2", NULL, &pg, msg, sizeof(msg)), 0);
    ck_assert_int_eq(pg.from, STORE_PAGE_BEFORE);
    ck_assert_int_eq(pg.key.id, 2);
    ck_assert_int_eq(cursor_request(NULL, "t_3_4", &pg, msg, sizeof(msg)), 0);
    ck_assert_int_eq(pg.from, STORE_PAGE_AFTER);
    ck_assert_int_eq(pg.key.created_at, 3);
    ck_assert_int_eq(cursor_request("t_1_2", "t_3_4", &pg, msg, sizeof(msg)), -1);
    ck_assert_ptr_nonnull(strstr(msg, "not both"));
    ck_assert_int_eq(cursor_request(NULL, "zzz", &pg, msg, sizeof(msg)), -1);
    ck_assert_ptr_nonnull(strstr(msg, "bad cursor in after="));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cursor");
    TCase *tc = tcase_create("cursor");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, test_parse, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_request);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
