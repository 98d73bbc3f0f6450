/*
 * h_pages: small pages (/ to /photos/, /healthz, /static/<path> from web/css,
 * web/js, web/img) and the formatting helpers the HTML pages share (h_gallery,
 * h_uploads): sizes, dates, status badges. Helpers only append to a buf; all
 * client text goes through html_text()/html_attr().
 */
#ifndef SHOEBOX_HTTP_H_PAGES_H
#define SHOEBOX_HTTP_H_PAGES_H

#include <stdint.h>

struct buf;
struct http_req;
struct progress;

void h_root(struct http_req *req);
void h_healthz(struct http_req *req);
void h_static(struct http_req *req);

/* "1.4 MB", "820 KB", "17 bytes" (1024-based, like the file size limit). */
void h_pages_size(struct buf *b, int64_t bytes);
/* <time datetime="ISO">UTC text</time> for ms since the epoch; app.js shows it
 * in the reader's time zone. Nothing for ms <= 0. */
void h_pages_time(struct buf *b, int64_t ms);
/* "13 Jan 2011, 14:33" from a store taken_at ("YYYY-MM-DDTHH:MM:SS"); the raw
 * text (escaped) when it does not parse. */
void h_pages_taken(struct buf *b, const char *taken_at);
/* The status badge of an upload's progress: uploading, processing, completed,
 * completed with errors, failed. */
void h_pages_status_badge(struct buf *b, const struct progress *p);

#endif
