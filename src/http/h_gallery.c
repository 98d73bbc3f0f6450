/* h_gallery: see h_gallery.h. */
#include "http/h_gallery.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/str.h"
#include "http/csrf.h"
#include "http/cursor.h"
#include "http/h_pages.h"
#include "http/html.h"
#include "http/http.h"
#include "store/store.h"

/* One grid tile per photo (the callback of store photos_list). */
static void add_tile(void *ctx, const struct store_photo *p)
{
    h_pages_tile(ctx, p, false);
}

static void page_link(struct buf *b, int64_t page, const char *label, const char *cls,
                      bool current)
{
    if (current) {
        buf_addf(b, "<span class=\"%s\" aria-current=\"page\">%s</span>", cls, label);
        return;
    }
    buf_addf(b, "<a class=\"%s\" href=\"/photos/?page=%lld\">%s</a>", cls, (long long)page,
             label);
}

/* "Newer" and "Older" carry a cursor (the page's first or last photo) with the page
 * number to show: the next page is one index range scan wherever it lies, and no photo
 * is shown twice or skipped when photos are added meanwhile. Page 1 is the plain list. */
static void step_link(struct buf *b, int64_t page, const char *side,
                      const struct store_photo_key *k, const char *label)
{
    if (page <= 1) {
        buf_addf(b, "<a class=\"page-step\" href=\"/photos/\">%s</a>", label);
        return;
    }
    if (!k) {
        buf_addf(b, "<a class=\"page-step\" href=\"/photos/?page=%lld\">%s</a>",
                 (long long)page, label);
        return;
    }
    buf_addf(b, "<a class=\"page-step\" href=\"/photos/?page=%lld&amp;%s=", (long long)page,
             side);
    cursor_add(b, k);
    buf_addf(b, "\">%s</a>", label);
}

/* Newer, a window of page numbers, older. Nothing for a single page. */
static void pagination(struct buf *b, const struct store_page *pg, int64_t page, int64_t pages)
{
    char num[24];

    if (pages <= 1 && !pg->newer && !pg->older)
        return;
    buf_adds(b, "<nav class=\"pagination\" aria-label=\"Pages\">");
    if (pg->newer)
        step_link(b, page - 1, "after", cursor_newer_edge(pg), "&larr; Newer");
    for (int64_t i = 1; i <= pages; i++) {
        bool edge = i == 1 || i == pages || (i >= page - 2 && i <= page + 2);
        if (!edge) {
            if (i == 2 || i == pages - 1)
                buf_adds(b, "<span class=\"page-gap\">&hellip;</span>");
            continue;
        }
        snprintf(num, sizeof(num), "%lld", (long long)i);
        page_link(b, i, num, "page-num", i == page);
    }
    if (pg->older)
        step_link(b, page + 1, "before", cursor_older_edge(pg), "Older &rarr;");
    buf_adds(b, "</nav>");
}

/* GET /photos/[?page=N[&before=|&after=CURSOR]]: a numbered page is walked to from the
 * nearer end of the library; with a cursor (the Newer/Older links) it is one range scan
 * and N is only the number shown. */
void h_gallery(struct http_req *req)
{
    struct store *st = http_store(req);
    struct err err = {0};
    struct buf grid = BUF_INIT, nav = BUF_INIT, count = BUF_INIT;
    struct store_page pg = {.user_id = http_user(req)->id, .limit = GALLERY_PAGE_SIZE};
    const char *q = http_query(req, "page");
    int64_t page = 1, pages;
    char msg[160];

    if (q && (str_to_int64(q, &page) || page < 1))
        page = 1;
    if (page > INT64_MAX / GALLERY_PAGE_SIZE)
        page = 1;
    if (cursor_request(http_query(req, "before"), http_query(req, "after"), &pg, msg,
                       sizeof(msg))) {
        http_send_error(req, 400, msg);
        return;
    }
    pg.offset = (page - 1) * GALLERY_PAGE_SIZE;
    buf_init(&grid);
    if (st->ops->photo_page(st, &pg, add_tile, &grid, &err)) {
        buf_release(&grid);
        http_send_store_error(req, &err);
        return;
    }
    pages = (pg.total + GALLERY_PAGE_SIZE - 1) / GALLERY_PAGE_SIZE;
    if (pg.from != STORE_PAGE_OFFSET && page > pages)  /* photos were deleted meanwhile */
        page = pages > 0 ? pages : 1;
    pagination(&nav, &pg, page, pages);
    buf_addf(&count, "%lld %s", (long long)pg.total, pg.total == 1 ? "photo" : "photos");
    if (pages > 1)
        buf_addf(&count, " · page %lld of %lld", (long long)page, (long long)pages);
    const struct html_var vars[] = {
        {"count", count.data},
        {"grid", grid.data},
        {"pagination", nav.data},
        {"empty_hidden", pg.total == 0 ? "" : "hidden"},
        {"grid_hidden", pg.total == 0 ? "hidden" : ""},
    };
    http_send_page(req, 200, "Your photos", "gallery.html", vars, sizeof(vars) / sizeof(vars[0]));
    buf_release(&grid);
    buf_release(&nav);
    buf_release(&count);
}

/* ---- the detail page ---- */

static void meta_row(struct buf *b, const char *label, const char *html_value)
{
    if (!html_value || !html_value[0])
        return;
    buf_addf(b, "<div class=\"meta-row\"><dt>%s</dt><dd>%s</dd></div>", label, html_value);
}

/* "Canon EOS 5D" rather than "Canon Canon EOS 5D". */
static void camera_text(struct buf *b, const struct store_photo *p)
{
    size_t mk = strlen(p->make);

    if (p->model[0] && mk && strncasecmp(p->model, p->make, mk) == 0) {
        html_text(b, p->model);
        return;
    }
    html_text(b, p->make);
    if (mk && p->model[0])
        buf_addc(b, ' ');
    html_text(b, p->model);
}

static void exposure_text(struct buf *b, const struct store_photo *p)
{
    const char *sep = "";

    if (!isnan(p->exposure_time) && p->exposure_time > 0) {
        if (p->exposure_time < 0.5)
            buf_addf(b, "1/%.0f s", 1.0 / p->exposure_time);
        else
            buf_addf(b, "%.1f s", p->exposure_time);
        sep = " · ";
    }
    if (!isnan(p->f_number) && p->f_number > 0) {
        buf_addf(b, "%sƒ/%.1f", sep, p->f_number);
        sep = " · ";
    }
    if (p->iso > 0) {
        buf_addf(b, "%sISO %lld", sep, (long long)p->iso);
        sep = " · ";
    }
    if (!isnan(p->focal_length) && p->focal_length > 0)
        buf_addf(b, "%s%.0f mm", sep, p->focal_length);
}

static bool has_gps(const struct store_photo *p)
{
    return !isnan(p->gps_lat) && !isnan(p->gps_lon) && !(p->gps_lat == 0 && p->gps_lon == 0);
}

static void gps_html(struct buf *b, const struct store_photo *p)
{
    if (!has_gps(p))
        return;
    buf_addf(b, "%.5f, %.5f <a class=\"map-link\" href=\"https://www.openstreetmap.org/"
                "?mlat=%.6f&amp;mlon=%.6f#map=15/%.6f/%.6f\" rel=\"noopener noreferrer\" "
                "target=\"_blank\">Open map</a>",
             p->gps_lat, p->gps_lon, p->gps_lat, p->gps_lon, p->gps_lat, p->gps_lon);
}

static void lens_text(struct buf *b, const struct store_photo *p)
{
    html_text(b, p->lens);
}

static void taken_text(struct buf *b, const struct store_photo *p)
{
    if (!p->taken_at[0])
        return;
    h_pages_taken(b, p->taken_at);
    if (p->taken_offset[0]) {
        buf_adds(b, " (UTC");
        html_text(b, p->taken_offset);
        buf_addc(b, ')');
    }
}

static void dimensions_text(struct buf *b, const struct store_photo *p)
{
    if (p->width > 0 && p->height > 0)
        buf_addf(b, "%lld × %lld px (%.1f MP)", (long long)p->width, (long long)p->height,
                 (double)p->width * (double)p->height / 1e6);
}

static void size_text(struct buf *b, const struct store_photo *p)
{
    h_pages_size(b, p->size);
}

static void format_text(struct buf *b, const struct store_photo *p)
{
    for (const char *c = p->format; *c; c++)
        buf_addc(b, (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c));
}

static void uploaded_text(struct buf *b, const struct store_photo *p)
{
    h_pages_time(b, p->created_at);
}

static void upload_link(struct buf *b, const struct store_photo *p)
{
    buf_addf(b, "<a href=\"/photos/uploads/%lld/\">Upload #%lld</a>", (long long)p->upload_id,
             (long long)p->upload_id);
}

/* The metadata rows, in display order; a row shows only when its value is known. */
static const struct {
    const char *label;
    void (*fill)(struct buf *b, const struct store_photo *p);
} meta_rows[] = {
    {"Camera", camera_text},      {"Lens", lens_text},          {"Exposure", exposure_text},
    {"Taken", taken_text},        {"Dimensions", dimensions_text}, {"File size", size_text},
    {"Format", format_text},      {"Location", gps_html},       {"Uploaded", uploaded_text},
    {"From", upload_link},
};

static void metadata(struct buf *out, const struct store_photo *p)
{
    struct buf v = BUF_INIT;

    buf_init(&v);
    for (size_t i = 0; i < sizeof(meta_rows) / sizeof(meta_rows[0]); i++) {
        buf_reset(&v);
        meta_rows[i].fill(&v, p);
        meta_row(out, meta_rows[i].label, v.data);
    }
    buf_release(&v);
}

static void warnings_html(struct buf *b, const char *w)
{
    const char *p = w;

    if (!w[0])
        return;
    buf_adds(b, "<div class=\"notice\"><strong>Notes from processing</strong><ul>");
    while (p && *p) {
        const char *end = strstr(p, "; ");
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[512];
        snprintf(item, sizeof(item), "%.*s", (int)(len < sizeof(item) - 1 ? len : sizeof(item) - 1),
                 p);
        buf_adds(b, "<li>");
        html_text(b, item);
        buf_adds(b, "</li>");
        p = end ? end + 2 : NULL;
    }
    buf_adds(b, "</ul></div>");
}

void h_photo_page(struct http_req *req)
{
    struct store *st = http_store(req);
    struct store_photo p;
    struct err err = {0};
    struct buf meta = BUF_INIT, preview = BUF_INIT, notes = BUF_INIT;
    char id[24];
    const char *confirm = http_query(req, "delete");
    int rc = st->ops->photo_get(st, http_id(req, 0), http_user(req)->id, &p, &err);

    if (rc == STORE_NOT_FOUND) {
        http_send_error(req, 404, "no such photo");
        return;
    }
    if (rc) {
        http_send_store_error(req, &err);
        return;
    }
    snprintf(id, sizeof(id), "%lld", (long long)p.id);
    buf_init(&meta);
    metadata(&meta, &p);
    buf_init(&notes);
    warnings_html(&notes, p.warnings);
    if (p.has_thumb) {
        buf_addf(&preview, "<img class=\"preview-img\" src=\"/photos/%s/preview.jpg\" alt=\"", id);
        html_attr(&preview, p.name);
        buf_adds(&preview, "\">");
    } else {
        buf_adds(&preview, "<div class=\"preview-img placeholder\" role=\"img\" "
                           "aria-label=\"No preview\">" H_PAGES_PLACEHOLDER_ICON
                           "<span>No preview for this file</span></div>");
    }
    const struct html_var vars[] = {
        {"id", id},
        {"name", p.name},
        {"preview", preview.data},
        {"meta", meta.data},
        {"notes", notes.data},
        {"csrf_field", CSRF_FIELD},
        {"csrf_token", http_csrf_token(req)},
        {"confirm_hidden", confirm ? "" : "hidden"},
        {"actions_hidden", confirm ? "hidden" : ""},
    };
    http_send_page(req, 200, p.name, "photo.html", vars, sizeof(vars) / sizeof(vars[0]));
    buf_release(&meta);
    buf_release(&preview);
    buf_release(&notes);
}
