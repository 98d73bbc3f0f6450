/* store: see store.h. Picks the SQL driver for a location (sql_driver_for) and
 * opens the store's rules over it (store_sql.c). */
#include "store/store.h"

#include <stddef.h>
#include <string.h>

#include "store/store_internal.h"

int store_open(const char *location, struct store **out, struct err *err)
{
    return store_open_flags(location, 0, out, err);
}

int store_open_flags(const char *location, unsigned flags, struct store **out, struct err *err)
{
    const struct sql_driver *drv = sql_driver_for(location, err);

    *out = NULL;
    if (!drv)
        return -1;
    return rules_open(drv, location, flags, out, err);
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
