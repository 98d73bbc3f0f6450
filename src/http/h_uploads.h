/*
 * h_uploads: the upload pages. GET /photos/upload/ is the upload form (the
 * JavaScript modules in web/js/upload/, entry main.js, turn it into a drop
 * zone with live progress; without them the form posts normally).
 * GET /photos/uploads/ lists the user's uploads with their counts;
 * GET /photos/uploads/{id}/ is one upload's report (counts, status, errors
 * with per-file retry forms, the photos it produced), which refreshes itself
 * until the upload is finished.
 */
#ifndef SHOEBOX_HTTP_H_UPLOADS_H
#define SHOEBOX_HTTP_H_UPLOADS_H

struct http_req;

/* Uploads listed on /photos/uploads/ (newest first). */
#define UPLOADS_LIST_MAX 200
/* Thumbnails of an upload shown on its report. */
#define REPORT_PHOTOS_MAX 60
/* Seconds between refreshes of an unfinished report. */
#define REPORT_REFRESH_SECONDS 2

void h_upload_page(struct http_req *req);
void h_uploads_list(struct http_req *req);
void h_upload_report(struct http_req *req);

#endif
