/*
 * progress: the seed's progress model, derived from an upload's counters.
 * The counters themselves live in the store and change in the same transaction
 * as each file's state, so this is a pure function of one store_upload row:
 * it can never be out of step with the files, and it survives restarts.
 *
 * status (the seed's): "processing" until every file has its outcome, then
 *   "completed" (even if some failed) or "failed" (the upload as a whole could
 *   not go on, or every file failed).
 * phase: "receiving" (files still arriving), "queued" (waiting for a batch or
 *   a worker), "processing" (a batch is being worked on), "done".
 */
#ifndef SHOEBOX_JOBS_PROGRESS_H
#define SHOEBOX_JOBS_PROGRESS_H

#include <stdint.h>

#include "store/store.h"

struct progress {
    int64_t upload_id;
    int64_t total, processed, uploaded, failed, duplicates;
    int64_t current_batch, total_batches, batch_size;
    int64_t bytes_received, bytes_total;
    double percent;         /* 0..100, processed over the files known or announced */
    int64_t eta_seconds;    /* -1 when unknown */
    int64_t started_at, updated_at, finished_at;  /* ms since epoch; finished_at 0 = not yet */
    int64_t version;
    const char *status;     /* static strings */
    const char *phase;
};

/* Fill p from u as of `now` (ms). */
void progress_from_upload(const struct store_upload *u, int64_t now, struct progress *p);
/* The progress of no upload at all: status "idle", zeros. */
void progress_idle(struct progress *p);

#endif
