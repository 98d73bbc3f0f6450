/*
 * h_api: the JSON API over what the pipeline stored, owner only: another
 * user's photo or upload is answered 404, exactly like one that does not exist.
 */
#include "http/h_api.h"

#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "base/limits.h"
#include "base/log.h"
#include "base/str.h"
#include "base/timeutil.h"
#include "http/cursor.h"
#include "http/views.h"
#include "jobs/jobs.h"
#include "store/blob.h"
#include "store/store.h"

#define PAGE_MAX 500

static int64_t query_int(struct http_req *req, const char *name, int64_t def, int64_t max)
{
    const char *s = http_query(req, name);
    int64_t v;

    if (!s || str_to_int64(s, &v) || v < 0)
        return def;
    return v > max ? max : v;
}

static void add_photo(void *ctx, const struct store_photo *p)
{
    json_array_append_new(ctx, view_photo(p));
}

/* The URL of the page on one side of k (its next or prev link), or JSON null. */
static json_t *page_url(const struct store_page *pg, const char *side,
                        const struct store_photo_key *k, bool exists)
{
    struct buf b = BUF_INIT;
    json_t *v;

    if (!exists || !k)
        return json_null();
    buf_init(&b);
    buf_addf(&b, "/api/photos?limit=%lld", (long long)pg->limit);
    if (pg->upload_id)
        buf_addf(&b, "&upload=%lld", (long long)pg->upload_id);
    buf_addf(&b, "&%s=", side);
    cursor_add(&b, k);
    v = json_string(b.data);
    buf_release(&b);
    return v;
}

/* GET /api/photos: a page by offset= (walked to from the nearer end of the list) or by
 * the before=/after= cursor of a next or prev link (one index range scan). */
void h_api_photos(struct http_req *req)
{
    struct store *st = http_store(req);
    struct err err = {0};
    struct store_page pg = {.user_id = http_user(req)->id};
    const char *before = http_query(req, "before"), *after = http_query(req, "after");
    char msg[160];
    json_t *list, *o;

    pg.upload_id = query_int(req, "upload", 0, INT64_MAX);
    pg.limit = query_int(req, "limit", 100, PAGE_MAX);
    pg.offset = query_int(req, "offset", 0, INT64_MAX);
    if (pg.limit == 0)
        pg.limit = 100;
    if ((before || after) && http_query(req, "offset")) {
        http_send_error(req, 400, "give offset= or a cursor (before=, after=), not both");
        return;
    }
    if (cursor_request(before, after, &pg, msg, sizeof(msg))) {
        http_send_error(req, 400, msg);
        return;
    }
    list = json_array();
    if (st->ops->photo_page(st, &pg, add_photo, list, &err)) {
        json_decref(list);
        http_send_store_error(req, &err);
        return;
    }
    o = json_object();
    json_object_set_new(o, "total", json_integer(pg.total));
    json_object_set_new(o, "limit", json_integer(pg.limit));
    json_object_set_new(o, "offset",
                        pg.from == STORE_PAGE_OFFSET ? json_integer(pg.offset) : json_null());
    json_object_set_new(o, "photos", list);
    json_object_set_new(o, "next", page_url(&pg, "before", cursor_older_edge(&pg), pg.older));
    json_object_set_new(o, "prev", page_url(&pg, "after", cursor_newer_edge(&pg), pg.newer));
    http_send_json(req, 200, o);
}

/* Loads the user's photo {id}; answers 404/503 itself and returns -1 otherwise. */
static int load_photo(struct http_req *req, struct store_photo *p)
{
    struct store *st = http_store(req);
    struct err err = {0};
    int rc = st->ops->photo_get(st, http_id(req, 0), http_user(req)->id, p, &err);

    if (rc == STORE_NOT_FOUND) {
        http_send_error(req, 404, "no such photo");
        return -1;
    }
    if (rc) {
        http_send_store_error(req, &err);
        return -1;
    }
    return 0;
}

void h_api_photo(struct http_req *req)
{
    struct store_photo p;

    if (load_photo(req, &p) == 0)
        http_send_json(req, 200, view_photo(&p));
}

void h_api_photo_delete(struct http_req *req)
{
    struct store *st = http_store(req);
    struct blob_store *bs = http_blob(req);
    struct store_photo p;
    struct err err = {0};
    bool last = false;
    int rc = st->ops->photo_delete(st, http_id(req, 0), http_user(req)->id, &p, &last, &err);

    if (rc == STORE_NOT_FOUND) {
        http_send_error(req, 404, "no such photo");
        return;
    }
    if (rc) {
        http_send_store_error(req, &err);
        return;
    }
    /* The row is gone; the files go when no other photo (another user's copy) uses them. */
    if (last) {
        bs->ops->remove(bs, p.blob_key, NULL);
        if (p.thumb_key[0])
            bs->ops->remove(bs, p.thumb_key, NULL);
        if (p.preview_key[0])
            bs->ops->remove(bs, p.preview_key, NULL);
    }
    log_info("http", "photo.deleted", "photo=%lld user=%s", (long long)p.id,
             LOG_Q(http_user(req)->name));
    if (http_wants_json(req)) {
        json_t *o = json_object();
        json_object_set_new(o, "deleted", json_integer(p.id));
        http_send_json(req, 200, o);
        return;
    }
    http_redirect(req, 303, "/photos/");
}

static void add_upload(void *ctx, const struct store_upload *u)
{
    void **pair = ctx;
    json_t *v = view_upload(pair[0], u, false);

    if (v) {
        json_object_set_new(v, "report_url", json_sprintf("/photos/uploads/%lld/", (long long)u->id));
        json_array_append_new(pair[1], v);
    }
}

void h_api_uploads(struct http_req *req)
{
    struct store *st = http_store(req);
    struct err err = {0};
    json_t *list = json_array(), *o;
    void *pair[2] = {st, list};
    int64_t limit = query_int(req, "limit", 50, PAGE_MAX);

    if (st->ops->upload_list(st, http_user(req)->id, limit ? limit : 50, add_upload, pair, &err)) {
        json_decref(list);
        http_send_store_error(req, &err);
        return;
    }
    o = json_object();
    json_object_set_new(o, "uploads", list);
    http_send_json(req, 200, o);
}

void h_api_upload(struct http_req *req)
{
    struct store *st = http_store(req);
    struct store_upload u;
    struct err err = {0};
    json_t *v;
    int rc = st->ops->upload_get(st, http_id(req, 0), http_user(req)->id, &u, &err);

    if (rc == STORE_NOT_FOUND) {
        http_send_error(req, 404, "no such upload");
        return;
    }
    if (rc || !(v = view_upload(st, &u, true))) {
        http_send_store_error(req, &err);
        return;
    }
    http_send_json(req, 200, v);
}

void h_api_retry(struct http_req *req)
{
    struct store *st = http_store(req);
    struct err err = {0};
    int64_t upload = http_id(req, 0), file = http_id(req, 1);
    char url[96];
    int rc = st->ops->file_retry(st, http_user(req)->id, upload, file, time_now_ms(), &err);

    if (rc == STORE_NOT_FOUND) {
        http_send_error(req, 404, "no such failed file in this upload");
        return;
    }
    if (rc && err.cls == ERR_PERMANENT) {
        /* The bytes are gone (rejected while receiving): the page offers a re-upload. */
        http_send_error(req, 409, err.msg);
        return;
    }
    if (rc) {
        http_send_store_error(req, &err);
        return;
    }
    log_info("http", "file.retry", "upload=%lld file=%lld user=%s", (long long)upload,
             (long long)file, LOG_Q(http_user(req)->name));
    jobs_notify(http_jobs(req));
    if (http_wants_json(req)) {
        json_t *o = json_object();
        json_object_set_new(o, "file_id", json_integer(file));
        json_object_set_new(o, "state", json_string("queued"));
        http_send_json(req, 202, o);
        return;
    }
    snprintf(url, sizeof(url), "/photos/uploads/%lld/", (long long)upload);
    http_redirect(req, 303, url);
}

static void send_blob(struct http_req *req, const char *key, const struct http_file_opts *fo)
{
    http_send_blob(req, http_blob(req), key, fo);
}

/* The --media-url base, or NULL when media stream through this node. */
static const char *media_url(const struct http_req *req)
{
    const char *m = http_opts(req)->media_url;

    return m && m[0] ? m : NULL;
}

/* 302 to MEDIA_URL/KEY. The key is content-addressed and a photo's key never changes,
 * so the browser may keep the redirect as long as the image itself (private: it came
 * after the login and ownership check). */
static void redirect_media(struct http_req *req, const char *base, const char *key)
{
    struct buf url = BUF_INIT;

    buf_init(&url);
    buf_addf(&url, "%s/%s", base, key);
    http_add_header(req, "Cache-Control", "private, max-age=31536000, immutable");
    http_redirect(req, 302, url.data);
    buf_release(&url);
}

static void send_sized(struct http_req *req, bool thumb)
{
    struct store_photo p;
    struct http_file_opts fo = {.content_type = "image/jpeg", .flags = HTTP_FILE_IMMUTABLE};
    const char *key;
    char etag[80];

    if (load_photo(req, &p))
        return;
    key = thumb ? p.thumb_key : p.preview_key;
    if (media_url(req) && key[0]) {
        redirect_media(req, media_url(req), key);
        return;
    }
    snprintf(etag, sizeof(etag), "%.64s-%c", p.sha256, thumb ? 't' : 'p');
    fo.etag = etag;
    send_blob(req, key, &fo);
}

void h_photo_thumb(struct http_req *req)
{
    send_sized(req, true);
}

void h_photo_preview(struct http_req *req)
{
    send_sized(req, false);
}

static const char *mime_of(const char *format)
{
    static const struct { const char *fmt, *mime; } types[] = {
        {"jpeg", "image/jpeg"}, {"png", "image/png"},   {"webp", "image/webp"},
        {"gif", "image/gif"},   {"tiff", "image/tiff"}, {"heic", "image/heic"},
        {"heif", "image/heif"}, {"avif", "image/avif"},
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (!strcmp(format, types[i].fmt))
            return types[i].mime;
    return "application/octet-stream"; /* camera RAW */
}

/* With --media-url and a store that presigns (S3): 302 to a presigned GET of the original,
 * valid LIMIT_PRESIGN_SECONDS, answered with the type and the user's file name; the
 * bucket stays private. The redirect is not cached (Cache-Control: no-store, the
 * default). 0 when sent; -1 when not possible (then the original streams as without). */
static int redirect_presigned(struct http_req *req, const struct store_photo *p,
                              const char *content_type)
{
    struct blob_store *bs = http_blob(req);
    struct buf disp = BUF_INIT;
    struct err err = {0};
    char url[8192];
    int rc;

    if (!media_url(req) || !bs->ops->presign_get || !p->blob_key[0])
        return -1;
    buf_init(&disp);
    http_content_disposition(&disp, p->name);
    rc = bs->ops->presign_get(bs, p->blob_key, LIMIT_PRESIGN_SECONDS, content_type, disp.data,
                              url, sizeof(url), &err);
    buf_release(&disp);
    if (rc) {
        log_warn("http", "presign.failed", "key=%s err=%s", p->blob_key, LOG_Q(err.msg));
        return -1;
    }
    http_redirect(req, 302, url);
    return 0;
}

void h_photo_original(struct http_req *req)
{
    struct store_photo p;
    struct http_file_opts fo = {.flags = HTTP_FILE_ATTACHMENT | HTTP_FILE_IMMUTABLE};

    if (load_photo(req, &p))
        return;
    if (redirect_presigned(req, &p, mime_of(p.format)) == 0)
        return;
    fo.content_type = mime_of(p.format);
    fo.etag = p.sha256;
    fo.filename = p.name;
    send_blob(req, p.blob_key, &fo);
}
