/*
 * guard: keeps idle and slow clients from holding the server's connections.
 * It knows connections only as sockets and phases; server.c tells it what
 * each connection is doing. It is not the per-address cap (libmicrohttpd's
 * MHD_OPTION_PER_IP_CONNECTION_LIMIT does that) nor the logged-in reserve
 * (server.c refuses anonymous requests past its own cap).
 *
 * Phases of one connection (set by server.c, checked by guard_sweep):
 *
 *   guard_open() --> WAITING --guard_request_begin(body)--> BODY --+
 *                      ^  |                                        |
 *                      |  +--guard_request_begin(!body)--+         |
 *                      |                                 v         v
 *                      +----guard_request_done()------ HANDLED <---+
 *                                                 (guard_request_handled)
 *   WAITING: no request head yet (new or keep-alive). Deadline: header_ms
 *            after the phase began, however many bytes trickle in.
 *   BODY:    reading a request body. Deadline: body_ms after the head, plus
 *            1 s for every body_rate bytes received.
 *   HANDLED: answering (or streaming): no deadline here; MHD's idle timeout.
 * A connection past its deadline is shut down (shutdown(2), not close: the
 * descriptor stays MHD's, which then sees end of file and cleans up).
 *
 * The waiting cap: at most wait_cap connections may be WAITING; opening one
 * more shuts down the one that has waited longest, so a flood of idle
 * connections can never lock out a new client (it only ages the flood out).
 *
 * Threads: every function may be called from any thread; g->mu guards the
 * list and every connection's fields. guard_new() starts one sweeper thread
 * that calls guard_sweep() every GUARD_TICK_MS.
 */
#ifndef SHOEBOX_HTTP_GUARD_H
#define SHOEBOX_HTTP_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct guard_opts {
    size_t wait_cap;      /* WAITING connections at most; 0 = no cap */
    int64_t header_ms;    /* WAITING deadline */
    int64_t body_ms;      /* BODY grace */
    int64_t body_rate;    /* bytes per second that buy one more second */
    bool no_thread;       /* tests: call guard_sweep() yourself */
};

struct guard;
struct guard_conn;

/* Starts the sweeper thread (unless o->no_thread). Free with guard_free(). */
int guard_new(const struct guard_opts *o, struct guard **out, struct err *err);
/* Stops the thread and frees; connections still open are forgotten. NULL: no-op. */
void guard_free(struct guard *g);

/* A new connection on socket fd, WAITING from now. May shut down the oldest
 * WAITING connection (the waiting cap). Never NULL; freed by guard_close(). */
struct guard_conn *guard_open(struct guard *g, int fd);
/* The connection is closing (before its descriptor is closed); frees c. */
void guard_close(struct guard *g, struct guard_conn *c);

/* A request head arrived; body: a request body follows. */
void guard_request_begin(struct guard *g, struct guard_conn *c, bool body);
/* n more body bytes arrived. */
void guard_body_progress(struct guard *g, struct guard_conn *c, size_t n);
/* The request is being answered: no deadline until it is done. */
void guard_request_handled(struct guard *g, struct guard_conn *c);
/* The request is over; the connection waits for the next (keep-alive). */
void guard_request_done(struct guard *g, struct guard_conn *c);

/* Shut down every connection whose deadline is before now_ms (monotonic).
 * Returns how many it shut down. */
size_t guard_sweep(struct guard *g, int64_t now_ms);
/* Counts, for logs and tests. */
size_t guard_waiting(struct guard *g);
size_t guard_open_count(struct guard *g);

#endif
