/*
 * route: the one table of every URL the server answers, and the matcher.
 * Add a row per (methods, pattern); see http.h "ADDING A ROUTE". The table is
 * immutable; matching is a linear scan (a few dozen rows, no allocation).
 */
#include "http/route.h"

#include <stdio.h>
#include <string.h>

#include "base/str.h"
#include "http/h_api.h"
#include "http/h_gallery.h"
#include "http/h_login.h"
#include "http/h_pages.h"
#include "http/h_progress.h"
#include "http/h_tus.h"
#include "http/h_upload.h"
#include "http/h_uploads.h"

static const struct route routes[] = {
    {HTTP_GET, "/", 0, h_root, NULL},
    {HTTP_GET, "/healthz", 0, h_healthz, NULL},
    {HTTP_GET, "/login", 0, h_login_form, NULL},
    {HTTP_POST, "/login", ROUTE_BODY_FORM, h_login_submit, NULL},
    {HTTP_POST, "/logout", ROUTE_BODY_FORM, h_logout, NULL},
    /* pages (web/templates) */
    {HTTP_GET, "/photos/", ROUTE_LOGIN_PAGE, h_gallery, NULL},
    {HTTP_GET, "/photos/upload/", ROUTE_LOGIN_PAGE, h_upload_page, NULL},
    {HTTP_GET, "/photos/{id}/", ROUTE_LOGIN_PAGE, h_photo_page, NULL},
    {HTTP_GET, "/photos/uploads/", ROUTE_LOGIN_PAGE, h_uploads_list, NULL},
    {HTTP_GET, "/photos/uploads/{id}/", ROUTE_LOGIN_PAGE, h_upload_report, NULL},
    {HTTP_GET, "/static/*", 0, h_static, NULL},
    /* the pipeline: ingest, progress, what was stored */
    {HTTP_POST, "/photos/upload/", ROUTE_LOGIN_JSON | ROUTE_CSRF_BY_HANDLER | ROUTE_BODY_STREAM,
     NULL, &h_upload_body},
    {HTTP_GET, "/photos/upload-progress/", ROUTE_LOGIN_JSON, h_progress_get, NULL},
    {HTTP_GET, "/photos/upload-progress/stream", ROUTE_LOGIN_JSON, h_progress_stream, NULL},
    {HTTP_POST, "/photos/clear-upload-progress/", ROUTE_LOGIN_JSON | ROUTE_BODY_FORM,
     h_progress_clear, NULL},
    {HTTP_POST, "/photos/uploads/{id}/files/{id}/retry", ROUTE_LOGIN_JSON | ROUTE_BODY_FORM,
     h_api_retry, NULL},
    {HTTP_GET, "/photos/{id}/thumb.jpg", ROUTE_LOGIN_JSON, h_photo_thumb, NULL},
    {HTTP_GET, "/photos/{id}/preview.jpg", ROUTE_LOGIN_JSON, h_photo_preview, NULL},
    {HTTP_GET, "/photos/{id}/original", ROUTE_LOGIN_JSON, h_photo_original, NULL},
    {HTTP_POST, "/photos/{id}/delete", ROUTE_LOGIN_PAGE | ROUTE_BODY_FORM, h_api_photo_delete,
     NULL},
    {HTTP_GET, "/api/photos", ROUTE_LOGIN_JSON, h_api_photos, NULL},
    {HTTP_GET, "/api/photos/{id}", ROUTE_LOGIN_JSON, h_api_photo, NULL},
    {HTTP_DELETE, "/api/photos/{id}", ROUTE_LOGIN_JSON, h_api_photo_delete, NULL},
    {HTTP_GET, "/api/uploads", ROUTE_LOGIN_JSON, h_api_uploads, NULL},
    {HTTP_GET, "/api/uploads/{id}", ROUTE_LOGIN_JSON, h_api_upload, NULL},
    {HTTP_POST, "/api/uploads", ROUTE_LOGIN_JSON | ROUTE_BODY_STREAM, NULL,
     &h_tus_api_upload_body},
    /* tus 1.0.0 (h_tus.c): OPTIONS without login, the rest by session + X-CSRFToken */
    {HTTP_OPTIONS, "/photos/tus/", 0, h_tus_options, NULL},
    {HTTP_POST, "/photos/tus/", ROUTE_LOGIN_JSON | ROUTE_BODY_STREAM, NULL, &h_tus_create_body},
    {HTTP_OPTIONS, "/photos/tus/*", 0, h_tus_options, NULL},
    {HTTP_HEAD, "/photos/tus/*", ROUTE_LOGIN_JSON, h_tus_head, NULL},
    {HTTP_PATCH, "/photos/tus/*", ROUTE_LOGIN_JSON | ROUTE_BODY_STREAM, NULL, &h_tus_patch_body},
    {HTTP_DELETE, "/photos/tus/*", ROUTE_LOGIN_JSON, h_tus_delete, NULL},
};

static const struct {
    unsigned bit;
    const char *name;
} methods[] = {
    {HTTP_GET, "GET"},       {HTTP_HEAD, "HEAD"},     {HTTP_POST, "POST"},
    {HTTP_PUT, "PUT"},       {HTTP_PATCH, "PATCH"},   {HTTP_DELETE, "DELETE"},
    {HTTP_OPTIONS, "OPTIONS"},
};

unsigned route_method_bit(const char *method)
{
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcmp(method, methods[i].name) == 0)
            return methods[i].bit;
    return 0;
}

void route_allow_header(unsigned allow, char *out, size_t n)
{
    size_t len = 0;

    if (allow & HTTP_GET)
        allow |= HTTP_HEAD;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (!(allow & methods[i].bit))
            continue;
        int w = snprintf(out + len, n - len, "%s%s", len ? ", " : "", methods[i].name);
        if (w < 0 || (size_t)w >= n - len)
            return;
        len += (size_t)w;
    }
}

/* One path segment of 1-18 digits as a positive int64. */
static int match_id(const char *p, size_t len, int64_t *out)
{
    char tmp[19];

    if (len == 0 || len > 18)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (p[i] < '0' || p[i] > '9')
            return -1;
    memcpy(tmp, p, len);
    tmp[len] = '\0';
    return str_to_int64(tmp, out);
}

/* Does path match pattern? Fills ids and rest of m on success. */
static bool match_pattern(const char *pat, const char *path, struct route_match *m)
{
    m->nids = 0;
    m->rest = "";
    while (*pat) {
        if (pat[0] == '*' && pat[1] == '\0') {
            m->rest = path;
            return true;
        }
        if (pat[0] == '{' && strncmp(pat, "{id}", 4) == 0) {
            size_t len = strcspn(path, "/");
            if (m->nids == ROUTE_MAX_IDS || match_id(path, len, &m->ids[m->nids]) < 0)
                return false;
            m->nids++;
            pat += 4;
            path += len;
            continue;
        }
        if (*pat != *path)
            return false;
        pat++;
        path++;
    }
    return *path == '\0';
}

enum route_result route_find_in(const struct route *table, size_t n, unsigned method,
                                const char *path, struct route_match *m)
{
    struct route_match tmp;

    memset(m, 0, sizeof(*m));
    m->rest = "";
    /* HEAD is answered by GET routes (MHD drops the body). */
    unsigned want = method == HTTP_HEAD ? (HTTP_HEAD | HTTP_GET) : method;
    for (size_t i = 0; i < n; i++) {
        if (!match_pattern(table[i].pattern, path, &tmp))
            continue;
        m->allow |= table[i].methods;
        if (!m->route && (table[i].methods & want)) {
            unsigned allow = m->allow;
            *m = tmp;
            m->allow = allow;
            m->route = &table[i];
        }
    }
    if (m->route)
        return ROUTE_FOUND;
    return m->allow ? ROUTE_BAD_METHOD : ROUTE_NOT_FOUND;
}

enum route_result route_find(unsigned method, const char *path, struct route_match *m)
{
    return route_find_in(routes, sizeof(routes) / sizeof(routes[0]), method, path, m);
}

const struct route *route_table(size_t *n)
{
    *n = sizeof(routes) / sizeof(routes[0]);
    return routes;
}
