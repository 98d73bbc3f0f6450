/* feed: see feed.h. */
#include "jobs/feed.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/log.h"
#include "base/xalloc.h"
#include "store/store.h"

#define REOPEN_PAUSE_MS 1000

struct feed {
    struct store *st;
    struct feed_opts o;
    struct store_feed *sf;  /* feed thread only (and start/stop) */
    int stop_pipe[2];
    pthread_t thread;
};

/* Waits for the stop pipe for ms (or forever when fd >= 0 is readable first):
 * 1 stop, 0 fd readable or the time passed. */
static int wait_on(struct feed *f, int fd, int ms)
{
    struct pollfd p[2] = {{.fd = f->stop_pipe[0], .events = POLLIN},
                          {.fd = fd, .events = POLLIN}};

    for (;;) {
        int r = poll(p, fd >= 0 ? 2 : 1, ms);
        if (r < 0 && errno == EINTR)
            continue;
        return r > 0 && (p[0].revents & (POLLIN | POLLHUP)) ? 1 : 0;
    }
}

static void *run(void *arg)
{
    struct feed *f = arg;
    struct err err = {0};

    for (;;) {
        if (!f->sf) {
            if (wait_on(f, -1, REOPEN_PAUSE_MS))
                break;
            int rc = f->st->ops->feed_open(f->st, &f->sf, &err);
            if (rc) {
                log_debug("jobs", "feed.reopen_failed", "msg=%s", LOG_Q(err.msg));
                continue;
            }
            log_info("jobs", "feed.reopened", "channel=uploads");
            if (f->o.on_state)
                f->o.on_state(f->o.ctx, true);
            f->o.on_change(f->o.ctx, 0, 0);
        }
        if (wait_on(f, f->st->ops->feed_fd(f->st, f->sf), -1))
            break;
        if (f->st->ops->feed_read(f->st, f->sf, f->o.on_change, f->o.ctx, &err)) {
            log_warn("jobs", "feed.lost", "msg=%s", LOG_Q(err.msg));
            f->st->ops->feed_close(f->st, f->sf);
            f->sf = NULL;
            if (f->o.on_state)
                f->o.on_state(f->o.ctx, false);
        }
    }
    return NULL;
}

int feed_start(struct store *st, const struct feed_opts *o, struct feed **out, struct err *err)
{
    struct feed *f;
    int rc;

    *out = NULL;
    if (!st->ops->feed_open)
        return 0;
    f = xcalloc(1, sizeof(*f));
    f->st = st;
    f->o = *o;
    rc = st->ops->feed_open(st, &f->sf, err);
    if (rc == STORE_NOT_FOUND) {
        free(f);
        return 0;
    }
    if (rc) {
        free(f);
        return -1;
    }
    if (pipe2(f->stop_pipe, O_CLOEXEC) < 0) {
        st->ops->feed_close(st, f->sf);
        free(f);
        return err_sys(err, errno, "jobs", "cannot start the change feed");
    }
    if (pthread_create(&f->thread, NULL, run, f) != 0) {
        close(f->stop_pipe[0]);
        close(f->stop_pipe[1]);
        st->ops->feed_close(st, f->sf);
        free(f);
        return err_set(err, ERR_TRANSIENT, "jobs", "cannot start the change feed thread");
    }
    if (o->on_state)
        o->on_state(o->ctx, true);
    log_info("jobs", "feed.listening", "channel=uploads");
    *out = f;
    return 0;
}

void feed_stop(struct feed *f)
{
    if (!f)
        return;
    close(f->stop_pipe[1]);
    pthread_join(f->thread, NULL);
    close(f->stop_pipe[0]);
    if (f->sf)
        f->st->ops->feed_close(f->st, f->sf);
    free(f);
}
