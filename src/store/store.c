/* store: see store.h. Picks the SQL driver for a location (sql_driver_for) and
 * opens the store's rules over it (store_sql.c). */
#include "store/store.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base/str.h"
#include "store/sql_pg.h"
#include "store/store_internal.h"

int store_open(const char *location, struct store **out, struct err *err)
{
    return store_open_flags(location, 0, out, err);
}

int store_open_flags(const char *location, unsigned flags, struct store **out, struct err *err)
{
    return store_open_pool(location, flags, 0, out, err);
}

int store_open_pool(const char *location, unsigned flags, int pool_conns, struct store **out,
                    struct err *err)
{
    const struct sql_driver *drv = sql_driver_for(location, err);

    *out = NULL;
    if (!drv)
        return -1;
    return rules_open_pool(drv, location, flags, pool_conns, out, err);
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
