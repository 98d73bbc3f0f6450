/*
 * worker: the `shoebox worker` loop. One file at a time, on one thread; a
 * watch thread (watch.c) renews the file's lease while it is worked on and
 * ends the process when the file passes the per-file CPU limit.
 *
 * For each claimed file (store file_claim, with a lease):
 *   1. the same content already in the user's library -> finish at once (the
 *      store records DUPLICATE pointing at the existing photo);
 *   2. media_process() the original, read from the blob store (intake handed it
 *      off before the upload was acknowledged): through the reader's descriptor
 *      when the store is local, else copied to a temporary file under the
 *      worker's temporary directory (libvips and LibRaw want a file);
 *   3. thumbnails into the blob store (content-addressed, so a repeat after a
 *      crash rewrites nothing);
 *   4. store file_finish: photo row + file state + counters in one transaction.
 *      The original stays: the photo (or, for a failure, the sweep) decides.
 * A file received before the hand-off existed still names a spool file
 * ("spool/NAME"): it is handed off here first and its spool file removed last.
 * Transient errors (I/O, memory, busy database) go back to the queue with
 * backoff (file_defer) until JOBS_MAX_ATTEMPTS; permanent ones fail the file.
 * A crash anywhere is recovered by the server: the lease is released, the
 * file retried once, then failed as "decoder crashed"; a failed GLib allocation
 * (main.c: media_exit_on_no_memory) ends the process with JOBS_EXIT_NO_MEMORY,
 * and the file fails at once for the memory limit. Between files, a file
 * still leased to this worker is one it lost track of: given back at once
 * (give_back_lost).
 */
#include "jobs/jobs.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fault.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/timeutil.h"
#include "jobs/sweep.h"
#include "jobs/watch.h"
#include "media/media.h"
#include "store/blob.h"
#include "store/store.h"

#define IDLE_POLL_MS 500      /* without a wake pipe, or as a safety net with one */
#define BACKOFF_BASE_MS 500   /* transient retry n waits BACKOFF_BASE_MS * 4^(n-1) */
/* Giving back a file whose outcome could not be recorded: first pause, and the
 * longest (a full disk may take minutes to clear; a try is one small commit). */
#define RELEASE_PAUSE_MS 200
#define RELEASE_PAUSE_MAX_MS 5000
/* How often a worker between files (or idle) looks for files still leased to it,
 * which it lost track of (give_back_lost): such a file waits at most about this
 * long, not a whole lease; the look is one indexed read of the few PROCESSING rows. */
#define LOST_LOOK_MS 1000

static volatile sig_atomic_t stop_requested;

/* SIGTERM (a stop, or the server died: main.c PR_SET_PDEATHSIG): finish the file
 * in hand and exit, but within JOBS_ORPHAN_GRACE_MS: then SIGALRM ends the process
 * (its default action), so a worker nobody supervises never goes on renewing its
 * lease on a file it hangs on. */
static void on_term(int sig)
{
    (void)sig;
    if (!stop_requested)
        alarm((JOBS_ORPHAN_GRACE_MS + 999) / 1000);
    stop_requested = 1;
}

struct ctx {
    const struct jobs_worker_opts *o;
    struct store *st;
    struct blob_store *bs;
    struct watch *watch; /* lease renewal and the per-file CPU limit */
    char owner[64];
    int64_t next_lost_look; /* monotonic ms: give_back_lost's next look */
};

struct timings {
    int64_t media, blob, store;
};

static void copy_meta(struct store_photo *p, const struct store_file *f,
                      const struct media_output *m)
{
    const struct media_meta *mm = &m->meta;

    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", f->name);
    snprintf(p->format, sizeof(p->format), "%s", mm->format[0] ? mm->format : f->format);
    p->size = f->size;
    snprintf(p->sha256, sizeof(p->sha256), "%s", f->sha256);
    p->width = mm->width;
    p->height = mm->height;
    snprintf(p->taken_at, sizeof(p->taken_at), "%s", mm->taken_at);
    snprintf(p->taken_offset, sizeof(p->taken_offset), "%s", mm->taken_offset);
    snprintf(p->make, sizeof(p->make), "%s", mm->make);
    snprintf(p->model, sizeof(p->model), "%s", mm->model);
    snprintf(p->lens, sizeof(p->lens), "%s", mm->lens);
    p->exposure_time = mm->exposure_time;
    p->f_number = mm->f_number;
    p->focal_length = mm->focal_length;
    p->iso = mm->iso;
    p->orientation = mm->orientation;
    p->gps_lat = mm->gps_lat;
    p->gps_lon = mm->gps_lon;
    p->gps_alt = mm->gps_alt;
    p->has_thumb = m->has_thumb;
    snprintf(p->warnings, sizeof(p->warnings), "%s", m->warnings);
}

/* Thumbnails into the blob store; the original is there already (the hand-off). */
static int store_blobs(struct ctx *c, struct store_photo *p, const struct media_output *m,
                       struct err *err)
{
    struct blob_store *bs = c->bs;

    if (m->has_thumb && m->thumb && m->preview) {
        blob_key(p->sha256, BLOB_THUMB, p->thumb_key);
        blob_key(p->sha256, BLOB_PREVIEW, p->preview_key);
        if (blob_put_data(bs, p->thumb_key, m->thumb, m->thumb_len, err) ||
            blob_put_data(bs, p->preview_key, m->preview, m->preview_len, err))
            return -1;
    } else {
        p->has_thumb = false;
    }
    blob_key(p->sha256, BLOB_ORIGINAL, p->blob_key);
    return 0;
}

/* A file received before the hand-off (spool "spool/NAME"): hand it off now. */
static bool legacy_spool(const struct store_file *f)
{
    return !strncmp(f->spool, "spool/", 6);
}

static int hand_off_legacy(struct ctx *c, const struct store_file *f, const char *key,
                           struct err *err)
{
    char path[4096];

    snprintf(path, sizeof(path), "%s/%s", c->o->data_dir, f->spool);
    if (access(path, R_OK) != 0)
        return 0; /* gone after an interrupted run: the blob store may have it */
    return blob_put_file(c->bs, key, path, err);
}

/* The original as a file media can open, from the blob store. in->path gets
 * /proc/self/fd/N of a local store's descriptor, or a temporary copy under the
 * worker's temporary directory (removed by input_release). */
struct input {
    struct blob_reader *r;
    char path[4200];
    bool temp;
};

static int copy_to_temp(struct ctx *c, struct input *in, const char *name, struct err *err)
{
    unsigned char buf[65536];
    uint64_t off = 0;
    int fd;

    snprintf(in->path, sizeof(in->path), "%s/original-XXXXXX", c->o->temp_dir);
    fd = mkostemp(in->path, O_CLOEXEC);
    if (fd < 0)
        return err_sys(err, errno, "receive", "cannot make a temporary copy of '%s'", name);
    in->temp = true;
    for (;;) {
        ssize_t n = c->bs->ops->reader_read(in->r, off, buf, sizeof(buf), err);
        if (n <= 0 || fs_write_all(fd, buf, (size_t)n, err)) {
            close(fd);
            return n == 0 ? 0 : -1;
        }
        off += (uint64_t)n;
    }
}

static void input_release(struct ctx *c, struct input *in)
{
    if (in->temp)
        unlink(in->path);
    if (in->r)
        c->bs->ops->reader_close(in->r);
    memset(in, 0, sizeof(*in));
}

static int open_input(struct ctx *c, const struct store_file *f, struct input *in,
                      struct err *err)
{
    char key[BLOB_KEY_MAX];
    int rc, fd;

    blob_key(f->sha256, BLOB_ORIGINAL, key);
    if (legacy_spool(f) && hand_off_legacy(c, f, key, err))
        return -1;
    rc = c->bs->ops->reader_open(c->bs, key, &in->r, NULL, err);
    if (rc == 1)
        return err_set(err, ERR_PERMANENT, "receive", "the uploaded bytes of '%s' are missing",
                       f->name);
    if (rc < 0)
        return -1;
    fd = c->bs->ops->reader_fd(in->r);
    if (fd >= 0) {
        snprintf(in->path, sizeof(in->path), "/proc/self/fd/%d", fd);
        return 0;
    }
    return copy_to_temp(c, in, f->name, err);
}

static void log_outcome(const struct store_file *f, const struct store_finish *fin,
                        const struct timings *t, const struct err *e)
{
    metrics_file(fin->state == FILE_FAILED      ? METRICS_FILES_FAILED
                 : fin->state == FILE_DUPLICATE ? METRICS_FILES_DUPLICATE
                                                : METRICS_FILES_DONE,
                 t->media, t->blob, t->store);
    if (fin->state == FILE_FAILED) {
        log_warn("worker", "file.failed",
                 "upload=%lld batch=%lld file=%lld name=%s stage=%s msg=%s attempts=%lld "
                 "media_ms=%lld",
                 (long long)f->upload_id, (long long)f->batch_no, (long long)f->id,
                 LOG_Q(f->name), e->stage, LOG_Q(e->msg), (long long)f->attempts,
                 (long long)t->media);
        return;
    }
    log_info("worker", "file.done",
             "upload=%lld batch=%lld file=%lld name=%s outcome=%s photo=%lld media_ms=%lld "
             "blob_ms=%lld store_ms=%lld",
             (long long)f->upload_id, (long long)f->batch_no, (long long)f->id, LOG_Q(f->name),
             store_file_state_name(fin->state), (long long)fin->photo_id, (long long)t->media,
             (long long)t->blob, (long long)t->store);
}

/* Neither the outcome nor a retry could be recorded: the database cannot commit
 * (a full disk). Rather than leave the file PROCESSING until its lease expires,
 * keep trying, with a growing pause, to give it back to the queue while the lease
 * lasts (claimed at f->updated_at): as soon as a commit works again (space freed)
 * the file is queued and run again; its blobs are already stored. */
static void release_when_possible(struct ctx *c, const struct store_file *f,
                                  const struct err *why)
{
    int64_t lease_end = f->updated_at + c->o->lease_ms;
    int64_t pause = RELEASE_PAUSE_MS;

    while (!stop_requested && time_now_ms() + pause < lease_end) {
        struct err err = {0};
        time_sleep_ms(pause);
        int64_t now = time_now_ms();
        int rc = c->st->ops->file_defer(c->st, f->id, c->owner, now, why, now, &err);
        if (rc == 0) {
            log_warn("worker", "file.released", "upload=%lld file=%lld name=%s",
                     (long long)f->upload_id, (long long)f->id, LOG_Q(f->name));
            return;
        }
        if (rc == STORE_NOT_FOUND)
            return; /* the server released it already */
        pause = pause * 2 < RELEASE_PAUSE_MAX_MS ? pause * 2 : RELEASE_PAUSE_MAX_MS;
    }
}

/* The outcome could not be recorded (why). A transient cause goes back to the
 * queue while attempts remain (the file is re-run; its blobs are already there).
 * Otherwise record the file FAILED with that reason rather than leave it
 * PROCESSING until its lease expires. If even that fails, release_when_possible. */
static void finish_failed(struct ctx *c, const struct store_file *f,
                          const struct store_result *res, const struct err *why, int64_t now)
{
    struct store_result failed = {.outcome = STORE_FAILED, .keep_spool = true};
    struct err err = {0};

    if (why->cls == ERR_TRANSIENT && f->attempts < JOBS_MAX_ATTEMPTS) {
        if (c->st->ops->file_defer(c->st, f->id, c->owner, now + BACKOFF_BASE_MS, why, now,
                                   &err) < 0) {
            log_error("worker", "file.defer_failed", "file=%lld msg=%s", (long long)f->id,
                      LOG_Q(err.msg));
            release_when_possible(c, f, why);
        }
        return;
    }
    failed.error = *why;
    if (res->outcome == STORE_FAILED) {
        failed.error = res->error;
        failed.keep_spool = res->keep_spool;
    }
    if (c->st->ops->file_finish(c->st, f->id, c->owner, &failed, time_now_ms(), NULL, &err) < 0) {
        log_error("worker", "file.finish_failed", "file=%lld msg=%s", (long long)f->id,
                  LOG_Q(err.msg));
        release_when_possible(c, f, why);
    } else {
        metrics_add(METRICS_FILES_FAILED, 1);
        log_warn("worker", "file.failed", "upload=%lld file=%lld name=%s stage=%s msg=%s",
                 (long long)f->upload_id, (long long)f->id, LOG_Q(f->name),
                 failed.error.stage, LOG_Q(failed.error.msg));
    }
}

/* Record the outcome; a transient failure goes back to the queue while attempts remain. */
static void finish(struct ctx *c, const struct store_file *f, struct store_result *res,
                   struct timings *t)
{
    struct store_finish fin = {0};
    struct err err = {0};
    int64_t now = time_now_ms();
    int rc;

    if (res->outcome == STORE_FAILED && res->error.cls == ERR_TRANSIENT &&
        f->attempts < JOBS_MAX_ATTEMPTS) {
        int64_t wait = BACKOFF_BASE_MS << (2 * (f->attempts - 1));
        log_warn("worker", "file.retry", "upload=%lld file=%lld attempt=%lld wait_ms=%lld msg=%s",
                 (long long)f->upload_id, (long long)f->id, (long long)f->attempts,
                 (long long)wait, LOG_Q(res->error.msg));
        if (c->st->ops->file_defer(c->st, f->id, c->owner, now + wait, &res->error, now,
                                   &err) < 0) {
            log_error("worker", "file.defer_failed", "file=%lld msg=%s", (long long)f->id,
                      LOG_Q(err.msg));
            release_when_possible(c, f, &res->error);
        }
        return;
    }
    rc = c->st->ops->file_finish(c->st, f->id, c->owner, res, now, &fin, &err);
    t->store = time_now_ms() - now;
    if (rc == STORE_NOT_FOUND) {
        log_warn("worker", "file.lease_lost", "upload=%lld file=%lld", (long long)f->upload_id,
                 (long long)f->id);
        return;
    }
    if (rc < 0) {
        log_error("worker", "file.finish_failed", "file=%lld msg=%s", (long long)f->id,
                  LOG_Q(err.msg));
        finish_failed(c, f, res, &err, now);
        return;
    }
    log_outcome(f, &fin, t, &res->error);
    if ((fin.state != FILE_FAILED || fin.spool_dropped) && legacy_spool(f)) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", c->o->data_dir, f->spool);
        /* file_finish already forgot the spool path (DONE, DUPLICATE, or a failure
         * a retry cannot help); the original is in the blob store. */
        if (fs_unlink(path, &err))
            log_warn("worker", "spool.unlink_failed", "file=%lld msg=%s", (long long)f->id,
                     LOG_Q(err.msg));
    }
}

/* Test hooks: decode_slow takes 4 s of wall time on a matching name (a slow
 * file, for lease renewal), decode_spin burns CPU until the CPU limit ends
 * the process. */
static void test_slow_decode(const char *name)
{
    volatile uint64_t x = 0;

    for (int i = 0; i < 4 && fault_hit("decode_slow", name); i++)
        time_sleep_ms(1000);
    while (fault_hit("decode_spin", name))
        for (int i = 0; i < 1000000; i++)
            x += (uint64_t)i;
}

static void process(struct ctx *c, const struct store_file *f)
{
    struct store_result res = {0};
    struct media_output out = {0};
    struct timings t = {0};
    struct store_photo existing;
    struct input in = {0};
    int64_t t0;
    int rc;

    res.outcome = STORE_FAILED;
    res.keep_spool = true;
    rc = c->st->ops->photo_find_sha(c->st, f->user_id, f->sha256, &existing, &res.error);
    if (rc == 0) {
        /* Already in the library: the store records the duplicate. The existing
         * photo's keys go along, as a photo result always names its original. */
        res.outcome = STORE_OK;
        snprintf(res.photo.sha256, sizeof(res.photo.sha256), "%s", f->sha256);
        memcpy(res.photo.blob_key, existing.blob_key, sizeof(res.photo.blob_key));
        memcpy(res.photo.thumb_key, existing.thumb_key, sizeof(res.photo.thumb_key));
        memcpy(res.photo.preview_key, existing.preview_key, sizeof(res.photo.preview_key));
        goto done;
    }
    if (rc < 0 || open_input(c, f, &in, &res.error))
        goto done;
    if (fault_hit("decode_crash", f->name))
        abort(); /* test hook: a decoder crash on this file */
    while (fault_hit("decode_hang", f->name))
        time_sleep_ms(1000);
    test_slow_decode(f->name);
    t0 = time_mono_ms();
    rc = media_process(in.path, c->o->media, &out, &res.error);
    t.media = time_mono_ms() - t0;
    /* The original's bytes are read: drop them from the page cache. Hundreds of
     * originals would otherwise push the thumbnails and the database out. */
    if (c->bs->ops->reader_fd(in.r) >= 0)
        fs_drop_cache(in.path);
    input_release(c, &in);
    if (rc)
        goto done;
    copy_meta(&res.photo, f, &out);
    t0 = time_mono_ms();
    if (store_blobs(c, &res.photo, &out, &res.error))
        goto done;
    t.blob = time_mono_ms() - t0;
    res.outcome = STORE_OK;
    err_clear(&res.error);
done:
    input_release(c, &in);
    media_output_release(&out);
    watch_end(c->watch);
    finish(c, f, &res, &t);
}

/* Between files the worker holds no lease, so a file PROCESSING under its owner
 * is one it lost track of: a claim that committed while its answer was cut off
 * with the connection (the worker saw claim_failed), or an outcome PostgreSQL
 * lost in a crash (workers commit without waiting for the disk: the row is back
 * at its claim, the worker has moved on). Nothing renews that lease, yet it
 * would hold the file until it expires: give such files back to the queue now. */
static void give_back_lost(struct ctx *c)
{
    struct err err = {0};
    int64_t n = 0;

    if (time_mono_ms() < c->next_lost_look)
        return;
    c->next_lost_look = time_mono_ms() + LOST_LOOK_MS;
    /* A failure (the database away) is told by the claim that follows. */
    if (c->st->ops->file_unclaim(c->st, c->owner, time_now_ms(), &n, &err) == 0 && n > 0)
        log_warn("worker", "lease.given_back",
                 "files=%lld msg=\"files leased to this worker, which it was not processing "
                 "(an answer or a commit lost with the database connection), are queued again\"",
                 (long long)n);
}

/* After a file: hand the decoder's freed heap back to the system. */
static void give_back_memory(void)
{
    malloc_trim(0);
}

/* Wait for a wake byte or the idle timeout. Returns -1 when the server is gone. */
static int wait_for_work(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char drain[64];

    if (fd < 0) {
        time_sleep_ms(IDLE_POLL_MS / 2);
        return 0;
    }
    if (poll(&p, 1, IDLE_POLL_MS) <= 0)
        return 0;
    ssize_t n = read(fd, drain, sizeof(drain));
    if (n == 0)
        return -1;
    return 0;
}

int jobs_worker_run(const struct jobs_worker_opts *o, struct store *st, struct blob_store *bs,
                    struct err *err)
{
    struct ctx c = {.o = o, .st = st, .bs = bs};
    struct sigaction sa = {0};

    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    snprintf(c.owner, sizeof(c.owner), "%s/%ld", sweep_hostname(), (long)getpid());
    c.watch = watch_new(st, c.owner, o->lease_ms, o->cpu_limit_ms, err);
    if (!c.watch)
        return -1;
    log_info("worker", "worker.ready", "owner=%s", c.owner);
    while (!stop_requested) {
        struct store_claim claim;
        int rc;

        give_back_lost(&c);
        rc = st->ops->file_claim(st, c.owner, time_now_ms(), o->lease_ms, &claim, err);
        if (rc == 0) {
            watch_begin(c.watch, claim.file.id, claim.file.name, claim.lease_until);
            process(&c, &claim.file);
            give_back_memory();
            continue;
        }
        if (rc < 0)
            log_warn("worker", "claim_failed", "msg=%s", LOG_Q(err->msg));
        if (wait_for_work(o->wake_fd) < 0)
            break;
    }
    watch_free(c.watch);
    media_thread_shutdown();
    log_info("worker", "worker.stopped", "owner=%s", c.owner);
    return 0;
}
