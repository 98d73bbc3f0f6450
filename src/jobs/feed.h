/*
 * feed: a node's ear on the store's change feed (store.h feed_open): one
 * thread that waits on the feed's descriptor and calls on_change(ctx, upload
 * id, version) for every upload change any node commits (PostgreSQL LISTEN).
 * On a lost feed it says so (on_state(ctx, false)), reopens it after a pause,
 * and then calls on_change(ctx, 0, 0): anything may have changed meanwhile.
 * Without a feed (SQLite) no thread runs: everything polls, as before.
 */
#ifndef SHOEBOX_JOBS_FEED_H
#define SHOEBOX_JOBS_FEED_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"

struct store;
struct feed;

struct feed_opts {
    void (*on_change)(void *ctx, int64_t upload_id, int64_t version);
    void (*on_state)(void *ctx, bool live);  /* may be NULL */
    void *ctx;
};

/* *out NULL (and 0) when the store has no feed. */
int feed_start(struct store *st, const struct feed_opts *o, struct feed **out, struct err *err);
/* Stops the thread and closes the feed. NULL is a no-op. */
void feed_stop(struct feed *f);

#endif
