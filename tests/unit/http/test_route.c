/* Unit tests for src/http/route.c: matching, {id} params, 405 allow sets. */
#include "http/route.h"

#include <check.h>
#include <string.h>

static void h_dummy(struct http_req *req) { (void)req; }

static const struct route table[] = {
    {HTTP_GET, "/", 0, h_dummy, NULL},
    {HTTP_GET, "/login", 0, h_dummy, NULL},
    {HTTP_POST, "/login", ROUTE_BODY_FORM, h_dummy, NULL},
    {HTTP_GET | HTTP_DELETE, "/photos/{id}/", 0, h_dummy, NULL},
    {HTTP_POST, "/photos/uploads/{id}/files/{id}/retry", 0, h_dummy, NULL},
    {HTTP_GET, "/static/*", 0, h_dummy, NULL},
};

struct match_case {
    unsigned method;
    const char *path;
    enum route_result res;
    int row;             /* matched row, -1 none */
    size_t nids;
    int64_t id0, id1;
    const char *rest;
    unsigned allow;
};

static const struct match_case cases[] = {
    {HTTP_GET, "/", ROUTE_FOUND, 0, 0, 0, 0, "", 0},
    {HTTP_HEAD, "/", ROUTE_FOUND, 0, 0, 0, 0, "", 0},
    {HTTP_POST, "/", ROUTE_BAD_METHOD, -1, 0, 0, 0, "", HTTP_GET},
    {HTTP_GET, "/login", ROUTE_FOUND, 1, 0, 0, 0, "", 0},
    {HTTP_POST, "/login", ROUTE_FOUND, 2, 0, 0, 0, "", 0},
    {HTTP_PUT, "/login", ROUTE_BAD_METHOD, -1, 0, 0, 0, "", HTTP_GET | HTTP_POST},
    {HTTP_GET, "/login/", ROUTE_NOT_FOUND, -1, 0, 0, 0, "", 0},
    {HTTP_GET, "/photos/42/", ROUTE_FOUND, 3, 1, 42, 0, "", 0},
    {HTTP_DELETE, "/photos/7/", ROUTE_FOUND, 3, 1, 7, 0, "", 0},
    {HTTP_GET, "/photos/42", ROUTE_NOT_FOUND, -1, 0, 0, 0, "", 0},
    {HTTP_GET, "/photos//", ROUTE_NOT_FOUND, -1, 0, 0, 0, "", 0},
    {HTTP_GET, "/photos/-1/", ROUTE_NOT_FOUND, -1, 0, 0, 0, "", 0},
    {HTTP_GET, "/photos/1x/", ROUTE_NOT_FOUND, -1, 0, 0, 0, "", 0},
    {HTTP_GET, "/photos/123456789012345678/", ROUTE_FOUND, 3, 1, 123456789012345678LL, 0, "", 0},
    {HTTP_GET, "/photos/1234567890123456789/", ROUTE_NOT_FOUND, -1, 0, 0, 0, "", 0},
    {HTTP_POST, "/photos/uploads/3/files/99/retry", ROUTE_FOUND, 4, 2, 3, 99, "", 0},
    {HTTP_GET, "/photos/uploads/3/files/99/retry", ROUTE_BAD_METHOD, -1, 0, 0, 0, "", HTTP_POST},
    {HTTP_POST, "/photos/uploads/3/files/retry", ROUTE_NOT_FOUND, -1, 0, 0, 0, "", 0},
    {HTTP_GET, "/static/css/app.css", ROUTE_FOUND, 5, 0, 0, 0, "css/app.css", 0},
    {HTTP_GET, "/static/", ROUTE_FOUND, 5, 0, 0, 0, "", 0},
    {HTTP_GET, "/static", ROUTE_NOT_FOUND, -1, 0, 0, 0, "", 0},
    {HTTP_GET, "/nope", ROUTE_NOT_FOUND, -1, 0, 0, 0, "", 0},
    {HTTP_GET, "", ROUTE_NOT_FOUND, -1, 0, 0, 0, "", 0},
};

START_TEST(match)
{
    const struct match_case *c = &cases[_i];
    struct route_match m;
    enum route_result r = route_find_in(table, sizeof(table) / sizeof(table[0]), c->method,
                                        c->path, &m);

    ck_assert_msg(r == c->res, "%s: result %d", c->path, r);
    if (c->row >= 0) {
        ck_assert_ptr_eq(m.route, &table[c->row]);
        ck_assert_uint_eq(m.nids, c->nids);
        if (c->nids > 0)
            ck_assert_int_eq(m.ids[0], c->id0);
        if (c->nids > 1)
            ck_assert_int_eq(m.ids[1], c->id1);
        ck_assert_str_eq(m.rest, c->rest);
    } else {
        ck_assert_ptr_null(m.route);
    }
    if (c->res == ROUTE_BAD_METHOD)
        ck_assert_uint_eq(m.allow, c->allow);
}
END_TEST

START_TEST(methods_and_allow)
{
    char allow[96];

    ck_assert_uint_eq(route_method_bit("GET"), HTTP_GET);
    ck_assert_uint_eq(route_method_bit("DELETE"), HTTP_DELETE);
    ck_assert_uint_eq(route_method_bit("get"), 0);
    ck_assert_uint_eq(route_method_bit("BREW"), 0);
    route_allow_header(HTTP_GET | HTTP_POST, allow, sizeof(allow));
    ck_assert_str_eq(allow, "GET, HEAD, POST");
    route_allow_header(HTTP_POST, allow, sizeof(allow));
    ck_assert_str_eq(allow, "POST");
    route_allow_header(HTTP_PUT | HTTP_DELETE, allow, sizeof(allow));
    ck_assert_str_eq(allow, "PUT, DELETE");
}
END_TEST

START_TEST(server_table)
{
    struct route_match m;

    ck_assert_int_eq(route_find(HTTP_GET, "/login", &m), ROUTE_FOUND);
    ck_assert_int_eq(route_find(HTTP_POST, "/login", &m), ROUTE_FOUND);
    ck_assert(m.route->flags & ROUTE_BODY_FORM);
    ck_assert_int_eq(route_find(HTTP_GET, "/photos/", &m), ROUTE_FOUND);
    ck_assert(m.route->flags & ROUTE_LOGIN_PAGE);
    ck_assert_int_eq(route_find(HTTP_GET, "/logout", &m), ROUTE_BAD_METHOD);
    ck_assert_int_eq(route_find(HTTP_GET, "/healthz", &m), ROUTE_FOUND);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("route");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, match, 0, sizeof(cases) / sizeof(cases[0]));
    tcase_add_test(tc, methods_and_allow);
    tcase_add_test(tc, server_table);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
