/* sweep: see sweep.h. Runs single-threaded at start. */
#include "jobs/sweep.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/xalloc.h"
#include "jobs/jobs.h"
#include "store/blob.h"
#include "store/store.h"

struct keyset {
    char **keys;
    size_t n, cap;
};

static void keyset_add(void *ctx, const char *key)
{
    struct keyset *s = ctx;

    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->keys = xrealloc(s->keys, s->cap * sizeof(char *));
    }
    s->keys[s->n++] = xstrdup(key);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool keyset_has(const struct keyset *s, const char *key)
{
    if (!s->n)
        return false;
    return bsearch(&key, s->keys, s->n, sizeof(char *), cmp_str) != NULL;
}

static void keyset_free(struct keyset *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->keys[i]);
    free(s->keys);
}

/* Whether the file at path changed within grace_ms of now (0: no grace). A
 * file being written by another node (a spool file not yet recorded, a blob
 * not yet referenced by its photo) is young. */
static bool young(const char *path, int64_t now, int64_t grace_ms)
{
    struct stat sb;

    if (grace_ms <= 0 || stat(path, &sb) < 0)
        return false;
    return (int64_t)sb.st_mtime * 1000 > now - grace_ms;
}

/* Spool files are DATA/spool/NAME, referenced as "spool/NAME". */
static int sweep_spool(struct store *st, const char *data_dir, int64_t grace_ms,
                       struct err *err)
{
    struct keyset refs = {0};
    char dir[4096];
    DIR *d;
    struct dirent *e;
    int removed = 0, kept = 0;

    if (st->ops->spool_refs(st, keyset_add, &refs, err))
        return -1;
    if (refs.n)
        qsort(refs.keys, refs.n, sizeof(char *), cmp_str);
    snprintf(dir, sizeof(dir), "%s/spool", data_dir);
    d = opendir(dir);
    while (d && (e = readdir(d))) {
        char rel[600], path[4700];
        if (e->d_name[0] == '.')
            continue;
        snprintf(rel, sizeof(rel), "spool/%s", e->d_name);
        if (keyset_has(&refs, rel))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (young(path, time_now_ms(), grace_ms)) {
            kept++;
            continue;
        }
        if (fs_unlink(path, NULL) == 0)
            removed++;
    }
    if (d)
        closedir(d);
    keyset_free(&refs);
    if (removed || kept)
        log_info("jobs", "sweep.spool", "removed=%d young_kept=%d", removed, kept);
    return 0;
}

struct blob_sweep {
    struct keyset refs;
    struct keyset orphans;
    int64_t now, grace_ms;
    size_t kept;
};

/* An unreferenced key changed within the grace is young: another node may be
 * between handing an original off and recording its file (intake), or between
 * writing thumbnails and recording the photo (a worker). */
static void blob_seen(void *ctx, const char *key, int64_t mtime_ms)
{
    struct blob_sweep *s = ctx;

    if (keyset_has(&s->refs, key))
        return;
    if (s->grace_ms > 0 && mtime_ms > s->now - s->grace_ms) {
        s->kept++;
        return;
    }
    keyset_add(&s->orphans, key);
}

/* The originals that files still hold (their spool column names the blob key
 * since the hand-off; "spool/NAME" rows are spool files, swept apart). */
static void held_original(void *ctx, const char *key)
{
    if (strncmp(key, "spool/", 6) != 0)
        keyset_add(ctx, key);
}

static int sweep_blobs(struct store *st, struct blob_store *bs, int64_t grace_ms,
                       struct err *err)
{
    struct blob_sweep s = {.now = time_now_ms(), .grace_ms = grace_ms};
    size_t temps = 0, removed = 0;
    int rc = -1;

    if (st->ops->blob_refs(st, keyset_add, &s.refs, err) ||
        st->ops->spool_refs(st, held_original, &s.refs, err))
        goto out;
    if (s.refs.n)
        qsort(s.refs.keys, s.refs.n, sizeof(char *), cmp_str);
    if (bs->ops->list(bs, blob_seen, &s, err))
        goto out;
    for (size_t i = 0; i < s.orphans.n; i++) {
        bs->ops->remove(bs, s.orphans.keys[i], NULL);
        removed++;
    }
    if (removed || s.kept)
        log_info("jobs", "sweep.blobs", "removed=%zu young_kept=%zu", removed, s.kept);
    /* Temporary files: all of them only when no other node may be writing one
     * (a node removes those of its own dead workers, jobs.c). */
    if (grace_ms == 0 && bs->ops->remove_temps(bs, 0, &temps, err))
        goto out;
    if (temps)
        log_info("jobs", "sweep.blob_temps", "removed=%zu", temps);
    rc = 0;
out:
    keyset_free(&s.refs);
    keyset_free(&s.orphans);
    return rc;
}

int sweep_run(struct store *st, struct blob_store *bs, const char *data_dir,
              const struct sweep_keep *keep, struct err *err)
{
    static const struct sweep_keep none = {0};
    struct err why = {0};
    int64_t released = 0, now = time_now_ms();
    bool shared = st->ops->shared && st->ops->shared(st);

    err_set(&why, ERR_PERMANENT, "decode", "processing was interrupted too often");
    if (shared) {
        /* Other nodes run on this database: their requests are open and their
         * workers hold leases. Only what has expired is taken back (owner NULL);
         * a node's open requests go with its heartbeat (jobs.c). */
        if (st->ops->file_release(st, NULL, now, JOBS_MAX_ATTEMPTS, &why, &released, err))
            return -1;
    } else {
        if (!keep)
            keep = &none;
        if (st->ops->upload_reset_requests(st, now, now - keep->idle_ms, keep->uploads,
                                           keep->n_uploads, err))
            return -1;
        /* Owner "*": every file in PROCESSING. Only one server runs on a data dir;
         * its workers died with it. */
        if (st->ops->file_release(st, "*", now, JOBS_MAX_ATTEMPTS, &why, &released, err))
            return -1;
    }
    if (released)
        log_info("jobs", "sweep.requeued", "files=%lld shared=%d", (long long)released, shared);
    if (sweep_spool(st, data_dir, shared ? SWEEP_GRACE_MS : 0, err) ||
        sweep_blobs(st, bs, shared ? SWEEP_GRACE_MS : 0, err))
        return -1;
    return 0;
}

static char host[256];
static pthread_once_t host_once = PTHREAD_ONCE_INIT;

static void read_host(void)
{
    if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
        snprintf(host, sizeof(host), "localhost");
}

const char *sweep_hostname(void)
{
    pthread_once(&host_once, read_host);
    return host;
}
