/*
 * http: the API request handlers are written against. Handlers never see
 * libmicrohttpd; they get a `struct http_req *` and these calls.
 *
 * ADDING A ROUTE
 *   1. Write the handler in its own file (h_<resource>.c + .h), e.g.
 *          void h_photo_show(struct http_req *req);
 *   2. Add one row to the table in route.c:
 *          {HTTP_GET, "/photos/{id}/", ROUTE_LOGIN_PAGE, h_photo_show, NULL},
 *      Patterns match the decoded path exactly; "{id}" matches one segment of
 *      1-18 decimal digits (read it with http_id(req, 0), http_id(req, 1), ...);
 *      a trailing "*" matches any rest (http_path_rest()). HEAD is served by GET
 *      routes. A known path with the wrong method gets 405 with an Allow header.
 *   3. Flags (route.h): ROUTE_LOGIN_PAGE (not logged in: 302 to /login?next=...),
 *      ROUTE_LOGIN_JSON (401 {"error": ...}), ROUTE_BODY_FORM (urlencoded body
 *      buffered up to LIMIT_FORM_BYTES, 413 over; fields via http_form()),
 *      ROUTE_BODY_STREAM (body delivered to begin/chunk/end callbacks, see
 *      below), ROUTE_CSRF_BY_HANDLER (see CSRF).
 *
 * WHEN THE HANDLER RUNS
 *   Plain and BODY_FORM routes: once, after the whole body arrived (a body sent
 *   to a plain route is read and ignored). Login and CSRF checks have passed.
 *   The handler must send exactly one response with an http_send_* call;
 *   returning without one yields a 500. Handlers run on MHD pool threads and may
 *   block briefly (database, Argon2) but should not sleep.
 *
 * STREAMING BODIES (ROUTE_BODY_STREAM, for multipart and tus)
 *   struct route_body { begin, chunk, end }:
 *     begin(req)  on the first callback, after the login check and (unless
 *                 ROUTE_CSRF_BY_HANDLER) the X-CSRFToken header check. Set up
 *                 state with http_set_ctx(). Return 0 to receive the body, or
 *                 send a response (e.g. 413 from Content-Length) and return -1:
 *                 the body is then discarded by MHD and chunk/end never run.
 *     chunk(req, data, len)  each piece as it arrives (<= ~64 KB). A response
 *                 cannot be sent from here (MHD refuses mid-body). Keep a sticky
 *                 error in your ctx and keep returning; the server keeps
 *                 draining the body for you.
 *     end(req)    after the last byte: send the response (the sticky error's
 *                 report, or success).
 *   The cleanup given to http_set_ctx() always runs, from the request-completed
 *   callback, also when the client went away mid-body (completed == false):
 *   close fds and unlink partial spool files there.
 *
 * CSRF
 *   POST, PUT, PATCH and DELETE need the csrftoken cookie's value in the form
 *   field csrfmiddlewaretoken (BODY_FORM routes) or the X-CSRFToken header,
 *   else 403 "CSRF token missing or incorrect". With ROUTE_CSRF_BY_HANDLER the
 *   server does not check: the handler calls http_csrf_ok(req, NULL) (header) or
 *   http_csrf_ok(req, field_value) (a multipart field) and answers 403 itself.
 *
 * SUSPEND / RESUME (Server-Sent Events)
 *   Send a streaming response with http_send_stream(). Its reader returns bytes,
 *   0 for "nothing now", or HTTP_STREAM_END. To wait without spinning, call
 *   http_suspend(req) from the handler or the reader (MHD allows no other
 *   place) and return 0; any thread later calls http_resume(req) when there is
 *   news. A resume that arrives before the suspend is remembered, so no wake-up
 *   is lost (http_suspend() then returns false and does not park). Readers must
 *   check http_stopping(req) and return HTTP_STREAM_END: on shutdown the server
 *   resumes every parked request and waits for them to end. Never call
 *   http_resume() after your cleanup ran: unregister the request there.
 *
 * LIFETIMES
 *   const char * results are borrowed and live until the request completes.
 */
#ifndef SHOEBOX_HTTP_HTTP_H
#define SHOEBOX_HTTP_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "http/server.h"

struct http_req;

enum http_method {
    HTTP_GET = 1 << 0,
    HTTP_HEAD = 1 << 1,
    HTTP_POST = 1 << 2,
    HTTP_PUT = 1 << 3,
    HTTP_PATCH = 1 << 4,
    HTTP_DELETE = 1 << 5,
    HTTP_OPTIONS = 1 << 6,
};

/* The logged-in user of a request. */
struct http_user {
    int64_t id;
    const char *name;
};

/* --- the request --- */
const char *http_method(const struct http_req *req);      /* "GET", "POST", ... */
enum http_method http_method_bit(const struct http_req *req);
const char *http_path(const struct http_req *req);        /* decoded, without the query */
/* Decoded query parameter, NULL when absent. */
const char *http_query(const struct http_req *req, const char *name);
/* Request header (case-insensitive name), NULL when absent. */
const char *http_header(const struct http_req *req, const char *name);
const char *http_cookie(const struct http_req *req, const char *name);
/* The i-th {id} of the route pattern (0-based); 0 when there is no such id. */
int64_t http_id(const struct http_req *req, size_t i);
/* The part matched by a trailing "*" of the pattern ("" otherwise). */
const char *http_path_rest(const struct http_req *req);
/* Decoded field of a ROUTE_BODY_FORM body, NULL when absent. */
const char *http_form(const struct http_req *req, const char *name);
/* Logged-in user, or NULL. The name lives as long as the request. */
const struct http_user *http_user(const struct http_req *req);
/* Digest of the session token (the store's key), "" when not logged in. */
const char *http_session_digest(const struct http_req *req);
/* The session's current upload (0 = none) as loaded at the start of the request. */
int64_t http_session_upload(const struct http_req *req);
/* True when the client prefers JSON: path under /api/ or Accept names application/json. */
bool http_wants_json(const struct http_req *req);
/* Client address as text ("127.0.0.1"), for logs. */
const char *http_client_addr(const struct http_req *req);

/* The server's dependencies and options (read-only, valid while the server runs). */
struct store *http_store(const struct http_req *req);
struct blob_store *http_blob(const struct http_req *req);
struct jobs *http_jobs(const struct http_req *req);   /* may be NULL */
struct tus *http_tus(const struct http_req *req);     /* may be NULL */
const struct http_opts *http_opts(const struct http_req *req);

/* --- per-request state of a handler --- */
typedef void (*http_cleanup_fn)(struct http_req *req, void *ctx, bool completed);
/* Attach ctx; cleanup(req, ctx, completed) runs once from the completed
 * callback (completed false: client gone, timeout or shutdown). */
void http_set_ctx(struct http_req *req, void *ctx, http_cleanup_fn cleanup);
void *http_ctx(const struct http_req *req);

/* --- CSRF --- */
/* True when the csrftoken cookie is present and well formed and token (or, for
 * token NULL, the X-CSRFToken header) equals it (constant time). */
bool http_csrf_ok(const struct http_req *req, const char *token);
/* The request's CSRF token for forms; when the client has none, a new one is
 * made and set as a cookie on the response. */
const char *http_csrf_token(struct http_req *req);

/* --- session cookies (the login handler); the response carries the change --- */
/* Set the sessionid cookie to token (a session just created). */
void http_session_set(struct http_req *req, const char *token);
/* Clear the sessionid cookie (logged out). */
void http_session_clear(struct http_req *req);
/* Set a new csrftoken cookie (after a login, so a token planted before it is void). */
void http_csrf_rotate(struct http_req *req);

/* --- responses: exactly one per request; 0 queued, -1 failed (logged) --- */
/* Extra header on the response to be sent (call before http_send_*). Copied. */
void http_add_header(struct http_req *req, const char *name, const char *value);
/* Bytes are copied. Every response gets the security headers and, unless the
 * handler added one, Cache-Control: no-store. */
int http_send_buf(struct http_req *req, int status, const char *content_type, const void *data,
                  size_t len);
int http_send_html(struct http_req *req, int status, const char *body);
int http_send_text(struct http_req *req, int status, const char *body);
/* Sends json compactly and takes the reference (json_decref); NULL sends 500. */
int http_send_json(struct http_req *req, int status, json_t *json);
/* status 301, 302, 303 or 307; location is a local path or absolute URL. */
int http_redirect(struct http_req *req, int status, const char *location);
/* Error page (templates/error.html or 404.html) or {"error": message} when
 * http_wants_json(). message is plain text; it is escaped. */
int http_send_error(struct http_req *req, int status, const char *message);
/* A store call failed: log err with the path, answer 503 "the database is not
 * available; try again" (a load balancer retries elsewhere, the page says so). */
int http_send_store_error(struct http_req *req, const struct err *err);

struct html_var;
/* Renders templates/<tmpl> with vars, wraps it in templates/layout.html
 * (title, the user's nav) and sends it as text/html. */
int http_send_page(struct http_req *req, int status, const char *title, const char *tmpl,
                   const struct html_var *vars, size_t nvars);

enum http_file_flags {
    HTTP_FILE_IMMUTABLE = 1 << 0,   /* Cache-Control: private, max-age=31536000, immutable */
    HTTP_FILE_ATTACHMENT = 1 << 1,  /* Content-Disposition: attachment with o->filename */
    HTTP_FILE_PUBLIC = 1 << 2,      /* Cache-Control: public, max-age=3600 (static assets) */
};
struct http_file_opts {
    const char *content_type;  /* required */
    const char *etag;          /* opaque string without quotes, or NULL; enables 304 */
    const char *filename;      /* display name for attachments (client data is fine) */
    unsigned flags;            /* enum http_file_flags */
};
/* Sends the file at path (200, 206 for a single satisfiable Range, 304 when
 * If-None-Match matches the ETag, 416 for an unsatisfiable range, 404 when the
 * file cannot be opened). Uses sendfile through MHD_create_response_from_fd. */
int http_send_file(struct http_req *req, const char *path, const struct http_file_opts *o);
/* Sends the blob store's key like http_send_file (ETag, Range, 304, 416), 404 when
 * the key is "" or missing, 503 when the store cannot be read. A local store's
 * descriptor goes out with sendfile; any other store streams through its reader
 * (an MHD content-reader callback). */
int http_send_blob(struct http_req *req, struct blob_store *bs, const char *key,
                   const struct http_file_opts *o);
struct buf;
/* The Content-Disposition value of an attachment named name (what HTTP_FILE_ATTACHMENT
 * sends): attachment; filename="ascii"; filename*=UTF-8''percent-encoded. */
void http_content_disposition(struct buf *b, const char *name);

/* --- streaming responses, suspend and resume --- */
#define HTTP_STREAM_END ((ssize_t)-1)
#define HTTP_STREAM_ERROR ((ssize_t)-2)
/* Fill up to max bytes of buf; return the count, 0 (nothing now: call
 * http_suspend first unless you want to be polled), HTTP_STREAM_END or
 * HTTP_STREAM_ERROR (closes the connection). Runs on an MHD thread. */
typedef ssize_t (*http_reader_fn)(struct http_req *req, void *ctx, char *buf, size_t max);
int http_send_stream(struct http_req *req, int status, const char *content_type,
                     http_reader_fn reader, void *ctx);
/* Park the connection (handler or reader only). Returns false without
 * parking when a resume is already pending or the server is stopping. */
bool http_suspend(struct http_req *req);
/* Wake a parked request, from any thread. Idempotent; never resumes twice. */
void http_resume(struct http_req *req);
/* Has the client closed its end (or reset it)? For parked streams: MHD does
 * not watch a suspended connection, so the owner asks, e.g. once a tick, and
 * ends the stream. Any thread, until the request's cleanup has run. */
bool http_peer_gone(const struct http_req *req);
/* True once http_server_stop() began: readers should end their stream. */
bool http_stopping(const struct http_req *req);

#endif
