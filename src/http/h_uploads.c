/* h_uploads: see h_uploads.h. */
#include "http/h_uploads.h"

#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "http/csrf.h"
#include "http/h_pages.h"
#include "http/html.h"
#include "http/http.h"
#include "jobs/progress.h"
#include "store/store.h"

void h_upload_page(struct http_req *req)
{
    const struct http_opts *o = http_opts(req);
    struct buf max_text = BUF_INIT;
    char max_bytes[24], batch[24], current[24] = "";
    int64_t cur = http_session_upload(req);

    buf_init(&max_text);
    h_pages_size(&max_text, o->max_file_size);
    snprintf(max_bytes, sizeof(max_bytes), "%lld", (long long)o->max_file_size);
    snprintf(batch, sizeof(batch), "%lld", (long long)o->batch_size);
    if (cur > 0)
        snprintf(current, sizeof(current), "%lld", (long long)cur);
    const struct html_var vars[] = {
        {"csrf_field", CSRF_FIELD},
        {"csrf_token", http_csrf_token(req)},
        {"max_bytes", max_bytes},
        {"max_text", max_text.data},
        {"batch_size", batch},
        {"current_upload", current},
    };
    http_send_page(req, 200, "Upload photos", "upload.html", vars, sizeof(vars) / sizeof(vars[0]));
    buf_release(&max_text);
}

/* ---- the list ---- */

static void add_upload_row(void *ctx, const struct store_upload *u)
{
    struct buf *b = ctx;
    struct progress p;

    progress_from_upload(u, time_now_ms(), &p);
    buf_addf(b, "<tr><th scope=\"row\" class=\"upload-id\"><a href=\"/photos/uploads/%lld/\">"
                "Upload #%lld</a></th><td class=\"started\">", (long long)u->id, (long long)u->id);
    h_pages_time(b, u->created_at);
    buf_adds(b, "</td><td class=\"status\">");
    h_pages_status_badge(b, &p);
    buf_addf(b, "</td><td class=\"num\" data-label=\"Files\">%lld</td>"
                "<td class=\"num\" data-label=\"Uploaded\">%lld</td>"
                "<td class=\"num\" data-label=\"Duplicates\">%lld</td>"
                "<td class=\"num%s\" data-label=\"Failed\">%lld</td><td class=\"num size\">",
             (long long)p.total, (long long)p.uploaded, (long long)p.duplicates,
             p.failed ? " bad" : "", (long long)p.failed);
    h_pages_size(b, u->bytes_received);
    buf_adds(b, "</td></tr>\n");
}

void h_uploads_list(struct http_req *req)
{
    struct store *st = http_store(req);
    struct err err = {0};
    struct buf rows = BUF_INIT;

    buf_init(&rows);
    if (st->ops->upload_list(st, http_user(req)->id, UPLOADS_LIST_MAX, add_upload_row, &rows,
                             &err)) {
        buf_release(&rows);
        http_send_store_error(req, &err);
        return;
    }
    const struct html_var vars[] = {
        {"rows", rows.data},
        {"empty_hidden", rows.len ? "hidden" : ""},
        {"table_hidden", rows.len ? "" : "hidden"},
    };
    http_send_page(req, 200, "Your uploads", "uploads.html", vars, sizeof(vars) / sizeof(vars[0]));
    buf_release(&rows);
}

/* ---- one upload's report ---- */

struct report {
    struct buf errors;   /* <tr> rows */
    struct buf photos;   /* <li> tiles */
    const char *csrf;
    int64_t upload_id;
    size_t nerrors;
};

static void add_error_row(void *ctx, const struct store_file *f)
{
    struct report *r = ctx;
    struct buf *b = &r->errors;

    r->nerrors++;
    buf_adds(b, "<tr><td class=\"file-name\">");
    html_text(b, f->name);
    buf_adds(b, "</td><td><span class=\"stage\">");
    html_text(b, f->error_stage);
    buf_adds(b, "</span></td><td>");
    html_text(b, f->error_msg);
    buf_adds(b, "</td><td class=\"actions\">");
    if (f->spool[0]) {
        buf_addf(b, "<form method=\"post\" action=\"/photos/uploads/%lld/files/%lld/retry\">"
                    "<input type=\"hidden\" name=\"" CSRF_FIELD "\" value=\"",
                 (long long)r->upload_id, (long long)f->id);
        html_attr(b, r->csrf);
        buf_adds(b, "\"><button type=\"submit\" class=\"button small\">Retry<span "
                    "class=\"visually-hidden\"> ");
        html_text(b, f->name);
        buf_adds(b, "</span></button></form>");
    } else if (strcmp(f->error_stage, "sniff") != 0 && strcmp(f->error_stage, "limits") != 0) {
        /* offered unless the format or a limit refused the file: it would be again */
        buf_adds(b, "<a class=\"button small\" href=\"/photos/upload/\">Upload again</a>");
    }
    buf_adds(b, "</td></tr>\n");
}

static void add_photo_tile(void *ctx, const struct store_photo *p)
{
    struct report *r = ctx;

    h_pages_tile(&r->photos, p, true);
}

static void counts_html(struct buf *b, const struct progress *p)
{
    static const char *const labels[] = {"Total", "Processed", "Uploaded", "Duplicates",
                                         "Failed"};
    const int64_t values[] = {p->total, p->processed, p->uploaded, p->duplicates, p->failed};
    static const char *const keys[] = {"total", "processed", "uploaded", "duplicates", "failed"};

    for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++)
        buf_addf(b, "<div class=\"counter counter-%s\"><dt>%s</dt><dd id=\"count-%s\">%lld</dd>"
                    "</div>", keys[i], labels[i], keys[i], (long long)values[i]);
}

static void summary_text(struct buf *b, const struct progress *p, bool finished)
{
    if (finished) {
        buf_addf(b, "Finished: %lld of %lld files stored", (long long)p->uploaded,
                 (long long)p->total);
        if (p->duplicates)
            buf_addf(b, ", %lld already in your library", (long long)p->duplicates);
        if (p->failed)
            buf_addf(b, ", %lld failed", (long long)p->failed);
        buf_addc(b, '.');
        return;
    }
    if (!strcmp(p->phase, "receiving"))
        buf_addf(b, "Receiving files: %lld arrived so far.", (long long)p->total);
    else if (p->total_batches > 0 && p->current_batch > 0)
        buf_addf(b, "Processing batch %lld of %lld.", (long long)p->current_batch,
                 (long long)p->total_batches);
    else
        buf_adds(b, "Waiting for a worker.");
    buf_addf(b, " This page refreshes every %d seconds.", REPORT_REFRESH_SECONDS);
}

static int load_report(struct http_req *req, struct store *st, const struct store_upload *u,
                       struct report *r, struct err *err)
{
    r->upload_id = u->id;
    r->csrf = http_csrf_token(req);
    if (st->ops->upload_errors(st, u->id, add_error_row, r, err))
        return -1;
    struct store_page pg = {.user_id = http_user(req)->id, .upload_id = u->id,
                            .limit = REPORT_PHOTOS_MAX, .from = STORE_PAGE_OFFSET};

    return st->ops->photo_page(st, &pg, add_photo_tile, r, err);
}

void h_upload_report(struct http_req *req)
{
    struct store *st = http_store(req);
    struct store_upload u;
    struct progress p;
    struct err err = {0};
    struct report r = {.errors = BUF_INIT, .photos = BUF_INIT};
    struct buf counts = BUF_INIT, badge = BUF_INIT, summary = BUF_INIT, refresh = BUF_INIT;
    struct buf started = BUF_INIT;
    char id[24], pct[16];
    int rc = st->ops->upload_get(st, http_id(req, 0), http_user(req)->id, &u, &err);

    if (rc == STORE_NOT_FOUND) {
        http_send_error(req, 404, "no such upload");
        return;
    }
    if (rc || load_report(req, st, &u, &r, &err)) {
        http_send_store_error(req, &err);
        goto out;
    }
    progress_from_upload(&u, time_now_ms(), &p);
    bool finished = strcmp(p.status, "processing") != 0;
    snprintf(id, sizeof(id), "%lld", (long long)u.id);
    snprintf(pct, sizeof(pct), "%.0f", p.percent);
    counts_html(&counts, &p);
    h_pages_status_badge(&badge, &p);
    summary_text(&summary, &p, finished);
    h_pages_time(&started, u.created_at);
    if (!finished)
        buf_addf(&refresh, "<meta http-equiv=\"refresh\" content=\"%d\">", REPORT_REFRESH_SECONDS);
    const struct html_var vars[] = {
        {"id", id},
        {"refresh", refresh.data},
        {"badge", badge.data},
        {"summary", summary.data},
        {"percent", pct},
        {"counts", counts.data},
        {"errors", r.errors.data},
        {"errors_hidden", r.nerrors ? "" : "hidden"},
        {"photos", r.photos.data},
        {"photos_hidden", r.photos.len ? "" : "hidden"},
        {"started", started.data},
        {"status", finished ? "done" : "running"},
    };
    http_send_page(req, 200, "Upload report", "report.html", vars, sizeof(vars) / sizeof(vars[0]));
out:
    buf_release(&r.errors);
    buf_release(&r.photos);
    buf_release(&counts);
    buf_release(&badge);
    buf_release(&summary);
    buf_release(&refresh);
    buf_release(&started);
}
