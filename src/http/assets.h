/*
 * assets: the files of web/ (templates, css, js). Built into the binary by
 * scripts/embed_assets.py (assets_data.c, generated), or read from a
 * directory during development (--assets-dir). Paths are relative to web/:
 * "templates/login.html", "css/app.css".
 */
#ifndef SHOEBOX_HTTP_ASSETS_H
#define SHOEBOX_HTTP_ASSETS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "base/err.h"

struct asset {
    const char *path;
    const char *type;            /* Content-Type */
    const unsigned char *data;
    size_t len;
    const char *etag;            /* hex digest prefix, no quotes */
};

/* Generated table (assets_data.c), sorted by path. */
extern const struct asset assets_embedded[];
extern const size_t assets_embedded_count;

/* Embedded asset by path, or NULL. */
const struct asset *assets_find(const char *path);
/* Content-Type by file extension ("application/octet-stream" when unknown). */
const char *assets_content_type(const char *path);
/* A relative path without "..", "//", leading '/', backslashes or control bytes. */
bool assets_path_safe(const char *path);
/* Append the asset's bytes to out: from dir when dir is non-empty, else embedded.
 * Fails for an unsafe path or a missing file. */
int assets_read(const char *dir, const char *path, struct buf *out, struct err *err);

#endif
