/*
 * server: libmicrohttpd glue. Owns the daemon, the per-request life cycle and
 * the request gate (route, login, CSRF, body limits); handlers see http.h.
 *
 * DESIGN
 *   Threads: MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL with a pool of
 *   opts.threads threads; every callback below and every handler runs on one
 *   of them. http_resume() may run on any thread. MHD_ALLOW_SUSPEND_RESUME is
 *   on for streaming responses (SSE).
 *
 *   Connections: MHD's connection notifications open and close each one's
 *   guard entry (guard.h: head and body deadlines, the waiting cap); the
 *   request callbacks below move it through its phases. MHD caps connections
 *   per address; set_limits() sizes the rest from the descriptor limit.
 *
 *   Request life cycle (one struct http_req per request):
 *     first access callback   begin(): the head checks MHD does not make
 *                             (ambiguous length, unknown coding, 414, 431)
 *                             and the anonymous cap answer at once and
 *                             close; then start(): route lookup; when the request has a
 *                             body (or the route streams), the gate runs now
 *                             so a refused upload is never read: 404, 405
 *                             with Allow, login (302 / 401), X-CSRFToken
 *                             check, Content-Length over LIMIT_FORM_BYTES ->
 *                             413; BODY_STREAM: body->begin().
 *     body callbacks          BODY_FORM: append to req->body (past the limit
 *                             remember "too large" and keep draining);
 *                             BODY_STREAM: body->chunk(); else ignore.
 *     last access callback    (upload_data_size == 0) gate for body-less
 *                             requests, then the form CSRF check and the
 *                             handler (or body->end()); no response -> 500.
 *     completed callback      the only place req is freed: the access log
 *                             line, the handler's cleanup, unpark.
 *   A response can be queued only on the first or the last access callback
 *   (MHD refuses in between); an early one makes MHD discard the body and
 *   close the connection, which is what we want for refused uploads.
 *
 *   Sessions: the sessionid cookie is resolved on the first callback (one
 *   store read, a touch at most every SESSION_TOUCH_MS); every response of a
 *   logged-in request refreshes the cookie's Max-Age.
 *
 *   Locks: srv->lock guards srv->stopping, srv->parked and each request's
 *   park fields; MHD_suspend/resume_connection are called under it so a
 *   resume never overtakes its suspend. Nothing else is shared: opts and
 *   deps are read-only after start; srv->active is atomic.
 *
 *   Shutdown: set stopping and resume every parked request (MHD forbids
 *   stopping with suspended connections; their readers see http_stopping()
 *   and end), quiesce (stop accepting), wait up to STOP_GRACE_MS for active
 *   requests, then MHD_stop_daemon.
 */
#include "http/server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/limits.h"
#include "base/log.h"
#include "base/str.h"
#include "base/timeutil.h"
#include "base/xalloc.h"
#include "http/h_progress.h"
#include "http/html.h"
#include "http/metrics_http.h"
#include "http/request.h"

#define CONNECTION_TIMEOUT_S 60
/* Open connections at most, whatever the descriptor limit allows. */
#define CONNECTION_LIMIT_MAX 16384
/* Descriptors kept out of the connection budget: SQLite, blob files being
 * sent or written, worker pipes, logs. */
#define FD_RESERVE 256
/* Per-connection memory for headers and buffers: 2.5 times LIMIT_HEAD_BYTES,
 * so that a head over our limits still fits and reaches on_request, which
 * answers 414/431 itself, with the security headers (MHD's own error pages
 * have none and 0.9.75 cannot add any): test_hardening_http's 43 KB head of
 * 400 lines (its bytes and MHD's ~56 bytes a line) passes, 2x fails it.
 * No more than that: libmicrohttpd 0.9.75 zeroes the whole pool between two
 * requests of a keep-alive connection, the largest CPU cost of a progress
 * poll (docs/PERFORMANCE.md). */
#define CONNECTION_MEMORY (5 * LIMIT_HEAD_BYTES / 2)
#define STOP_GRACE_MS 10000
/* A NUL byte would cut the C string there: refused, never silently cut. */
#define NUL_IN_URI_MSG "the address holds a NUL byte (%00): remove it and try again"
#define NUL_IN_FORM_MSG "a form field holds a NUL byte (%00): remove it and send the form again"

static int64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool unsafe_method(unsigned m)
{
    return m & (HTTP_POST | HTTP_PUT | HTTP_PATCH | HTTP_DELETE);
}

static bool has_body(const struct http_req *req)
{
    const char *cl = http_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);

    if (http_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING))
        return true;
    return cl && strcmp(cl, "0") != 0;
}

static void client_addr(struct http_req *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;

    snprintf(req->addr, sizeof(req->addr), "-");
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, req->addr,
                  sizeof(req->addr));
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                  req->addr, sizeof(req->addr));
}

static void load_session(struct http_req *req)
{
    const char *token = http_cookie(req, SESSION_COOKIE);
    struct err err = {0};

    if (!token)
        return;
    if (session_load(req->srv->deps.store, token, time_now_ms(), req->srv->opts.session_age,
                     &req->session, &err) < 0) {
        /* Logged out for pages open to all; a page that needs the login answers
         * 503 (gate): the session may be fine once the database is back, and a
         * 401 would tell the page to log in again. */
        log_warn("http", "session.load", "msg=%s", LOG_Q(err.msg));
        memset(&req->session, 0, sizeof(req->session));
        req->session_unknown = true;
        return;
    }
    if (!req->session.valid)
        return;
    snprintf(req->session_token, sizeof(req->session_token), "%s", token);
    req->user.id = req->session.user_id;
    req->user.name = req->session.user_name;
}

static void send_login_redirect(struct http_req *req)
{
    struct buf loc = BUF_INIT;

    buf_adds(&loc, "/login?next=");
    html_url_component(&loc, req->path, 1);
    http_redirect(req, 302, loc.data);
    buf_release(&loc);
}

/* Route, login, header CSRF and size checks. Returns true when the request
 * may proceed; otherwise a response has been queued. */
static bool gate(struct http_req *req)
{
    const struct route *r = req->match.route;
    char allow[96];

    if (!r && req->match.allow) {
        route_allow_header(req->match.allow, allow, sizeof(allow));
        http_add_header(req, MHD_HTTP_HEADER_ALLOW, allow);
        http_send_error(req, 405, "method not allowed");
        return false;
    }
    if (!r) {
        http_send_error(req, 404, "page not found");
        return false;
    }
    if ((r->flags & (ROUTE_LOGIN_PAGE | ROUTE_LOGIN_JSON)) && req->session_unknown) {
        http_send_error(req, 503, "the database is not available; try again");
        return false;
    }
    if ((r->flags & (ROUTE_LOGIN_PAGE | ROUTE_LOGIN_JSON)) && !req->session.valid) {
        if ((r->flags & ROUTE_LOGIN_JSON) || http_wants_json(req))
            http_send_json(req, 401, json_pack("{s:s}", "error", "login required"));
        else
            send_login_redirect(req);
        return false;
    }
    if (r->flags & ROUTE_BODY_FORM) {
        const char *cl = http_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
        uint64_t n;
        if (cl && str_to_uint64(cl, &n) == 0 && n > LIMIT_FORM_BYTES) {
            http_send_error(req, 413, "form too large");
            return false;
        }
        return true;  /* CSRF may be a form field: checked at the end */
    }
    if (unsafe_method(req->method_bit) && !(r->flags & ROUTE_CSRF_BY_HANDLER) &&
        !http_csrf_ok(req, NULL)) {
        http_send_error(req, 403, CSRF_FAILED_MSG);
        return false;
    }
    return true;
}

static void start(struct http_req *req)
{
    const struct route *r;

    route_find(req->method_bit, req->path, &req->match);
    r = req->match.route;
    if (r && (r->flags & ROUTE_BODY_FORM))
        req->state = REQ_FORM;
    else if (r && (r->flags & ROUTE_BODY_STREAM))
        req->state = REQ_STREAM;
    else
        req->state = REQ_PLAIN;
    /* Without a body the gate waits for the last callback: an answer queued
     * now would make MHD close the connection (no keep-alive). */
    if (req->state != REQ_STREAM && !has_body(req))
        return;
    req->gated = true;
    if (!gate(req)) {
        req->state = REQ_DONE;
        return;
    }
    if (req->state == REQ_STREAM && (r->body->begin(req) < 0 || req->responded))
        req->state = REQ_DONE;
}

static void body_chunk(struct http_req *req, const char *data, size_t len)
{
    if (req->state == REQ_STREAM) {
        req->match.route->body->chunk(req, data, len);
        return;
    }
    if (req->state != REQ_FORM || req->body_too_large)
        return;
    if (req->body.len + len > LIMIT_FORM_BYTES) {
        req->body_too_large = true;
        buf_release(&req->body);
        return;
    }
    buf_add(&req->body, data, len);
}

static void finish(struct http_req *req)
{
    const struct route *r = req->match.route;

    if (!req->gated) {
        req->gated = true;
        if (!gate(req))
            return;
    }
    if (req->state == REQ_FORM) {
        if (req->body_too_large) {
            http_send_error(req, 413, "form too large");
            return;
        }
        if (form_parse(&req->form, req->body.data ? req->body.data : "", req->body.len)) {
            http_send_error(req, 400, NUL_IN_FORM_MSG);
            return;
        }
        if (unsafe_method(req->method_bit) && !(r->flags & ROUTE_CSRF_BY_HANDLER) &&
            !http_csrf_ok(req, http_form(req, CSRF_FIELD)) && !http_csrf_ok(req, NULL)) {
            http_send_error(req, 403, CSRF_FAILED_MSG);
            return;
        }
    }
    if (req->state == REQ_STREAM)
        r->body->end(req);
    else
        r->handler(req);
}

/* The first con_cls of a request whose raw URI holds "%00" (uri_seen): MHD's
 * decoding would cut the path or a query value at that NUL byte. */
static char nul_in_uri;

static void *uri_seen(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls, (void)conn;
    return strstr(uri, "%00") ? &nul_in_uri : NULL;
}

/* ---- request-head checks MHD 0.9.75 does not make ---- */

struct head_scan {
    int content_lengths, transfer_encodings;
    const char *te;
    size_t bytes;
};

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct head_scan *h = cls;

    (void)kind;
    h->bytes += strlen(key) + (value ? strlen(value) : 0) + 4;  /* ": " and CRLF */
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
        h->content_lengths++;
    if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        h->transfer_encodings++;
        h->te = value ? value : "";
    }
    return MHD_YES;
}

static enum MHD_Result scan_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    size_t *n = cls;

    (void)kind;
    *n += strlen(key) + (value ? strlen(value) + 1 : 0) + 1;  /* "k=v" and '&' or '?' */
    return MHD_YES;
}

/* "chunked", any case, spaces around: the only coding we accept. */
static bool te_is_chunked(const char *te)
{
    size_t len;

    while (*te == ' ' || *te == '\t')
        te++;
    len = strlen(te);
    while (len && (te[len - 1] == ' ' || te[len - 1] == '\t'))
        len--;
    return len == 7 && strncasecmp(te, "chunked", 7) == 0;
}

/* RFC 9112 6.3: a message whose length is ambiguous is refused, never guessed
 * (MHD lets Transfer-Encoding win over Content-Length, takes the first of two
 * Content-Lengths and reads an unknown coding as raw bytes up to the close).
 * Sizes past our limits are answered here too, with our headers. Returns the
 * status to answer with (0 = fine) and its message in *msg. */
static int check_head(struct http_req *req, const char **msg)
{
    struct head_scan h = {0};
    size_t uri = strlen(req->path);

    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, scan_header, &h);
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, scan_arg, &uri);
    *msg = NULL;
    if (uri > LIMIT_URI_BYTES)
        *msg = "request target too long";
    else if (h.bytes > LIMIT_HEAD_BYTES)
        *msg = "request header fields too large";
    else if (h.transfer_encodings && h.content_lengths)
        *msg = "both Content-Length and Transfer-Encoding: refused as ambiguous";
    else if (h.content_lengths > 1)
        *msg = "more than one Content-Length";
    else if (h.transfer_encodings > 1 || (h.te && !te_is_chunked(h.te)))
        *msg = "transfer coding not supported (only chunked)";
    if (!*msg)
        return 0;
    if (uri > LIMIT_URI_BYTES)
        return 414;
    if (h.bytes > LIMIT_HEAD_BYTES)
        return 431;
    return h.transfer_encodings && !h.content_lengths ? 501 : 400;
}

/* The reserve: past anon_cap requests without a session at once, anonymous
 * requests (other than /healthz) are refused, so logged-in users and the
 * health check always find a connection. Counts this request if it passes. */
static bool anon_admit(struct http_req *req)
{
    struct http_server *srv = req->srv;

    if (req->session.valid || strcmp(req->path, "/healthz") == 0)
        return true;
    if (atomic_fetch_add(&srv->anon, 1) >= srv->anon_cap) {
        atomic_fetch_sub(&srv->anon, 1);
        return false;
    }
    req->anon_counted = true;
    return true;
}

/* Answer now and close: the rest of this connection cannot be trusted. */
static void refuse(struct http_req *req, int status, const char *msg)
{
    req->state = REQ_DONE;
    req->gated = true;
    http_add_header(req, MHD_HTTP_HEADER_CONNECTION, "close");
    if (status == 503)
        http_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "5");
    http_send_error(req, status, msg);
}

static struct guard_conn *conn_guard(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return ci ? ci->socket_context : NULL;
}

static void begin(struct http_req *req)
{
    const char *msg;
    int status = check_head(req, &msg);

    if (status) {
        refuse(req, status, msg);
        return;
    }
    load_session(req);
    if (!anon_admit(req)) {
        refuse(req, 503, "the server is busy; try again in a moment");
        return;
    }
    guard_request_begin(req->srv->guard, req->gconn, has_body(req));
    start(req);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct http_server *srv = cls;
    struct http_req *req = *con_cls;

    if (!req || req == (void *)&nul_in_uri) {
        bool nul = req != NULL;
        req = xcalloc(1, sizeof(*req));
        req->srv = srv;
        req->conn = conn;
        req->start_us = mono_us();
        snprintf(req->method, sizeof(req->method), "%s", method);
        req->method_bit = route_method_bit(method);
        req->path = xstrdup(url);
        buf_init(&req->body);
        client_addr(req);
        req->gconn = conn_guard(conn);
        atomic_fetch_add(&srv->active, 1);
        *con_cls = req;
        if (nul) {
            refuse(req, 400, NUL_IN_URI_MSG);
            return MHD_YES;
        }
        begin(req);
        return MHD_YES;
    }
    if (*upload_data_size) {
        guard_body_progress(srv->guard, req->gconn, *upload_data_size);
        body_chunk(req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    guard_request_handled(srv->guard, req->gconn);
    if (req->state == REQ_DONE)
        return MHD_YES;
    finish(req);
    req->state = REQ_DONE;
    if (!req->responded) {
        log_error("http", "handler", "path=%s msg=\"handler sent no response\"",
                  LOG_Q(req->path));
        http_send_error(req, 500, "internal error");
    }
    return MHD_YES;
}

static void free_req(struct http_req *req)
{
    struct http_header *h = req->headers;

    while (h) {
        struct http_header *next = h->next;
        free(h->name);
        free(h->value);
        free(h);
        h = next;
    }
    form_release(&req->form);
    buf_release(&req->body);
    free(req->path);
    free(req);
}

/* ---- the access log ---- */

struct line {
    char *p;
    size_t len, cap;
};

static void line_add(struct line *l, const char *s)
{
    str_append(l->p, l->cap, &l->len, s);
}

static void line_int(struct line *l, long long v)
{
    char d[STR_INT64_LEN];

    line_add(l, str_from_int64(v, d));
}

static void line_quoted(struct line *l, const char *s)
{
    char q[LOG_VALUE_MAX * 4 + 3];

    line_add(l, log_quote(q, sizeof(q), s));
}

/* The request's access line (event=request), formatted by hand: one a request,
 * thousands a second on a polled server, where printf's parsing and its
 * floating point showed in the profile. Gathered into few writes
 * (log.h log_write_buffered). */
static void access_line(struct http_req *req, double dur_ms, bool completed)
{
    char buf[LOG_LINE_MAX];
    struct line l = {buf, 0, sizeof(buf)};
    char num[STR_TENTHS_LEN];

    buf[0] = '\0';
    line_add(&l, "method=");
    line_quoted(&l, req->method);
    line_add(&l, " path=");
    line_quoted(&l, req->path);
    line_add(&l, " status=");
    line_int(&l, req->status);
    line_add(&l, " bytes=");
    line_int(&l, (long long)req->bytes);
    line_add(&l, " dur_ms=");
    line_add(&l, str_from_tenths(dur_ms, num));
    line_add(&l, " user=");
    line_quoted(&l, req->session.valid ? req->user.name : "-");
    if (!completed)
        line_add(&l, " aborted=true");
    log_write_buffered(LOG_INFO, "http", "request", "%s", buf);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *srv = cls;
    struct http_req *req = *con_cls;
    double dur_ms;

    if (!req || req == (void *)&nul_in_uri)
        return;
    *con_cls = NULL;
    dur_ms = (double)(mono_us() - req->start_us) / 1000.0;
    metrics_http_request(req->match.route, req->status, dur_ms / 1000.0);
    if (log_enabled(LOG_INFO, "http"))
        access_line(req, dur_ms, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    if (req->cleanup)
        req->cleanup(req, req->ctx, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    pthread_mutex_lock(&srv->lock);
    if (req->parked_)  /* cannot happen (MHD never completes a suspended request) */
        req_unpark_locked(req);
    pthread_mutex_unlock(&srv->lock);
    if (req->anon_counted)
        atomic_fetch_sub(&srv->anon, 1);
    guard_request_done(srv->guard, req->gconn);
    free_req(req);
    atomic_fetch_sub(&srv->active, 1);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode code)
{
    struct http_server *srv = cls;
    const union MHD_ConnectionInfo *ci;

    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        guard_close(srv->guard, *socket_ctx);
        *socket_ctx = NULL;
        return;
    }
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    *socket_ctx = guard_open(srv->guard, ci ? ci->connect_fd : -1);
}

bool http_peer_gone(const struct http_req *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct pollfd p = {.events = POLLRDHUP};

    if (!ci)
        return false;
    p.fd = ci->connect_fd;
    if (poll(&p, 1, 0) <= 0)
        return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_warn("http", "mhd", "msg=%s", LOG_Q(msg));
}

int http_parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *sslen,
                      struct err *err)
{
    char host[256];
    const char *colon, *port;
    struct addrinfo hints = {0}, *res = NULL;
    size_t hlen;
    int rc;

    if (listen[0] == '[') {
        const char *close_br = strchr(listen, ']');
        if (!close_br || close_br[1] != ':')
            return err_set(err, ERR_PERMANENT, "listen", "bad listen address '%s'", listen);
        hlen = (size_t)(close_br - listen - 1);
        port = close_br + 2;
        colon = listen + 1;
    } else {
        const char *last = strrchr(listen, ':');
        if (!last)
            return err_set(err, ERR_PERMANENT, "listen", "bad listen address '%s': want host:port",
                           listen);
        hlen = (size_t)(last - listen);
        port = last + 1;
        colon = listen;
    }
    if (hlen >= sizeof(host) || !*port)
        return err_set(err, ERR_PERMANENT, "listen", "bad listen address '%s'", listen);
    memcpy(host, colon, hlen);
    host[hlen] = '\0';
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(hlen ? host : NULL, port, &hints, &res);
    if (rc != 0)
        return err_set(err, ERR_PERMANENT, "listen", "cannot resolve '%s': %s", listen,
                       gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void copy_opts(struct http_server *srv, const struct http_opts *o)
{
    srv->opts = *o;
    srv->listen = xstrdup(o->listen ? o->listen : "127.0.0.1:8080");
    srv->assets_dir = xstrdup(o->assets_dir ? o->assets_dir : "");
    srv->data_dir = xstrdup(o->data_dir ? o->data_dir : "");
    srv->opts.listen = srv->listen;
    srv->opts.assets_dir = srv->assets_dir;
    srv->opts.data_dir = srv->data_dir;
    srv->media_url = xstrdup(o->media_url ? o->media_url : "");
    srv->opts.media_url = srv->media_url;
    srv->csp = http_csp(srv->media_url);
    if (srv->opts.session_age <= 0)
        srv->opts.session_age = 3600;
}

/* The connection budget from the descriptor limit (main raised it as far as
 * allowed): FD_RESERVE descriptors stay for files. A quarter of the budget
 * (at least 64) is the reserve: WAITING connections (no request head yet)
 * may fill the rest, anonymous requests half the reserve, so logged-in users
 * and /healthz keep at least the other half. */
static void set_limits(struct http_server *srv, struct guard_opts *go)
{
    struct rlimit rl;
    rlim_t fds = 1024;
    unsigned limit, reserve;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        fds = rl.rlim_cur == RLIM_INFINITY ? CONNECTION_LIMIT_MAX + FD_RESERVE : rl.rlim_cur;
    limit = fds > FD_RESERVE + 128 ? (unsigned)(fds - FD_RESERVE) : 128;
    if (limit > CONNECTION_LIMIT_MAX)
        limit = CONNECTION_LIMIT_MAX;
    reserve = limit / 4 > 64 ? limit / 4 : 64;
    srv->conn_limit = limit;
    srv->anon_cap = (int)(reserve / 2);
    *go = (struct guard_opts){.wait_cap = limit - reserve, .header_ms = LIMIT_HEADER_MS,
                              .body_ms = LIMIT_BODY_MS, .body_rate = LIMIT_BODY_RATE};
    log_info("http", "limits", "fds=%llu connections=%u waiting=%zu anonymous=%d per_addr=%d",
             (unsigned long long)fds, limit, go->wait_cap, srv->anon_cap,
             LIMIT_CONNECTIONS_PER_ADDR);
}

static void free_server(struct http_server *srv)
{
    guard_free(srv->guard);
    pthread_mutex_destroy(&srv->lock);
    free(srv->listen);
    free(srv->assets_dir);
    free(srv->data_dir);
    free(srv->media_url);
    free(srv->csp);
    free(srv);
}

int http_server_start(const struct http_opts *o, const struct http_deps *d,
                      struct http_server **out, struct err *err)
{
    struct http_server *srv = xcalloc(1, sizeof(*srv));
    struct sockaddr_storage ss;
    struct guard_opts go;
    socklen_t sslen;
    const union MHD_DaemonInfo *info;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    unsigned threads = o->threads > 1 ? (unsigned)o->threads : 1;

    *out = NULL;
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&srv->lock, NULL);
    copy_opts(srv, o);
    srv->deps = *d;
    if (http_parse_listen(srv->listen, &ss, &sslen, err) < 0)
        goto fail;
    set_limits(srv, &go);
    if (guard_new(&go, &srv->guard, err) < 0)
        goto fail;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    srv->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv,
        MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_URI_LOG_CALLBACK, uri_seen,
        srv, MHD_OPTION_NOTIFY_CONNECTION,
        on_connection, srv, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
        MHD_OPTION_CONNECTION_LIMIT, srv->conn_limit, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)LIMIT_CONNECTIONS_PER_ADDR, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)CONNECTION_MEMORY,
        MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_END);
    if (!srv->daemon) {
        err_set(err, ERR_PERMANENT, "listen", "cannot listen on '%s' (address in use?)",
                srv->listen);
        goto fail;
    }
    if (sse_hub_start(d->store, err)) {
        MHD_stop_daemon(srv->daemon);
        goto fail;
    }
    info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : 0;
    *out = srv;
    return 0;
fail:
    free_server(srv);
    return -1;
}

int http_server_port(const struct http_server *s)
{
    return s->port;
}

void http_server_stop(struct http_server *s)
{
    MHD_socket fd;
    int64_t deadline;

    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    while (s->parked)
        req_unpark_locked(s->parked);
    pthread_mutex_unlock(&s->lock);
    fd = MHD_quiesce_daemon(s->daemon);
    deadline = time_mono_ms() + STOP_GRACE_MS;
    while (atomic_load(&s->active) > 0 && time_mono_ms() < deadline)
        time_sleep_ms(10);
    if (atomic_load(&s->active) > 0)
        log_warn("http", "stop", "active=%d msg=\"requests still running, closing them\"",
                 atomic_load(&s->active));
    MHD_stop_daemon(s->daemon);
    sse_hub_stop(); /* after the daemon: no stream is left to resume */
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    free_server(s);
}
