/* Unit tests for src/http/form.c: urlencoded bodies, and the NUL byte refusal. */
#include "http/form.h"

#include <check.h>
#include <string.h>

static const struct {
    const char *body;
    int rc;            /* form_parse */
    const char *name;  /* a field to look up (NULL: none) */
    const char *value; /* its value, NULL when absent */
} rows[] = {
    {"a=1&b=x+y%21", 0, "b", "x y!"},
    {"a=1&a=2", 0, "a", "1"}, /* the first wins */
    {"flag&x=", 0, "flag", ""},
    {"x=%4", 0, "x", "%4"}, /* a malformed escape is kept */
    {"x=%zz%41", 0, "x", "%zzA"},
    {"", 0, "x", NULL},
    {"&&&", 0, "", NULL},
    {"password=RIGHT%00junk", -1, NULL, NULL}, /* would log in with "RIGHT" */
    {"user=a&password=b%00", -1, NULL, NULL},
    {"pass%00word=x", -1, NULL, NULL}, /* in a name too */
    {"x=%2500", 0, "x", "%00"},        /* an escaped percent sign is text */
    {"x=%0", 0, "x", "%0"},
    {"x=%01", 0, "x", "\x01"}, /* other control bytes are values */
};

START_TEST(parse_rows)
{
    struct form f = FORM_INIT;
    const char *b = rows[_i].body;

    ck_assert_int_eq(form_parse(&f, b, strlen(b)), rows[_i].rc);
    if (rows[_i].name) {
        const char *v = form_get(&f, rows[_i].name);
        if (rows[_i].value)
            ck_assert_str_eq(v, rows[_i].value);
        else
            ck_assert_ptr_null(v);
    }
    form_release(&f);
    ck_assert_ptr_null(f.fields);
}
END_TEST

START_TEST(raw_nul_refused)
{
    static const char body[] = "a=1&b=RIGHT\0junk&c=3";
    struct form f = FORM_INIT;

    ck_assert_int_eq(form_parse(&f, body, sizeof(body) - 1), -1);
    ck_assert_str_eq(form_get(&f, "a"), "1"); /* parsed pairs can still be released */
    form_release(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("form");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, parse_rows, 0, sizeof(rows) / sizeof(rows[0]));
    tcase_add_test(tc, raw_nul_refused);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
