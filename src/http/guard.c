/*
 * guard: see guard.h.
 *
 * DESIGN
 *   One list per phase, each in the order connections entered the phase, so
 *   the oldest WAITING connection is the head of its list and the sweep of
 *   WAITING stops at the first one still in time. BODY is walked whole (its
 *   deadlines move as bytes arrive); HANDLED is never walked.
 *   Lock: g->mu guards the lists, counts and every guard_conn. shutdown(2)
 *   is called under it, which is what makes it safe: guard_close() runs
 *   before MHD closes the descriptor, so a descriptor we shut down is never
 *   one that has been closed and reused.
 */
#include "http/guard.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "base/log.h"
#include "base/timeutil.h"
#include "base/xalloc.h"

/* How often the sweeper looks: deadlines are met to within a quarter second. */
#define GUARD_TICK_MS 250

enum phase { PH_WAITING, PH_BODY, PH_HANDLED, PH_COUNT };

struct guard_conn {
    int fd;
    enum phase phase;
    int64_t since_ms;     /* phase start (monotonic) */
    int64_t body_bytes;   /* BODY: received so far */
    bool cut;             /* shut down already */
    struct guard_conn *prev, *next;
};

struct list {
    struct guard_conn *head, *tail;
    size_t n;
};

struct guard {
    struct guard_opts o;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct list lists[PH_COUNT];  /* mu */
    bool stopping;                /* mu */
    bool has_thread;
    pthread_t thread;
};

static void list_push(struct list *l, struct guard_conn *c)
{
    c->next = NULL;
    c->prev = l->tail;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
    l->n++;
}

static void list_unlink(struct list *l, struct guard_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = NULL;
    l->n--;
}

/* Move c to the end of phase p's list, starting the phase now. Under mu. */
static void enter(struct guard *g, struct guard_conn *c, enum phase p)
{
    list_unlink(&g->lists[c->phase], c);
    c->phase = p;
    c->since_ms = time_mono_ms();
    c->body_bytes = 0;
    list_push(&g->lists[p], c);
}

/* Under mu. The descriptor is still open (see DESIGN). */
static void cut(struct guard_conn *c, const char *why)
{
    if (c->cut)
        return;
    c->cut = true;
    log_debug("http", "guard.cut", "fd=%d why=%s", c->fd, why);
    (void)shutdown(c->fd, SHUT_RDWR);
}

static int64_t body_deadline(const struct guard *g, const struct guard_conn *c)
{
    int64_t bought = g->o.body_rate > 0 ? c->body_bytes * 1000 / g->o.body_rate : 0;

    return c->since_ms + g->o.body_ms + bought;
}

size_t guard_sweep(struct guard *g, int64_t now_ms)
{
    size_t n = 0;

    pthread_mutex_lock(&g->mu);
    for (struct guard_conn *c = g->lists[PH_WAITING].head; c; c = c->next) {
        if (c->since_ms + g->o.header_ms > now_ms)
            break;  /* the list is in phase-start order: the rest are in time */
        if (!c->cut) {
            cut(c, "header-timeout");
            n++;
        }
    }
    for (struct guard_conn *c = g->lists[PH_BODY].head; c; c = c->next) {
        if (!c->cut && body_deadline(g, c) <= now_ms) {
            cut(c, "body-timeout");
            n++;
        }
    }
    pthread_mutex_unlock(&g->mu);
    if (n)
        log_info("http", "guard", "closed=%zu msg=\"slow or idle connections closed\"", n);
    return n;
}

static void *sweeper(void *arg)
{
    struct guard *g = arg;

    pthread_mutex_lock(&g->mu);
    while (!g->stopping) {
        struct timespec until = time_after_ms(CLOCK_MONOTONIC, GUARD_TICK_MS);

        pthread_cond_timedwait(&g->cond, &g->mu, &until);
        if (g->stopping)
            break;
        pthread_mutex_unlock(&g->mu);
        guard_sweep(g, time_mono_ms());
        pthread_mutex_lock(&g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

int guard_new(const struct guard_opts *o, struct guard **out, struct err *err)
{
    struct guard *g = xcalloc(1, sizeof(*g));
    pthread_condattr_t ca;

    g->o = *o;
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cond, &ca);
    pthread_condattr_destroy(&ca);
    *out = NULL;
    if (!o->no_thread) {
        if (pthread_create(&g->thread, NULL, sweeper, g) != 0) {
            guard_free(g);
            return err_set(err, ERR_TRANSIENT, "http", "cannot start the connection guard");
        }
        g->has_thread = true;
    }
    *out = g;
    return 0;
}

void guard_free(struct guard *g)
{
    if (!g)
        return;
    if (g->has_thread) {
        pthread_mutex_lock(&g->mu);
        g->stopping = true;
        pthread_cond_signal(&g->cond);
        pthread_mutex_unlock(&g->mu);
        pthread_join(g->thread, NULL);
    }
    for (int p = 0; p < PH_COUNT; p++) {
        while (g->lists[p].head) {
            struct guard_conn *c = g->lists[p].head;
            list_unlink(&g->lists[p], c);
            free(c);
        }
    }
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

struct guard_conn *guard_open(struct guard *g, int fd)
{
    struct guard_conn *c = xcalloc(1, sizeof(*c));
    struct list *w = &g->lists[PH_WAITING];

    c->fd = fd;
    c->phase = PH_WAITING;
    c->since_ms = time_mono_ms();
    pthread_mutex_lock(&g->mu);
    /* Make room: the longest waiter goes (those already cut are on their way out). */
    for (struct guard_conn *old = w->head; old && g->o.wait_cap && w->n >= g->o.wait_cap;
         old = w->head) {
        if (!old->cut)
            cut(old, "waiting-cap");
        list_unlink(w, old);
        old->phase = PH_COUNT;  /* in no list until guard_close() */
    }
    list_push(w, c);
    pthread_mutex_unlock(&g->mu);
    return c;
}

void guard_close(struct guard *g, struct guard_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    if (c->phase != PH_COUNT)
        list_unlink(&g->lists[c->phase], c);
    pthread_mutex_unlock(&g->mu);
    free(c);
}

/* Phase change, unless the connection was pushed out (it stays out). */
static void move(struct guard *g, struct guard_conn *c, enum phase p)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    if (c->phase != PH_COUNT)
        enter(g, c, p);
    pthread_mutex_unlock(&g->mu);
}

void guard_request_begin(struct guard *g, struct guard_conn *c, bool body)
{
    move(g, c, body ? PH_BODY : PH_HANDLED);
}

void guard_request_handled(struct guard *g, struct guard_conn *c)
{
    move(g, c, PH_HANDLED);
}

void guard_request_done(struct guard *g, struct guard_conn *c)
{
    move(g, c, PH_WAITING);
}

void guard_body_progress(struct guard *g, struct guard_conn *c, size_t n)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    if (c->phase == PH_BODY)
        c->body_bytes += (int64_t)n;
    pthread_mutex_unlock(&g->mu);
}

static size_t count(struct guard *g, int first, int last)
{
    size_t n = 0;

    pthread_mutex_lock(&g->mu);
    for (int p = first; p <= last; p++)
        n += g->lists[p].n;
    pthread_mutex_unlock(&g->mu);
    return n;
}

size_t guard_waiting(struct guard *g)
{
    return count(g, PH_WAITING, PH_WAITING);
}

size_t guard_open_count(struct guard *g)
{
    return count(g, PH_WAITING, PH_HANDLED);
}
