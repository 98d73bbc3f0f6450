/*
 * h_tus: tus 1.0.0 at /photos/tus/ (the second door of the intake layer; the
 * protocol state is src/intake/tus.c), and POST /api/uploads.
 *
 *   OPTIONS /photos/tus/ and /photos/tus/<id>  discovery, no login: 204
 *   POST    /photos/tus/          creation (+ creation-with-upload): 201 Location
 *   HEAD    /photos/tus/<id>      200 Upload-Offset, Upload-Length, Upload-Expires
 *   PATCH   /photos/tus/<id>      application/offset+octet-stream: 204 Upload-Offset
 *   DELETE  /photos/tus/<id>      termination: 204
 *   POST    /api/uploads          {"expected": N}: 201 {"upload_id", "progress_url", ...}
 *
 * Login by session cookie; POST, PATCH and DELETE carry X-CSRFToken (the
 * server's gate checks it). Another user's upload answers 404. Every answer
 * under /photos/tus/ carries Tus-Resumable: 1.0.0 (added in req_queue).
 */
#include "http/h_tus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/buf.h"
#include "base/limits.h"
#include "base/log.h"
#include "base/sha256.h"
#include "base/str.h"
#include "base/timeutil.h"
#include "base/xalloc.h"
#include "http/http.h"
#include "http/session.h"
#include "intake/tus.h"
#include "store/store.h"

#define TUS_EXTENSIONS                                                                             \
    "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination"
#define OFFSET_TYPE "application/offset+octet-stream"
#define TUS_BASE "/photos/tus/"
#define META_MAX 4096
#define API_BODY_MAX 4096

/* ------------------------------------------------------------- helpers */

static void add_int(struct http_req *req, const char *name, int64_t v)
{
    char s[32];

    snprintf(s, sizeof(s), "%lld", (long long)v);
    http_add_header(req, name, s);
}

static void add_expires(struct http_req *req, int64_t ms)
{
    char s[64];
    time_t tt = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(s, sizeof(s), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    http_add_header(req, "Upload-Expires", s);
}

static int send_plain(struct http_req *req, int status, const char *msg)
{
    return http_send_text(req, status, msg);
}

/* 412 unless Tus-Resumable is 1.0.0. */
static bool version_ok(struct http_req *req)
{
    const char *v = http_header(req, "Tus-Resumable");

    if (v && !strcmp(v, "1.0.0"))
        return true;
    http_add_header(req, "Tus-Version", "1.0.0");
    send_plain(req, 412, "Tus-Resumable: 1.0.0 is the version this server speaks");
    return false;
}

static struct tus *tus_or_503(struct http_req *req)
{
    struct tus *t = http_tus(req);

    if (!t)
        send_plain(req, 503, "resumable uploads are not available");
    return t;
}

static int send_result(struct http_req *req, enum tus_result r, const struct err *err)
{
    const char *msg = err && err->msg[0] ? err->msg : NULL;

    switch (r) {
    case TUS_OK: return send_plain(req, 204, "");
    case TUS_NOT_FOUND: return send_plain(req, 404, msg ? msg : "no such upload");
    case TUS_GONE: return send_plain(req, 410, msg ? msg : "the upload expired: start it again");
    case TUS_CONFLICT:
    case TUS_SUPERSEDED: return send_plain(req, 409, msg ? msg : "offset mismatch");
    case TUS_TOO_LARGE: return send_plain(req, 413, msg ? msg : "too large");
    case TUS_BAD: return send_plain(req, 400, msg ? msg : "bad request");
    case TUS_CHECKSUM: return send_plain(req, 460, msg ? msg : "checksum mismatch");
    case TUS_ERROR: break;
    }
    log_warn("http", "tus.error", "path=%s msg=%s", LOG_Q(http_path(req)),
             LOG_Q(msg ? msg : "-"));
    return send_plain(req, 503, msg ? msg : "cannot store the upload now: try again");
}

/* A non-negative decimal header; -1 when absent; -2 when malformed. */
static int64_t header_int(struct http_req *req, const char *name)
{
    const char *v = http_header(req, name);
    int64_t n;

    if (!v)
        return -1;
    if (!v[0] || v[0] == '-' || v[0] == '+' || str_to_int64(v, &n) || n < 0)
        return -2;
    return n;
}

struct checksum {
    char alg[8];
    unsigned char want[DIGEST_MAX];
    size_t len;
};

/* Upload-Checksum: "<alg> <base64>". 0 (absent: alg ""), or -1 with a 400 sent. */
static int parse_checksum(struct http_req *req, struct checksum *c)
{
    const char *v = http_header(req, "Upload-Checksum");
    const char *sp;
    struct digest *d;

    memset(c, 0, sizeof(*c));
    if (!v)
        return 0;
    sp = strchr(v, ' ');
    if (!sp || (size_t)(sp - v) >= sizeof(c->alg)) {
        send_plain(req, 400, "Upload-Checksum must be '<algorithm> <base64 digest>'");
        return -1;
    }
    memcpy(c->alg, v, (size_t)(sp - v));
    d = digest_new(c->alg);
    if (!d) {
        send_plain(req, 400, "unsupported checksum algorithm: use sha1, sha256 or md5");
        return -1;
    }
    digest_free(d);
    if (str_base64_decode(sp + 1, c->want, sizeof(c->want), &c->len)) {
        send_plain(req, 400, "Upload-Checksum: the digest is not base64");
        return -1;
    }
    return 0;
}

struct meta {
    char filename[LIMIT_FILENAME_BYTES * 4 + 1];
    char filetype[TUS_TYPE_MAX + 1];
    int64_t upload;
};

/* in into out (n bytes), cut to fit (a cut character becomes '?' in the display name). */
static void copy_cut(char *out, size_t n, const char *in)
{
    size_t len = strlen(in);

    if (len >= n)
        len = n - 1;
    memcpy(out, in, len);
    out[len] = '\0';
}

/* Upload-Metadata: "key b64,key b64,key" (tus). 0, or -1 with a 400 sent. */
static int parse_metadata(struct http_req *req, struct meta *m)
{
    const char *v = http_header(req, "Upload-Metadata");
    char *copy, *save = NULL;
    int rc = 0;

    memset(m, 0, sizeof(*m));
    if (!v)
        return 0;
    if (strlen(v) > META_MAX) {
        send_plain(req, 400, "Upload-Metadata is too long");
        return -1;
    }
    copy = xstrdup(v);
    for (char *pair = strtok_r(copy, ",", &save); pair; pair = strtok_r(NULL, ",", &save)) {
        while (*pair == ' ')
            pair++;
        char *val = strchr(pair, ' ');
        unsigned char dec[META_MAX];
        size_t n = 0;
        if (val) {
            *val++ = '\0';
            if (str_base64_decode(val, dec, sizeof(dec) - 1, &n)) {
                send_plain(req, 400, "Upload-Metadata: a value is not base64");
                rc = -1;
                break;
            }
        }
        dec[n] = '\0';
        if (!strcmp(pair, "filename") || !strcmp(pair, "name")) {
            copy_cut(m->filename, sizeof(m->filename), (char *)dec);
        } else if (!strcmp(pair, "filetype") || !strcmp(pair, "type")) {
            copy_cut(m->filetype, sizeof(m->filetype), (char *)dec);
        } else if (!strcmp(pair, "upload") && n > 0) {
            if (strlen((char *)dec) != n || str_to_int64((char *)dec, &m->upload) ||
                m->upload <= 0) {
                send_plain(req, 400, "Upload-Metadata: 'upload' must be an upload id");
                rc = -1;
                break;
            }
        }
    }
    free(copy);
    return rc;
}

static void add_state_headers(struct http_req *req, const struct tus_info *i)
{
    add_int(req, "Upload-Offset", i->offset);
    if (i->length >= 0)
        add_int(req, "Upload-Length", i->length);
    else
        http_add_header(req, "Upload-Defer-Length", "1");
    if (i->file_id == 0)
        add_expires(req, i->expires_ms);
}

static void add_metadata_header(struct http_req *req, const struct tus_info *i)
{
    struct buf b = BUF_INIT;
    char up[32], *enc;
    size_t cap = STR_BASE64_LEN(sizeof(i->name));

    enc = xmalloc(cap);
    snprintf(up, sizeof(up), "%lld", (long long)i->upload_id);
    str_base64_encode((const unsigned char *)up, strlen(up), enc, cap);
    buf_adds(&b, "upload ");
    buf_adds(&b, enc);
    if (i->name[0]) {
        str_base64_encode((const unsigned char *)i->name, strlen(i->name), enc, cap);
        buf_adds(&b, ",filename ");
        buf_adds(&b, enc);
    }
    if (i->type[0]) {
        str_base64_encode((const unsigned char *)i->type, strlen(i->type), enc, cap);
        buf_adds(&b, ",filetype ");
        buf_adds(&b, enc);
    }
    http_add_header(req, "Upload-Metadata", b.data);
    buf_release(&b);
    free(enc);
}

/* ---------------------------------------------------------------- OPTIONS */

void h_tus_options(struct http_req *req)
{
    const struct http_opts *o = http_opts(req);

    http_add_header(req, "Tus-Version", "1.0.0");
    http_add_header(req, "Tus-Extension", TUS_EXTENSIONS);
    add_int(req, "Tus-Max-Size", o->max_file_size);
    http_add_header(req, "Tus-Checksum-Algorithm", DIGEST_ALGORITHMS);
    send_plain(req, 204, "");
}

/* ------------------------------------------------------------------- HEAD */

void h_tus_head(struct http_req *req)
{
    struct tus *t;
    struct tus_info i;
    struct err err = {0};
    enum tus_result r;

    if (!version_ok(req) || !(t = tus_or_503(req)))
        return;
    r = tus_head(t, http_path_rest(req), http_user(req)->id, &i, &err);
    if (r != TUS_OK) {
        send_result(req, r, &err);
        return;
    }
    add_state_headers(req, &i);
    add_metadata_header(req, &i);
    send_plain(req, 200, "");
}

/* ----------------------------------------------------------------- DELETE */

void h_tus_delete(struct http_req *req)
{
    struct tus *t;
    struct err err = {0};

    if (!version_ok(req) || !(t = tus_or_503(req)))
        return;
    send_result(req, tus_delete(t, http_path_rest(req), http_user(req)->id, &err), &err);
}

/* ------------------------------------------------- PATCH and POST (bodies) */

struct tus_req {
    struct tus_write *w;
    bool creation;
    struct tus_info info;   /* creation: the new upload */
    enum tus_result status; /* sticky from chunk */
};

static void cleanup(struct http_req *req, void *ctx, bool completed)
{
    struct tus_req *x = ctx;

    (void)req, (void)completed;
    /* A body that broke off keeps what arrived (tus_patch_abort commits). */
    tus_patch_abort(x->w);
    free(x);
}

/* Starts writing at offset; on failure the answer is sent. */
static int start_write(struct http_req *req, struct tus_req *x, const char *id, int64_t offset,
                       int64_t new_length)
{
    struct checksum c;
    struct err err = {0};
    struct tus_info before;
    enum tus_result r;

    if (parse_checksum(req, &c))
        return -1;
    r = tus_patch_begin(http_tus(req), id, http_user(req)->id, offset, new_length,
                        c.alg[0] ? c.alg : NULL, c.want, c.len, &x->w, &before, &err);
    if (r != TUS_OK) {
        if (r == TUS_CONFLICT)
            add_int(req, "Upload-Offset", before.offset);
        send_result(req, r, &err);
        return -1;
    }
    return 0;
}

static bool offset_type(struct http_req *req)
{
    const char *ct = http_header(req, "Content-Type");

    return ct && strncasecmp(ct, OFFSET_TYPE, strlen(OFFSET_TYPE)) == 0 &&
           (ct[strlen(OFFSET_TYPE)] == '\0' || ct[strlen(OFFSET_TYPE)] == ';');
}

static int patch_begin(struct http_req *req)
{
    struct tus_req *x;
    int64_t offset, length;

    if (!version_ok(req) || !tus_or_503(req))
        return -1;
    if (!offset_type(req)) {
        send_plain(req, 415, "PATCH bodies are Content-Type: " OFFSET_TYPE);
        return -1;
    }
    offset = header_int(req, "Upload-Offset");
    if (offset < 0) {
        send_plain(req, 400, "Upload-Offset (a non-negative number) is required");
        return -1;
    }
    length = header_int(req, "Upload-Length");
    if (length == -2) {
        send_plain(req, 400, "Upload-Length must be a non-negative number");
        return -1;
    }
    x = xcalloc(1, sizeof(*x));
    http_set_ctx(req, x, cleanup);
    return start_write(req, x, http_path_rest(req), offset, length);
}

static void body_chunk(struct http_req *req, const char *data, size_t len)
{
    struct tus_req *x = http_ctx(req);

    if (x->w && x->status == TUS_OK)
        x->status = tus_patch_data(x->w, data, len);
}

static void patch_end(struct http_req *req)
{
    struct tus_req *x = http_ctx(req);
    struct tus_info i;
    struct err err = {0};
    enum tus_result r = tus_patch_end(x->w, &i, &err);

    x->w = NULL;
    if (r != TUS_OK) {
        add_int(req, "Upload-Offset", i.offset);
        send_result(req, r, &err);
        return;
    }
    add_state_headers(req, &i);
    send_plain(req, 204, "");
}

const struct route_body h_tus_patch_body = {patch_begin, body_chunk, patch_end};

static int create_begin(struct http_req *req)
{
    struct tus *t;
    struct tus_req *x;
    struct meta m;
    struct err err = {0};
    int64_t length, cl;
    const char *defer = http_header(req, "Upload-Defer-Length");
    enum tus_result r;

    if (!version_ok(req) || !(t = tus_or_503(req)))
        return -1;
    length = header_int(req, "Upload-Length");
    if (length == -2 || (length >= 0 && defer) || (length < 0 && !defer) ||
        (defer && strcmp(defer, "1"))) {
        send_plain(req, 400, "send Upload-Length (a non-negative number) or Upload-Defer-Length: 1");
        return -1;
    }
    cl = header_int(req, "Content-Length");
    if (cl > 0 && !offset_type(req)) {
        send_plain(req, 415, "a creation with data is Content-Type: " OFFSET_TYPE);
        return -1;
    }
    if (parse_metadata(req, &m))
        return -1;
    x = xcalloc(1, sizeof(*x));
    x->creation = true;
    http_set_ctx(req, x, cleanup);
    r = tus_create(t, http_user(req)->id, length, m.upload, m.filename, m.filetype, &x->info,
                   &err);
    if (r != TUS_OK) {
        send_result(req, r, &err);
        return -1;
    }
    if (!m.upload && http_session_digest(req)[0]) {
        struct store *st = http_store(req);
        if (session_set_upload(st, http_session_digest(req), x->info.upload_id, &err))
            log_warn("http", "upload.session_failed", "upload=%lld msg=%s",
                     (long long)x->info.upload_id, LOG_Q(err.msg));
    }
    char loc[64];
    snprintf(loc, sizeof(loc), TUS_BASE "%s", x->info.id);
    http_add_header(req, "Location", loc);
    if (cl > 0 && start_write(req, x, x->info.id, 0, -1))
        return -1;
    return 0;
}

static void create_end(struct http_req *req)
{
    struct tus_req *x = http_ctx(req);
    struct tus_info i = x->info;
    struct err err = {0};

    if (x->w) {
        enum tus_result r = tus_patch_end(x->w, &i, &err);
        x->w = NULL;
        if (r != TUS_OK && r != TUS_CHECKSUM && r != TUS_TOO_LARGE) {
            send_result(req, r, &err);
            return;
        }
        if (r == TUS_CHECKSUM || r == TUS_TOO_LARGE) {
            /* The upload exists (Location); its data did not count. Bytes past
             * --max-file-size with a deferred length ended it (later requests 404):
             * the 413 says why, and the file is a failed file of its upload. */
            add_int(req, "Upload-Offset", i.offset);
            send_result(req, r, &err);
            return;
        }
    }
    add_state_headers(req, &i);
    send_plain(req, 201, "");
}

const struct route_body h_tus_create_body = {create_begin, body_chunk, create_end};

/* ------------------------------------------------------ POST /api/uploads */

struct api_req {
    struct buf body;
    bool too_large;
};

static void api_cleanup(struct http_req *req, void *ctx, bool completed)
{
    struct api_req *a = ctx;

    (void)req, (void)completed;
    buf_release(&a->body);
    free(a);
}

static int api_begin(struct http_req *req)
{
    struct api_req *a = xcalloc(1, sizeof(*a));

    buf_init(&a->body);
    http_set_ctx(req, a, api_cleanup);
    return 0;
}

static void api_chunk(struct http_req *req, const char *data, size_t len)
{
    struct api_req *a = http_ctx(req);

    if (a->body.len + len > API_BODY_MAX)
        a->too_large = true;
    else
        buf_add(&a->body, data, len);
}

static void api_end(struct http_req *req)
{
    struct api_req *a = http_ctx(req);
    struct store *st = http_store(req);
    struct err err = {0};
    json_error_t je;
    json_t *j, *o;
    json_int_t expected = 0;
    int64_t id = 0;
    char url[96];

    if (a->too_large) {
        http_send_error(req, 413, "the request is too large");
        return;
    }
    j = json_loadb(a->body.data ? a->body.data : "", a->body.len, 0, &je);
    if (!j || json_unpack(j, "{s?I}", "expected", &expected) || expected < 0 ||
        expected > LIMIT_UPLOAD_FILES) {
        json_decref(j);
        http_send_error(req, 400, "send {\"expected\": N}, N the number of files (0 = unknown)");
        return;
    }
    json_decref(j);
    if (st->ops->upload_create(st, http_user(req)->id, expected, http_opts(req)->batch_size,
                               time_now_ms(), &id, &err)) {
        http_send_store_error(req, &err);
        return;
    }
    if (session_set_upload(st, http_session_digest(req), id, &err))
        log_warn("http", "upload.session_failed", "upload=%lld msg=%s", (long long)id,
                 LOG_Q(err.msg));
    log_info("http", "upload.opened", "upload=%lld user=%s expected=%lld", (long long)id,
             LOG_Q(http_user(req)->name), (long long)expected);
    o = json_object();
    json_object_set_new(o, "upload_id", json_integer(id));
    snprintf(url, sizeof(url), "/photos/upload-progress/?upload=%lld", (long long)id);
    json_object_set_new(o, "progress_url", json_string(url));
    snprintf(url, sizeof(url), "/photos/uploads/%lld/", (long long)id);
    json_object_set_new(o, "report_url", json_string(url));
    json_object_set_new(o, "tus_url", json_string(TUS_BASE));
    http_send_json(req, 201, o);
}

const struct route_body h_tus_api_upload_body = {api_begin, api_chunk, api_end};
