/*
 * store_sql: the store's rules over a SQL driver (sql.h): the constructor,
 * close, the schema version and the ops table put together from the area
 * files (store_internal.h lists them). Which database is behind the pool is
 * the driver's business.
 */
#include "store/store_internal.h"

#include <stdlib.h>

#include "base/xalloc.h"
#include "store/migrations.h"
#include "store/store_sqlite.h"

int rules_get_one(struct store *st, const char *what, const char *sql, const struct sql_val *v,
                  size_t n, sql_row_fn reader, void *out, struct err *err)
{
    int r = sql_get_one(POOL(st), what, sql, v, n, reader, out, err);

    return r == 1 ? STORE_NOT_FOUND : r;
}

static void rules_close(struct store *st)
{
    struct rules *r = (struct rules *)st;

    if (!r)
        return;
    if (r->mark_conn)
        r->mark_conn->drv->close(r->mark_conn);
    pthread_mutex_destroy(&r->mark_mu);
    sql_pool_free(r->pool);
    free(r);
}

static int schema_version(struct store *st, int64_t *version, struct err *err)
{
    struct sql_conn *c = sql_pool_borrow(POOL(st), err);
    int rc;

    if (!c)
        return -1;
    rc = c->drv->version_get(c, version, err);
    sql_pool_give_back(POOL(st), c);
    return rc;
}

static bool rules_shared(struct store *st)
{
    return (sql_pool_driver(POOL(st))->caps & SQL_CAP_SHARED) != 0;
}

/* The driver's change mark over a connection of its own, opened at the first
 * call (a store that never asks, as a worker's, opens none). */
static uint64_t change_mark(struct store *st)
{
    struct rules *r = (struct rules *)st;
    const struct sql_driver *drv = sql_pool_driver(r->pool);
    struct err err = {0};
    int state = atomic_load(&r->mark_state);

    if (state == 0 && drv->mark_init) {
        pthread_mutex_lock(&r->mark_mu);
        if (atomic_load(&r->mark_state) == 0) {
            struct sql_conn *c = NULL;
            bool ok = sql_pool_open_extra(r->pool, &c, &err) == 0 && drv->mark_init(c);
            if (!ok && c)
                drv->close(c);
            r->mark_conn = ok ? c : NULL;
            atomic_store(&r->mark_state, ok ? 1 : -1);
        }
        pthread_mutex_unlock(&r->mark_mu);
        state = atomic_load(&r->mark_state);
    }
    return state == 1 ? drv->change_mark(r->mark_conn) : 0;
}

static void fill_ops(struct store_ops *o)
{
    o->close = rules_close;
    o->shared = rules_shared;
    o->schema_version = schema_version;
    o->change_mark = change_mark;
    rules_users_ops(o);
    rules_sessions_ops(o);
    rules_uploads_ops(o);
    rules_files_ops(o);
    rules_leases_ops(o);
    rules_photos_ops(o);
    rules_sched_ops(o);
    rules_nodes_ops(o);
}

static int migrate(struct sql_pool *pool, struct err *err)
{
    struct sql_conn *c = sql_pool_borrow(pool, err);
    int rc;

    if (!c)
        return -1;
    rc = migrations_apply(c, NULL, err);
    sql_pool_give_back(pool, c);
    return rc;
}

int rules_open(const struct sql_driver *drv, const char *location, unsigned flags,
               struct store **out, struct err *err)
{
    return rules_open_pool(drv, location, flags, 0, out, err);
}

int rules_open_pool(const struct sql_driver *drv, const char *location, unsigned flags,
                    int pool_conns, struct store **out, struct err *err)
{
    struct rules *r = xcalloc(1, sizeof(*r));
    unsigned sql_flags = (flags & STORE_RELAXED_SYNC) ? SQL_RELAXED_SYNC : 0;

    *out = NULL;
    fill_ops(&r->ops);
    r->base.ops = &r->ops;
    pthread_mutex_init(&r->mark_mu, NULL);
    if (sql_pool_new(drv, location, sql_flags, pool_conns, &r->pool, err) ||
        migrate(r->pool, err)) {
        rules_close(&r->base);
        return -1;
    }
    *out = &r->base;
    return 0;
}

int store_sqlite_open(const char *path, unsigned flags, struct store **out, struct err *err)
{
    return rules_open(&sql_sqlite_driver, path, flags, out, err);
}
