/*
 * views: the JSON shapes of the API, in one place (so the progress endpoint,
 * the upload report and the photo API agree). Every function returns a new
 * reference the caller owns (json_decref, or hand it to http_send_json).
 */
#ifndef SHOEBOX_HTTP_VIEWS_H
#define SHOEBOX_HTTP_VIEWS_H

#include <jansson.h>
#include <stdbool.h>

#include "base/buf.h"
#include "jobs/progress.h"
#include "store/store.h"

/* A stored photo: metadata, warnings and the URLs of its images. */
json_t *view_photo(const struct store_photo *p);
/* One file of an upload: state, photo id, error. */
json_t *view_file(const struct store_file *f);
/* The seed's progress keys and Shoebox's richer ones. errors: array of
 * {file, file_id, stage, message} (stolen); files: array or NULL (stolen). */
json_t *view_progress(const struct progress *p, json_t *errors, json_t *files);
/* Milliseconds since the epoch as an ISO 8601 string, or JSON null for 0. */
json_t *view_time(int64_t ms);

/* Helpers that load what the views need from the store: NULL on a store error.
 * The upload must already be known to belong to the user. */
json_t *view_upload_errors(struct store *st, int64_t upload_id);
json_t *view_upload_files(struct store *st, int64_t upload_id);
/* Progress JSON of one upload, with errors and (with_files) files. */
json_t *view_upload(struct store *st, const struct store_upload *u, bool with_files);

/* The hot path of the progress endpoint and its stream: the same object as
 * view_progress()/view_upload() (same keys, same values) written straight as
 * compact JSON text, without building a jansson tree. errors_json is the
 * compact text of the errors array, NULL for []. Appends to out. */
void view_progress_text(const struct progress *p, const char *errors_json, struct buf *out);
/* view_upload(st, u, false) as text; reads the errors only when the upload has
 * failed files. -1 on a store error (out unchanged). */
int view_upload_text(struct store *st, const struct store_upload *u, struct buf *out);

#endif
