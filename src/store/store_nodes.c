/*
 * store_nodes: several server nodes on one database (store.h "several
 * nodes"), over sql.h: the change feed (a LISTEN connection of the driver,
 * fed by the uploads_changed trigger of migration 3; none on SQLite), the
 * nodes' heartbeats and the requests each node has open.
 */
#include "store/store_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"

#define FEED_CHANNEL "shoebox_uploads"

/* ---- the change feed ---- */

struct store_feed {
    struct sql_conn *conn;
};

static int feed_open(struct store *st, struct store_feed **out, struct err *err)
{
    const struct sql_driver *drv = sql_pool_driver(POOL(st));
    struct store_feed *f;

    *out = NULL;
    if (!drv->listen)
        return STORE_NOT_FOUND;
    f = xcalloc(1, sizeof(*f));
    if (sql_pool_open_extra(POOL(st), &f->conn, err) ||
        drv->listen(f->conn, FEED_CHANNEL, err)) {
        if (f->conn)
            drv->close(f->conn);
        free(f);
        return -1;
    }
    *out = f;
    return 0;
}

static int feed_fd(struct store *st, struct store_feed *f)
{
    (void)st;
    return f->conn->drv->listen_fd(f->conn);
}

struct feed_each {
    store_change_cb cb;
    void *ctx;
};

static void feed_payload(void *ctx, const char *payload)
{
    struct feed_each *e = ctx;
    int64_t id = 0, version = 0;

    if (sscanf(payload, "%" SCNd64 " %" SCNd64, &id, &version) == 2 && id > 0)
        e->cb(e->ctx, id, version);
}

static int feed_read(struct store *st, struct store_feed *f, store_change_cb cb, void *ctx,
                     struct err *err)
{
    struct feed_each e = {cb, ctx};

    (void)st;
    return f->conn->drv->listen_read(f->conn, feed_payload, &e, err);
}

static void feed_close(struct store *st, struct store_feed *f)
{
    (void)st;
    if (!f)
        return;
    f->conn->drv->close(f->conn);
    free(f);
}

/* ---- nodes ---- */

static int node_register(struct store *st, const char *node, int64_t now, struct err *err)
{
    if (!node || !*node || strlen(node) >= STORE_NODE_MAX)
        return err_set(err, ERR_PERMANENT, "store", "a node id must be 1 to %d bytes",
                       STORE_NODE_MAX - 1);
    if (sql_write1(POOL(st), MISSING_OK, "register the node",
                   "INSERT INTO nodes (id, started_at, heartbeat_at) VALUES (?1, ?2, ?2) "
                   "ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                   ARGS(VT(node), VI(now)), err))
        return -1;
    snprintf(NODE(st), STORE_NODE_MAX, "%s", node);
    return 0;
}

int rules_node_request(struct store *st, struct sql_conn *c, int64_t upload_id, int delta,
                       struct err *err)
{
    const char *node = NODE(st);

    if (!node[0])
        return 0;
    if (delta > 0)
        return sql_run(c, "count the node's request",
                       "INSERT INTO node_requests (node, upload_id, n) VALUES (?1, ?2, 1) "
                       "ON CONFLICT (node, upload_id) DO UPDATE SET n = node_requests.n + 1",
                       ARGS(VT(node), VI(upload_id)), err) < 0 ? -1 : 0;
    if (sql_run(c, "end the node's request", "UPDATE node_requests SET n = n - 1 "
                "WHERE node = ?1 AND upload_id = ?2", ARGS(VT(node), VI(upload_id)), err) < 0)
        return -1;
    return sql_run(c, "forget the node's request", "DELETE FROM node_requests "
                   "WHERE node = ?1 AND upload_id = ?2 AND n <= 0",
                   ARGS(VT(node), VI(upload_id)), err) < 0 ? -1 : 0;
}

struct gone_req {
    char node[STORE_NODE_MAX];
    int64_t upload_id, n;
};

struct gone_list {
    struct gone_req *v;
    size_t n, cap;
};

static void gone_row(struct sql_stmt *s, void *p)
{
    struct gone_list *l = p;

    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    sql_col_str(s, 0, l->v[l->n].node, sizeof(l->v[l->n].node));
    l->v[l->n].upload_id = sql_col_int64(s, 1);
    l->v[l->n].n = sql_col_int64(s, 2);
    l->n++;
}

/* Closes one gone node's requests into one upload (the upload locked first).
 * When no request is left, the upload goes on with the files it got (expected
 * becomes total), as after a restart; a client that sends the rest again
 * raises it again. */
static int close_gone(struct sql_conn *c, const struct gone_req *g, int64_t now,
                      struct err *err)
{
    if (rules_lock_upload(c, g->upload_id, err) ||
        sql_run(c, "close a gone node's requests",
                "UPDATE uploads SET expected = CASE WHEN open_requests > ?2 THEN expected "
                "ELSE total END, open_requests = CASE WHEN open_requests > ?2 "
                "THEN open_requests - ?2 ELSE 0 END, version = version + 1, updated_at = ?3 "
                "WHERE id = ?1", ARGS(VI(g->upload_id), VI(g->n), VI(now)), err) < 0 ||
        sql_run(c, "forget a gone node's requests",
                "DELETE FROM node_requests WHERE node = ?1 AND upload_id = ?2",
                ARGS(VT(g->node), VI(g->upload_id)), err) < 0 ||
        /* as upload_request_end: an upload that got no file is dropped */
        rules_delete_uploads(c, "delete an empty upload", "DELETE FROM uploads WHERE id = ?1 "
                             "AND open_requests = 0 AND total = 0",
                             ARGS(VI(g->upload_id)), err) < 0)
        return -1;
    return rules_check_finished(c, g->upload_id, now, NULL, err);
}

static int node_heartbeat(struct store *st, int64_t now, int64_t expire_before,
                          int64_t *expired, struct err *err)
{
    struct sql_conn *c = sql_pool_borrow(POOL(st), err);
    struct gone_list gone = {0};
    struct sql_stmt *s;
    int64_t n = 0;
    int rc = -1, r;

    if (expired)
        *expired = 0;
    if (!c)
        return -1;
    if (sql_begin(c, err))
        goto out;
    if (NODE(st)[0] &&
        sql_run(c, "beat the node's heart",
                "INSERT INTO nodes (id, started_at, heartbeat_at) VALUES (?1, ?2, ?2) "
                "ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                ARGS(VT(NODE(st)), VI(now)), err) < 0)
        goto out;
    /* The requests of nodes no longer alive, in upload order (the lock order). */
    s = sql_prepare(c, "find gone nodes' requests",
                    "SELECT node, upload_id, n FROM node_requests WHERE node <> ?1 "
                    "AND node NOT IN (SELECT id FROM nodes WHERE heartbeat_at >= ?2) "
                    "ORDER BY upload_id, node", ARGS(VT(NODE(st)), VI(expire_before)), err);
    if (!s)
        goto out;
    while ((r = sql_step(s, "find gone nodes' requests", err)) == 1)
        gone_row(s, &gone);
    if (r < 0)
        goto out;
    for (size_t i = 0; i < gone.n; i++)
        if (close_gone(c, &gone.v[i], now, err))
            goto out;
    n = sql_run(c, "forget gone nodes", "DELETE FROM nodes WHERE heartbeat_at < ?1 AND id <> ?2",
                ARGS(VI(expire_before), VT(NODE(st))), err);
    if (n < 0 || sql_commit(c, err))
        goto out;
    if (expired)
        *expired = n;
    rc = 0;
out:
    free(gone.v);
    sql_pool_give_back(POOL(st), c);
    return rc;
}

void rules_nodes_ops(struct store_ops *o)
{
    o->feed_open = feed_open;
    o->feed_fd = feed_fd;
    o->feed_read = feed_read;
    o->feed_close = feed_close;
    o->node_register = node_register;
    o->node_heartbeat = node_heartbeat;
}
