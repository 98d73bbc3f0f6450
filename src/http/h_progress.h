/*
 * h_progress: the seed's progress endpoints, live.
 *   GET  /photos/upload-progress/         JSON for the session's current upload or ?upload=ID
 *   POST /photos/clear-upload-progress/   forget the current progress (photos and history stay)
 *   GET  /photos/upload-progress/stream   Server-Sent Events of the same JSON
 */
#ifndef SHOEBOX_HTTP_H_PROGRESS_H
#define SHOEBOX_HTTP_H_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "http/http.h"

struct store;

void h_progress_get(struct http_req *req);
void h_progress_clear(struct http_req *req);
void h_progress_stream(struct http_req *req);

/* The SSE hub: a thread that watches the uploads open streams follow and wakes
 * their connections when one changes (at most every SSE_TICK_MS) or a
 * heartbeat is due. Start before the server takes requests, stop after it
 * stopped (the server ends parked streams itself on shutdown). */
int sse_hub_start(struct store *st, struct err *err);
void sse_hub_stop(void);
/* An upload changed (from the store's change feed, any node; 0, 0: anything
 * may have changed): streams following it are woken now, not at the next poll,
 * and this node's snapshot of it is dropped (h_progress.c). Any thread. */
void sse_hub_changed(int64_t upload_id, int64_t version);
/* Whether the change feed is live: the hub then polls only as a fallback, and
 * uploads' snapshots may be kept (dropped whenever this changes). */
void sse_hub_feed(bool live);
/* Open streams (for tests and logs). */
size_t sse_hub_streams(void);

#endif
