/* h_pages: see h_pages.h. */
#include "http/h_pages.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/log.h"
#include "base/str.h"
#include "base/timeutil.h"
#include "http/assets.h"
#include "http/csrf.h"
#include "http/html.h"
#include "http/http.h"
#include "jobs/progress.h"
#include "store/store.h"

void h_root(struct http_req *req)
{
    http_redirect(req, 303, "/photos/");
}

void h_healthz(struct http_req *req)
{
    struct store *st = http_store(req);
    struct err err = {0};
    int64_t version = 0;

    if (st->ops->schema_version(st, &version, &err) < 0) {
        log_warn("http", "healthz", "msg=%s", LOG_Q(err.msg));
        http_send_json(req, 503, json_pack("{s:s,s:s}", "status", "error", "error", err.msg));
        return;
    }
    /* Reading is not enough: a full disk lets every read through and refuses every
     * commit, so nothing uploaded could be recorded. 503 takes the node out. */
    if (st->ops->health_check(st, time_now_ms(), &err) < 0) {
        log_warn("http", "healthz.degraded", "msg=%s", LOG_Q(err.msg));
        http_send_json(req, 503, json_pack("{s:s,s:s,s:I}", "status", "degraded", "error",
                                           err.msg, "schema", (json_int_t)version));
        return;
    }
    http_send_json(req, 200, json_pack("{s:s,s:I}", "status", "ok", "schema",
                                       (json_int_t)version));
}

void h_pages_size(struct buf *b, int64_t bytes)
{
    static const char *const units[] = {"KB", "MB", "GB", "TB"};
    double v = (double)bytes;
    size_t u = 0;

    if (bytes < 1024) {
        buf_addf(b, "%lld %s", (long long)bytes, bytes == 1 ? "byte" : "bytes");
        return;
    }
    v /= 1024.0;
    while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024.0;
        u++;
    }
    buf_addf(b, v < 10.0 ? "%.1f %s" : "%.0f %s", v, units[u]);
}

void h_pages_time(struct buf *b, int64_t ms)
{
    char iso[40], text[40];
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;

    if (ms <= 0 || !gmtime_r(&secs, &tm))
        return;
    time_iso8601(ms, iso, sizeof(iso));
    if (strftime(text, sizeof(text), "%Y-%m-%d %H:%M UTC", &tm) == 0)
        text[0] = '\0';
    buf_adds(b, "<time class=\"js-local-time\" datetime=\"");
    html_attr(b, iso);
    buf_adds(b, "\">");
    html_text(b, text);
    buf_adds(b, "</time>");
}

void h_pages_taken(struct buf *b, const char *taken_at)
{
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int y, mo, d, h, mi, s;

    if (sscanf(taken_at, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &s) != 6 || mo < 1 ||
        mo > 12) {
        html_text(b, taken_at);
        return;
    }
    buf_addf(b, "%d %s %d, %02d:%02d", d, months[mo - 1], y, h, mi);
}

void h_pages_status_badge(struct buf *b, const struct progress *p)
{
    const char *key = "processing", *label = "Processing";

    if (!strcmp(p->status, "completed") && p->failed > 0) {
        key = "partial";
        label = "Completed with errors";
    } else if (!strcmp(p->status, "completed")) {
        key = "completed";
        label = "Completed";
    } else if (!strcmp(p->status, "failed")) {
        key = "failed";
        label = "Failed";
    } else if (!strcmp(p->phase, "receiving")) {
        key = "uploading";
        label = "Uploading";
    }
    buf_addf(b, "<span class=\"badge badge-%s\">%s</span>", key, label);
}

/* Only these folders of web/ are public; templates are not. */
static bool public_path(const char *rest)
{
    return (str_starts_with(rest, "css/") || str_starts_with(rest, "js/") ||
            str_starts_with(rest, "img/")) &&
           assets_path_safe(rest);
}

static void send_from_disk(struct http_req *req, const char *dir, const char *rest)
{
    char path[4096], etag[64];
    struct stat st;
    int n = snprintf(path, sizeof(path), "%s/%s", dir, rest);

    if (n < 0 || (size_t)n >= sizeof(path) || stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
        http_send_error(req, 404, "not found");
        return;
    }
    snprintf(etag, sizeof(etag), "%llx-%llx", (unsigned long long)st.st_mtime,
             (unsigned long long)st.st_size);
    const struct http_file_opts o = {assets_content_type(rest), etag, NULL, 0};
    http_send_file(req, path, &o);
}

void h_static(struct http_req *req)
{
    const char *rest = http_path_rest(req), *dir = http_opts(req)->assets_dir;
    const struct asset *a;
    char etag[64];

    if (!public_path(rest)) {
        http_send_error(req, 404, "not found");
        return;
    }
    if (dir && *dir) {
        send_from_disk(req, dir, rest);
        return;
    }
    a = assets_find(rest);
    if (!a) {
        http_send_error(req, 404, "not found");
        return;
    }
    snprintf(etag, sizeof(etag), "\"%s\"", a->etag);
    http_add_header(req, "ETag", etag);
    /* Revalidate every time (the ETag makes it a 304): the upload page is nine
     * ES modules, and a browser must never combine a cached old one with a new
     * one after an upgrade. */
    http_add_header(req, "Cache-Control", "no-cache");
    const char *inm = http_header(req, "If-None-Match");
    if (inm && (strstr(inm, etag) || strcmp(inm, "*") == 0)) {
        http_send_buf(req, 304, NULL, "", 0);
        return;
    }
    http_send_buf(req, 200, a->type, a->data, a->len);
}

void h_pages_tile(struct buf *b, const struct store_photo *p, bool small)
{
    buf_addf(b, "<li class=\"tile%s\"><a class=\"tile-link\" href=\"/photos/%lld/\">",
             small ? " small" : "", (long long)p->id);
    if (p->has_thumb) {
        buf_addf(b, "<img class=\"tile-img\" src=\"/photos/%lld/thumb.jpg\" loading=\"lazy\" "
                    "decoding=\"async\" alt=\"", (long long)p->id);
        html_attr(b, p->name);
        buf_adds(b, "\">");
    } else {
        buf_adds(b, "<span class=\"tile-img placeholder\" role=\"img\" aria-label=\"No thumbnail "
                    "for ");
        html_attr(b, p->name);
        buf_adds(b, "\">" H_PAGES_PLACEHOLDER_ICON "<span>No preview</span></span>");
    }
    buf_adds(b, "<span class=\"tile-caption\"><span class=\"tile-name\">");
    html_text(b, p->name);
    buf_adds(b, "</span>");
    if (!small) {
        buf_adds(b, "<span class=\"tile-date\">");
        if (p->taken_at[0])
            h_pages_taken(b, p->taken_at);
        else
            h_pages_size(b, p->size);
        buf_adds(b, "</span>");
    }
    buf_adds(b, "</span></a></li>\n");
}
