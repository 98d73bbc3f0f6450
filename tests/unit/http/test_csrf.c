/* Unit tests for src/http/csrf.c and assets.c (range.c: test_range.c). */
#include "http/csrf.h"

#include <check.h>
#include <string.h>

#include "base/err.h"
#include "base/secret.h"
#include "http/assets.h"

#define T64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

START_TEST(tokens)
{
    char t[CSRF_TOKEN_LEN + 1], u[CSRF_TOKEN_LEN + 1];

    ck_assert(csrf_token_valid(T64));
    ck_assert(!csrf_token_valid(T64 "0"));          /* limit + 1 */
    ck_assert(!csrf_token_valid(T64 + 1));          /* limit - 1 */
    ck_assert(!csrf_token_valid(""));
    ck_assert(!csrf_token_valid(NULL));
    ck_assert(!csrf_token_valid("0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"));
    csrf_new(t);
    csrf_new(u);
    ck_assert(csrf_token_valid(t));
    ck_assert_str_ne(t, u);
}
END_TEST

START_TEST(check)
{
    ck_assert(csrf_check(T64, T64));
    ck_assert(!csrf_check(T64, NULL));
    ck_assert(!csrf_check(NULL, T64));
    ck_assert(!csrf_check(T64, ""));
    ck_assert(!csrf_check(T64, "1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
    ck_assert(!csrf_check(T64, T64 "x"));
    ck_assert(!csrf_check("short", "short"));   /* a malformed cookie never passes */
}
END_TEST

START_TEST(cookie)
{
    char line[256];

    csrf_cookie(line, sizeof(line), T64, false);
    ck_assert_str_eq(line, "csrftoken=" T64 "; Max-Age=31536000; Path=/; SameSite=Lax");
    ck_assert_ptr_null(strstr(line, "HttpOnly"));
    csrf_cookie(line, sizeof(line), T64, true);
    ck_assert_ptr_nonnull(strstr(line, "; Secure"));
}
END_TEST

START_TEST(assets)
{
    const struct asset *a = assets_find("css/app.css");
    struct buf b = BUF_INIT;
    struct err err = {0};

    ck_assert_ptr_nonnull(a);
    ck_assert_str_eq(a->type, "text/css; charset=utf-8");
    ck_assert_uint_gt(a->len, 0);
    ck_assert_uint_eq(strlen(a->etag), 20);
    ck_assert_ptr_nonnull(assets_find("templates/layout.html"));
    ck_assert_ptr_nonnull(assets_find("js/app.js"));
    ck_assert_ptr_null(assets_find("css/none.css"));
    for (size_t i = 1; i < assets_embedded_count; i++)
        ck_assert(strcmp(assets_embedded[i - 1].path, assets_embedded[i].path) < 0);
    ck_assert_str_eq(assets_content_type("a/b.js"), "text/javascript; charset=utf-8");
    ck_assert_str_eq(assets_content_type("x"), "application/octet-stream");
    ck_assert(assets_path_safe("css/app.css"));
    ck_assert(!assets_path_safe("../etc/passwd"));
    ck_assert(!assets_path_safe("css/../../x"));
    ck_assert(!assets_path_safe("css/.."));
    ck_assert(!assets_path_safe("/etc/passwd"));
    ck_assert(!assets_path_safe("css//x"));
    ck_assert(!assets_path_safe("css/./x"));
    ck_assert(!assets_path_safe("css\\x"));
    ck_assert(!assets_path_safe(""));
    ck_assert(assets_path_safe("css/a..b"));
    ck_assert_int_eq(assets_read("", "templates/login.html", &b, &err), 0);
    ck_assert_ptr_nonnull(strstr(b.data, "{{csrf_token}}"));
    ck_assert_int_eq(assets_read("", "../x", &b, &err), -1);
    ck_assert_int_eq(assets_read("/nonexistent-dir", "css/app.css", &b, &err), -1);
    buf_release(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("csrf");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    secret_init(NULL);
    tcase_add_test(tc, tokens);
    tcase_add_test(tc, check);
    tcase_add_test(tc, cookie);
    tcase_add_test(tc, assets);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
