/*
 * sweep: crash recovery at server start, before any worker runs.
 *  - no request survives a restart: every upload's open_requests goes to zero,
 *    so uploads that were arriving are processed with the files they got;
 *  - files this machine's workers held are queued again (they count an attempt);
 *  - spool files no upload_file row needs, blobs no photo references and the
 *    temporary files of interrupted blob writes are removed (what a crash
 *    between two steps leaves behind).
 */
#ifndef SHOEBOX_JOBS_SWEEP_H
#define SHOEBOX_JOBS_SWEEP_H

#include "base/err.h"

struct store;
struct blob_store;

int sweep_run(struct store *st, struct blob_store *bs, const char *data_dir, struct err *err);
/* This machine's name, as used in worker lease owners ("host/pid"). Borrowed, static. */
const char *sweep_hostname(void);

#endif
