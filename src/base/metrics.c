/*
 * metrics: the table of every counter and histogram, the page of atomics
 * they live in (private, or shared with the worker processes), and the
 * Prometheus text format writer. See metrics.h.
 *
 * DESIGN
 *   Threads and processes: counting is atomic_fetch_add (relaxed) on the
 *   page; rendering reads with atomic loads, so a scrape racing a count sees
 *   it or not, never a torn value. A histogram is read bucket by bucket: its
 *   _count is the sum of the buckets read (so le="+Inf" always equals it),
 *   its _sum may be one observation ahead or behind. The page pointer is set
 *   once at start (metrics_share / metrics_attach, before other threads) and
 *   read-only after. 64-bit atomics are lock-free on every target we build
 *   for (checked below), which is what makes them safe across processes.
 */
#include "base/metrics.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "shared-memory counters need lock-free 64-bit atomics");

const double metrics_bounds[METRICS_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120};

enum family_id {
    F_FILES,
    F_RECV_FILES,
    F_RECV_BYTES,
    F_UPLOADS,
    F_LEASES,
    F_DEATHS,
    F_OS_REQUESTS,
    F_OS_ERRORS,
    F_PROCESSING,
    F_OS_SECONDS
};

struct family {
    const char *name, *type, *help;
};

static const struct family families[] = {
    [F_FILES] = {"shoebox_files_total", "counter",
                 "files that reached an outcome (rejected at intake or processed by a worker)"},
    [F_RECV_FILES] = {"shoebox_received_files_total", "counter",
                      "files received complete and recorded for processing"},
    [F_RECV_BYTES] = {"shoebox_received_bytes_total", "counter",
                      "bytes of uploaded files received (multipart and tus)"},
    [F_UPLOADS] = {"shoebox_uploads_total", "counter", "uploads created"},
    [F_LEASES] = {"shoebox_leases_expired_total", "counter",
                  "files whose worker's lease expired, taken back by this node"},
    [F_DEATHS] = {"shoebox_worker_deaths_total", "counter",
                  "worker processes that died (crash, memory or CPU limit) and were restarted"},
    [F_OS_REQUESTS] = {"shoebox_object_store_requests_total", "counter",
                       "requests sent to the object store, retries included"},
    [F_OS_ERRORS] = {"shoebox_object_store_errors_total", "counter",
                     "object-store requests that failed (transport, timeout, 5xx, 429, 4xx)"},
    [F_PROCESSING] = {"shoebox_file_processing_seconds", "histogram",
                      "time a worker spent on a file, by stage"},
    [F_OS_SECONDS] = {"shoebox_object_store_request_duration_seconds", "histogram",
                      "object-store request latency"},
};

/* One series: its family and its one label. */
struct series {
    enum family_id family;
    const char *label, *value;
};

#define OS_SERIES(fam)                                                                             \
    {fam, "op", "get"}, {fam, "op", "put"}, {fam, "op", "head"}, {fam, "op", "delete"},            \
        {fam, "op", "list"},                                                                       \
    {                                                                                              \
        fam, "op", "multipart"                                                                     \
    }

_Static_assert(METRICS_OS_NOPS == 6, "OS_SERIES names every enum metrics_os_op");

static const struct series counter_series[METRICS_NCOUNTERS] = {
    [METRICS_FILES_DONE] = {F_FILES, "outcome", "done"},
    [METRICS_FILES_DUPLICATE] = {F_FILES, "outcome", "duplicate"},
    [METRICS_FILES_FAILED] = {F_FILES, "outcome", "failed"},
    [METRICS_FILES_RECEIVED] = {F_RECV_FILES, NULL, NULL},
    [METRICS_BYTES_RECEIVED] = {F_RECV_BYTES, NULL, NULL},
    [METRICS_UPLOADS] = {F_UPLOADS, NULL, NULL},
    [METRICS_LEASES_EXPIRED] = {F_LEASES, NULL, NULL},
    [METRICS_WORKER_DEATHS] = {F_DEATHS, NULL, NULL},
    OS_SERIES(F_OS_REQUESTS),
    OS_SERIES(F_OS_ERRORS),
};

static const struct series hist_series[METRICS_NHISTS] = {
    [METRICS_HIST_MEDIA] = {F_PROCESSING, "stage", "media"},
    [METRICS_HIST_BLOBS] = {F_PROCESSING, "stage", "blobs"},
    [METRICS_HIST_RECORD] = {F_PROCESSING, "stage", "record"},
    [METRICS_HIST_TOTAL] = {F_PROCESSING, "stage", "total"},
    OS_SERIES(F_OS_SECONDS),
};

#define PAGE_MAGIC 0x53424d4554524943ULL /* "SBMETRIC" */

struct page {
    uint64_t magic, size;
    _Atomic uint64_t counters[METRICS_NCOUNTERS];
    struct metrics_hist hists[METRICS_NHISTS];
};

static struct page own_page = {.magic = PAGE_MAGIC, .size = sizeof(struct page)};
static struct page *page = &own_page; /* set before threads start, read-only after */

/* ---- counting ---- */

void metrics_add(enum metrics_counter c, uint64_t n)
{
    atomic_fetch_add_explicit(&page->counters[c], n, memory_order_relaxed);
}

uint64_t metrics_get(enum metrics_counter c)
{
    return atomic_load_explicit(&page->counters[c], memory_order_relaxed);
}

void metrics_hist_observe(struct metrics_hist *h, double seconds)
{
    size_t i = 0;

    if (!(seconds > 0)) /* also NaN */
        seconds = 0;
    while (i < METRICS_BUCKETS && seconds > metrics_bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    /* Past ~584 years of nanoseconds the sum would wrap: cap one observation at a day. */
    atomic_fetch_add_explicit(&h->sum_ns, (uint64_t)llround(fmin(seconds, 86400.0) * 1e9),
                              memory_order_relaxed);
}

void metrics_observe(enum metrics_hist_id h, double seconds)
{
    metrics_hist_observe(&page->hists[h], seconds);
}

void metrics_object_store(enum metrics_os_op op, bool failed, double seconds)
{
    if ((unsigned)op >= METRICS_OS_NOPS)
        return;
    metrics_add(METRICS_OS_REQUESTS + op, 1);
    if (failed)
        metrics_add(METRICS_OS_ERRORS + op, 1);
    metrics_observe(METRICS_HIST_OS + op, seconds);
}

void metrics_file(enum metrics_counter outcome, int64_t media_ms, int64_t blob_ms,
                  int64_t record_ms)
{
    metrics_add(outcome, 1);
    metrics_observe(METRICS_HIST_MEDIA, (double)media_ms / 1e3);
    metrics_observe(METRICS_HIST_BLOBS, (double)blob_ms / 1e3);
    metrics_observe(METRICS_HIST_RECORD, (double)record_ms / 1e3);
    metrics_observe(METRICS_HIST_TOTAL, (double)(media_ms + blob_ms + record_ms) / 1e3);
}

/* ---- the shared page ---- */

static void copy_page(struct page *to, struct page *from)
{
    for (size_t i = 0; i < METRICS_NCOUNTERS; i++)
        atomic_store(&to->counters[i], atomic_load(&from->counters[i]));
    for (size_t h = 0; h < METRICS_NHISTS; h++) {
        for (size_t i = 0; i <= METRICS_BUCKETS; i++)
            atomic_store(&to->hists[h].bucket[i], atomic_load(&from->hists[h].bucket[i]));
        atomic_store(&to->hists[h].sum_ns, atomic_load(&from->hists[h].sum_ns));
    }
}

int metrics_share(struct err *err)
{
    struct page *p;
    int fd = memfd_create("shoebox-metrics", 0); /* no MFD_CLOEXEC: workers inherit it */

    if (fd < 0)
        return err_sys(err, errno, "metrics", "cannot create the shared metrics page");
    if (ftruncate(fd, sizeof(struct page)) < 0) {
        err_sys(err, errno, "metrics", "cannot size the shared metrics page");
        close(fd);
        return -1;
    }
    p = mmap(NULL, sizeof(struct page), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        err_sys(err, errno, "metrics", "cannot map the shared metrics page");
        close(fd);
        return -1;
    }
    p->magic = PAGE_MAGIC;
    p->size = sizeof(struct page);
    copy_page(p, page);
    page = p;
    return fd;
}

int metrics_attach(int fd, struct err *err)
{
    struct stat sb;
    struct page *p;

    if (fstat(fd, &sb) < 0)
        return err_sys(err, errno, "metrics", "cannot use metrics descriptor %d", fd);
    if ((size_t)sb.st_size != sizeof(struct page))
        return err_set(err, ERR_PERMANENT, "metrics",
                       "descriptor %d is not a metrics page of this build", fd);
    p = mmap(NULL, sizeof(struct page), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return err_sys(err, errno, "metrics", "cannot map metrics descriptor %d", fd);
    if (p->magic != PAGE_MAGIC || p->size != sizeof(struct page)) {
        munmap(p, sizeof(struct page));
        return err_set(err, ERR_PERMANENT, "metrics",
                       "descriptor %d is not a metrics page of this build", fd);
    }
    page = p;
    return 0;
}

/* ---- the text format ---- */

void metrics_escape(struct buf *b, const char *value)
{
    for (const char *s = value; *s; s++) {
        if (*s == '\\')
            buf_adds(b, "\\\\");
        else if (*s == '"')
            buf_adds(b, "\\\"");
        else if (*s == '\n')
            buf_adds(b, "\\n");
        else
            buf_addc(b, *s);
    }
}

/* HELP text escapes only \ and newline. */
static void escape_help(struct buf *b, const char *help)
{
    for (const char *s = help; *s; s++) {
        if (*s == '\\')
            buf_adds(b, "\\\\");
        else if (*s == '\n')
            buf_adds(b, "\\n");
        else
            buf_addc(b, *s);
    }
}

void metrics_family(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_addf(b, "# HELP %s ", name);
    escape_help(b, help);
    buf_addf(b, "\n# TYPE %s %s\n", name, type);
}

static void add_labels(struct buf *b, const struct metrics_label *labels, size_t n, const char *le)
{
    if (n == 0 && !le)
        return;
    buf_addc(b, '{');
    for (size_t i = 0; i < n; i++) {
        buf_addf(b, "%s%s=\"", i ? "," : "", labels[i].name);
        metrics_escape(b, labels[i].value);
        buf_addc(b, '"');
    }
    if (le)
        buf_addf(b, "%sle=\"%s\"", n ? "," : "", le);
    buf_addc(b, '}');
}

static void add_value(struct buf *b, double v)
{
    if (isnan(v))
        buf_adds(b, " NaN\n");
    else if (isinf(v))
        buf_adds(b, v > 0 ? " +Inf\n" : " -Inf\n");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0) /* 2^53: exact integers */
        buf_addf(b, " %.0f\n", v);
    else
        buf_addf(b, " %.9g\n", v);
}

void metrics_sample(struct buf *b, const char *name, const struct metrics_label *labels, size_t n,
                    double value)
{
    buf_adds(b, name);
    add_labels(b, labels, n, NULL);
    add_value(b, value);
}

void metrics_hist_write(struct buf *b, const char *name, const struct metrics_label *labels,
                        size_t n, const struct metrics_hist *h)
{
    uint64_t count = 0;
    char le[32];

    for (size_t i = 0; i <= METRICS_BUCKETS; i++) {
        count += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        if (i < METRICS_BUCKETS)
            snprintf(le, sizeof(le), "%g", metrics_bounds[i]);
        else
            snprintf(le, sizeof(le), "+Inf");
        buf_addf(b, "%s_bucket", name);
        add_labels(b, labels, n, le);
        buf_addf(b, " %llu\n", (unsigned long long)count);
    }
    buf_addf(b, "%s_sum", name);
    add_labels(b, labels, n, NULL);
    add_value(b, (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9);
    buf_addf(b, "%s_count", name);
    add_labels(b, labels, n, NULL);
    buf_addf(b, " %llu\n", (unsigned long long)count);
}

/* The HELP/TYPE lines when a series opens a family (rows of one family are adjacent). */
static void open_family(struct buf *b, const struct series *s, const struct series *prev)
{
    const struct family *f = &families[s->family];

    if (!prev || prev->family != s->family)
        metrics_family(b, f->name, f->type, f->help);
}

void metrics_render(struct buf *b)
{
    for (size_t i = 0; i < METRICS_NCOUNTERS; i++) {
        const struct series *s = &counter_series[i];
        struct metrics_label l = {s->label, s->value};
        open_family(b, s, i ? &counter_series[i - 1] : NULL);
        buf_adds(b, families[s->family].name);
        add_labels(b, &l, s->label ? 1 : 0, NULL);
        buf_addf(b, " %llu\n", (unsigned long long)metrics_get((enum metrics_counter)i));
    }
    for (size_t i = 0; i < METRICS_NHISTS; i++) {
        const struct series *s = &hist_series[i];
        struct metrics_label l = {s->label, s->value};
        open_family(b, s, i ? &hist_series[i - 1] : NULL);
        metrics_hist_write(b, families[s->family].name, &l, 1, &page->hists[i]);
    }
}
