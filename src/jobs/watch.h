/*
 * watch: a thread beside the single-threaded worker loop. While the worker
 * works on a file (watch_begin .. watch_end) it
 *   - renews the file's lease every third of the lease (store file_renew), so
 *     a slow file is not taken by a second worker; when the store refuses (the
 *     lease was lost) it says so once in the log;
 *   - measures the process's CPU time since watch_begin; past the per-file
 *     limit it records the file FAILED (stage "limits", "over the CPU time
 *     limit of N s") and ends the process: the supervisor starts a fresh
 *     worker, which also gives the decoder's memory back. Decoders (libvips,
 *     libspng, LibRaw) cannot be interrupted safely from outside; ending the
 *     process can.
 */
#ifndef SHOEBOX_JOBS_WATCH_H
#define SHOEBOX_JOBS_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"

struct store;
struct watch;

/* Exit status of a worker whose file went over the CPU limit. */
#define WATCH_EXIT_CPU 3

/* Starts the thread. owner is the worker's lease owner (copied). lease_ms
 * > 0; cpu_limit_ms 0 = no CPU limit. Returns NULL (err set) when the thread
 * cannot start. Free with watch_free. */
struct watch *watch_new(struct store *st, const char *owner, int64_t lease_ms, int64_t cpu_limit_ms,
                        struct err *err);
/* The worker starts on file_id (name for the log), leased until lease_until. */
void watch_begin(struct watch *w, int64_t file_id, const char *name, int64_t lease_until);
/* The worker is done with the file and about to record its outcome. When
 * the watch has already failed the file over the CPU limit, this does not
 * return (the process is ending). */
void watch_end(struct watch *w);
/* Stops and joins the thread. NULL is a no-op. */
void watch_free(struct watch *w);

#endif
