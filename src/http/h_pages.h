/*
 * h_pages: small pages (/ to /photos/, /healthz, /static/<path> from web/css,
 * web/js, web/img) and the formatting helpers the HTML pages share (h_gallery,
 * h_uploads): sizes, dates, status badges. Helpers only append to a buf; all
 * client text goes through html_text()/html_attr().
 */
#ifndef SHOEBOX_HTTP_H_PAGES_H
#define SHOEBOX_HTTP_H_PAGES_H

#include <stdbool.h>
#include <stdint.h>

struct buf;
struct http_req;
struct progress;
struct store_photo;

/* The picture of a photo without a thumbnail (inline SVG, no script or style). */
#define H_PAGES_PLACEHOLDER_ICON                                                                \
    "<svg class=\"icon\" viewBox=\"0 0 24 24\" aria-hidden=\"true\"><path d=\"M4 5h16v14H4z\" "  \
    "fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\"/><path d=\"m4 16 5-5 4 4 3-3 4 " \
    "4\" fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\"/><circle cx=\"15.5\" "       \
    "cy=\"9\" r=\"1.5\" fill=\"currentColor\"/></svg>"

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
/* One photo tile of a grid (gallery, upload report): a link to the photo page
 * with the thumbnail or a placeholder, and a caption with the name; the full
 * tile adds the date taken (or the size), the small one is the report's. */
void h_pages_tile(struct buf *b, const struct store_photo *p, bool small);

#endif
