/*
 * h_upload: POST /photos/upload/ (login, CSRF by header or form field).
 *
 * The body is multipart/form-data; file parts under any field name (the page
 * uses "photos") go to ingest (spool + SHA-256 + sniff + store) as they
 * arrive, so a 100 MB file never sits in memory and processing of the first
 * batch starts while later files are still arriving (jobs_notify after each).
 * Plain fields, which must come before the files they apply to (browsers send
 * parts in form order):
 *   csrfmiddlewaretoken  the CSRF token (or the X-CSRFToken header)
 *   upload               add the files to this existing upload of the user
 *   expected             how many files the whole upload will have
 * ?upload=ID and ?expected=N work the same. The answer: with Accept:
 * application/json 202 {"upload_id", "progress_url", "received", "rejected"};
 * otherwise 303 to the upload's report page. A request that fails as a whole
 * (not logged in, bad CSRF, malformed body, store down) gets its error once
 * the body has been drained; files recorded before the failure stay recorded.
 */
#include "http/h_upload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/limits.h"
#include "base/log.h"
#include "base/str.h"
#include "base/timeutil.h"
#include "base/xalloc.h"
#include "http/http.h"
#include "intake/ingest.h"
#include "http/multipart.h"
#include "http/session.h"
#include "jobs/jobs.h"
#include "store/store.h"

/* upload_request_end is tried this often on a transient failure, pausing
 * END_PAUSE_MS * try. */
#define END_TRIES 3
#define END_PAUSE_MS 50
#define STR_(x) #x
#define STR(x) STR_(x)

struct upload_req {
    struct http_req *req;
    struct multipart *mp;
    struct ingest *ing;
    int64_t upload_id;      /* 0 until the first file part */
    int64_t expected;
    bool request_open;      /* upload_request_begin done, end not yet */
    bool csrf_ok;
    bool in_field, in_file;
    struct buf field_name, field_value;
    int status;             /* sticky error: HTTP status, 0 = none */
    char message[ERR_MSG_MAX + 128];
};

static void fail(struct upload_req *u, int status, const char *fmt, const char *arg)
{
    if (u->status)
        return;
    u->status = status;
    snprintf(u->message, sizeof(u->message), fmt, arg ? arg : "");
}

static int parse_id(const char *s, int64_t *out)
{
    return s && str_to_int64(s, out) == 0 && *out > 0 ? 0 : -1;
}

/* The upload the files go into: an existing one of the user, or a new one. */
static int open_upload(struct upload_req *u)
{
    struct http_req *req = u->req;
    struct store *st = http_store(req);
    const struct http_opts *o = http_opts(req);
    struct err err = {0};
    struct store_upload existing;
    const char *cl = http_header(req, "Content-Length");
    int64_t bytes = 0, now = time_now_ms();

    if (cl && str_to_int64(cl, &bytes))
        bytes = 0;
    if (u->upload_id) {
        int rc = st->ops->upload_get(st, u->upload_id, http_user(req)->id, &existing, &err);
        if (rc == STORE_NOT_FOUND) {
            fail(u, 404, "no such upload of yours: leave out 'upload' to start a new one", NULL);
            return -1;
        }
        if (rc)
            goto store_error;
        if (st->ops->upload_request_begin(st, u->upload_id, u->expected, bytes, now, &err))
            goto store_error;
    } else if (st->ops->upload_open(st, http_user(req)->id, u->expected, o->batch_size, bytes,
                                    now, &u->upload_id, &err)) {
        goto store_error;
    }
    u->request_open = true;
    if (session_set_upload(st, http_session_digest(req), u->upload_id, &err))
        log_warn("http", "upload.session_failed", "upload=%lld msg=%s",
                 (long long)u->upload_id, LOG_Q(err.msg));
    struct ingest_opts io = {
        .store = st,
        .blobs = http_blob(req),
        .data_dir = o->data_dir,
        .upload_id = u->upload_id,
        .user_id = http_user(req)->id,
        .max_file_size = o->max_file_size,
    };
    u->ing = ingest_new(&io, &err);
    if (!u->ing) {
        fail(u, 503, "cannot receive files: %s (try again in a moment)", err.msg);
        return -1;
    }
    log_info("http", "upload.receiving", "upload=%lld user=%s expected=%lld",
             (long long)u->upload_id, LOG_Q(http_user(req)->name), (long long)u->expected);
    return 0;
store_error:
    fail(u, 503, "cannot record the upload: %s (try again in a moment)", err.msg);
    return -1;
}

/* The plain fields we read; any other part without a filename is taken for a
 * file whose filename was left out. */
static bool known_field(const char *name)
{
    return !strcmp(name, "csrfmiddlewaretoken") || !strcmp(name, "upload") ||
           !strcmp(name, "expected");
}

#define NO_FILENAME_MSG                                                                            \
    "part '%.64s' holds file data but has no filename: send each file with one "                   \
    "(Content-Disposition: form-data; name=\"photos\"; filename=\"photo.jpg\")"

/* A plain part that declares a file type (not text/plain) is a file without a name. */
static bool looks_like_file(const char *ctype)
{
    return ctype && strncasecmp(ctype, "text/plain", 10) != 0;
}

static int on_begin(void *ctx, const char *name, const char *filename, const char *ctype)
{
    struct upload_req *u = ctx;

    if (!filename && !known_field(name) && looks_like_file(ctype)) {
        fail(u, 400, NO_FILENAME_MSG, name);
        return MULTIPART_ABORT;
    }
    if (!filename) {
        u->in_field = true;
        buf_reset(&u->field_name);
        buf_reset(&u->field_value);
        buf_adds(&u->field_name, name);
        return MULTIPART_OK;
    }
    if (!u->csrf_ok) {
        fail(u, 403, "CSRF token missing or incorrect", NULL);
        return MULTIPART_ABORT;
    }
    if (!u->ing && open_upload(u))
        return MULTIPART_ABORT;
    if (ingest_part_begin(u->ing, filename, ctype))
        return MULTIPART_ABORT;
    u->in_file = true;
    return MULTIPART_OK;
}

static int on_data(void *ctx, const char *data, size_t len)
{
    struct upload_req *u = ctx;
    int rc;

    if (u->in_field) {
        if (u->field_value.len + len > LIMIT_FIELD_BYTES) {
            if (known_field(u->field_name.data))
                fail(u, 413, "form field '%.64s' is longer than " STR(LIMIT_FIELD_BYTES) " bytes",
                     u->field_name.data);
            else
                fail(u, 400, NO_FILENAME_MSG, u->field_name.data);
            return MULTIPART_ABORT;
        }
        buf_add(&u->field_value, data, len);
        return MULTIPART_OK;
    }
    rc = ingest_part_data(u->ing, data, len);
    if (rc == INGEST_SKIP)
        return MULTIPART_SKIP;
    return rc ? MULTIPART_ABORT : MULTIPART_OK;
}

static int field_done(struct upload_req *u)
{
    const char *name = u->field_name.data, *value = u->field_value.data;

    u->in_field = false;
    if (known_field(name) && strlen(value) != u->field_value.len) {
        fail(u, 400, "form field '%s' holds a NUL byte: remove it and send again", name);
        return MULTIPART_ABORT;
    }
    if (!strcmp(name, "csrfmiddlewaretoken")) {
        u->csrf_ok = u->csrf_ok || http_csrf_ok(u->req, value);
    } else if (!strcmp(name, "upload") && value[0]) {
        if (u->ing || parse_id(value, &u->upload_id)) {
            fail(u, 400, "the 'upload' field must be an upload id sent before the files", NULL);
            return MULTIPART_ABORT;
        }
    } else if (!strcmp(name, "expected") && value[0]) {
        if (u->ing || str_to_int64(value, &u->expected) || u->expected < 0 ||
            u->expected > LIMIT_UPLOAD_FILES) {
            fail(u, 400, "the 'expected' field must be a file count sent before the files", NULL);
            return MULTIPART_ABORT;
        }
    }
    return MULTIPART_OK;
}

static int on_end(void *ctx)
{
    struct upload_req *u = ctx;

    if (u->in_field)
        return field_done(u);
    u->in_file = false;
    if (ingest_part_end(u->ing))
        return MULTIPART_ABORT;
    /* Wake the scheduler: a batch may be full already. */
    jobs_notify(http_jobs(u->req));
    return MULTIPART_OK;
}

static const struct multipart_cb callbacks = {on_begin, on_data, on_end};

static void end_request(struct upload_req *u)
{
    struct err err = {0};
    struct store *st = http_store(u->req);

    if (!u->request_open)
        return;
    u->request_open = false;
    /* Until this is recorded the upload waits for more files (until a restart):
     * a transient failure is tried again (a failed transaction rolls back). */
    for (int i = 1; st->ops->upload_request_end(st, u->upload_id, time_now_ms(), &err); i++) {
        log_error("http", "upload.end_failed", "upload=%lld try=%d msg=%s",
                  (long long)u->upload_id, i, LOG_Q(err.msg));
        if (err.cls != ERR_TRANSIENT || i == END_TRIES)
            break;
        time_sleep_ms(END_PAUSE_MS * i);
        err_clear(&err);
    }
    jobs_notify(http_jobs(u->req));
}

static void cleanup(struct http_req *req, void *ctx, bool completed)
{
    struct upload_req *u = ctx;

    (void)req;
    if (!completed && u->ing)
        ingest_abort(u->ing);
    ingest_free(u->ing);
    /* A client that went away mid-body: the upload goes on with what arrived. */
    end_request(u);
    multipart_free(u->mp);
    buf_release(&u->field_name);
    buf_release(&u->field_value);
    free(u);
}

static int begin(struct http_req *req)
{
    struct upload_req *u;
    char boundary[MULTIPART_BOUNDARY_MAX + 1];
    const char *ct = http_header(req, "Content-Type");
    const char *q;

    if (!ct || multipart_boundary_from_content_type(ct, boundary, sizeof(boundary))) {
        http_send_error(req, 400, "send the photos as multipart/form-data");
        return -1;
    }
    u = xcalloc(1, sizeof(*u));
    u->req = req;
    buf_init(&u->field_name);
    buf_init(&u->field_value);
    u->csrf_ok = http_header(req, "X-CSRFToken") && http_csrf_ok(req, NULL);
    q = http_query(req, "upload");
    if (q && parse_id(q, &u->upload_id))
        fail(u, 400, "'upload' must be the id of one of your uploads (a positive number)", NULL);
    q = http_query(req, "expected");
    if (q && (str_to_int64(q, &u->expected) || u->expected < 0 || u->expected > LIMIT_UPLOAD_FILES))
        fail(u, 400, "'expected' must be a file count from 0 to " STR(LIMIT_UPLOAD_FILES), NULL);
    u->mp = multipart_new(boundary, &callbacks, u);
    http_set_ctx(req, u, cleanup);
    if (!u->mp)
        fail(u, 400, "bad multipart boundary", NULL);
    return 0;
}

static void chunk(struct http_req *req, const char *data, size_t len)
{
    struct upload_req *u = http_ctx(req);

    if (u->status || !u->mp)
        return; /* sticky: keep draining */
    if (multipart_feed(u->mp, data, len) && !u->status) {
        const struct err *e = u->ing ? ingest_error(u->ing) : NULL;
        if (e)
            fail(u, 503, "cannot record files: %s (try again in a moment)", e->msg);
        else
            fail(u, 400, "malformed upload: %s", multipart_error(u->mp));
    }
}

static void respond(struct upload_req *u)
{
    struct http_req *req = u->req;
    struct ingest_stats s = {0};
    char url[96];

    if (u->ing)
        ingest_get_stats(u->ing, &s);
    if (http_wants_json(req)) {
        json_t *o = json_object();
        json_object_set_new(o, "upload_id", json_integer(u->upload_id));
        snprintf(url, sizeof(url), "/photos/upload-progress/?upload=%lld", (long long)u->upload_id);
        json_object_set_new(o, "progress_url", json_string(url));
        snprintf(url, sizeof(url), "/photos/uploads/%lld/", (long long)u->upload_id);
        json_object_set_new(o, "report_url", json_string(url));
        json_object_set_new(o, "received", json_integer(s.received));
        json_object_set_new(o, "rejected", json_integer(s.failed));
        http_send_json(req, 202, o);
        return;
    }
    snprintf(url, sizeof(url), "/photos/uploads/%lld/", (long long)u->upload_id);
    http_redirect(req, 303, url);
}

/* Only empty file parts (a form sent without a chosen file): nothing was recorded, and
 * an upload that got no file is not kept (store upload_request_end). */
static bool files_recorded(struct upload_req *u)
{
    struct ingest_stats s = {0};

    ingest_get_stats(u->ing, &s);
    return s.received + s.failed > 0;
}

static void end(struct http_req *req)
{
    struct upload_req *u = http_ctx(req);

    if (!u->status && u->mp && multipart_finish(u->mp))
        fail(u, 400, "malformed upload: %s", multipart_error(u->mp));
    if (!u->status && u->ing && ingest_finish(u->ing))
        fail(u, 503, "cannot record files: %s (try again in a moment)", ingest_error(u->ing)->msg);
    if (!u->status && (!u->ing || !files_recorded(u)))
        fail(u, u->csrf_ok ? 400 : 403,
             u->csrf_ok ? "no files in the upload: choose at least one photo"
                        : "CSRF token missing or incorrect", NULL);
    end_request(u);
    if (u->status) {
        log_warn("http", "upload.rejected", "upload=%lld status=%d msg=%s",
                 (long long)u->upload_id, u->status, LOG_Q(u->message));
        http_send_error(req, u->status, u->message);
        return;
    }
    respond(u);
}

const struct route_body h_upload_body = {begin, chunk, end};
