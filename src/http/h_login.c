/* h_login: see h_login.h. Password checks run on the MHD thread (Argon2id,
 * ~60 ms; base/secret.c admits two at a time). */
#include "http/h_login.h"

#include <string.h>

#include "base/limits.h"
#include "base/log.h"
#include "base/secret.h"
#include "base/timeutil.h"
#include "http/csrf.h"
#include "http/html.h"
#include "http/http.h"
#include "http/request.h"
#include "http/session.h"
#include "store/store.h"

#define LOGIN_FAILED_MSG "Please enter a correct username and password."
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

void h_login_submit(struct http_req *req)
{
    const char *name = http_form(req, "username"), *pw = http_form(req, "password");
    const char *next = http_form(req, "next"), *hash;
    char token[SESSION_TOKEN_LEN + 1];
    struct store_user u;
    struct err err = {0};

    if (find_user(req, name, &u, &hash) < 0) {
        http_send_error(req, 503, "the database is unavailable, try again");
        return;
    }
    /* Verify even for an unknown user (hash NULL burns the same time). */
    if (!secret_verify_password(hash, pw ? pw : "")) {
        log_info("http", "login.failed", "user=%s", LOG_Q(name ? name : ""));
        send_form(req, 200, name, next, LOGIN_FAILED_MSG);
        return;
    }
    if (session_delete(http_store(req), req_session_cookie(req), &err) < 0 ||
        session_create(http_store(req), u.id, time_now_ms(), http_opts(req)->session_age, token,
                       &err) < 0) {
        log_error("http", "login", "msg=%s", LOG_Q(err.msg));
        http_send_error(req, 503, "the database is unavailable, try again");
        return;
    }
    req_session_set(req, token);
    req_csrf_rotate(req);
    log_info("http", "login", "user=%s", LOG_Q(u.name));
    http_redirect(req, 303, h_login_safe_next(next));
}

void h_logout(struct http_req *req)
{
    struct err err = {0};

    if (session_delete(http_store(req), req_session_cookie(req), &err) < 0)
        log_error("http", "logout", "msg=%s", LOG_Q(err.msg));
    req_session_clear(req);
    http_redirect(req, 303, "/login");
}
