/*
 * http: the handler API (see http.h): request accessors, response helpers,
 * streaming responses and suspend/resume. Everything here runs on MHD threads
 * except http_resume(), which any thread may call (it takes srv->lock).
 */
#include "http/http.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "http/assets.h"
#include "http/html.h"
#include "http/range.h"
#include "http/request.h"
#include "store/blob.h"

/* Bytes MHD asks a blob reader for at a time (an S3 ranged GET per call at worst). */
#define HTTP_BLOB_CHUNK (256 * 1024)

#define CSP_IMG "default-src 'self'; img-src 'self' data: blob:"
#define CSP_REST                                                                          \
    "; style-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; " \
    "base-uri 'self'; form-action 'self'"

char *http_csp(const char *media_url)
{
    struct buf b = BUF_INIT;

    buf_init(&b);
    buf_adds(&b, CSP_IMG);
    if (media_url && media_url[0]) {
        /* Images redirected there must be allowed: CSP checks a redirect's target. */
        const char *host = strstr(media_url, "://");
        size_t len = host ? (size_t)(host + 3 - media_url) + strcspn(host + 3, "/") : 0;

        buf_addc(&b, ' ');
        buf_add(&b, media_url, len);
    }
    buf_adds(&b, CSP_REST);
    return buf_detach(&b, NULL);
}

/* --- accessors --- */

const char *http_method(const struct http_req *req) { return req->method; }
enum http_method http_method_bit(const struct http_req *req) { return req->method_bit; }
const char *http_path(const struct http_req *req) { return req->path; }
const char *http_path_rest(const struct http_req *req) { return req->match.rest; }
const char *http_client_addr(const struct http_req *req) { return req->addr; }
struct store *http_store(const struct http_req *req) { return req->srv->deps.store; }
struct blob_store *http_blob(const struct http_req *req) { return req->srv->deps.blob; }
struct jobs *http_jobs(const struct http_req *req) { return req->srv->deps.jobs; }
struct tus *http_tus(const struct http_req *req) { return req->srv->deps.tus; }
const struct http_opts *http_opts(const struct http_req *req) { return &req->srv->opts; }
void *http_ctx(const struct http_req *req) { return req->ctx; }

const char *http_query(const struct http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_header(const struct http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_cookie(const struct http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_COOKIE_KIND, name);
}

int64_t http_id(const struct http_req *req, size_t i)
{
    return i < req->match.nids ? req->match.ids[i] : 0;
}

const char *http_form(const struct http_req *req, const char *name)
{
    return form_get(&req->form, name);
}

const struct http_user *http_user(const struct http_req *req)
{
    return req->session.valid ? &req->user : NULL;
}

const char *http_session_digest(const struct http_req *req)
{
    return req->session.valid ? req->session.digest : "";
}

int64_t http_session_upload(const struct http_req *req)
{
    return req->session.valid ? req->session.current_upload : 0;
}

bool http_wants_json(const struct http_req *req)
{
    const char *accept = http_header(req, "Accept");

    if (str_starts_with(req->path, "/api/"))
        return true;
    return accept && strstr(accept, "application/json");
}

void http_set_ctx(struct http_req *req, void *ctx, http_cleanup_fn cleanup)
{
    req->ctx = ctx;
    req->cleanup = cleanup;
}

void http_session_set(struct http_req *req, const char *token)
{
    req->cookie = COOKIE_SET;
    snprintf(req->new_token, sizeof(req->new_token), "%s", token);
}

void http_session_clear(struct http_req *req)
{
    req->cookie = COOKIE_CLEAR;
}

void http_csrf_rotate(struct http_req *req)
{
    csrf_new(req->csrf_set);
}

/* --- CSRF --- */

bool http_csrf_ok(const struct http_req *req, const char *token)
{
    if (!token)
        token = http_header(req, CSRF_HEADER);
    return csrf_check(http_cookie(req, CSRF_COOKIE), token);
}

const char *http_csrf_token(struct http_req *req)
{
    const char *cookie = http_cookie(req, CSRF_COOKIE);

    if (req->csrf_set[0])
        return req->csrf_set;
    if (csrf_token_valid(cookie))
        return cookie;
    csrf_new(req->csrf_set);
    return req->csrf_set;
}

/* --- responses --- */

void http_add_header(struct http_req *req, const char *name, const char *value)
{
    struct http_header *h = xcalloc(1, sizeof(*h)), **tail = &req->headers;

    h->name = xstrdup(name);
    h->value = xstrdup(value);
    while (*tail)
        tail = &(*tail)->next;
    *tail = h;
    if (strcasecmp(name, "Cache-Control") == 0)
        req->has_cache_control = true;
}

static void add_cookies(struct http_req *req, struct MHD_Response *resp)
{
    const struct http_opts *o = &req->srv->opts;
    char line[256];

    if (req->cookie == COOKIE_SET) {
        session_cookie(line, sizeof(line), req->new_token, o->session_age, o->secure_cookies);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, line);
    } else if (req->cookie == COOKIE_CLEAR) {
        session_cookie(line, sizeof(line), NULL, 0, o->secure_cookies);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, line);
    } else if (req->session.valid && req->session_token[0]) {
        /* Sliding expiry: the browser's copy lives as long as the database row. */
        session_cookie(line, sizeof(line), req->session_token, o->session_age,
                       o->secure_cookies);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, line);
    }
    if (req->csrf_set[0]) {
        csrf_cookie(line, sizeof(line), req->csrf_set, o->secure_cookies);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, line);
    }
}

int req_queue(struct http_req *req, int status, struct MHD_Response *resp, int64_t bytes)
{
    enum MHD_Result ok;

    if (!resp) {
        log_error("http", "response", "path=%s msg=\"cannot create response\"",
                  LOG_Q(req->path));
        return -1;
    }
    if (req->responded) {
        log_error("http", "response", "path=%s msg=\"second response ignored\"",
                  LOG_Q(req->path));
        MHD_destroy_response(resp);
        return -1;
    }
    MHD_add_response_header(resp, "Content-Security-Policy", req->srv->csp);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "same-origin");
    if (!req->has_cache_control)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    for (struct http_header *h = req->headers; h; h = h->next)
        MHD_add_response_header(resp, h->name, h->value);
    add_cookies(req, resp);
    /* tus 1.0: every answer under the tus endpoint names the protocol version,
     * also the 401/403/404/405 of the gate. */
    if (req->path && strncmp(req->path, "/photos/tus/", 12) == 0)
        MHD_add_response_header(resp, "Tus-Resumable", "1.0.0");
    ok = MHD_queue_response(req->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    if (ok != MHD_YES) {
        log_error("http", "response", "path=%s status=%d msg=\"MHD refused the response\"",
                  LOG_Q(req->path), status);
        return -1;
    }
    req->responded = true;
    req->status = status;
    req->bytes = bytes;
    return 0;
}

int http_send_buf(struct http_req *req, int status, const char *content_type, const void *data,
                  size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);

    if (resp && content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return req_queue(req, status, resp, (int64_t)len);
}

int http_send_html(struct http_req *req, int status, const char *body)
{
    return http_send_buf(req, status, "text/html; charset=utf-8", body, strlen(body));
}

int http_send_text(struct http_req *req, int status, const char *body)
{
    return http_send_buf(req, status, "text/plain; charset=utf-8", body, strlen(body));
}

int http_send_json(struct http_req *req, int status, json_t *json)
{
    char *text;
    int rc;

    if (!json)
        return http_send_text(req, 500, "internal error: cannot build JSON\n");
    text = json_dumps(json, JSON_COMPACT);
    json_decref(json);
    if (!text)
        return http_send_text(req, 500, "internal error: cannot encode JSON\n");
    rc = http_send_buf(req, status, "application/json", text, strlen(text));
    free(text);
    return rc;
}

int http_redirect(struct http_req *req, int status, const char *location)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"",
                                                                MHD_RESPMEM_PERSISTENT);

    if (resp)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
    return req_queue(req, status, resp, 0);
}

/* Logged-in nav: the user's name and a logout form (a POST, with the CSRF field). */
static void render_nav(struct http_req *req, struct buf *nav)
{
    const struct http_user *u = http_user(req);

    if (!u)
        return;
    buf_adds(nav, "<span class=\"user\">");
    html_text(nav, u->name);
    buf_adds(nav, "</span><form class=\"logout\" method=\"post\" action=\"/logout\">"
                  "<input type=\"hidden\" name=\"" CSRF_FIELD "\" value=\"");
    html_attr(nav, http_csrf_token(req));
    buf_adds(nav, "\"><button type=\"submit\">Log out</button></form>");
}

static int render_page(struct http_req *req, const char *title, const char *tmpl,
                       const struct html_var *vars, size_t nvars, struct buf *out,
                       struct err *err)
{
    struct buf src = BUF_INIT, main_html = BUF_INIT, nav = BUF_INIT;
    char path[128];
    int rc = -1;

    snprintf(path, sizeof(path), "templates/%s", tmpl);
    if (assets_read(req->srv->opts.assets_dir, path, &src, err) < 0)
        goto out;
    if (html_render(&main_html, src.data, src.len, vars, nvars, err) < 0)
        goto out;
    render_nav(req, &nav);
    buf_reset(&src);
    if (assets_read(req->srv->opts.assets_dir, "templates/layout.html", &src, err) < 0)
        goto out;
    const struct html_var layout[] = {
        {"title", title}, {"nav", nav.data}, {"main", main_html.data}};
    if (html_render(out, src.data, src.len, layout, 3, err) < 0)
        goto out;
    rc = 0;
out:
    buf_release(&src);
    buf_release(&main_html);
    buf_release(&nav);
    return rc;
}

int http_send_page(struct http_req *req, int status, const char *title, const char *tmpl,
                   const struct html_var *vars, size_t nvars)
{
    struct buf out = BUF_INIT;
    struct err err = {0};
    int rc;

    if (render_page(req, title, tmpl, vars, nvars, &out, &err) < 0) {
        log_error("http", "template", "template=%s msg=%s", LOG_Q(tmpl), LOG_Q(err.msg));
        buf_release(&out);
        return http_send_text(req, 500, "internal error: cannot render page\n");
    }
    rc = http_send_buf(req, status, "text/html; charset=utf-8", out.data, out.len);
    buf_release(&out);
    return rc;
}

int http_send_error(struct http_req *req, int status, const char *message)
{
    const char *reason = MHD_get_reason_phrase_for((unsigned)status);
    char code[16];

    if (http_wants_json(req))
        return http_send_json(req, status, json_pack("{s:s}", "error", message));
    snprintf(code, sizeof(code), "%d", status);
    const struct html_var vars[] = {{"status", code}, {"reason", reason}, {"message", message}};
    return http_send_page(req, status, reason, status == 404 ? "404.html" : "error.html", vars,
                          3);
}

int http_send_store_error(struct http_req *req, const struct err *err)
{
    log_error("http", "store_failed", "path=%s msg=%s", LOG_Q(req->path), LOG_Q(err->msg));
    return http_send_error(req, 503, "the database is not available; try again");
}

/* --- files --- */

/* Does an If-None-Match list contain "etag" (or *)? */
static bool etag_matches(const char *header, const char *quoted)
{
    size_t qlen = strlen(quoted);

    if (!header)
        return false;
    if (strcmp(header, "*") == 0)
        return true;
    for (const char *p = strstr(header, quoted); p; p = strstr(p + 1, quoted)) {
        char after = p[qlen];
        if (after == '\0' || after == ',' || after == ' ')
            return true;
    }
    return false;
}

/* attachment; filename="safe ascii"; filename*=UTF-8''percent-encoded */
void http_content_disposition(struct buf *b, const char *name)
{
    buf_adds(b, "attachment; filename=\"");
    for (const char *p = name; *p; p++) {
        unsigned char c = (unsigned char)*p;
        bool ok = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '/' && c != ';';
        buf_addc(b, ok ? (char)c : '_');
    }
    buf_adds(b, "\"; filename*=UTF-8''");
    html_url_component(b, name, 0);
}

static void add_file_headers(struct http_req *req, const struct http_file_opts *o,
                             const char *quoted_etag)
{
    struct buf b = BUF_INIT;

    if (quoted_etag[0])
        http_add_header(req, MHD_HTTP_HEADER_ETAG, quoted_etag);
    if (o->flags & HTTP_FILE_IMMUTABLE)
        http_add_header(req, MHD_HTTP_HEADER_CACHE_CONTROL,
                        "private, max-age=31536000, immutable");
    else if (o->flags & HTTP_FILE_PUBLIC)
        http_add_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, "public, max-age=3600");
    else
        http_add_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, "private, no-cache");
    if ((o->flags & HTTP_FILE_ATTACHMENT) && o->filename) {
        http_content_disposition(&b, o->filename);
        http_add_header(req, "Content-Disposition", b.data);
    }
    buf_release(&b);
}

static int send_empty(struct http_req *req, int status, const char *content_type)
{
    return http_send_buf(req, status, content_type, "", 0);
}

/* The validator, conditional and range part shared by files and blobs: headers
 * added, 304/416/empty answered here (returns 1 with *rc set), else 0 with the
 * byte range to send in *start, *len and the status in *status. */
static int prepare_ranged(struct http_req *req, const struct http_file_opts *o, int64_t size,
                          int64_t *start, int64_t *len, int *status, int *rc)
{
    char etag[160] = "", cr[96];
    enum range_result rr;

    if (o->etag)
        snprintf(etag, sizeof(etag), "\"%s\"", o->etag);
    add_file_headers(req, o, etag);
    http_add_header(req, "Accept-Ranges", "bytes");
    if (etag[0] && etag_matches(http_header(req, MHD_HTTP_HEADER_IF_NONE_MATCH), etag)) {
        *rc = send_empty(req, 304, NULL);
        return 1;
    }
    *start = 0;
    *len = size;
    const char *if_range = http_header(req, MHD_HTTP_HEADER_IF_RANGE);
    rr = (if_range && (!etag[0] || strcmp(if_range, etag) != 0))
             ? RANGE_NONE
             : range_parse(http_header(req, MHD_HTTP_HEADER_RANGE), size, start, len);
    if (rr == RANGE_UNSATISFIABLE) {
        snprintf(cr, sizeof(cr), "bytes */%lld", (long long)size);
        http_add_header(req, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
        *rc = send_empty(req, 416, "text/plain; charset=utf-8");
        return 1;
    }
    if (rr == RANGE_PARTIAL) {
        snprintf(cr, sizeof(cr), "bytes %lld-%lld/%lld", (long long)*start,
                 (long long)(*start + *len - 1), (long long)size);
        http_add_header(req, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
    }
    if (*len == 0) {
        *rc = send_empty(req, 200, o->content_type);
        return 1;
    }
    *status = rr == RANGE_PARTIAL ? 206 : 200;
    return 0;
}

/* Queues len bytes of fd from start (sendfile); fd is the response's, even on failure. */
static int send_fd(struct http_req *req, int fd, int64_t start, int64_t len, int status,
                   const char *content_type)
{
    struct MHD_Response *resp =
        MHD_create_response_from_fd_at_offset64((uint64_t)len, fd, (uint64_t)start);

    if (!resp) {
        close(fd);
        return http_send_error(req, 500, "cannot send file");
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return req_queue(req, status, resp, len);
}

int http_send_file(struct http_req *req, const char *path, const struct http_file_opts *o)
{
    struct stat st;
    int64_t start, len;
    int fd, status = 200, rc = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return http_send_error(req, 404, "not found");
    }
    if (prepare_ranged(req, o, st.st_size, &start, &len, &status, &rc)) {
        close(fd);
        return rc;
    }
    return send_fd(req, fd, start, len, status, o->content_type);
}

/* A blob store without descriptors (S3): MHD pulls the bytes through the reader. */
struct blob_body {
    struct blob_store *bs;
    struct blob_reader *r;
    uint64_t start;
};

static ssize_t blob_body_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct blob_body *b = cls;
    struct err err = {0};
    ssize_t n = b->bs->ops->reader_read(b->r, b->start + pos, buf, max, &err);

    if (n < 0) {
        log_warn("http", "blob.read_failed", "msg=%s", LOG_Q(err.msg));
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    /* The length was announced: an object shorter than its stat is an error. */
    return n == 0 ? MHD_CONTENT_READER_END_WITH_ERROR : n;
}

static void blob_body_free(void *cls)
{
    struct blob_body *b = cls;

    b->bs->ops->reader_close(b->r);
    free(b);
}

static int send_reader(struct http_req *req, struct blob_store *bs, struct blob_reader *r,
                       int64_t start, int64_t len, int status, const char *content_type)
{
    struct blob_body *b = xcalloc(1, sizeof(*b));
    struct MHD_Response *resp;

    *b = (struct blob_body){bs, r, (uint64_t)start};
    resp = MHD_create_response_from_callback((uint64_t)len, HTTP_BLOB_CHUNK, blob_body_read, b,
                                             blob_body_free);
    if (!resp) {
        blob_body_free(b);
        return http_send_error(req, 500, "cannot send file");
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return req_queue(req, status, resp, len);
}

int http_send_blob(struct http_req *req, struct blob_store *bs, const char *key,
                   const struct http_file_opts *o)
{
    struct blob_reader *r = NULL;
    struct blob_info info = {0};
    struct err err = {0};
    int64_t start, len;
    int status = 200, rc = 0, fd;

    rc = key[0] ? bs->ops->reader_open(bs, key, &r, &info, &err) : 1;
    if (rc == 1)
        return http_send_error(req, 404, "this photo has no such image");
    if (rc < 0) {
        log_warn("http", "blob.open_failed", "key=%s msg=%s", LOG_Q(key), LOG_Q(err.msg));
        return http_send_error(req, 503, "cannot read the stored image (try again in a moment)");
    }
    if (prepare_ranged(req, o, (int64_t)info.size, &start, &len, &status, &rc)) {
        bs->ops->reader_close(r);
        return rc;
    }
    fd = bs->ops->reader_fd(r);
    if (fd < 0)
        return send_reader(req, bs, r, start, len, status, o->content_type);
    /* Local: sendfile from a descriptor of our own; the reader's goes with it. */
    fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    bs->ops->reader_close(r);
    if (fd < 0)
        return http_send_error(req, 503, "cannot read the stored image (try again in a moment)");
    return send_fd(req, fd, start, len, status, o->content_type);
}

/* --- streaming responses, suspend/resume --- */

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct http_req *req = cls;
    ssize_t n = req->reader(req, req->reader_ctx, buf, max);

    if (n == HTTP_STREAM_END)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (n < 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    req->bytes += n;
    return n;
}

int http_send_stream(struct http_req *req, int status, const char *content_type,
                     http_reader_fn reader, void *ctx)
{
    struct MHD_Response *resp;
    int rc;

    req->reader = reader;
    req->reader_ctx = ctx;
    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader, req,
                                             NULL);
    if (resp)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    rc = req_queue(req, status, resp, 0);
    req->bytes = 0;  /* counted by stream_reader */
    return rc;
}

bool http_stopping(const struct http_req *req)
{
    struct http_server *srv = req->srv;
    bool stopping;

    pthread_mutex_lock(&srv->lock);
    stopping = srv->stopping;
    pthread_mutex_unlock(&srv->lock);
    return stopping;
}

/* The MHD calls happen under srv->lock so a resume can never overtake the
 * suspend it undoes (resuming a connection that is not suspended is undefined). */
bool http_suspend(struct http_req *req)
{
    struct http_server *srv = req->srv;
    bool parked = false;

    pthread_mutex_lock(&srv->lock);
    if (srv->stopping || req->wake_pending_) {
        req->wake_pending_ = false;
    } else if (req->parked_) {
        parked = true;
    } else {
        req->parked_ = true;
        req->park_prev_ = NULL;
        req->park_next_ = srv->parked;
        if (srv->parked)
            srv->parked->park_prev_ = req;
        srv->parked = req;
        MHD_suspend_connection(req->conn);
        parked = true;
    }
    pthread_mutex_unlock(&srv->lock);
    return parked;
}

void req_unpark_locked(struct http_req *req)
{
    struct http_server *srv = req->srv;

    if (req->park_prev_)
        req->park_prev_->park_next_ = req->park_next_;
    else
        srv->parked = req->park_next_;
    if (req->park_next_)
        req->park_next_->park_prev_ = req->park_prev_;
    req->park_prev_ = req->park_next_ = NULL;
    req->parked_ = false;
    MHD_resume_connection(req->conn);
}

void http_resume(struct http_req *req)
{
    struct http_server *srv = req->srv;

    pthread_mutex_lock(&srv->lock);
    if (req->parked_)
        req_unpark_locked(req);
    else
        req->wake_pending_ = true;
    pthread_mutex_unlock(&srv->lock);
}
