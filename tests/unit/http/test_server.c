/*
 * Unit tests for src/http/server.c and http.c: a real MHD server on a loopback
 * port with the fake store, spoken to over a socket. Covers the request gate
 * (404, 405 + Allow, login redirect, CSRF), login/logout and sessions,
 * security headers, static assets and shutdown.
 */
#include "http/server.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/secret.h"
#include "fake_store.h"

static struct store *st;
static struct http_server *srv;

struct resp {
    int status;
    struct buf raw;      /* status line + headers */
    const char *body;
};

static void setup(void)
{
    struct http_opts o = {"127.0.0.1:0", 2, 3600, false, "", "/tmp", 1 << 20, 10, NULL};
    struct http_deps d = {NULL, NULL, NULL, NULL};
    struct err err = {0};

    st = fake_store_new();
    fake_store_add_user(st, "alice", "correct horse");
    d.store = st;
    ck_assert_msg(http_server_start(&o, &d, &srv, &err) == 0, "%s", err.msg);
    ck_assert_int_gt(http_server_port(srv), 0);
}

static void teardown(void)
{
    http_server_stop(srv);
    fake_store_free(st);
}

/* Send one request (Connection: close) and read the whole answer. */
static void request(struct resp *r, const char *method, const char *path, const char *headers,
                    const char *body)
{
    struct sockaddr_in sa = {0};
    struct buf req = BUF_INIT;
    char chunk[4096];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ssize_t n;
    char *sep;

    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)http_server_port(srv));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    buf_addf(&req, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s", method, path,
             headers ? headers : "");
    if (body)
        buf_addf(&req, "Content-Type: application/x-www-form-urlencoded\r\n"
                       "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
    else
        buf_adds(&req, "\r\n");
    ck_assert_int_eq(write(fd, req.data, req.len), (ssize_t)req.len);
    buf_release(&req);
    buf_init(&r->raw);
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        buf_add(&r->raw, chunk, (size_t)n);
    close(fd);
    ck_assert_msg(sscanf(r->raw.data, "HTTP/1.1 %d", &r->status) == 1, "reply: %s", r->raw.data);
    sep = strstr(r->raw.data, "\r\n\r\n");
    ck_assert_ptr_nonnull(sep);
    *sep = '\0';
    r->body = sep + 4;
}

/* Value of the first header name (case-insensitive) in r, copied into out. */
static const char *header(const struct resp *r, const char *name, char *out, size_t n)
{
    size_t len = strlen(name);

    for (const char *p = strstr(r->raw.data, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, len) == 0 && p[2 + len] == ':') {
            const char *v = p + 3 + len, *end;
            while (*v == ' ')
                v++;
            end = strstr(v, "\r\n");
            snprintf(out, n, "%.*s", (int)(end ? (size_t)(end - v) : strlen(v)), v);
            return out;
        }
    }
    return NULL;
}

/* The value of cookie name from a Set-Cookie header of r into out. */
static const char *set_cookie(const struct resp *r, const char *name, char *out, size_t n)
{
    char pat[64];
    const char *p;

    snprintf(pat, sizeof(pat), "Set-Cookie: %s=", name);
    p = strcasestr(r->raw.data, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    snprintf(out, n, "%.*s", (int)strcspn(p, ";\r"), p);
    return out;
}

static void check_security_headers(const struct resp *r)
{
    char v[512];

    ck_assert_ptr_nonnull(header(r, "Content-Security-Policy", v, sizeof(v)));
    ck_assert_ptr_nonnull(strstr(v, "default-src 'self'"));
    ck_assert_ptr_nonnull(strstr(v, "frame-ancestors 'none'"));
    ck_assert_str_eq(header(r, "X-Content-Type-Options", v, sizeof(v)), "nosniff");
    ck_assert_str_eq(header(r, "X-Frame-Options", v, sizeof(v)), "DENY");
    ck_assert_str_eq(header(r, "Referrer-Policy", v, sizeof(v)), "same-origin");
}

/* GET /login, then POST the form; returns the session cookie value into sid. */
static int login(const char *user, const char *pw, char *sid, char *csrf, struct resp *out)
{
    struct resp r;
    char hdr[256], body[512];

    request(&r, "GET", "/login", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(set_cookie(&r, "csrftoken", csrf, 80));
    ck_assert_ptr_nonnull(strstr(r.body, csrf));  /* hidden field == cookie */
    buf_release(&r.raw);
    snprintf(hdr, sizeof(hdr), "Cookie: csrftoken=%s\r\n", csrf);
    snprintf(body, sizeof(body), "csrfmiddlewaretoken=%s&username=%s&password=%s&next=%%2Fphotos%%2F",
             csrf, user, pw);
    request(out, "POST", "/login", hdr, body);
    if (!set_cookie(out, "sessionid", sid, 80))
        sid[0] = '\0';
    set_cookie(out, "csrftoken", csrf, 80);  /* rotated at login */
    return out->status;
}

START_TEST(not_found_and_method)
{
    struct resp r;
    char v[128];

    request(&r, "GET", "/nope", NULL, NULL);
    ck_assert_int_eq(r.status, 404);
    ck_assert_ptr_nonnull(strstr(r.body, "Page not found"));
    check_security_headers(&r);
    buf_release(&r.raw);
    request(&r, "GET", "/nope", "Accept: application/json\r\n", NULL);
    ck_assert_int_eq(r.status, 404);
    ck_assert_str_eq(r.body, "{\"error\":\"page not found\"}");
    buf_release(&r.raw);
    request(&r, "DELETE", "/login", NULL, NULL);
    ck_assert_int_eq(r.status, 405);
    ck_assert_str_eq(header(&r, "Allow", v, sizeof(v)), "GET, HEAD, POST");
    buf_release(&r.raw);
    request(&r, "GET", "/healthz", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"status\":\"ok\",\"schema\":1}");
    ck_assert_str_eq(header(&r, "Cache-Control", v, sizeof(v)), "no-store");
    check_security_headers(&r);
    buf_release(&r.raw);
    fake_store_break(st, 1);
    request(&r, "GET", "/healthz", NULL, NULL);
    ck_assert_int_eq(r.status, 503);
    buf_release(&r.raw);
    /* reads work, commits fail: degraded, with the reason */
    fake_store_break(st, 2);
    request(&r, "GET", "/healthz", NULL, NULL);
    ck_assert_int_eq(r.status, 503);
    ck_assert_str_eq(r.body, "{\"status\":\"degraded\",\"error\":\"cannot commit: database or "
                             "disk is full\",\"schema\":1}");
    buf_release(&r.raw);
    fake_store_break(st, 0);
}
END_TEST

START_TEST(login_redirect_and_flow)
{
    struct resp r;
    char v[256], sid[80], csrf[80], hdr[512];

    request(&r, "GET", "/photos/", NULL, NULL);
    ck_assert_int_eq(r.status, 302);
    ck_assert_str_eq(header(&r, "Location", v, sizeof(v)), "/login?next=/photos/");
    buf_release(&r.raw);
    request(&r, "GET", "/", NULL, NULL);
    ck_assert_int_eq(r.status, 303);
    ck_assert_str_eq(header(&r, "Location", v, sizeof(v)), "/photos/");
    buf_release(&r.raw);

    ck_assert_int_eq(login("alice", "correct+horse", sid, csrf, &r), 303);
    ck_assert_str_eq(header(&r, "Location", v, sizeof(v)), "/photos/");
    ck_assert_ptr_nonnull(strstr(r.raw.data, "HttpOnly"));
    ck_assert_uint_eq(strlen(sid), 64);
    buf_release(&r.raw);
    ck_assert_int_eq(fake_store_sessions(st), 1);

    snprintf(hdr, sizeof(hdr), "Cookie: sessionid=%s; csrftoken=%s\r\n", sid, csrf);
    request(&r, "GET", "/photos/", hdr, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "Your photos"));
    ck_assert_ptr_nonnull(strstr(r.body, "alice"));
    ck_assert_ptr_null(strstr(r.body, "<script>"));       /* no inline script */
    ck_assert_ptr_null(strstr(r.body, "style="));
    ck_assert_ptr_nonnull(set_cookie(&r, "sessionid", v, sizeof(v)));  /* sliding refresh */
    ck_assert_str_eq(v, sid);
    ck_assert_str_eq(header(&r, "Cache-Control", v, sizeof(v)), "no-store");
    check_security_headers(&r);
    buf_release(&r.raw);

    /* logout without CSRF is refused, with it works */
    request(&r, "POST", "/logout", hdr, "x=1");
    ck_assert_int_eq(r.status, 403);
    ck_assert_ptr_nonnull(strstr(r.body, "CSRF token missing or incorrect"));
    buf_release(&r.raw);
    snprintf(hdr, sizeof(hdr), "Cookie: sessionid=%s; csrftoken=%s\r\nX-CSRFToken: %s\r\n", sid,
             csrf, csrf);
    request(&r, "POST", "/logout", hdr, NULL);
    ck_assert_int_eq(r.status, 303);
    ck_assert_str_eq(header(&r, "Location", v, sizeof(v)), "/login");
    ck_assert_ptr_nonnull(strstr(r.raw.data, "sessionid=; Max-Age=0"));
    buf_release(&r.raw);
    ck_assert_int_eq(fake_store_sessions(st), 0);
    request(&r, "GET", "/photos/", hdr, NULL);
    ck_assert_int_eq(r.status, 302);
    buf_release(&r.raw);
}
END_TEST

START_TEST(login_failures_look_alike)
{
    struct resp r1, r2;
    char sid[80], csrf[80];

    ck_assert_int_eq(login("alice", "wrong", sid, csrf, &r1), 200);
    ck_assert_str_eq(sid, "");
    ck_assert_ptr_nonnull(strstr(r1.body, "Please enter a correct username and password."));
    ck_assert_int_eq(login("mallory", "wrong", sid, csrf, &r2), 200);
    ck_assert_str_eq(sid, "");
    ck_assert_ptr_nonnull(strstr(r2.body, "Please enter a correct username and password."));
    buf_release(&r1.raw);
    buf_release(&r2.raw);
    ck_assert_int_eq(fake_store_sessions(st), 0);
}
END_TEST

START_TEST(csrf_required)
{
    struct resp r;
    const char *tok = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    char hdr[256], body[256];

    /* no cookie, no field */
    request(&r, "POST", "/login", NULL, "username=alice&password=correct+horse");
    ck_assert_int_eq(r.status, 403);
    check_security_headers(&r);
    buf_release(&r.raw);
    /* cookie but wrong field */
    snprintf(hdr, sizeof(hdr), "Cookie: csrftoken=%s\r\n", tok);
    request(&r, "POST", "/login", hdr,
            "csrfmiddlewaretoken=1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            "&username=alice&password=correct+horse");
    ck_assert_int_eq(r.status, 403);
    buf_release(&r.raw);
    /* header path works for a form route too */
    snprintf(hdr, sizeof(hdr), "Cookie: csrftoken=%s\r\nX-CSRFToken: %s\r\n", tok, tok);
    snprintf(body, sizeof(body), "username=alice&password=correct+horse&next=//evil.example/");
    request(&r, "POST", "/login", hdr, body);
    ck_assert_int_eq(r.status, 303);
    ck_assert_ptr_nonnull(strstr(r.raw.data, "Location: /photos/"));  /* unsafe next refused */
    buf_release(&r.raw);
    /* form over the limit */
    struct buf big = BUF_INIT;
    buf_adds(&big, "a=");
    for (int i = 0; i < 17000; i++)
        buf_addc(&big, 'x');
    request(&r, "POST", "/login", hdr, big.data);
    ck_assert_int_eq(r.status, 413);
    buf_release(&r.raw);
    buf_release(&big);
}
END_TEST

START_TEST(session_expiry)
{
    struct resp r;
    char sid[80], csrf[80], hdr[256];

    ck_assert_int_eq(login("alice", "correct+horse", sid, csrf, &r), 303);
    buf_release(&r.raw);
    fake_store_shift_sessions(st, -3600 * 1000 - 1);
    snprintf(hdr, sizeof(hdr), "Cookie: sessionid=%s\r\n", sid);
    request(&r, "GET", "/photos/", hdr, NULL);
    ck_assert_int_eq(r.status, 302);
    buf_release(&r.raw);
    request(&r, "GET", "/photos/", "Cookie: sessionid=garbage\r\n", NULL);
    ck_assert_int_eq(r.status, 302);
    buf_release(&r.raw);
}
END_TEST

START_TEST(static_assets)
{
    struct resp r;
    char etag[128], hdr[256], v[128];

    request(&r, "GET", "/static/css/app.css", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(header(&r, "Content-Type", v, sizeof(v)), "text/css; charset=utf-8");
    ck_assert_ptr_nonnull(header(&r, "ETag", etag, sizeof(etag)));
    ck_assert_str_eq(header(&r, "Cache-Control", v, sizeof(v)), "no-cache");
    check_security_headers(&r);
    buf_release(&r.raw);
    snprintf(hdr, sizeof(hdr), "If-None-Match: %s\r\n", etag);
    request(&r, "GET", "/static/css/app.css", hdr, NULL);
    ck_assert_int_eq(r.status, 304);
    buf_release(&r.raw);
    request(&r, "GET", "/static/templates/login.html", NULL, NULL);
    ck_assert_int_eq(r.status, 404);
    buf_release(&r.raw);
    request(&r, "GET", "/static/css/../../etc/passwd", NULL, NULL);
    ck_assert_int_eq(r.status, 404);
    buf_release(&r.raw);
    request(&r, "GET", "/static/css/%2e%2e/templates/login.html", NULL, NULL);
    ck_assert_int_eq(r.status, 404);
    buf_release(&r.raw);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("server");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    log_init(LOG_WARN, NULL);
    secret_init(NULL);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, not_found_and_method);
    tcase_add_test(tc, login_redirect_and_flow);
    tcase_add_test(tc, login_failures_look_alike);
    tcase_add_test(tc, csrf_required);
    tcase_add_test(tc, session_expiry);
    tcase_add_test(tc, static_assets);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
