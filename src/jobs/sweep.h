/*
 * sweep: crash recovery at server start, before this node's workers run.
 * One server on the database (SQLite, store ops->shared false):
 *  - no request survives a restart: every upload's open_requests goes to zero,
 *    so uploads that were arriving are processed with the files they got; an
 *    upload without a file goes when its request was cut off or when it is
 *    older than --upload-idle and no tus file in progress points to it;
 *  - files this machine's workers held are queued again (they count an attempt);
 *  - spool files no upload_file row needs, blobs that neither a photo nor a
 *    file's held original (the spool column: the blob key since the hand-off)
 *    references, and the temporary files of interrupted blob writes are removed
 *    (what a crash between two steps leaves behind).
 * Several nodes on the database (PostgreSQL, ops->shared true), the other
 * nodes running while this one starts:
 *  - only files whose lease has expired are taken back (the scheduler of every
 *    node does that every second anyway, jobs.c);
 *  - open requests are left alone: they belong to the nodes sending them;
 *  - orphan spool files and blobs younger than SWEEP_GRACE_MS (the blob store's
 *    modification time, list()) are kept (another node may be between writing
 *    the bytes and recording them; a hand-off of a key that exists refreshes
 *    its time), temporary
 *    blob files are left to the node whose workers wrote them.
 */
#ifndef SHOEBOX_JOBS_SWEEP_H
#define SHOEBOX_JOBS_SWEEP_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Orphans younger than this are left alone when several nodes share the store. */
#define SWEEP_GRACE_MS (3600 * 1000)

struct store;
struct blob_store;

/* What the one-server start-up sweep keeps of the uploads without a file
 * (store upload_reset_requests): those changed within idle_ms (--upload-idle),
 * and those tus files in progress point to. */
struct sweep_keep {
    int64_t idle_ms;
    const int64_t *uploads;  /* borrowed for the call */
    size_t n_uploads;
};

/* keep may be NULL: every upload without a file and without a change goes. */
int sweep_run(struct store *st, struct blob_store *bs, const char *data_dir,
              const struct sweep_keep *keep, struct err *err);
/* This machine's name, as used in worker lease owners ("host/pid"). Borrowed, static. */
const char *sweep_hostname(void);

#endif
