/* views: see views.h. */
#include "http/views.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"
#include "base/timeutil.h"

static json_t *num_or_null(double v)
{
    return isnan(v) ? json_null() : json_real(v);
}

static json_t *str_or_null(const char *s)
{
    return s && s[0] ? json_string(s) : json_null();
}

json_t *view_time(int64_t ms)
{
    char buf[40];

    if (ms <= 0)
        return json_null();
    time_iso8601(ms, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *warnings_array(const char *w)
{
    json_t *a = json_array();
    const char *p = w;

    while (p && *p) {
        const char *end = strstr(p, "; ");
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len)
            json_array_append_new(a, json_stringn(p, len));
        p = end ? end + 2 : NULL;
    }
    return a;
}

/* The thumbnail URL of photo id, or null when there is none (id 0). */
static json_t *thumb_url(int64_t id)
{
    char url[64];

    if (!id)
        return json_null();
    snprintf(url, sizeof(url), "/photos/%lld/thumb.jpg", (long long)id);
    return json_string(url);
}

json_t *view_photo(const struct store_photo *p)
{
    char url[96], taken[48];
    json_t *o = json_object();

    json_object_set_new(o, "id", json_integer(p->id));
    json_object_set_new(o, "upload_id", json_integer(p->upload_id));
    json_object_set_new(o, "file_id", json_integer(p->file_id));
    json_object_set_new(o, "file_name", json_string(p->name));
    json_object_set_new(o, "format", json_string(p->format));
    json_object_set_new(o, "byte_size", json_integer(p->size));
    json_object_set_new(o, "sha256", json_string(p->sha256));
    json_object_set_new(o, "width", p->width ? json_integer(p->width) : json_null());
    json_object_set_new(o, "height", p->height ? json_integer(p->height) : json_null());
    snprintf(taken, sizeof(taken), "%s%s", p->taken_at, p->taken_at[0] ? p->taken_offset : "");
    json_object_set_new(o, "taken_at", str_or_null(taken));
    json_object_set_new(o, "make", str_or_null(p->make));
    json_object_set_new(o, "model", str_or_null(p->model));
    json_object_set_new(o, "lens", str_or_null(p->lens));
    json_object_set_new(o, "exposure_time", num_or_null(p->exposure_time));
    json_object_set_new(o, "f_number", num_or_null(p->f_number));
    json_object_set_new(o, "iso", p->iso ? json_integer(p->iso) : json_null());
    json_object_set_new(o, "focal_length", num_or_null(p->focal_length));
    json_object_set_new(o, "gps_lat", num_or_null(p->gps_lat));
    json_object_set_new(o, "gps_lon", num_or_null(p->gps_lon));
    json_object_set_new(o, "gps_alt", num_or_null(p->gps_alt));
    json_object_set_new(o, "orientation", p->orientation ? json_integer(p->orientation) : json_null());
    json_object_set_new(o, "has_thumbnail", json_boolean(p->has_thumb));
    json_object_set_new(o, "warnings", warnings_array(p->warnings));
    json_object_set_new(o, "uploaded_at", view_time(p->created_at));
    json_object_set_new(o, "thumbnail_url", thumb_url(p->has_thumb ? p->id : 0));
    if (p->has_thumb) {
        snprintf(url, sizeof(url), "/photos/%lld/preview.jpg", (long long)p->id);
        json_object_set_new(o, "preview_url", json_string(url));
    } else {
        json_object_set_new(o, "preview_url", json_null());
    }
    snprintf(url, sizeof(url), "/photos/%lld/original", (long long)p->id);
    json_object_set_new(o, "original_url", json_string(url));
    snprintf(url, sizeof(url), "/photos/%lld/", (long long)p->id);
    json_object_set_new(o, "url", json_string(url));
    return o;
}

json_t *view_file(const struct store_file *f)
{
    json_t *o = json_object();

    json_object_set_new(o, "id", json_integer(f->id));
    json_object_set_new(o, "file_name", json_string(f->name));
    json_object_set_new(o, "state", json_string(store_file_state_name(f->state)));
    json_object_set_new(o, "byte_size", json_integer(f->size));
    json_object_set_new(o, "format", str_or_null(f->format));
    json_object_set_new(o, "batch", f->batch_no ? json_integer(f->batch_no) : json_null());
    json_object_set_new(o, "attempts", json_integer(f->attempts));
    json_object_set_new(o, "photo_id", f->photo_id ? json_integer(f->photo_id) : json_null());
    json_object_set_new(o, "duplicate_of",
                        f->duplicate_of ? json_integer(f->duplicate_of) : json_null());
    /* a duplicate's photo is the earlier one it duplicates */
    json_object_set_new(o, "thumbnail_url",
                        thumb_url(f->photo_has_thumb ? (f->photo_id ? f->photo_id : f->duplicate_of)
                                                     : 0));
    if (f->state == FILE_FAILED) {
        json_object_set_new(o, "stage", json_string(f->error_stage));
        json_object_set_new(o, "error", json_string(f->error_msg));
        json_object_set_new(o, "retryable", json_boolean(f->spool[0] != '\0'));
    } else {
        json_object_set_new(o, "stage", json_null());
        json_object_set_new(o, "error", json_null());
        json_object_set_new(o, "retryable", json_false());
    }
    return o;
}

json_t *view_progress(const struct progress *p, json_t *errors, json_t *files)
{
    json_t *o = json_object();

    json_object_set_new(o, "upload_id", p->upload_id ? json_integer(p->upload_id) : json_null());
    json_object_set_new(o, "status", json_string(p->status));
    json_object_set_new(o, "phase", json_string(p->phase));
    json_object_set_new(o, "total", json_integer(p->total));
    json_object_set_new(o, "processed", json_integer(p->processed));
    json_object_set_new(o, "uploaded", json_integer(p->uploaded));
    json_object_set_new(o, "failed", json_integer(p->failed));
    json_object_set_new(o, "duplicates", json_integer(p->duplicates));
    json_object_set_new(o, "current_batch", json_integer(p->current_batch));
    json_object_set_new(o, "total_batches", json_integer(p->total_batches));
    json_object_set_new(o, "batch_size", json_integer(p->batch_size));
    json_object_set_new(o, "percent", json_real(floor(p->percent * 10.0 + 0.5) / 10.0));
    json_object_set_new(o, "bytes_received", json_integer(p->bytes_received));
    json_object_set_new(o, "bytes_total", p->bytes_total ? json_integer(p->bytes_total) : json_null());
    json_object_set_new(o, "eta_seconds", p->eta_seconds >= 0 ? json_integer(p->eta_seconds) : json_null());
    json_object_set_new(o, "started_at", view_time(p->started_at));
    json_object_set_new(o, "updated_at", view_time(p->updated_at));
    json_object_set_new(o, "finished_at", view_time(p->finished_at));
    json_object_set_new(o, "version", json_integer(p->version));
    json_object_set_new(o, "errors", errors ? errors : json_array());
    if (files)
        json_object_set_new(o, "files", files);
    return o;
}

static void add_error(void *ctx, const struct store_file *f)
{
    json_t *e = json_object();

    json_object_set_new(e, "file", json_string(f->name));
    json_object_set_new(e, "file_id", json_integer(f->id));
    json_object_set_new(e, "stage", json_string(f->error_stage));
    json_object_set_new(e, "message", json_string(f->error_msg));
    json_object_set_new(e, "retryable", json_boolean(f->spool[0] != '\0'));
    json_array_append_new(ctx, e);
}

static void add_file(void *ctx, const struct store_file *f)
{
    json_array_append_new(ctx, view_file(f));
}

typedef int (*files_op)(struct store *st, int64_t upload_id, store_file_cb cb, void *ctx,
                        struct err *err);

/* A JSON array of the files `op` lists, each shaped by cb; NULL on a store error. */
static json_t *file_array(struct store *st, files_op op, int64_t upload_id, store_file_cb cb)
{
    json_t *a = json_array();
    struct err err = {0};

    if (op(st, upload_id, cb, a, &err)) {
        json_decref(a);
        return NULL;
    }
    return a;
}

json_t *view_upload_errors(struct store *st, int64_t upload_id)
{
    return file_array(st, st->ops->upload_errors, upload_id, add_error);
}

json_t *view_upload_files(struct store *st, int64_t upload_id)
{
    return file_array(st, st->ops->upload_files, upload_id, add_file);
}

json_t *view_upload(struct store *st, const struct store_upload *u, bool with_files)
{
    struct progress p;
    json_t *errors, *files = NULL;

    progress_from_upload(u, time_now_ms(), &p);
    /* FAILED files are counted in u->failed in the same transaction: none, no query. */
    errors = u->failed > 0 ? view_upload_errors(st, u->id) : json_array();
    if (!errors)
        return NULL;
    if (with_files) {
        files = view_upload_files(st, u->id);
        if (!files) {
            json_decref(errors);
            return NULL;
        }
    }
    return view_progress(&p, errors, files);
}

/* ---- the progress object as text (the endpoint's hot path) ---- */

/* Decimal digits of v (no printf: this runs for every poll of every page). */
static void text_digits(struct buf *b, int64_t v)
{
    char d[STR_INT64_LEN];

    buf_adds(b, str_from_int64(v, d));
}

static void text_key(struct buf *b, const char *key)
{
    buf_addc(b, '"');
    buf_adds(b, key);
    buf_add(b, "\":", 2);
}

static void text_int(struct buf *b, const char *key, int64_t v)
{
    text_key(b, key);
    text_digits(b, v);
    buf_addc(b, ',');
}

static void text_int_or_null(struct buf *b, const char *key, int64_t v, bool present)
{
    if (present) {
        text_int(b, key, v);
        return;
    }
    text_key(b, key);
    buf_add(b, "null,", 5);
}

static void text_time(struct buf *b, const char *key, int64_t ms)
{
    char t[40];

    text_key(b, key);
    if (ms <= 0) {
        buf_add(b, "null,", 5);
        return;
    }
    time_iso8601(ms, t, sizeof(t));
    buf_addc(b, '"');
    buf_adds(b, t);
    buf_add(b, "\",", 2);
}

void view_progress_text(const struct progress *p, const char *errors_json, struct buf *out)
{
    /* Keys, order and values as view_progress(); status and phase are fixed
     * ASCII words and times ISO 8601, so nothing here needs escaping. The
     * percent has one decimal (jansson would print 33.299999999999997 for the
     * same double). */
    char num[STR_TENTHS_LEN];

    buf_addc(out, '{');
    text_int_or_null(out, "upload_id", p->upload_id, p->upload_id != 0);
    text_key(out, "status");
    buf_addc(out, '"');
    buf_adds(out, p->status);
    buf_add(out, "\",", 2);
    text_key(out, "phase");
    buf_addc(out, '"');
    buf_adds(out, p->phase);
    buf_add(out, "\",", 2);
    text_int(out, "total", p->total);
    text_int(out, "processed", p->processed);
    text_int(out, "uploaded", p->uploaded);
    text_int(out, "failed", p->failed);
    text_int(out, "duplicates", p->duplicates);
    text_int(out, "current_batch", p->current_batch);
    text_int(out, "total_batches", p->total_batches);
    text_int(out, "batch_size", p->batch_size);
    text_key(out, "percent");
    buf_adds(out, str_from_tenths(p->percent, num));
    buf_addc(out, ',');
    text_int(out, "bytes_received", p->bytes_received);
    text_int_or_null(out, "bytes_total", p->bytes_total, p->bytes_total != 0);
    text_int_or_null(out, "eta_seconds", p->eta_seconds, p->eta_seconds >= 0);
    text_time(out, "started_at", p->started_at);
    text_time(out, "updated_at", p->updated_at);
    text_time(out, "finished_at", p->finished_at);
    text_int(out, "version", p->version);
    text_key(out, "errors");
    buf_adds(out, errors_json ? errors_json : "[]");
    buf_addc(out, '}');
}

/* The text of the last progress this thread wrote without errors: a page's
 * polls (every tab's) ask for the same upload at the same version again and
 * again, and that text is a function of the progress alone (struct progress
 * has no padding; status and phase are static strings), ETA included. A
 * fixed buffer per thread: nothing to free when an MHD thread ends; a longer
 * text is not kept. */
#define VIEW_TEXT_KEEP 1024
static __thread struct {
    bool used;
    struct progress p;
    size_t len;
    char text[VIEW_TEXT_KEEP];
} last_text;

static void progress_text_kept(const struct progress *p, struct buf *out)
{
    size_t start = out->len;

    if (last_text.used && memcmp(&last_text.p, p, sizeof(*p)) == 0) {
        buf_add(out, last_text.text, last_text.len);
        return;
    }
    view_progress_text(p, NULL, out);
    last_text.used = out->len - start <= sizeof(last_text.text);
    if (last_text.used) {
        last_text.p = *p;
        last_text.len = out->len - start;
        memcpy(last_text.text, out->data + start, last_text.len);
    }
}

int view_upload_text(struct store *st, const struct store_upload *u, struct buf *out)
{
    struct progress p;
    json_t *errors;
    char *errors_json;

    progress_from_upload(u, time_now_ms(), &p);
    if (u->failed == 0) {
        progress_text_kept(&p, out);
        return 0;
    }
    errors = view_upload_errors(st, u->id);
    if (!errors)
        return -1;
    errors_json = json_dumps(errors, JSON_COMPACT);
    json_decref(errors);
    if (!errors_json)
        return -1;
    view_progress_text(&p, errors_json, out);
    free(errors_json);
    return 0;
}
