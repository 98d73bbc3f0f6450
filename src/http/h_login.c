/* h_login: see h_login.h. Password checks run on the MHD thread (Argon2id,
 * ~60 ms; base/secret.c admits two at a time). Failed logins are throttled per
 * client address and per user name (http/throttle.h); a try that must wait is
 * answered at once with 429 and Retry-After, before any password check. */
#include "http/h_login.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "base/limits.h"
#include "base/log.h"
#include "base/secret.h"
#include "base/timeutil.h"
#include "http/csrf.h"
#include "http/html.h"
#include "http/http.h"
#include "http/session.h"
#include "http/throttle.h"
#include "store/store.h"

#define LOGIN_FAILED_MSG "Please enter a correct username and password."
#define LOGIN_THROTTLED_MSG                                                                        \
    "Too many failed logins: wait %lld seconds, then try again (Forgot the password? An "          \
    "administrator can set a new one with 'shoebox user passwd')."
#define DEFAULT_NEXT "/photos/"

const char *h_login_safe_next(const char *next)
{
    if (!next || next[0] != '/' || next[1] == '/' || next[1] == '\\')
        return DEFAULT_NEXT;
    for (const char *p = next; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\')
            return DEFAULT_NEXT;
    return next;
}

static void send_form(struct http_req *req, int status, const char *username, const char *next,
                      const char *error)
{
    struct buf err_html = BUF_INIT;

    if (error) {
        buf_adds(&err_html, "<p class=\"error\" role=\"alert\">");
        html_text(&err_html, error);
        buf_adds(&err_html, "</p>");
    }
    const struct html_var vars[] = {
        {"csrf_field", CSRF_FIELD},
        {"csrf_token", http_csrf_token(req)},
        {"next", h_login_safe_next(next)},
        {"username", username ? username : ""},
        {"error", err_html.data ? err_html.data : ""},
    };
    http_send_page(req, status, "Log in", "login.html", vars, sizeof(vars) / sizeof(vars[0]));
    buf_release(&err_html);
}

void h_login_form(struct http_req *req)
{
    if (http_user(req)) {
        http_redirect(req, 303, h_login_safe_next(http_query(req, "next")));
        return;
    }
    send_form(req, 200, NULL, http_query(req, "next"), NULL);
}

/* The user's hash into hash (NULL when unknown). Returns -1 on a store failure. */
static int find_user(struct http_req *req, const char *name, struct store_user *u,
                     const char **hash)
{
    struct store *st = http_store(req);
    struct err err = {0};
    int rc;

    *hash = NULL;
    if (!name || !*name || strlen(name) > LIMIT_USERNAME_BYTES)
        return 0;
    rc = st->ops->user_find(st, name, u, &err);
    if (rc < 0) {
        log_error("http", "login", "msg=%s", LOG_Q(err.msg));
        return -1;
    }
    if (rc == 0)
        *hash = u->pw_hash;
    return 0;
}

/* The server's login throttle, made on first use; lives as long as the process. */
static struct throttle *throttle;
static pthread_once_t throttle_once = PTHREAD_ONCE_INIT;

static void make_throttle(void)
{
    throttle = throttle_new();
}

static struct throttle *login_throttle(void)
{
    pthread_once(&throttle_once, make_throttle);
    return throttle;
}

/* 429 with Retry-After (whole seconds, rounded up) and the form saying how long. */
static void send_throttled(struct http_req *req, const char *name, const char *next,
                           int64_t wait_ms)
{
    long long secs = (long long)((wait_ms + 999) / 1000);
    char value[24], msg[sizeof(LOGIN_THROTTLED_MSG) + 24];

    log_warn("http", "login.throttled", "user=%s addr=%s retry_after_s=%lld",
             LOG_Q(name ? name : ""), LOG_Q(http_client_addr(req)), secs);
    snprintf(value, sizeof(value), "%lld", secs);
    snprintf(msg, sizeof(msg), LOGIN_THROTTLED_MSG, secs);
    http_add_header(req, "Retry-After", value);
    send_form(req, 429, name, next, msg);
}

static void login_failed(struct http_req *req, const char *name, const char *next)
{
    int64_t wait = throttle_failed(login_throttle(), http_client_addr(req), name, time_mono_ms());

    log_info("http", "login.failed", "user=%s addr=%s wait_ms=%lld", LOG_Q(name ? name : ""),
             LOG_Q(http_client_addr(req)), (long long)wait);
    send_form(req, 200, name, next, LOGIN_FAILED_MSG);
}

void h_login_submit(struct http_req *req)
{
    const char *name = http_form(req, "username"), *pw = http_form(req, "password");
    const char *next = http_form(req, "next"), *hash;
    const char *addr = http_client_addr(req);
    char token[SESSION_TOKEN_LEN + 1];
    struct store_user u;
    struct err err = {0};
    int64_t wait = throttle_wait_ms(login_throttle(), addr, name, time_mono_ms());

    if (wait > 0) {
        send_throttled(req, name, next, wait);
        return;
    }
    if (find_user(req, name, &u, &hash) < 0) {
        http_send_error(req, 503, "the database is unavailable, try again");
        return;
    }
    /* Verify even for an unknown user (hash NULL burns the same time). */
    if (!secret_verify_password(hash, pw ? pw : "")) {
        login_failed(req, name, next);
        return;
    }
    if (session_delete(http_store(req), http_cookie(req, SESSION_COOKIE), &err) < 0 ||
        session_create(http_store(req), u.id, time_now_ms(), http_opts(req)->session_age, token,
                       &err) < 0) {
        log_error("http", "login", "msg=%s", LOG_Q(err.msg));
        http_send_error(req, 503, "the database is unavailable, try again");
        return;
    }
    throttle_succeeded(login_throttle(), addr, name, time_mono_ms());
    http_session_set(req, token);
    http_csrf_rotate(req);
    log_info("http", "login", "user=%s addr=%s", LOG_Q(u.name), LOG_Q(addr));
    http_redirect(req, 303, h_login_safe_next(next));
}

void h_logout(struct http_req *req)
{
    struct err err = {0};

    if (session_delete(http_store(req), http_cookie(req, SESSION_COOKIE), &err) < 0)
        log_error("http", "logout", "msg=%s", LOG_Q(err.msg));
    http_session_clear(req);
    http_redirect(req, 303, "/login");
}
