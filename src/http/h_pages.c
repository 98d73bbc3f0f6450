/* h_pages: see h_pages.h. */
#include "http/h_pages.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/log.h"
#include "base/str.h"
#include "http/assets.h"
#include "http/csrf.h"
#include "http/html.h"
#include "http/http.h"
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
    http_send_json(req, 200, json_pack("{s:s,s:I}", "status", "ok", "schema",
                                       (json_int_t)version));
}

void h_photos_home(struct http_req *req)
{
    const struct html_var vars[] = {
        {"name", http_user(req)->name},
    };
    http_send_page(req, 200, "Your photos", "photos.html", vars, 1);
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
    http_add_header(req, "Cache-Control", "public, max-age=3600");
    const char *inm = http_header(req, "If-None-Match");
    if (inm && (strstr(inm, etag) || strcmp(inm, "*") == 0)) {
        http_send_buf(req, 304, NULL, "", 0);
        return;
    }
    http_send_buf(req, 200, a->type, a->data, a->len);
}
