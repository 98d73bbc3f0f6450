/*
 * metrics: what an operator's Prometheus scrapes, and the text exposition
 * format (0.0.4) it is written in. Not the HTTP side: http/metrics_http.c
 * serves GET /metrics and keeps the request counts by route.
 *
 * COUNTING
 *   Every counter and histogram the program has is a row of one table
 *   (metrics.c: family, labels, help), stored as atomics in one page of
 *   memory. A hook is one call, from any thread, with no lock and no
 *   allocation (a relaxed atomic add):
 *       metrics_add(METRICS_UPLOADS, 1);
 *       metrics_observe(METRICS_HIST_MEDIA, seconds);
 *
 * PROCESSES
 *   serve's decoders are processes of their own (jobs.c fork/execs
 *   `shoebox worker`). metrics_share() moves the page into a memfd mapped
 *   MAP_SHARED, before they start; the descriptor is inherited through exec
 *   and each worker maps it with metrics_attach(fd) (`--metrics-fd`, passed by
 *   serve), so a worker's counts land in the very atomics the node's /metrics
 *   reads, with nothing sent anywhere and nothing lost when a worker dies.
 *   A worker without --metrics-fd counts into a page of its own.
 *
 * THE OBJECT-STORE HOOK (for store/s3.c)
 *   After every HTTP request the S3 client sends (each attempt, retries
 *   included), one call:
 *       metrics_object_store(METRICS_OS_GET, failed, seconds);
 *   op: the S3 operation (enum metrics_os_op; the multipart calls are
 *   METRICS_OS_MULTIPART); failed: the request did not get the answer it
 *   asked for (a transport error, a timeout, 5xx, 429, or any 4xx other than
 *   the 404 of a key that does not exist, which is an answer); seconds: from
 *   sending to the end of the response. It counts
 *   shoebox_object_store_requests_total{op}, ..._errors_total{op} and
 *   ..._request_duration_seconds{op}. Any thread, any process.
 *
 * WRITING
 *   metrics_render() appends every family of the page. metrics_family(),
 *   metrics_sample() and metrics_hist_write() are for families a higher layer
 *   keeps itself (HTTP requests by route; the queue depth, read from the store
 *   at scrape time). Label values are escaped (\ " and newline); histograms are
 *   written cumulative, ending with le="+Inf" equal to _count.
 */
#ifndef SHOEBOX_BASE_METRICS_H
#define SHOEBOX_BASE_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"

/* Object-store operations (the op label). */
enum metrics_os_op {
    METRICS_OS_GET,
    METRICS_OS_PUT,
    METRICS_OS_HEAD,
    METRICS_OS_DELETE,
    METRICS_OS_LIST,
    METRICS_OS_MULTIPART, /* create, upload part, complete, abort, list uploads */
    METRICS_OS_NOPS
};

enum metrics_counter {
    METRICS_FILES_DONE,      /* shoebox_files_total{outcome="done"} */
    METRICS_FILES_DUPLICATE, /* {outcome="duplicate"} */
    METRICS_FILES_FAILED,    /* {outcome="failed"}: at intake or by a worker */
    METRICS_FILES_RECEIVED,  /* shoebox_received_files_total */
    METRICS_BYTES_RECEIVED,  /* shoebox_received_bytes_total: file bytes into the spool */
    METRICS_UPLOADS,         /* shoebox_uploads_total: uploads created */
    METRICS_LEASES_EXPIRED,  /* shoebox_leases_expired_total: files taken back */
    METRICS_WORKER_DEATHS,   /* shoebox_worker_deaths_total: decoder processes that died */
    METRICS_OS_REQUESTS,     /* + enum metrics_os_op */
    METRICS_OS_ERRORS = METRICS_OS_REQUESTS + METRICS_OS_NOPS, /* + enum metrics_os_op */
    METRICS_NCOUNTERS = METRICS_OS_ERRORS + METRICS_OS_NOPS
};

enum metrics_hist_id {
    METRICS_HIST_MEDIA,  /* shoebox_file_processing_seconds{stage="media"}: decode, thumbnails */
    METRICS_HIST_BLOBS,  /* {stage="blobs"}: thumbnails and original stored */
    METRICS_HIST_RECORD, /* {stage="record"}: the outcome committed */
    METRICS_HIST_TOTAL,  /* {stage="total"}: the three together, one per outcome */
    METRICS_HIST_OS,     /* + enum metrics_os_op: shoebox_object_store_request_duration_seconds */
    METRICS_NHISTS = METRICS_HIST_OS + METRICS_OS_NOPS
};

/* Upper bounds (seconds) of every histogram's buckets, from a fast progress
 * request (under a millisecond) to a large RAW file (a minute and more). */
#define METRICS_BUCKETS 16
extern const double metrics_bounds[METRICS_BUCKETS];

/* A histogram: counts per bucket, not cumulative (one add per observation;
 * the writer adds them up), and the sum in nanoseconds. Zeroed = empty. */
struct metrics_hist {
    _Atomic uint64_t bucket[METRICS_BUCKETS + 1]; /* last: above the largest bound */
    _Atomic uint64_t sum_ns;
};

struct metrics_label {
    const char *name, *value;
};

/* ---- counting: any thread, no lock ---- */
void metrics_add(enum metrics_counter c, uint64_t n);
void metrics_observe(enum metrics_hist_id h, double seconds);
/* The hook of the S3 client: see "THE OBJECT-STORE HOOK" above. */
void metrics_object_store(enum metrics_os_op op, bool failed, double seconds);
/* A worker recorded a file's outcome (METRICS_FILES_DONE, _DUPLICATE or
 * _FAILED) after media_ms, blob_ms and record_ms: the outcome counter and the
 * stage histograms (total: their sum). */
void metrics_file(enum metrics_counter outcome, int64_t media_ms, int64_t blob_ms,
                  int64_t record_ms);
/* Current value (tests, and the writer). */
uint64_t metrics_get(enum metrics_counter c);

void metrics_hist_observe(struct metrics_hist *h, double seconds);

/* ---- the page shared with worker processes ---- */
/* Moves this process's page into shared memory (its counts so far come
 * along) and returns the descriptor children inherit (not close-on-exec), or
 * -1 with err. Call once, before any other thread or child runs. */
int metrics_share(struct err *err);
/* In a child: count into the page of fd (from the parent's metrics_share).
 * -1 with err when fd is not such a page; counting then goes on privately.
 * Call before any other thread runs. fd may be closed afterwards. */
int metrics_attach(int fd, struct err *err);

/* ---- the text format ---- */
/* "# HELP name help" and "# TYPE name type" (counter, gauge, histogram). */
void metrics_family(struct buf *b, const char *name, const char *type, const char *help);
/* name{l1="v1",...} value; labels may be NULL with n 0. */
void metrics_sample(struct buf *b, const char *name, const struct metrics_label *labels, size_t n,
                    double value);
/* name_bucket{labels,le="..."} (cumulative, le="+Inf" last), name_sum (seconds)
 * and name_count, from one snapshot of h. */
void metrics_hist_write(struct buf *b, const char *name, const struct metrics_label *labels,
                        size_t n, const struct metrics_hist *h);
/* A label value escaped for the format (\\, \", \n) onto b. */
void metrics_escape(struct buf *b, const char *value);
/* Every family of the page onto b. */
void metrics_render(struct buf *b);

#endif
