/*
 * sql: see sql.h. The pool of connections and the statement and operation
 * helpers, written once over any driver.
 *
 * DESIGN
 * Threads: any thread may borrow. p->mu guards p->free and p->count only; it
 * is held to pop or push a connection, never across a driver call. Waiters
 * for a connection sleep on p->cv. A connection the driver reports broken on
 * give-back is closed, and its place in the pool is freed for a new one.
 */
#include "store/sql.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fault.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "store/sql_pg.h"

struct sql_pool {
    const struct sql_driver *drv;
    char *location;
    unsigned flags;
    int max;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* signalled when a connection is returned */
    struct sql_conn *free;  /* mu */
    int count;              /* mu: connections open, free or borrowed */
};

/* ---- drivers ---- */

const struct sql_driver *sql_driver_for(const char *location, struct err *err)
{
    if (!location || !*location) {
        err_set(err, ERR_PERMANENT, "store", "no database location given");
        return NULL;
    }
    if (str_starts_with(location, "postgres://") || str_starts_with(location, "postgresql://"))
        return &sql_pg_driver;
    return &sql_sqlite_driver;
}

/* ---- the pool ---- */

int sql_pool_new(const struct sql_driver *drv, const char *location, unsigned flags,
                 int max_conns, struct sql_pool **out, struct err *err)
{
    struct sql_pool *p = xcalloc(1, sizeof(*p));
    struct sql_conn *c = NULL;

    *out = NULL;
    p->drv = drv;
    p->location = xstrdup(location);
    p->flags = flags;
    p->max = max_conns > 0 ? (max_conns < SQL_POOL_MAX ? max_conns : SQL_POOL_MAX)
                           : SQL_POOL_DEFAULT;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    c = sql_pool_borrow(p, err);
    if (!c) {
        sql_pool_free(p);
        return -1;
    }
    sql_pool_give_back(p, c);
    *out = p;
    return 0;
}

void sql_pool_free(struct sql_pool *p)
{
    if (!p)
        return;
    /* Every operation has returned its connection by now (callers' contract). */
    while (p->free) {
        struct sql_conn *c = p->free;
        p->free = c->next_;
        p->drv->close(c);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->location);
    free(p);
}

const struct sql_driver *sql_pool_driver(const struct sql_pool *p)
{
    return p->drv;
}

/* Gives up a place in the pool (a connection failed to open or broke). */
static void drop_place(struct sql_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->count--;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int sql_pool_open_extra(struct sql_pool *p, struct sql_conn **out, struct err *err)
{
    return p->drv->open(p->location, p->flags, out, err);
}

struct sql_conn *sql_pool_borrow(struct sql_pool *p, struct err *err)
{
    struct sql_conn *c = NULL;

    pthread_mutex_lock(&p->mu);
    while (!p->free && p->count >= p->max)
        pthread_cond_wait(&p->cv, &p->mu);
    if (p->free) {
        c = p->free;
        p->free = c->next_;
    } else {
        p->count++;
    }
    pthread_mutex_unlock(&p->mu);
    if (c)
        return c;
    if (p->drv->open(p->location, p->flags, &c, err) == 0)
        return c;
    drop_place(p);
    return NULL;
}

void sql_pool_give_back(struct sql_pool *p, struct sql_conn *c)
{
    if (!c)
        return;
    if (!p->drv->recycle(c)) {
        p->drv->close(c);
        drop_place(p);
        return;
    }
    pthread_mutex_lock(&p->mu);
    c->next_ = p->free;
    p->free = c;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* ---- statements ---- */

struct sql_stmt *sql_prepare(struct sql_conn *c, const char *what, const char *sql,
                             const struct sql_val *v, size_t n, struct err *err)
{
    struct sql_stmt *s = c->drv->prepare(c, sql, what, err);

    if (!s)
        return NULL;
    if (n && c->drv->bind(s, v, n, what, err)) {
        c->drv->reset(s);
        return NULL;
    }
    return s;
}

int sql_step(struct sql_stmt *s, const char *what, struct err *err)
{
    return s->conn->drv->step(s, what, err);
}

void sql_reset(struct sql_stmt *s)
{
    s->conn->drv->reset(s);
}

int64_t sql_run_unique(struct sql_conn *c, bool *unique, const char *what, const char *sql,
                       const struct sql_val *v, size_t n, struct err *err)
{
    struct sql_stmt *s = sql_prepare(c, what, sql, v, n, err);
    int r;

    if (unique)
        *unique = false;
    if (!s)
        return -1;
    r = c->drv->step(s, what, err);
    if (r == 1)
        c->drv->reset(s);
    if (r >= 0)
        return c->drv->changes(c);
    if (unique)
        *unique = c->drv->fail_kind(c) == SQL_FAIL_UNIQUE;
    return -1;
}

int64_t sql_run(struct sql_conn *c, const char *what, const char *sql, const struct sql_val *v,
                size_t n, struct err *err)
{
    return sql_run_unique(c, NULL, what, sql, v, n, err);
}

int sql_row1(struct sql_conn *c, struct sql_stmt **out, const char *what, const char *sql,
             const struct sql_val *v, size_t n, struct err *err)
{
    struct sql_stmt *s = sql_prepare(c, what, sql, v, n, err);
    int r;

    if (!s)
        return -1;
    r = c->drv->step(s, what, err);
    if (r == 1)
        *out = s;
    return r;
}

int sql_scalar(struct sql_conn *c, int64_t *out, const char *what, const char *sql,
               const struct sql_val *v, size_t n, struct err *err)
{
    struct sql_stmt *s = NULL;
    int r = sql_row1(c, &s, what, sql, v, n, err);

    if (r == 1) {
        *out = c->drv->col_int64(s, 0);
        c->drv->reset(s);
    }
    return r;
}

int64_t sql_col_int64(struct sql_stmt *s, int i)
{
    return s->conn->drv->col_int64(s, i);
}

double sql_col_double(struct sql_stmt *s, int i)
{
    return s->conn->drv->col_double(s, i);
}

const char *sql_col_text(struct sql_stmt *s, int i)
{
    return s->conn->drv->col_text(s, i);
}

int sql_col_count(struct sql_stmt *s)
{
    return s->conn->drv->col_count(s);
}

void sql_col_str(struct sql_stmt *s, int i, char *out, size_t n)
{
    snprintf(out, n, "%s", s->conn->drv->col_text(s, i));
}

/* ---- transactions ---- */

int sql_begin(struct sql_conn *c, struct err *err)
{
    return c->drv->begin_write(c, err);
}

/* Commit, or the "commit" fault point: roll back and fail as a transient error. */
int sql_commit(struct sql_conn *c, struct err *err)
{
    if (fault_hit("commit", NULL)) {
        c->drv->rollback(c);
        return err_set(err, ERR_TRANSIENT, "store", "cannot commit: injected fault");
    }
    return c->drv->commit(c, err);
}

void sql_rollback(struct sql_conn *c)
{
    c->drv->rollback(c);
}

int sql_read_begin(struct sql_conn *c, struct err *err)
{
    return c->drv->begin_read(c, err);
}

int sql_read_end(struct sql_conn *c, struct err *err)
{
    return c->drv->commit(c, err);
}

const char *sql_pick(const struct sql_conn *c, const char *sqlite, const char *pg)
{
    return c->drv->dialect == SQL_POSTGRES ? pg : sqlite;
}

/* ---- operations over a pool ---- */

int sql_get_one(struct sql_pool *p, const char *what, const char *sql, const struct sql_val *v,
                size_t n, sql_row_fn reader, void *out, struct err *err)
{
    struct sql_conn *c = sql_pool_borrow(p, err);
    struct sql_stmt *s = NULL;
    int r;

    if (!c)
        return -1;
    r = sql_row1(c, &s, what, sql, v, n, err);
    if (r == 1) {
        reader(s, out);
        c->drv->reset(s);
    }
    sql_pool_give_back(p, c);
    return r == 1 ? 0 : r == 0 ? 1 : -1;
}

int sql_list(struct sql_pool *p, const char *what, const char *sql, const struct sql_val *v,
             size_t n, sql_row_fn each, void *ctx, struct err *err)
{
    struct sql_conn *c = sql_pool_borrow(p, err);
    struct sql_stmt *s = NULL;
    int rc = -1;

    if (!c)
        return -1;
    s = sql_prepare(c, what, sql, v, n, err);
    if (!s)
        goto out;
    for (;;) {
        int r = c->drv->step(s, what, err);
        if (r < 0)
            goto out;
        if (r == 0)
            break;
        each(s, ctx);
    }
    rc = 0;
out:
    sql_pool_give_back(p, c);
    return rc;
}

int sql_write1(struct sql_pool *p, const char *missing, const char *what, const char *sql,
               const struct sql_val *v, size_t n, struct err *err)
{
    struct sql_conn *c = sql_pool_borrow(p, err);
    int64_t changed;
    int rc = -1;

    if (!c)
        return -1;
    if (sql_begin(c, err))
        goto out;
    changed = sql_run(c, what, sql, v, n, err);
    if (changed < 0)
        goto out;
    if (changed == 0 && missing && !*missing) {
        rc = 1;
        goto out;
    }
    if (changed == 0 && missing) {
        err_set(err, ERR_PERMANENT, "store", "cannot %s: %s", what, missing);
        goto out;
    }
    if (sql_commit(c, err))
        goto out;
    rc = 0;
out:
    sql_pool_give_back(p, c);
    return rc;
}

int sql_pool_scalar(struct sql_pool *p, int64_t *out, const char *what, const char *sql,
                    const struct sql_val *v, size_t n, struct err *err)
{
    struct sql_conn *c = sql_pool_borrow(p, err);
    int r;

    if (!c)
        return -1;
    r = sql_scalar(c, out, what, sql, v, n, err);
    sql_pool_give_back(p, c);
    return r;
}
