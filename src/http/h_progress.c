/*
 * h_progress: see h_progress.h.
 *
 * DESIGN (the SSE hub)
 * Threads: MHD threads run handlers and stream readers; one hub thread
 * (hub_run) wakes every SSE_TICK_MS, or on a shared store (several nodes) when
 * the change feed announces a change of a followed upload, whichever node made
 * it (sse_hub_changed; polling goes on every SSE_FALLBACK_MS while the feed is
 * live, as notifications are lost around reconnects). Streams never hold a thread while they
 * wait: the reader parks its connection (http_suspend) and returns; the hub
 * reads the version of each upload being followed (one store read per upload,
 * however many streams follow it) and resumes the streams whose upload moved,
 * or whose heartbeat is due. So events are coalesced to at most one per tick
 * (4 a second) and hundreds of open streams cost a list walk, not threads.
 * Closed clients: MHD does not watch a parked connection, so each tick the
 * hub also asks http_peer_gone() for every stream; a gone one is marked and
 * resumed, its reader ends it with an error and MHD closes it at once, which
 * frees its slot (the per-user cap) within a tick, not at the next heartbeat.
 * Lock: hub.mu guards the stream list and each stream's `version_seen`,
 * `last_wake_ms` and `gone`. Exception to "never call another module under a lock": http_resume()
 * is called with hub.mu held, because a stream's cleanup (which unregisters it
 * under hub.mu) may run at any moment and a resume after cleanup is undefined.
 * Lock order: hub.mu, then http's own suspend lock; http never calls back here.
 * The hub's tick also writes the access log's buffered lines (log_flush), so
 * an idle server's last requests reach the log within a tick or a second.
 *
 * DESIGN (upload snapshots)
 * On PostgreSQL every read of an upload is a round trip to the server, on
 * SQLite a read transaction (locks, a statement), and a page polls its upload
 * every second from every tab. So the last row read of an upload is kept in a
 * slot (SNAP_SLOTS, by id) and answered from there while nothing can have
 * changed it. What tells depends on the store:
 * - SQLite (the store's change_mark: its WAL index header, which every commit
 *   of any process rewrites): a slot is used while the mark equals the one
 *   read just before its row was read, so a poll reads nothing until anything
 *   is committed, and the first poll after a commit reads anew. No time bound
 *   is needed: a deleted or cleared upload is a commit too.
 * - PostgreSQL: while the store's change feed is live (sse_hub_feed). Rules:
 * - a notification of upload ID at VERSION (any node's commit, sse_hub_changed)
 *   drops a slot of ID holding an older version, and counts in the slot's
 *   `notes`; a reader stores what it read only if no notification reached its
 *   slot while it read (so a read that raced a commit never outlives it);
 * - a slot only moves forward: a read older than what the slot holds is not
 *   stored, so this node never shows an older version after a newer one;
 * - a slot lives SNAP_MAX_MS at most (changes that announce nothing, such as
 *   a deleted upload), and every slot is dropped when the feed goes down or
 *   comes back (notifications are lost around reconnects); while the feed is
 *   down nothing is kept;
 * - this node's own clear (h_progress_clear) drops the slot at once.
 * With either, a slot only moves forward (never an older version stored over
 * a newer one) and is checked against the asking user on every use.
 * Lock: snaps.mu guards the slots, `notes`, `live` and `epoch`; never held
 * across a store call; taken under no other lock and takes none.
 */
#include "http/h_progress.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/str.h"
#include "base/timeutil.h"
#include "base/xalloc.h"
#include "http/session.h"
#include "http/views.h"
#include "store/store.h"

#define SSE_TICK_MS 250
#define SSE_FALLBACK_MS 1000       /* the polling while a change feed is live */
#define SSE_HEARTBEAT_MS 15000
#define SSE_MAX_STREAMS 2048       /* whole server */
#define SSE_MAX_PER_USER 64        /* tabs of one user */
/* Upload snapshots kept (by id; a collision only costs a read). */
#define SNAP_SLOTS 256
/* The longest a snapshot is used without a read: bounds what a change that
 * announces nothing (an upload deleted as empty) leaves stale, at 4 reads a
 * second per followed upload, the SSE tick. */
#define SNAP_MAX_MS SSE_TICK_MS

/* ---- upload snapshots ---- */

struct snap {
    bool used;
    int64_t read_ms;          /* monotonic */
    uint64_t mark;            /* the store's change mark before the read; 0: feed rules */
    struct store_upload u;
};

static struct {
    pthread_mutex_t mu;
    bool live;                        /* the change feed is live: snapshots allowed */
    uint64_t epoch;                   /* bumped when every slot is dropped */
    struct snap slots[SNAP_SLOTS];
    uint64_t notes[SNAP_SLOTS];       /* notifications that reached each slot */
} snaps = {.mu = PTHREAD_MUTEX_INITIALIZER};

static size_t snap_slot(int64_t id)
{
    return (size_t)((uint64_t)id % SNAP_SLOTS);
}

/* snaps.mu held. */
static void snap_drop_all_locked(void)
{
    snaps.epoch++;
    for (size_t i = 0; i < SNAP_SLOTS; i++)
        snaps.slots[i].used = false;
}

/* A change of upload id to version (0, 0: anything may have changed). */
static void snap_changed(int64_t id, int64_t version)
{
    pthread_mutex_lock(&snaps.mu);
    if (id == 0) {
        snap_drop_all_locked();
    } else {
        struct snap *sn = &snaps.slots[snap_slot(id)];
        snaps.notes[snap_slot(id)]++;
        if (sn->used && sn->u.id == id && sn->u.version < version)
            sn->used = false;
    }
    pthread_mutex_unlock(&snaps.mu);
}

static void snap_live(bool live)
{
    pthread_mutex_lock(&snaps.mu);
    snaps.live = live;
    snap_drop_all_locked();
    pthread_mutex_unlock(&snaps.mu);
}

struct snap_mark {
    bool live;
    uint64_t epoch, notes;
};

/* The snapshot of id, if one may be used now (true), into *u: with a change
 * mark (not 0), one read at that same mark; else the feed's rules. */
static bool snap_get(int64_t id, int64_t now, uint64_t mark, struct store_upload *u,
                     struct snap_mark *m)
{
    size_t i = snap_slot(id);
    struct snap *sn = &snaps.slots[i];
    bool hit;

    pthread_mutex_lock(&snaps.mu);
    hit = sn->used && sn->u.id == id &&
          (mark ? sn->mark == mark
                : snaps.live && !sn->mark && now >= sn->read_ms && now - sn->read_ms < SNAP_MAX_MS);
    if (hit)
        *u = sn->u;
    *m = (struct snap_mark){snaps.live, snaps.epoch, snaps.notes[i]};
    pthread_mutex_unlock(&snaps.mu);
    return hit;
}

/* Keep u, read at change mark `mark` (0: under the feed's rules, *m). */
static void snap_put(const struct store_upload *u, int64_t now, uint64_t mark,
                     const struct snap_mark *m)
{
    size_t i = snap_slot(u->id);
    struct snap *sn = &snaps.slots[i];
    bool allowed;

    pthread_mutex_lock(&snaps.mu);
    allowed =
        mark || (m->live && snaps.live && snaps.epoch == m->epoch && snaps.notes[i] == m->notes);
    if (allowed && !(sn->used && sn->u.id == u->id && sn->u.version > u->version)) {
        sn->used = true;
        sn->read_ms = now;
        sn->mark = mark;
        sn->u = *u;
    }
    pthread_mutex_unlock(&snaps.mu);
}

/* store upload_get (user_id 0: any owner) through the snapshots. The change
 * mark is read before the row, so a commit between the two only costs a read. */
static int upload_read(struct store *st, int64_t id, int64_t user_id, struct store_upload *u,
                       struct err *err)
{
    int64_t now = time_mono_ms();
    uint64_t mark = st->ops->change_mark ? st->ops->change_mark(st) : 0;
    struct snap_mark m;
    int rc;

    if (snap_get(id, now, mark, u, &m))
        return user_id && u->user_id != user_id ? STORE_NOT_FOUND : 0;
    rc = st->ops->upload_get(st, id, user_id, u, err);
    if (rc == 0 && (mark || m.live))
        snap_put(u, now, mark, &m);
    return rc;
}

/* ---- the JSON endpoint ---- */

/* The upload the request asks about: ?upload=ID (any of the user's), else the
 * session's current one. 0 = none (idle). -1: answered already (404/400/503). */
static int64_t pick_upload(struct http_req *req, struct store_upload *u)
{
    struct store *st = http_store(req);
    struct err err = {0};
    const char *q = http_query(req, "upload");
    int64_t id = http_session_upload(req);
    int rc;

    if (q && (str_to_int64(q, &id) || id <= 0)) {
        http_send_error(req, 400, "'upload' must be an upload id");
        return -1;
    }
    if (!id)
        return 0;
    rc = upload_read(st, id, http_user(req)->id, u, &err);
    if (rc == STORE_NOT_FOUND && !q)
        return 0; /* the session's upload is gone: idle */
    if (rc == STORE_NOT_FOUND) {
        http_send_error(req, 404, "no such upload");
        return -1;
    }
    if (rc) {
        http_send_error(req, 503, "the database is not available; try again");
        return -1;
    }
    if (!q && u->cleared)
        return 0;
    return id;
}

static void send_text(struct http_req *req, struct buf *b)
{
    http_send_buf(req, 200, "application/json", b->data, b->len);
    buf_release(b);
}

/* The seed polls this every second from every open upload page: keep it to one
 * store read (two when the upload has failed files) and no JSON tree. */
void h_progress_get(struct http_req *req)
{
    struct store_upload u;
    struct progress p;
    struct buf b = BUF_INIT;
    const char *files = http_query(req, "files");
    int64_t id = pick_upload(req, &u);

    if (id < 0)
        return;
    if (id == 0) {
        progress_idle(&p);
        view_progress_text(&p, NULL, &b);
        send_text(req, &b);
        return;
    }
    if (files && strcmp(files, "0") != 0) {
        json_t *v = view_upload(http_store(req), &u, true);
        if (!v) {
            http_send_error(req, 503, "the database is not available; try again");
            return;
        }
        http_send_json(req, 200, v);
        return;
    }
    if (view_upload_text(http_store(req), &u, &b)) {
        buf_release(&b);
        http_send_error(req, 503, "the database is not available; try again");
        return;
    }
    send_text(req, &b);
}

void h_progress_clear(struct http_req *req)
{
    struct store *st = http_store(req);
    struct store_upload u;
    struct err err = {0};
    int64_t id = pick_upload(req, &u);
    json_t *o;

    if (id < 0)
        return;
    if (id > 0 && st->ops->upload_set_cleared(st, id, true, &err)) {
        http_send_error(req, 503, "the database is not available; try again");
        return;
    }
    if (id > 0)
        snap_changed(id, INT64_MAX);  /* this node reads the cleared row from now on */
    if (id > 0 && id == http_session_upload(req))
        session_set_upload(st, http_session_digest(req), 0, NULL);
    o = json_object();
    json_object_set_new(o, "cleared", id > 0 ? json_integer(id) : json_null());
    json_object_set_new(o, "status", json_string("idle"));
    http_send_json(req, 200, o);
}

/* ---- the hub ---- */

struct stream {
    struct http_req *req;
    int64_t upload_id, user_id;
    int64_t version_sent;   /* reader only */
    int64_t version_seen;   /* hub.mu: latest version the hub read */
    int64_t last_write_ms;  /* reader only (monotonic) */
    int64_t last_event_ms;  /* reader only (monotonic): 0 before the first event */
    int64_t last_wake_ms;   /* hub.mu */
    bool finished;          /* reader only: final event queued */
    bool gone;              /* hub.mu: the client closed its end */
    char *out;              /* reader only: bytes not yet written */
    size_t out_len, out_off;
    struct stream *next;    /* hub.mu */
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct stream *streams;  /* mu */
    size_t count;            /* mu */
    bool running, stopping;  /* mu */
    bool kicked;             /* mu: a change of a followed upload was announced */
    bool feed_live;          /* mu: the store's change feed is live (poll slowly) */
    pthread_t thread;
    struct store *st;
} hub = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static int hub_add(struct stream *s)
{
    size_t mine = 0;

    pthread_mutex_lock(&hub.mu);
    for (struct stream *p = hub.streams; p; p = p->next)
        mine += p->user_id == s->user_id;
    if (hub.count >= SSE_MAX_STREAMS || mine >= SSE_MAX_PER_USER) {
        pthread_mutex_unlock(&hub.mu);
        return -1;
    }
    s->next = hub.streams;
    hub.streams = s;
    hub.count++;
    pthread_mutex_unlock(&hub.mu);
    return 0;
}

static void hub_remove(struct stream *s)
{
    pthread_mutex_lock(&hub.mu);
    for (struct stream **pp = &hub.streams; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            hub.count--;
            break;
        }
    }
    pthread_mutex_unlock(&hub.mu);
}

size_t sse_hub_streams(void)
{
    size_t n;

    pthread_mutex_lock(&hub.mu);
    n = hub.count;
    pthread_mutex_unlock(&hub.mu);
    return n;
}

struct seen {
    int64_t upload_id, version;
};

/* One tick: read each followed upload's version once, then wake who needs it. */
static void hub_tick(void)
{
    struct seen *ids = NULL;
    size_t n = 0, cap = 0;
    int64_t now = time_mono_ms();
    struct err err = {0};

    pthread_mutex_lock(&hub.mu);
    for (struct stream *s = hub.streams; s; s = s->next) {
        bool dup = false;
        for (size_t i = 0; i < n && !dup; i++)
            dup = ids[i].upload_id == s->upload_id;
        if (dup || !s->upload_id)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            ids = xrealloc(ids, cap * sizeof(*ids));
        }
        ids[n++] = (struct seen){s->upload_id, -1};
    }
    pthread_mutex_unlock(&hub.mu);

    for (size_t i = 0; i < n; i++) {
        struct store_upload u;
        int rc = upload_read(hub.st, ids[i].upload_id, 0, &u, &err);
        if (rc == 0)
            ids[i].version = u.version;
        else if (rc == STORE_NOT_FOUND)
            ids[i].version = -2;  /* deleted: not too_soon's -1, so its streams wake and end */
    }

    pthread_mutex_lock(&hub.mu);
    for (struct stream *s = hub.streams; s; s = s->next) {
        bool wake = now - s->last_wake_ms >= SSE_HEARTBEAT_MS;
        if (!s->gone && http_peer_gone(s->req)) {
            s->gone = true;
            wake = true;
        }
        for (size_t i = 0; i < n; i++) {
            if (ids[i].upload_id == s->upload_id && ids[i].version != s->version_seen) {
                s->version_seen = ids[i].version;
                wake = true;
            }
        }
        if (wake) {
            s->last_wake_ms = now;
            http_resume(s->req);
        }
    }
    pthread_mutex_unlock(&hub.mu);
    free(ids);
}

static void *hub_run(void *arg)
{
    int64_t last_tick = time_mono_ms();

    (void)arg;
    pthread_mutex_lock(&hub.mu);
    while (!hub.stopping) {
        /* Polling every SSE_TICK_MS (every SSE_FALLBACK_MS while the change feed
         * is live); an announced change ticks at once, but ticks stay at least
         * SSE_TICK_MS apart, so events are still coalesced. */
        int64_t now = time_mono_ms();
        int64_t due = last_tick + (hub.kicked || !hub.feed_live ? SSE_TICK_MS : SSE_FALLBACK_MS);
        if (now < due) {
            struct timespec until = time_after_ms(CLOCK_REALTIME, due - now);

            pthread_cond_timedwait(&hub.cond, &hub.mu, &until);
            continue;
        }
        hub.kicked = false;
        pthread_mutex_unlock(&hub.mu);
        hub_tick();
        log_flush();  /* the access log's last lines of an idle server (log.h) */
        last_tick = time_mono_ms();
        pthread_mutex_lock(&hub.mu);
    }
    pthread_mutex_unlock(&hub.mu);
    return NULL;
}

void sse_hub_changed(int64_t upload_id, int64_t version)
{
    snap_changed(upload_id, version);  /* first, so the tick it may cause reads anew */
    pthread_mutex_lock(&hub.mu);
    for (struct stream *s = hub.streams; s && !hub.kicked; s = s->next) {
        if ((upload_id == 0 || s->upload_id == upload_id) && s->version_seen != version) {
            hub.kicked = true;
            pthread_cond_signal(&hub.cond);
        }
    }
    pthread_mutex_unlock(&hub.mu);
}

void sse_hub_feed(bool live)
{
    snap_live(live);
    pthread_mutex_lock(&hub.mu);
    hub.feed_live = live;
    pthread_cond_signal(&hub.cond);
    pthread_mutex_unlock(&hub.mu);
}

int sse_hub_start(struct store *st, struct err *err)
{
    hub.st = st;
    hub.stopping = false;
    if (pthread_create(&hub.thread, NULL, hub_run, NULL) != 0)
        return err_set(err, ERR_TRANSIENT, "http", "cannot start the progress stream thread");
    hub.running = true;
    return 0;
}

void sse_hub_stop(void)
{
    if (!hub.running)
        return;
    pthread_mutex_lock(&hub.mu);
    hub.stopping = true;
    pthread_cond_signal(&hub.cond);
    pthread_mutex_unlock(&hub.mu);
    pthread_join(hub.thread, NULL);
    hub.running = false;
}

/* ---- the stream ---- */

static void queue_out(struct stream *s, char *data)
{
    free(s->out);
    s->out = data;
    s->out_len = strlen(data);
    s->out_off = 0;
    s->last_write_ms = time_mono_ms();
}

/* Build the next event if the upload moved; true when something was queued or
 * the stream is over (s->finished). */
static bool next_event(struct http_req *req, struct stream *s)
{
    struct store *st = http_store(req);
    struct store_upload u;
    struct progress p;
    struct err err = {0};
    struct buf b = BUF_INIT;

    if (!s->upload_id) {
        progress_idle(&p);
        buf_addf(&b, "event: progress\nid: 0\ndata: ");
        view_progress_text(&p, NULL, &b);
        s->version_sent = 0;
        s->finished = true;
    } else {
        int rc = upload_read(st, s->upload_id, s->user_id, &u, &err);
        if (rc == STORE_NOT_FOUND) {
            /* Deleted (it ended with no file in it): nothing more will come. The
             * stream ends; the page's next read of it is a 404. */
            s->finished = true;
            return true;
        }
        if (rc)
            return false;
        if (u.version == s->version_sent)
            return false;
        buf_addf(&b, "event: progress\nid: %lld\ndata: ", (long long)u.version);
        if (view_upload_text(st, &u, &b)) {
            buf_release(&b);
            return false;
        }
        s->version_sent = u.version;
        s->finished = u.finished_at != 0 || u.fatal[0] != '\0';
    }
    s->last_event_ms = time_mono_ms();
    buf_adds(&b, "\n\n");
    queue_out(s, buf_detach(&b, NULL));
    return true;
}

static bool stream_gone(struct stream *s)
{
    bool gone;

    pthread_mutex_lock(&hub.mu);
    gone = s->gone;
    pthread_mutex_unlock(&hub.mu);
    return gone;
}

/* An event went out less than a tick ago: a change since then waits for the
 * hub's next tick (at most 4 events a second however fast the upload moves).
 * Forgetting the version the hub saw makes that tick resume the stream. */
static bool too_soon(struct stream *s)
{
    if (!s->last_event_ms || time_mono_ms() - s->last_event_ms >= SSE_TICK_MS)
        return false;
    pthread_mutex_lock(&hub.mu);
    s->version_seen = -1;
    hub.kicked = true;  /* the next tick SSE_TICK_MS after the last, even with the feed live */
    pthread_cond_signal(&hub.cond);
    pthread_mutex_unlock(&hub.mu);
    return true;
}

static ssize_t reader(struct http_req *req, void *ctx, char *buf, size_t max)
{
    struct stream *s = ctx;

    if (stream_gone(s))
        return HTTP_STREAM_ERROR;  /* nobody reads: close without a last chunk */
    for (;;) {
        if (s->out && s->out_off < s->out_len) {
            size_t n = s->out_len - s->out_off < max ? s->out_len - s->out_off : max;
            memcpy(buf, s->out + s->out_off, n);
            s->out_off += n;
            return (ssize_t)n;
        }
        if (s->finished || http_stopping(req))
            return HTTP_STREAM_END;
        if (!too_soon(s) && next_event(req, s))
            continue;
        if (time_mono_ms() - s->last_write_ms >= SSE_HEARTBEAT_MS) {
            queue_out(s, xstrdup(": ping\n\n"));
            continue;
        }
        /* Nothing new: park until the hub sees a change (or the heartbeat is due). */
        http_suspend(req);
        return 0;
    }
}

static void stream_cleanup(struct http_req *req, void *ctx, bool completed)
{
    struct stream *s = ctx;

    (void)req;
    (void)completed;
    hub_remove(s);
    free(s->out);
    free(s);
}

void h_progress_stream(struct http_req *req)
{
    struct store_upload u;
    struct stream *s;
    int64_t id = pick_upload(req, &u);

    if (id < 0)
        return;
    s = xcalloc(1, sizeof(*s));
    s->req = req;
    s->upload_id = id;
    s->user_id = http_user(req)->id;
    s->version_sent = -1;
    s->version_seen = id ? u.version : -1;
    s->last_write_ms = s->last_wake_ms = time_mono_ms();
    if (hub_add(s)) {
        free(s);
        http_send_error(req, 429, "too many open progress streams; close some tabs");
        return;
    }
    http_set_ctx(req, s, stream_cleanup);
    http_add_header(req, "Cache-Control", "no-store");
    http_add_header(req, "X-Accel-Buffering", "no");
    http_send_stream(req, 200, "text/event-stream; charset=utf-8", reader, s);
}
