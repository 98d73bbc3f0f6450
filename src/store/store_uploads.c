/*
 * store_uploads: the upload rules of store.h over sql.h: create, read, list,
 * requests beginning and ending, bytes, recording a new file, clearing, the
 * start-up and idle sweeps, and the upload counters every transition updates
 * in its own transaction (rules_bump and the finish tests).
 */
#include "store/store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/metrics.h"
#include "base/xalloc.h"

/* ---- counters ---- */

int rules_lock_upload(struct sql_conn *c, int64_t upload_id, struct err *err)
{
    int64_t id = 0;

    if (!(c->drv->caps & SQL_CAP_ROW_LOCKS))
        return 0;  /* the write transaction is already exclusive */
    return sql_scalar(c, &id, "lock the upload", "SELECT id FROM uploads WHERE id = ?1 "
                      "FOR UPDATE", ARGS(VI(upload_id)), err) < 0 ? -1 : 0;
}

int rules_lock_file_upload(struct sql_conn *c, int64_t file_id, struct err *err)
{
    int64_t upload_id = 0;
    int r;

    if (!(c->drv->caps & SQL_CAP_ROW_LOCKS))
        return 0;
    r = sql_scalar(c, &upload_id, "find the file's upload",
                   "SELECT upload_id FROM upload_files WHERE id = ?1 FOR NO KEY UPDATE",
                   ARGS(VI(file_id)), err);
    if (r <= 0)
        return r;
    return rules_lock_upload(c, upload_id, err);
}

int rules_bump(struct sql_conn *c, int64_t upload_id, const struct rules_delta *d, int64_t now,
               struct err *err)
{
    int64_t n = sql_run(c, "update the upload's counters",
                        "UPDATE uploads SET total = total + ?2, processed = processed + ?3, "
                        "uploaded = uploaded + ?4, failed = failed + ?5, "
                        "duplicates = duplicates + ?6, queued_files = queued_files + ?7, "
                        "finished_at = CASE WHEN ?8 <> 0 THEN 0 ELSE finished_at END, "
                        "version = version + 1, updated_at = ?9 WHERE id = ?1",
                        ARGS(VI(upload_id), VI(d->total), VI(d->processed), VI(d->uploaded),
                             VI(d->failed), VI(d->duplicates), VI(d->queued), VI(d->reopen),
                             VI(now)),
                        err);
    if (n < 0)
        return -1;
    if (n == 0)
        return err_set(err, ERR_PERMANENT, "store", "upload %lld does not exist",
                       (long long)upload_id);
    return 0;
}

int rules_check_finished(struct sql_conn *c, int64_t upload_id, int64_t now, bool *finished,
                         struct err *err)
{
    int64_t n = sql_run(c, "finish the upload",
                        "UPDATE uploads SET finished_at = ?2, version = version + 1, "
                        "updated_at = ?2 WHERE id = ?1 AND finished_at = 0 "
                        "AND open_requests = 0 AND total >= expected AND processed = total",
                        ARGS(VI(upload_id), VI(now)), err);
    if (n < 0)
        return -1;
    if (finished)
        *finished = n > 0;
    return 0;
}

int rules_check_batch_end(struct sql_conn *c, int64_t upload_id, int64_t now, struct err *err)
{
    return sql_run(c, "end the batch",
                   "UPDATE uploads SET last_batch_end_at = ?2 WHERE id = ?1 "
                   "AND current_batch > 0 AND NOT EXISTS (SELECT 1 FROM upload_files f "
                   "WHERE f.upload_id = ?1 AND f.state IN ('queued', 'processing') "
                   "AND f.batch_no = uploads.current_batch)",
                   ARGS(VI(upload_id), VI(now)), err) < 0 ? -1 : 0;
}

/* ---- uploads ---- */

#define UPLOAD_COLS \
    "id, user_id, created_at, updated_at, finished_at, expected, open_requests, total, " \
    "processed, uploaded, failed, duplicates, queued_files, current_batch, batch_size, " \
    "bytes_received, bytes_total, last_batch_end_at, version, cleared, fatal"

static void read_upload(struct sql_stmt *s, struct store_upload *u)
{
    int64_t *ints[] = {&u->id, &u->user_id, &u->created_at, &u->updated_at, &u->finished_at,
                       &u->expected, &u->open_requests, &u->total, &u->processed, &u->uploaded,
                       &u->failed, &u->duplicates, &u->queued_files, &u->current_batch,
                       &u->batch_size, &u->bytes_received, &u->bytes_total,
                       &u->last_batch_end_at, &u->version};

    memset(u, 0, sizeof(*u));
    for (int i = 0; i < (int)(sizeof(ints) / sizeof(ints[0])); i++)
        *ints[i] = sql_col_int64(s, i);
    u->cleared = sql_col_int64(s, 19) != 0;
    sql_col_str(s, 20, u->fatal, sizeof(u->fatal));
}

static void upload_row(struct sql_stmt *s, void *out)
{
    read_upload(s, out);
}

/* "upload N does not exist" into buf, for sql_write1. */
static const char *no_upload(char *buf, size_t n, int64_t id)
{
    snprintf(buf, n, "upload %lld does not exist", (long long)id);
    return buf;
}

/* Inside c's transaction: one more request sends into upload id (its node's). */
static int begin_request(struct store *st, struct sql_conn *c, int64_t id, int64_t expected,
                         int64_t bytes_total, int64_t now, struct err *err)
{
    int64_t n = sql_run(c, "start a request",
                        "UPDATE uploads SET open_requests = open_requests + 1, "
                        "expected = CASE WHEN ?2 > expected THEN ?2 ELSE expected END, "
                        "bytes_total = bytes_total + CASE WHEN ?3 > 0 THEN ?3 ELSE 0 END, "
                        "finished_at = 0, version = version + 1, updated_at = ?4 WHERE id = ?1",
                        ARGS(VI(id), VI(expected), VI(bytes_total), VI(now)), err);

    if (n < 0)
        return -1;
    if (n == 0) {
        char missing[64];

        return err_set(err, ERR_PERMANENT, "store", "cannot start a request: %s",
                       no_upload(missing, sizeof(missing), id));
    }
    /* The request is this node's: it ends with the node (node_heartbeat). */
    return rules_node_request(st, c, id, +1, err);
}

/* Inserts a new upload inside c's transaction. */
static int insert_upload(struct sql_conn *c, int64_t user_id, int64_t expected,
                         int64_t batch_size, int64_t now, int64_t *id, struct err *err)
{
    if (batch_size < 1 || expected < 0 || expected > LIMIT_UPLOAD_FILES)
        return err_set(err, ERR_PERMANENT, "store",
                       "cannot create upload: batch size %lld or expected files %lld out of range",
                       (long long)batch_size, (long long)expected);
    return sql_scalar(c, id, "create an upload", "INSERT INTO uploads (user_id, created_at, "
                      "updated_at, expected, batch_size) VALUES (?1, ?2, ?2, ?3, ?4) RETURNING id",
                      ARGS(VI(user_id), VI(now), VI(expected), VI(batch_size)), err) == 1 ? 0 : -1;
}

/* A new upload; with bytes_total >= 0 also its first request (upload_open), in the
 * same transaction, so a failure leaves no upload that nothing sends into. */
static int create(struct store *st, int64_t user_id, int64_t expected, int64_t batch_size,
                  int64_t bytes_total, int64_t now, int64_t *id, struct err *err)
{
    struct sql_conn *c = sql_pool_borrow(POOL(st), err);
    int64_t new_id = 0;
    int rc = -1;

    if (!c)
        return -1;
    if (sql_begin(c, err) || insert_upload(c, user_id, expected, batch_size, now, &new_id, err) ||
        (bytes_total >= 0 && begin_request(st, c, new_id, expected, bytes_total, now, err)) ||
        sql_commit(c, err))
        goto out;
    if (id)
        *id = new_id;
    metrics_add(METRICS_UPLOADS, 1);
    rc = 0;
out:
    sql_pool_give_back(POOL(st), c);
    return rc;
}

static int upload_create(struct store *st, int64_t user_id, int64_t expected,
                         int64_t batch_size, int64_t now, int64_t *id, struct err *err)
{
    return create(st, user_id, expected, batch_size, -1, now, id, err);
}

static int upload_open(struct store *st, int64_t user_id, int64_t expected, int64_t batch_size,
                       int64_t bytes_total, int64_t now, int64_t *id, struct err *err)
{
    return create(st, user_id, expected, batch_size, bytes_total < 0 ? 0 : bytes_total, now, id,
                  err);
}

static int upload_get(struct store *st, int64_t id, int64_t user_id, struct store_upload *out,
                      struct err *err)
{
    return rules_get_one(st, "read the upload", "SELECT " UPLOAD_COLS " FROM uploads "
                         "WHERE id = ?1 AND (?2 = 0 OR user_id = ?2)",
                         ARGS(VI(id), VI(user_id)), upload_row, out, err);
}

struct each_upload {
    store_upload_cb cb;
    void *ctx;
};

static void each_upload(struct sql_stmt *s, void *p)
{
    struct each_upload *e = p;
    struct store_upload u;

    read_upload(s, &u);
    e->cb(e->ctx, &u);
}

static int upload_list(struct store *st, int64_t user_id, int64_t limit, store_upload_cb cb,
                       void *ctx, struct err *err)
{
    struct each_upload e = {cb, ctx};

    return sql_list(POOL(st), "list uploads", "SELECT " UPLOAD_COLS " FROM uploads "
                    "WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2",
                    ARGS(VI(user_id), VI(limit > 0 ? limit : SQL_NO_LIMIT)), each_upload, &e,
                    err);
}

/* A new request reopens a finished upload: more files may come. */
static int upload_request_begin(struct store *st, int64_t id, int64_t expected,
                                int64_t bytes_total, int64_t now, struct err *err)
{
    struct sql_conn *c;
    int rc = -1;

    if (expected > LIMIT_UPLOAD_FILES)
        return err_set(err, ERR_PERMANENT, "store", "an upload may announce at most %d files",
                       LIMIT_UPLOAD_FILES);
    c = sql_pool_borrow(POOL(st), err);
    if (!c)
        return -1;
    if (sql_begin(c, err) == 0 && begin_request(st, c, id, expected, bytes_total, now, err) == 0 &&
        sql_commit(c, err) == 0)
        rc = 0;
    sql_pool_give_back(POOL(st), c);
    return rc;
}

int64_t rules_delete_uploads(struct sql_conn *c, const char *what, const char *sql,
                             const struct sql_val *v, size_t n, struct err *err)
{
    int64_t d = sql_run(c, what, sql, v, n, err);

    if (d <= 0)
        return d;
    if (sql_run(c, "forget deleted uploads", "UPDATE sessions SET current_upload = 0 "
                "WHERE current_upload <> 0 AND NOT EXISTS (SELECT 1 FROM uploads "
                "WHERE uploads.id = sessions.current_upload)", NOARGS, err) < 0)
        return -1;
    return d;
}

/* An upload no request sends into and without any file is deleted: its first
 * request was cut off before a file was complete, and an empty upload would only
 * show as "failed" with no reason. */
static int drop_empty(struct sql_conn *c, int64_t id, struct err *err)
{
    int64_t d = rules_delete_uploads(c, "delete an empty upload", "DELETE FROM uploads "
                                     "WHERE id = ?1 AND open_requests = 0 AND total = 0",
                                     ARGS(VI(id)), err);

    return d < 0 ? -1 : 0;
}

static int upload_request_end(struct store *st, int64_t id, int64_t now, struct err *err)
{
    struct sql_conn *c = sql_pool_borrow(POOL(st), err);
    int64_t n;
    int rc = -1;

    if (!c)
        return -1;
    if (sql_begin(c, err))
        goto out;
    n = sql_run(c, "end a request", "UPDATE uploads SET open_requests = CASE "
                "WHEN open_requests > 1 THEN open_requests - 1 ELSE 0 END, "
                "version = version + 1, updated_at = ?2 WHERE id = ?1", ARGS(VI(id), VI(now)),
                err);
    if (n < 0)
        goto out;
    if (n == 0) {
        err_set(err, ERR_PERMANENT, "store", "cannot end a request: upload %lld does not exist",
                (long long)id);
        goto out;
    }
    if (rules_node_request(st, c, id, -1, err) || drop_empty(c, id, err) ||
        rules_check_finished(c, id, now, NULL, err) || sql_commit(c, err))
        goto out;
    rc = 0;
out:
    sql_pool_give_back(POOL(st), c);
    return rc;
}

static int upload_add_bytes(struct store *st, int64_t id, int64_t bytes, int64_t now,
                            struct err *err)
{
    char missing[64];

    return sql_write1(POOL(st), no_upload(missing, sizeof(missing), id), "count received bytes",
                      "UPDATE uploads SET bytes_received = bytes_received + ?2, "
                      "version = version + 1, updated_at = ?3 WHERE id = ?1",
                      ARGS(VI(id), VI(bytes), VI(now)), err);
}

static int upload_set_cleared(struct store *st, int64_t id, bool cleared, struct err *err)
{
    char missing[64];

    return sql_write1(POOL(st), no_upload(missing, sizeof(missing), id),
                      "clear the upload's progress",
                      "UPDATE uploads SET cleared = ?2, version = version + 1 WHERE id = ?1",
                      ARGS(VI(id), VI(cleared)), err);
}

/* Uploads whose only missing piece was the end of a request are finished now. */
static const char finish_all[] =
    "UPDATE uploads SET finished_at = ?1, version = version + 1, updated_at = ?1 "
    "WHERE finished_at = 0 AND open_requests = 0 AND total >= expected AND processed = total";

static bool kept(int64_t id, const int64_t *keep, size_t n_keep)
{
    for (size_t i = 0; i < n_keep; i++)
        if (keep[i] == id)
            return true;
    return false;
}

/* The restart's drop_empty, run before the open requests are reset: an upload
 * without a file goes when a request into it was cut off (as at its end) or when
 * it has not changed since drop_before, unless it is in keep. An upload without
 * requests may be one POST /api/uploads just opened for files still on their way
 * (tus); one a tus file points to gets that file when it completes. */
static int drop_empty_at_start(struct sql_conn *c, int64_t drop_before, const int64_t *keep,
                               size_t n_keep, struct err *err)
{
    int64_t *ids = NULL;
    size_t n = 0, cap = 0;
    struct sql_stmt *s;
    int r, rc = -1;

    s = sql_prepare(c, "find empty uploads", "SELECT id FROM uploads WHERE total = 0 AND "
                    "(open_requests <> 0 OR updated_at < ?1)", ARGS(VI(drop_before)), err);
    if (!s)
        return -1;
    while ((r = sql_step(s, "find empty uploads", err)) == 1) {
        int64_t id = sql_col_int64(s, 0);
        if (kept(id, keep, n_keep))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            ids = xrealloc(ids, cap * sizeof(*ids));
        }
        ids[n++] = id;
    }
    sql_reset(s);
    if (r < 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (rules_delete_uploads(c, "delete an empty upload", "DELETE FROM uploads "
                                 "WHERE id = ?1 AND total = 0", ARGS(VI(ids[i])), err) < 0)
            goto out;
    rc = 0;
out:
    free(ids);
    return rc;
}

static int upload_reset_requests(struct store *st, int64_t now, int64_t drop_before,
                                 const int64_t *keep, size_t n_keep, struct err *err)
{
    struct sql_conn *c = sql_pool_borrow(POOL(st), err);
    int rc = -1;

    if (!c)
        return -1;
    if (sql_begin(c, err))
        goto out;
    if (drop_empty_at_start(c, drop_before, keep, n_keep, err))
        goto out;
    if (sql_run(c, "reset open requests", "UPDATE uploads SET open_requests = 0, "
                "version = version + 1, updated_at = ?1 WHERE open_requests <> 0",
                ARGS(VI(now)), err) < 0)
        goto out;
    if (sql_run(c, "finish uploads", finish_all, ARGS(VI(now)), err) < 0)
        goto out;
    if (sql_commit(c, err))
        goto out;
    rc = 0;
out:
    sql_pool_give_back(POOL(st), c);
    return rc;
}

static int upload_close_idle(struct store *st, int64_t idle_before, int64_t empty_before,
                             int64_t now, int64_t *closed, int64_t *dropped, struct err *err)
{
    struct sql_conn *c = sql_pool_borrow(POOL(st), err);
    int64_t n, d;
    int rc = -1;

    *closed = *dropped = 0;
    if (!c)
        return -1;
    if (sql_begin(c, err))
        goto out;
    n = sql_run(c, "close idle uploads", "UPDATE uploads SET expected = total, "
                "version = version + 1, updated_at = ?2 WHERE finished_at = 0 "
                "AND open_requests = 0 AND total > 0 AND total < expected AND updated_at < ?1",
                ARGS(VI(idle_before), VI(now)), err);
    if (n < 0)
        goto out;
    if (n > 0 && sql_run(c, "finish uploads", finish_all, ARGS(VI(now)), err) < 0)
        goto out;
    d = rules_delete_uploads(c, "drop empty idle uploads", "DELETE FROM uploads "
                             "WHERE finished_at = 0 AND open_requests = 0 AND total = 0 "
                             "AND updated_at < ?1", ARGS(VI(empty_before)), err);
    if (d < 0 || sql_commit(c, err))
        goto out;
    *closed = n;
    *dropped = d;
    rc = 0;
out:
    sql_pool_give_back(POOL(st), c);
    return rc;
}

/* Inside c's transaction, after a file less is expected: finish the upload when
 * that was all it waited for, or delete it when it is left with nothing at all. */
static int after_drop(struct sql_conn *c, int64_t id, int64_t now, bool *deleted,
                      struct err *err)
{
    int64_t d = rules_delete_uploads(c, "delete an upload left empty", "DELETE FROM uploads "
                                     "WHERE id = ?1 AND expected = 0 AND total = 0 "
                                     "AND open_requests = 0", ARGS(VI(id)), err);

    if (d < 0)
        return -1;
    *deleted = d > 0;
    return d == 0 ? rules_check_finished(c, id, now, NULL, err) : 0;
}

static int upload_drop_expected(struct store *st, int64_t id, int64_t now, bool *lowered,
                                bool *deleted, struct err *err)
{
    struct sql_conn *c = sql_pool_borrow(POOL(st), err);
    int64_t n, found = 0;
    int rc = -1;

    *lowered = *deleted = false;
    if (!c)
        return -1;
    if (sql_begin(c, err) || rules_lock_upload(c, id, err))
        goto out;
    n = sql_run(c, "expect one file less", "UPDATE uploads SET expected = expected - 1, "
                "version = version + 1, updated_at = ?2 WHERE id = ?1 AND expected > total",
                ARGS(VI(id), VI(now)), err);
    if (n < 0)
        goto out;
    if (n == 0) {
        int r = sql_scalar(c, &found, "read the upload", "SELECT id FROM uploads WHERE id = ?1",
                           ARGS(VI(id)), err);
        if (r >= 0)
            rc = r == 0 ? STORE_NOT_FOUND : 0;
        goto out;  /* nothing written: giving the connection back rolls back */
    }
    if (after_drop(c, id, now, deleted, err) || sql_commit(c, err))
        goto out;
    *lowered = true;
    rc = 0;
out:
    sql_pool_give_back(POOL(st), c);
    return rc;
}

void rules_uploads_ops(struct store_ops *o)
{
    o->upload_create = upload_create;
    o->upload_open = upload_open;
    o->upload_get = upload_get;
    o->upload_list = upload_list;
    o->upload_request_begin = upload_request_begin;
    o->upload_request_end = upload_request_end;
    o->upload_add_bytes = upload_add_bytes;
    o->upload_set_cleared = upload_set_cleared;
    o->upload_reset_requests = upload_reset_requests;
    o->upload_close_idle = upload_close_idle;
    o->upload_drop_expected = upload_drop_expected;
}
