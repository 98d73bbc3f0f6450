/*
 * watch: see watch.h.
 *
 * DESIGN. Threads: the worker's main thread (watch_begin/watch_end) and the
 * watch thread. Lock: w->mu guards every field below it in struct watch;
 * neither thread calls the store or the log while holding it. The store is
 * thread-safe (each call borrows its own connection), so the watch thread's
 * renewals run beside the main thread's work. The main thread never waits on
 * the watch thread except in watch_end after the watch took the file (the
 * process is ending then) and in watch_free (join).
 */
#include "jobs/watch.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/metrics.h"
#include "base/timeutil.h"
#include "base/xalloc.h"
#include "store/store.h"

/* How often the CPU time is looked at: the limit is overshot by at most this. */
#define CPU_POLL_MS 200

struct watch {
    struct store *st;
    char owner[64];
    int64_t lease_ms, cpu_limit_ms;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* with mu: begin, end and stop wake the thread */
    /* guarded by mu: */
    bool stop, busy, taken, lost;
    int64_t file_id;
    char name[256];
    int64_t cpu_start_ms;  /* process CPU time at watch_begin */
    int64_t next_renew_ms; /* monotonic */
};

static int64_t cpu_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wait_ms(struct watch *w, int64_t ms)
{
    struct timespec ts = time_after_ms(CLOCK_MONOTONIC, ms);

    pthread_cond_timedwait(&w->cv, &w->mu, &ts);
}

/* Over the CPU limit: record the failure, then end the process (the decoder
 * cannot be stopped from here; the supervisor starts a new worker). */
static void take_file(struct watch *w, int64_t file_id, const char *name, int64_t spent)
{
    struct store_result res = {.outcome = STORE_FAILED, .keep_spool = true};
    struct err err = {0};
    int rc;

    err_set(&res.error, ERR_PERMANENT, "limits",
            "over the CPU time limit of %lld s per file (stopped after %.1f s)",
            (long long)(w->cpu_limit_ms / 1000), (double)spent / 1000.0);
    rc = w->st->ops->file_finish(w->st, file_id, w->owner, &res, time_now_ms(), NULL, &err);
    if (rc < 0)
        log_error("worker", "cpu_limit.finish_failed", "file=%lld msg=%s", (long long)file_id,
                  LOG_Q(err.msg));
    log_warn("worker", "file.cpu_limit", "file=%lld name=%s cpu_ms=%lld limit_ms=%lld recorded=%d",
             (long long)file_id, LOG_Q(name), (long long)spent, (long long)w->cpu_limit_ms,
             rc == 0);
    metrics_add(METRICS_FILES_FAILED, rc == 0 ? 1 : 0);
    _exit(WATCH_EXIT_CPU);
}

static void renew(struct watch *w, int64_t file_id, const char *name)
{
    struct err err = {0};
    int64_t now = time_now_ms();
    int rc = w->st->ops->file_renew(w->st, file_id, w->owner, now + w->lease_ms, now, &err);
    bool first_loss;

    if (rc < 0) {
        log_warn("worker", "lease.renew_failed", "file=%lld msg=%s", (long long)file_id,
                 LOG_Q(err.msg));
        return;
    }
    if (rc == 0)
        return;
    pthread_mutex_lock(&w->mu);
    first_loss = w->busy && w->file_id == file_id && !w->lost;
    if (first_loss)
        w->lost = true;
    pthread_mutex_unlock(&w->mu);
    if (first_loss)
        log_warn("worker", "lease.lost", "file=%lld name=%s: another worker may have it now",
                 (long long)file_id, LOG_Q(name));
}

static void *run(void *arg)
{
    struct watch *w = arg;
    char name[sizeof(w->name)];

    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        int64_t id, spent, now;
        bool due;

        if (!w->busy) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        id = w->file_id;
        memcpy(name, w->name, sizeof(name));
        spent = cpu_ms() - w->cpu_start_ms;
        if (w->cpu_limit_ms > 0 && spent > w->cpu_limit_ms) {
            w->taken = true;
            pthread_mutex_unlock(&w->mu);
            take_file(w, id, name, spent); /* does not return */
        }
        now = time_mono_ms();
        due = now >= w->next_renew_ms;
        if (due) {
            w->next_renew_ms = now + w->lease_ms / 3;
            pthread_mutex_unlock(&w->mu);
            renew(w, id, name);
            pthread_mutex_lock(&w->mu);
            continue;
        }
        wait_ms(w, w->next_renew_ms - now < CPU_POLL_MS ? w->next_renew_ms - now : CPU_POLL_MS);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

struct watch *watch_new(struct store *st, const char *owner, int64_t lease_ms, int64_t cpu_limit_ms,
                        struct err *err)
{
    struct watch *w = xcalloc(1, sizeof(*w));
    pthread_condattr_t ca;
    int rc;

    w->st = st;
    snprintf(w->owner, sizeof(w->owner), "%s", owner);
    w->lease_ms = lease_ms > 3 ? lease_ms : 3;
    w->cpu_limit_ms = cpu_limit_ms;
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    rc = pthread_create(&w->thread, NULL, run, w);
    if (rc != 0) {
        err_sys(err, rc, "worker", "cannot start the lease thread");
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    return w;
}

void watch_begin(struct watch *w, int64_t file_id, const char *name, int64_t lease_until)
{
    int64_t left = lease_until - time_now_ms();

    pthread_mutex_lock(&w->mu);
    w->busy = true;
    w->lost = false;
    w->file_id = file_id;
    snprintf(w->name, sizeof(w->name), "%s", name);
    w->cpu_start_ms = cpu_ms();
    /* First renewal when a third of the lease is used, as later ones. */
    w->next_renew_ms = time_mono_ms() + (left > 0 ? left : w->lease_ms) - 2 * w->lease_ms / 3;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void watch_end(struct watch *w)
{
    bool taken;

    pthread_mutex_lock(&w->mu);
    taken = w->taken;
    w->busy = false;
    pthread_mutex_unlock(&w->mu);
    while (taken)
        pause(); /* the watch thread is recording the failure and ends the process */
}

void watch_free(struct watch *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
