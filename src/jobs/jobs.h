/*
 * jobs: the upload pipeline's moving parts.
 *
 * In `shoebox serve` (jobs_start): a startup sweep (crash recovery), a batch
 * scheduler thread (on a shared store also the node's heartbeat and its ear on
 * the change feed, feed.h) and a supervisor thread that starts `--workers` worker
 * processes (`shoebox worker`, the same binary), restarts any that dies, and
 * fails the file a dead worker held ("decoder crashed") once it has had its retry,
 * or at once when it ran out of memory (JOBS_EXIT_NO_MEMORY).
 * In `shoebox worker` (jobs_worker_run): claim a file through the store with a
 * lease, decode it (media), store original and thumbnails (blob), record the
 * outcome (store), repeat. Workers on other machines run the same loop against
 * a shared database and storage.
 */
#ifndef SHOEBOX_JOBS_JOBS_H
#define SHOEBOX_JOBS_JOBS_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct store;
struct blob_store;
struct media_opts;

/* Attempts per file: transient errors are retried with backoff up to this many. */
#define JOBS_MAX_ATTEMPTS 3
/* A file whose worker died is tried once more, then fails as "decoder crashed". */
#define JOBS_CRASH_ATTEMPTS 2
/* The exit status of a worker process that ran out of memory (a failed GLib
 * allocation under --worker-memory: media_exit_on_no_memory). No other exit of a
 * worker uses it (0: stopped, 1 or 2: could not start, 127: exec failed). The file it
 * held fails at once with a reason naming --worker-memory: the same image needs
 * the same memory again, so a retry would only fail the same way. */
#define JOBS_EXIT_NO_MEMORY 86
/* A worker told to stop (SIGTERM: a stop, or its server died) finishes its file
 * within this or is ended: long enough for an ordinary photo, short enough that a
 * file it hangs on goes back to the queue soon (its lease is no longer renewed). */
#define JOBS_ORPHAN_GRACE_MS 5000

/* What an upload's batch delay does (--batch-pacing). */
enum jobs_pacing {
    JOBS_PACE_YIELD,   /* the delay lends the workers to uploads waiting for one; with
                          none waiting the next batch opens at once */
    JOBS_PACE_STRICT,  /* the seed's pause: the next batch never opens within the delay */
};

struct jobs_opts {
    int64_t batch_size;
    int64_t batch_delay_ms;
    enum jobs_pacing batch_pacing;
    int64_t upload_idle_ms;      /* an upload waiting for announced files stops after this */
    /* --tus-expire: an upload without any file keeps waiting this long after its
     * last change (a tus upload pointing to it may still complete), then goes. */
    int64_t tus_expire_ms;
    /* Uploads tus files in progress point to (intake tus_upload_refs): the start-up
     * sweep keeps them though they have no file yet. Borrowed for jobs_start. */
    const int64_t *keep_uploads;
    size_t n_keep_uploads;
    int workers;                 /* worker processes to start; 0 = none (a web-only node) */
    int64_t worker_memory;       /* each worker's address-space limit (--worker-memory) */
    const char *data_dir;
    const char *exe;             /* path of the shoebox binary, for worker processes */
    char *const *worker_argv;    /* full argv for a worker (argv[0] = exe), NULL-terminated */
    /* Several nodes (a shared store): every upload change any node commits, from
     * the store's change feed (jobs/feed.h), after the scheduler was told; and
     * whether the feed is live. Both may be NULL; any thread. */
    void (*on_change)(void *ctx, int64_t upload_id, int64_t version);
    void (*on_feed)(void *ctx, bool live);
    void *change_ctx;
};

struct jobs;

/* Sweep (see jobs.c), then start the scheduler and the workers. */
int jobs_start(const struct jobs_opts *o, struct store *st, struct blob_store *bs,
               struct jobs **out, struct err *err);
/* Something changed (files arrived, a request ended, a retry): schedule now.
 * Any thread. NULL is a no-op. */
void jobs_notify(struct jobs *j);
/* Stop workers (they finish their current file) and threads; free. */
void jobs_stop(struct jobs *j);

/*
 * A worker host (`shoebox worker --processes N`): supervises o->workers worker
 * processes (o->exe with o->worker_argv) as serve does: one that crashes or
 * passes its memory limit fails or requeues the file it held and is replaced.
 * No scheduler, no sweep, no heartbeat. Returns when one of the signals in stop
 * (blocked by the caller in every thread) arrives, after stopping the workers:
 * SIGTERM (each finishes its file), SIGKILL after a grace, their files released.
 */
int jobs_host_run(const struct jobs_opts *o, struct store *st, struct blob_store *bs,
                  const sigset_t *stop, struct err *err);

struct jobs_worker_opts {
    const char *data_dir; /* files received before the hand-off: DATA/spool/NAME */
    const char *temp_dir; /* temporary copies of originals from a store without fds */
    const struct media_opts *media;
    int64_t lease_ms;     /* renewed every third of it while a file is worked on */
    int64_t cpu_limit_ms; /* CPU time per file (--file-cpu); 0 = no limit */
    int wake_fd;    /* readable when there may be work; EOF = the server is gone. -1: poll */
};

/* The worker loop; returns when wake_fd reaches EOF or on SIGTERM. */
int jobs_worker_run(const struct jobs_worker_opts *o, struct store *st, struct blob_store *bs,
                    struct err *err);

#endif
