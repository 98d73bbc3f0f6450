/* store: see store.h. Picks the backend for a location; the backends live in
 * store_sqlite.c (and later store_pg.c). */
#include "store/store.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base/str.h"
#include "store/sql_pg.h"
#include "store/store_sqlite.h"

static int refuse_pg(const char *location, unsigned flags, struct store **out, struct err *err)
{
    (void)location, (void)flags, (void)out;
    /* Never echo the URL: it may hold a password. */
    return err_set(err, ERR_PERMANENT, "store",
                   "cannot open the PostgreSQL database: PostgreSQL support is not built yet");
}

static const struct {
    const char *prefix;
    int (*open)(const char *location, unsigned flags, struct store **out, struct err *err);
} backends[] = {
    {"postgres://", refuse_pg},
    {"postgresql://", refuse_pg},
    {"", store_sqlite_open},  /* anything else is a SQLite file path */
};

int store_open(const char *location, struct store **out, struct err *err)
{
    return store_open_flags(location, 0, out, err);
}

int store_open_flags(const char *location, unsigned flags, struct store **out, struct err *err)
{
    *out = NULL;
    if (!location || !*location)
        return err_set(err, ERR_PERMANENT, "store", "no database location given");
    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
        if (str_starts_with(location, backends[i].prefix))
            return backends[i].open(location, flags, out, err);
    }
    return err_set(err, ERR_PERMANENT, "store", "no backend for this database location");
}

static const char *const state_names[] = {
    [FILE_RECEIVED] = "received", [FILE_QUEUED] = "queued",       [FILE_PROCESSING] = "processing",
    [FILE_DONE] = "done",         [FILE_DUPLICATE] = "duplicate", [FILE_FAILED] = "failed",
};

const char *store_file_state_name(enum store_file_state s)
{
    if ((unsigned)s >= sizeof(state_names) / sizeof(state_names[0]))
        return "unknown";
    return state_names[s];
}

bool store_err_refuses_input(const struct err *e)
{
    return e->cls == ERR_PERMANENT && (!strcmp(e->stage, "limits") || !strcmp(e->stage, "sniff"));
}

bool store_location_is_url(const char *location)
{
    return location &&
           (str_starts_with(location, "postgres://") || str_starts_with(location, "postgresql://"));
}

void store_location_masked(const char *location, char *out, size_t n)
{
    if (store_location_is_url(location))
        sql_pg_mask_url(location, out, n);
    else
        snprintf(out, n, "%s", location ? location : "");
}
