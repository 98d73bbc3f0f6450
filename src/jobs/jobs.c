/*
 * jobs: the server side of the pipeline — startup sweep, batch scheduler and
 * worker supervisor.
 *
 * DESIGN
 * Threads: one jobs thread (run()) besides the caller. It wakes every
 * TICK_MS (TAIL_TICK_MS while a batch's next may open at a file's end, the
 * overlap below) or when jobs_notify() signals, and then, in order:
 *   1. reaps dead worker processes (waitpid WNOHANG), fails or requeues the file
 *      each held (store file_release with JOBS_CRASH_ATTEMPTS, "decoder crashed";
 *      one that exited JOBS_EXIT_NO_MEMORY fails it at once, "not enough memory
 *      ... --worker-memory") and starts a replacement (with a pause if they keep
 *      dying);
 *   2. requeues files whose lease expired (a worker elsewhere vanished);
 *   3. schedules: for each unfinished upload (store sched_list) whose current
 *      batch is over, opens the next batch when it is full (batch_size files
 *      waiting) or the upload has finished arriving: store sched_assign. With
 *      --batch-pacing yield the next batch also opens once the current one has no
 *      file left to claim, at most workers - 1 of its files are still in a worker
 *      and no other upload has a file waiting (the overlap: a worker is idle, and
 *      takes the next batch instead of waiting for the last file). Within
 *      batch_delay of its last batch's end an upload yields: its batch is tried
 *      after the pass has opened every other ready batch, and opens only if no
 *      other upload has a file waiting for a worker (the store checks that in
 *      the same transaction); --batch-pacing strict waits the delay out instead,
 *      as the seed did. An upload that was still
 *      waiting for announced files when this server started (its requests died
 *      with the last one) counts as arrived whenever no request is sending into
 *      it: the files that are here go on without waiting for those that are not;
 *   4. wakes the workers (a byte down each one's stdin pipe) when it opened a
 *      batch or was told there is work.
 * At stop the jobs thread itself stops the workers (EOF on their stdin, then
 * SIGKILL after STOP_GRACE_MS) before it ends. Workers are forked by the jobs
 * thread with PR_SET_PDEATHSIG(SIGKILL) until they exec; the worker then asks for
 * SIGTERM instead (main.c), on which it finishes its file within
 * JOBS_ORPHAN_GRACE_MS or is ended (worker.c): a worker outlives a killed server
 * by at most that (a file it still holds is taken back by the next server's
 * sweep, or by any node once the lease it no longer renews expires).
 * Several nodes (a shared store, PostgreSQL): the start-up sweep takes back only
 * expired leases (sweep.h); the jobs thread also beats the node's heartbeat
 * (store node_heartbeat, which closes the requests of nodes gone silent), and
 * a feed thread (feed.h) turns every announced upload change into a wake.
 * Batches are sequential within an upload and parallel across uploads; the
 * files of a batch are spread over all workers, which claim them one at a time
 * through the store with a lease, so workers on other machines join the same way.
 * A worker host (`shoebox worker --processes N`, jobs_host_run) runs the same
 * supervision on the caller's thread alone: no scheduler, no sweep, no node
 * heartbeat (web nodes schedule; a worker host only adds workers). At SIGTERM
 * its workers get SIGTERM (finish the current file, claim no other), and those
 * still running after STOP_GRACE_MS are killed and their files released.
 * Locks: `mu` guards `wake` and `stopping` only; the jobs thread never calls
 * another module while holding it. The worker table and the batch table belong
 * to the jobs thread alone.
 */
#include "jobs/jobs.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/metrics.h"
#include "base/str.h"
#include "base/timeutil.h"
#include "base/xalloc.h"
#include "jobs/feed.h"
#include "jobs/sweep.h"
#include "store/blob.h"
#include "store/store.h"

#define TICK_MS 100
/* While an upload's batch is down to its last files with the next batch ready, one
 * file's end lets the overlap open it: the jobs thread looks this often instead, so
 * a worker that ran out of work waits ~this rather than up to TICK_MS (a pass is a
 * few small queries; the state lasts about one file). */
#define TAIL_TICK_MS 10
#define RESPAWN_PAUSE_MS 1000   /* a worker that dies within this of its start waits this */
#define STOP_GRACE_MS 10000     /* workers get this long to finish their file at shutdown */
#define NODE_BEAT_MS 1000       /* a node's heartbeat (shared stores) */
#define NODE_EXPIRE_MS 10000    /* a node silent this long is gone: its requests are closed */
/* An upload without any file is deleted this long (at most; never more than
 * --tus-expire itself) after the last tus upload that could complete into it
 * expired: the expiry sweeper's period and the clocks of several nodes are
 * within it. */
#define EMPTY_UPLOAD_SLACK_MS 60000

struct worker {
    pid_t pid;          /* 0 = not running */
    int wake_fd;        /* write end of the worker's stdin pipe */
    int64_t started_at; /* monotonic ms */
    int64_t restart_at; /* monotonic ms; when pid is 0 */
};

struct open_batch {
    int64_t upload_id, batch_no, files;
    int64_t started_at; /* monotonic ms */
};

struct jobs {
    struct jobs_opts o;
    struct store *st;
    struct blob_store *bs;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool wake;      /* guarded by mu */
    bool stopping;  /* guarded by mu */
    struct worker *workers;  /* jobs thread only (and start/stop) */
    struct open_batch *batches;
    size_t nbatches, capbatches;
    int64_t *resumed;  /* uploads cut off by the restart (jobs_start, then jobs thread) */
    size_t nresumed;
    bool shared;       /* several nodes on the store: heartbeat, feed */
    char node[STORE_NODE_MAX];
    struct feed *feed;
};

/* ---- worker processes ---- */

static int spawn_worker(struct jobs *j, struct worker *w)
{
    int fds[2];
    pid_t pid, parent = getpid();

    if (pipe2(fds, O_CLOEXEC) < 0) {
        log_error("jobs", "worker.spawn_failed", "errno=%d", errno);
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        log_error("jobs", "worker.spawn_failed", "errno=%d", errno);
        return -1;
    }
    if (pid == 0) {
        /* Child: dies with the jobs thread that forked it (a worker outliving a
         * killed server would race the next server's sweep); the pipe's read end
         * becomes stdin; exec the worker. */
        sigset_t none;
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, NULL);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
            _exit(127);
        if (dup2(fds[0], STDIN_FILENO) < 0)
            _exit(127);
        execv(j->o.exe, j->o.worker_argv);
        _exit(127);
    }
    close(fds[0]);
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    w->pid = pid;
    w->wake_fd = fds[1];
    w->started_at = time_mono_ms();
    log_info("jobs", "worker.started", "pid=%ld", (long)pid);
    return 0;
}

static void wake_workers(struct jobs *j)
{
    for (int i = 0; i < j->o.workers; i++) {
        if (j->workers[i].pid > 0 && write(j->workers[i].wake_fd, "w", 1) < 0 &&
            errno != EAGAIN)
            log_debug("jobs", "worker.wake_failed", "pid=%ld errno=%d",
                      (long)j->workers[i].pid, errno);
    }
}

/* The file a dead worker held: a crash is tried again (JOBS_CRASH_ATTEMPTS) and then
 * fails as "decoder crashed"; running out of memory fails it at once, saying which
 * limit (the same image would need the same memory again). */
static void release_held(struct jobs *j, struct worker *w, bool no_memory)
{
    char owner[64], limit[32];
    struct err why = {0}, err = {0};
    int64_t released = 0, attempts = JOBS_CRASH_ATTEMPTS;

    snprintf(owner, sizeof(owner), "%s/%ld", sweep_hostname(), (long)w->pid);
    str_format_size(j->o.worker_memory, limit, sizeof(limit));
    if (no_memory) {
        err_set(&why, ERR_PERMANENT, "decode",
                "not enough memory to decode this image (each worker may use %s: "
                "--worker-memory)",
                limit);
        attempts = 1;
    } else {
        err_set(&why, ERR_PERMANENT, "decode", "decoder crashed");
    }
    if (j->st->ops->file_release(j->st, owner, time_now_ms(), attempts, &why, &released, &err))
        log_error("jobs", "worker.release_failed", "pid=%ld msg=%s", (long)w->pid, LOG_Q(err.msg));
    else if (released)
        log_warn("jobs", "worker.files_released", "pid=%ld files=%lld", (long)w->pid,
                 (long long)released);
    else if (no_memory)
        log_error("jobs", "worker.no_memory_idle",
                  "pid=%ld msg=\"a worker ran out of memory holding no file: --worker-memory "
                  "(%s) may be too small for a worker to start\"",
                  (long)w->pid, limit);
}

static void worker_died(struct jobs *j, struct worker *w, int status)
{
    struct err err = {0};
    int64_t now = time_mono_ms();
    bool no_memory = WIFEXITED(status) && WEXITSTATUS(status) == JOBS_EXIT_NO_MEMORY;

    if (no_memory)
        log_error("jobs", "worker.out_of_memory", "pid=%ld limit=%lld", (long)w->pid,
                  (long long)j->o.worker_memory);
    else if (WIFSIGNALED(status))
        log_error("jobs", "worker.died", "pid=%ld signal=%d", (long)w->pid, WTERMSIG(status));
    else
        log_warn("jobs", "worker.exited", "pid=%ld status=%d", (long)w->pid, WEXITSTATUS(status));
    metrics_add(METRICS_WORKER_DEATHS, 1);
    release_held(j, w, no_memory);
    /* A blob it was writing when it died: its pid is in the temporary name. */
    size_t temps = 0;
    if (j->bs->ops->remove_temps(j->bs, (long)w->pid, &temps, &err) == 0 && temps)
        log_info("jobs", "worker.temps_removed", "pid=%ld files=%zu", (long)w->pid, temps);
    close(w->wake_fd);
    w->wake_fd = -1;
    w->pid = 0;
    /* A worker that dies right after starting would otherwise respawn in a hot loop. */
    w->restart_at = now - w->started_at < RESPAWN_PAUSE_MS ? now + RESPAWN_PAUSE_MS : now;
}

static bool supervise(struct jobs *j)
{
    bool spawned = false;
    int64_t now = time_mono_ms();

    for (int i = 0; i < j->o.workers; i++) {
        struct worker *w = &j->workers[i];
        int status;
        if (w->pid > 0 && waitpid(w->pid, &status, WNOHANG) == w->pid)
            worker_died(j, w, status);
        if (w->pid == 0 && now >= w->restart_at && spawn_worker(j, w) == 0)
            spawned = true;
    }
    return spawned;
}

/* ---- batches ---- */

static struct open_batch *find_batch(struct jobs *j, int64_t upload_id, int64_t batch_no)
{
    for (size_t i = 0; i < j->nbatches; i++)
        if (j->batches[i].upload_id == upload_id && j->batches[i].batch_no == batch_no)
            return &j->batches[i];
    return NULL;
}

static void batch_started(struct jobs *j, int64_t upload_id, int64_t batch_no, int64_t files)
{
    struct open_batch *b = find_batch(j, upload_id, batch_no);

    if (!b) {
        if (j->nbatches == j->capbatches) {
            j->capbatches = j->capbatches ? j->capbatches * 2 : 8;
            j->batches = xrealloc(j->batches, j->capbatches * sizeof(*j->batches));
        }
        b = &j->batches[j->nbatches++];
    }
    *b = (struct open_batch){upload_id, batch_no, files, time_mono_ms()};
    log_info("jobs", "batch.start", "upload=%lld batch=%lld files=%lld", (long long)upload_id,
             (long long)batch_no, (long long)files);
}

static void batch_ended(struct jobs *j, struct open_batch *b)
{
    log_info("jobs", "batch.end", "upload=%lld batch=%lld files=%lld dur_ms=%lld",
             (long long)b->upload_id, (long long)b->batch_no, (long long)b->files,
             (long long)(time_mono_ms() - b->started_at));
    *b = j->batches[--j->nbatches];
}

/* Closes the upload's batches with no file left in flight: all of them when none of
 * its files is, the previous one (an overlap) when only the current one's are. */
static void end_batches(struct jobs *j, const struct store_sched *s)
{
    for (size_t i = 0; i < j->nbatches;) {
        struct open_batch *b = &j->batches[i];
        if (b->upload_id == s->upload_id &&
            (s->in_flight == 0 || (b->batch_no < s->current_batch && s->in_flight_before == 0)))
            batch_ended(j, b);
        else
            i++;
    }
}

/* ---- uploads cut off by a restart ---- */

static void note_resumed(void *ctx, const struct store_sched *s)
{
    struct jobs *j = ctx;

    /* After the sweep no request is open: not arrived = files announced but missing. */
    if (s->arrived)
        return;
    j->resumed = xrealloc(j->resumed, (j->nresumed + 1) * sizeof(*j->resumed));
    j->resumed[j->nresumed++] = s->upload_id;
}

static void find_resumed(struct jobs *j)
{
    struct err err = {0};

    if (j->st->ops->sched_list(j->st, note_resumed, j, &err))
        log_error("jobs", "sched.list_failed", "msg=%s", LOG_Q(err.msg));
    else if (j->nresumed)
        log_info("jobs", "upload.resumed", "uploads=%zu", j->nresumed);
}

static bool is_resumed(const struct jobs *j, int64_t upload_id)
{
    for (size_t i = 0; i < j->nresumed; i++)
        if (j->resumed[i] == upload_id)
            return true;
    return false;
}

struct sched_pass {
    struct jobs *j;
    int64_t now;
    bool opened;
    bool tail;  /* an upload's next batch may open at the next file's end (overlap) */
    int64_t *seen;  /* upload ids listed in this pass */
    size_t nseen, capseen;
    struct store_sched *later;  /* ready uploads within their batch delay (yield) */
    size_t nlater, caplater;
};

static int64_t batch_size_of(const struct jobs *j, const struct store_sched *s)
{
    return s->batch_size > 0 ? s->batch_size : j->o.batch_size;
}

/* Files of an upload's previous batch that may still be in a worker when its next
 * batch opens: with --batch-pacing yield, one fewer than the workers, so a worker
 * that finds nothing left to claim takes the next batch instead of idling until
 * the previous one's last file is done (store sched_assign's overlap). */
static int64_t overlap_of(const struct jobs *j)
{
    return j->o.batch_pacing == JOBS_PACE_YIELD && j->o.workers > 1 ? j->o.workers - 1 : 0;
}

/* Opens the upload's next batch; yield_ms > 0 lets it give way (store sched_assign). */
static void open_next(struct sched_pass *p, const struct store_sched *s, int64_t yield_ms)
{
    struct jobs *j = p->j;
    struct err err = {0};
    int64_t assigned = 0;

    if (j->st->ops->sched_assign(j->st, s->upload_id, s->current_batch + 1, batch_size_of(j, s),
                                 p->now, yield_ms, overlap_of(j), &assigned, &err)) {
        log_error("jobs", "batch.assign_failed", "upload=%lld msg=%s",
                  (long long)s->upload_id, LOG_Q(err.msg));
        return;
    }
    if (assigned > 0) {
        batch_started(j, s->upload_id, s->current_batch + 1, assigned);
        p->opened = true;
    }
}

static void note_seen(struct sched_pass *p, int64_t upload_id)
{
    if (p->nseen == p->capseen) {
        p->capseen = p->capseen ? p->capseen * 2 : 16;
        p->seen = xrealloc(p->seen, p->capseen * sizeof(*p->seen));
    }
    p->seen[p->nseen++] = upload_id;
}

static void try_later(struct sched_pass *p, const struct store_sched *s)
{
    if (p->nlater == p->caplater) {
        p->caplater = p->caplater ? p->caplater * 2 : 8;
        p->later = xrealloc(p->later, p->caplater * sizeof(*p->later));
    }
    p->later[p->nlater++] = *s;
}

static void schedule_one(void *ctx, const struct store_sched *s)
{
    struct sched_pass *p = ctx;
    struct jobs *j = p->j;
    bool arrived = s->arrived || (s->open_requests == 0 && is_resumed(j, s->upload_id));

    note_seen(p, s->upload_id);
    end_batches(j, s);
    if (s->unassigned == 0 || (s->unassigned < batch_size_of(j, s) && !arrived))
        return;
    if (s->in_flight > 0) {
        /* The overlap: the store opens it only if none of these waits for a worker. */
        if (s->in_flight <= overlap_of(j) && s->in_flight_before == 0)
            open_next(p, s, 0);
        else if (overlap_of(j) > 0 && s->in_flight == overlap_of(j) + 1 &&
                 s->in_flight_before == 0)
            p->tail = true;
        return;
    }
    if (s->current_batch > 0 && p->now < s->last_batch_end_at + j->o.batch_delay_ms) {
        if (j->o.batch_pacing == JOBS_PACE_YIELD)
            try_later(p, s);
        return;
    }
    open_next(p, s, 0);
}

static bool schedule(struct jobs *j, bool *tail)
{
    struct sched_pass p = {.j = j, .now = time_now_ms()};
    struct err err = {0};

    *tail = false;
    if (j->st->ops->sched_list(j->st, schedule_one, &p, &err)) {
        log_error("jobs", "sched.list_failed", "msg=%s", LOG_Q(err.msg));
        free(p.seen);
        free(p.later);
        return false;
    }
    /* Uploads in their delay come last, so the batches opened above count as
     * files waiting for a worker; in id order, so the oldest goes first. */
    for (size_t i = 0; i < p.nlater; i++)
        open_next(&p, &p.later[i], j->o.batch_delay_ms);
    /* Uploads no longer listed have finished: close their last batch. */
    for (size_t i = 0; i < j->nbatches;) {
        bool listed = false;
        for (size_t k = 0; k < p.nseen && !listed; k++)
            listed = p.seen[k] == j->batches[i].upload_id;
        if (listed)
            i++;
        else
            batch_ended(j, &j->batches[i]);
    }
    free(p.seen);
    free(p.later);
    *tail = p.tail;
    return p.opened;
}

static void release_expired(struct jobs *j)
{
    struct err why = {0}, err = {0};
    int64_t released = 0;

    err_set(&why, ERR_PERMANENT, "decode", "processing did not finish: the worker vanished");
    if (j->st->ops->file_release(j->st, NULL, time_now_ms(), JOBS_MAX_ATTEMPTS, &why, &released,
                                 &err))
        log_error("jobs", "lease.release_failed", "msg=%s", LOG_Q(err.msg));
    else if (released)
        log_warn("jobs", "lease.expired", "files=%lld", (long long)released);
    metrics_add(METRICS_LEASES_EXPIRED, (uint64_t)released);
}

/* Shared stores: this node is alive; the requests of nodes that are not are closed. */
static void heartbeat(struct jobs *j)
{
    struct err err = {0};
    int64_t expired = 0, now = time_now_ms();

    if (j->st->ops->node_heartbeat(j->st, now, now - NODE_EXPIRE_MS, &expired, &err))
        log_error("jobs", "node.heartbeat_failed", "msg=%s", LOG_Q(err.msg));
    else if (expired)
        log_warn("jobs", "node.expired", "nodes=%lld", (long long)expired);
}

static void stop_workers(struct jobs *j)
{
    int64_t deadline = time_mono_ms() + STOP_GRACE_MS;
    int running;

    /* EOF on its stdin tells a worker to finish its file and exit. */
    for (int i = 0; i < j->o.workers; i++) {
        if (j->workers[i].wake_fd >= 0)
            close(j->workers[i].wake_fd);
        j->workers[i].wake_fd = -1;
    }
    do {
        running = 0;
        for (int i = 0; i < j->o.workers; i++) {
            struct worker *w = &j->workers[i];
            if (w->pid > 0 && waitpid(w->pid, NULL, WNOHANG) == w->pid)
                w->pid = 0;
            running += w->pid > 0;
        }
        if (running)
            time_sleep_ms(20);
    } while (running && time_mono_ms() < deadline);
    for (int i = 0; i < j->o.workers; i++) {
        if (j->workers[i].pid > 0) {
            kill(j->workers[i].pid, SIGKILL);
            waitpid(j->workers[i].pid, NULL, 0);
        }
    }
}

/* A page that announced more files than it sent (closed tab, lost network)
 * would keep its upload "receiving" forever: after upload_idle_ms without a
 * request or a change, the upload goes on with the files it has. One that
 * has no file at all waits until every tus upload that could still complete
 * into it has expired (each tus creation and each committed PATCH changes the
 * upload), then is deleted: there is nothing in it to show. */
static void close_idle(struct jobs *j)
{
    struct err err = {0};
    int64_t closed = 0, dropped = 0, now = time_now_ms();
    int64_t slack = j->o.tus_expire_ms < EMPTY_UPLOAD_SLACK_MS ? j->o.tus_expire_ms
                                                                : EMPTY_UPLOAD_SLACK_MS;
    int64_t wait = j->o.upload_idle_ms > j->o.tus_expire_ms + slack
                       ? j->o.upload_idle_ms
                       : j->o.tus_expire_ms + slack;

    if (j->st->ops->upload_close_idle(j->st, now - j->o.upload_idle_ms, now - wait, now,
                                      &closed, &dropped, &err))
        log_error("jobs", "upload.close_idle_failed", "msg=%s", LOG_Q(err.msg));
    if (closed)
        log_warn("jobs", "upload.idle_closed", "uploads=%lld", (long long)closed);
    if (dropped)
        log_info("jobs", "upload.empty_dropped", "uploads=%lld", (long long)dropped);
}

static void *run(void *arg)
{
    struct jobs *j = arg;
    int64_t last_release = 0;
    bool tail = false;

    for (;;) {
        bool told;
        struct timespec until;

        pthread_mutex_lock(&j->mu);
        until = time_after_ms(CLOCK_REALTIME, tail ? TAIL_TICK_MS : TICK_MS);
        while (!j->wake && !j->stopping &&
               pthread_cond_timedwait(&j->cond, &j->mu, &until) != ETIMEDOUT)
            ;
        told = j->wake;
        j->wake = false;
        if (j->stopping) {
            pthread_mutex_unlock(&j->mu);
            break;
        }
        pthread_mutex_unlock(&j->mu);

        bool spawned = supervise(j);
        if (time_mono_ms() - last_release >= NODE_BEAT_MS) {
            if (j->shared)
                heartbeat(j);
            release_expired(j);
            close_idle(j);
            last_release = time_mono_ms();
        }
        if (schedule(j, &tail) || told || spawned)
            wake_workers(j);
    }
    /* Here, not after the join: the workers' death signal fires when this thread ends. */
    stop_workers(j);
    return NULL;
}

/* ---- a worker host ---- */

/* A worker killed at stop: its file goes back to the queue (not a crash of its own). */
static void release_stopped(struct jobs *j, struct worker *w)
{
    char owner[64];
    struct err why = {0}, err = {0};
    int64_t released = 0;
    size_t temps = 0;

    snprintf(owner, sizeof(owner), "%s/%ld", sweep_hostname(), (long)w->pid);
    err_set(&why, ERR_PERMANENT, "decode", "processing was interrupted too often");
    if (j->st->ops->file_release(j->st, owner, time_now_ms(), JOBS_MAX_ATTEMPTS, &why,
                                 &released, &err))
        log_error("jobs", "worker.release_failed", "pid=%ld msg=%s", (long)w->pid,
                  LOG_Q(err.msg));
    else
        log_warn("jobs", "worker.killed_at_stop", "pid=%ld files=%lld", (long)w->pid,
                 (long long)released);
    j->bs->ops->remove_temps(j->bs, (long)w->pid, &temps, &err);
    close(w->wake_fd);
    w->wake_fd = -1;
    w->pid = 0;
}

/* Stop for good: SIGTERM (a worker finishes its file and exits), then SIGKILL
 * after STOP_GRACE_MS; a killed worker's file goes back to the queue. */
static void stop_host_workers(struct jobs *j)
{
    int64_t deadline = time_mono_ms() + STOP_GRACE_MS;
    int running;

    for (int i = 0; i < j->o.workers; i++)
        if (j->workers[i].pid > 0)
            kill(j->workers[i].pid, SIGTERM);
    do {
        running = 0;
        for (int i = 0; i < j->o.workers; i++) {
            struct worker *w = &j->workers[i];
            int status;
            if (w->pid > 0 && waitpid(w->pid, &status, WNOHANG) == w->pid) {
                log_info("jobs", "worker.stopped", "pid=%ld status=%d", (long)w->pid, status);
                close(w->wake_fd);
                w->wake_fd = -1;
                w->pid = 0;
            }
            running += w->pid > 0;
        }
        if (running)
            time_sleep_ms(20);
    } while (running && time_mono_ms() < deadline);
    for (int i = 0; i < j->o.workers; i++) {
        struct worker *w = &j->workers[i];
        if (w->pid <= 0)
            continue;
        kill(w->pid, SIGKILL);
        waitpid(w->pid, NULL, 0);
        release_stopped(j, w);
    }
}

int jobs_host_run(const struct jobs_opts *o, struct store *st, struct blob_store *bs,
                  const sigset_t *stop, struct err *err)
{
    struct jobs *j = xcalloc(1, sizeof(*j));
    struct timespec tick = {.tv_sec = 0, .tv_nsec = TICK_MS * 1000000L};
    int sig;

    (void)err;
    j->o = *o;
    j->st = st;
    j->bs = bs;
    j->workers = xcalloc((size_t)(o->workers > 0 ? o->workers : 1), sizeof(*j->workers));
    for (int i = 0; i < o->workers; i++)
        j->workers[i].wake_fd = -1;
    log_info("jobs", "host.ready", "processes=%d temp=%s", o->workers, LOG_Q(o->data_dir));
    for (;;) {
        supervise(j);
        sig = sigtimedwait(stop, NULL, &tick);
        if (sig > 0)
            break;
    }
    log_info("jobs", "host.stopping", "signal=%d", sig);
    stop_host_workers(j);
    log_info("jobs", "host.stopped", "processes=%d", o->workers);
    free(j->workers);
    free(j);
    return 0;
}

/* ---- the change feed (shared stores) ---- */

/* Any node changed an upload: files may wait for a batch or a worker here. */
static void feed_changed(void *ctx, int64_t upload_id, int64_t version)
{
    struct jobs *j = ctx;

    jobs_notify(j);
    if (j->o.on_change)
        j->o.on_change(j->o.change_ctx, upload_id, version);
}

static void feed_state(void *ctx, bool live)
{
    struct jobs *j = ctx;

    if (j->o.on_feed)
        j->o.on_feed(j->o.change_ctx, live);
}

/* ---- life cycle ---- */

int jobs_start(const struct jobs_opts *o, struct store *st, struct blob_store *bs,
               struct jobs **out, struct err *err)
{
    struct jobs *j = xcalloc(1, sizeof(*j));

    j->o = *o;
    j->st = st;
    j->bs = bs;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cond, NULL);
    j->workers = xcalloc((size_t)(o->workers > 0 ? o->workers : 1), sizeof(*j->workers));
    for (int i = 0; i < o->workers; i++)
        j->workers[i].wake_fd = -1;
    j->shared = st->ops->shared && st->ops->shared(st);
    if (j->shared) {
        /* host:pid:start: unique among the nodes, even when a pid comes again. */
        snprintf(j->node, sizeof(j->node), "%s:%ld:%lld", sweep_hostname(), (long)getpid(),
                 (long long)time_now_ms());
        if (st->ops->node_register(st, j->node, time_now_ms(), err))
            goto fail;
        log_info("jobs", "node.registered", "node=%s", j->node);
    }
    struct sweep_keep keep = {o->upload_idle_ms, o->keep_uploads, o->n_keep_uploads};
    if (sweep_run(st, bs, o->data_dir, &keep, err))
        goto fail;
    /* On a shared store other nodes' uploads are arriving right now: nothing was
     * cut off by this start (a dead node's requests close with its heartbeat). */
    if (!j->shared)
        find_resumed(j);
    if (pthread_create(&j->thread, NULL, run, j) != 0) {
        err_set(err, ERR_TRANSIENT, "jobs", "cannot start the scheduler thread");
        goto fail;
    }
    j->thread_started = true;
    if (j->shared) {
        struct feed_opts fo = {.on_change = feed_changed, .on_state = feed_state, .ctx = j};
        if (feed_start(st, &fo, &j->feed, err))
            goto fail;
    }
    *out = j;
    jobs_notify(j);
    return 0;
fail:
    jobs_stop(j);
    return -1;
}

void jobs_notify(struct jobs *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->mu);
    j->wake = true;
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->mu);
}

void jobs_stop(struct jobs *j)
{
    if (!j)
        return;
    feed_stop(j->feed);
    j->feed = NULL;
    if (j->thread_started) {
        pthread_mutex_lock(&j->mu);
        j->stopping = true;
        pthread_cond_signal(&j->cond);
        pthread_mutex_unlock(&j->mu);
        pthread_join(j->thread, NULL);
    }
    stop_workers(j);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cond);
    free(j->workers);
    free(j->batches);
    free(j->resumed);
    free(j);
}
