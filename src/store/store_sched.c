/*
 * store_sched: what the server's batch scheduler asks of store.h, over sql.h:
 * the unfinished uploads and their counts, moving RECEIVED files into a batch
 * (compare-and-set, and the batch delay's yield to other uploads), the health
 * probe and the queue depth (metrics).
 */
#include "store/store_internal.h"

struct each_sched {
    store_sched_cb cb;
    void *ctx;
};

static void each_sched(struct sql_stmt *s, void *p)
{
    struct each_sched *e = p;
    struct store_sched x = {
        .upload_id = sql_col_int64(s, 0),
        .batch_size = sql_col_int64(s, 1),
        .current_batch = sql_col_int64(s, 2),
        .unassigned = sql_col_int64(s, 3),
        .in_flight = sql_col_int64(s, 4),
        .arrived = sql_col_int64(s, 5) != 0,
        .last_batch_end_at = sql_col_int64(s, 6),
        .open_requests = sql_col_int64(s, 7),
        .in_flight_before = sql_col_int64(s, 8),
    };

    e->cb(e->ctx, &x);
}

static int sched_list(struct store *st, store_sched_cb cb, void *ctx, struct err *err)
{
    struct each_sched e = {cb, ctx};

    return sql_list(POOL(st), "list uploads to schedule",
                    "SELECT id, batch_size, current_batch, queued_files, "
                    "total - processed - queued_files, "
                    "CASE WHEN open_requests = 0 AND total >= expected THEN 1 ELSE 0 END, "
                    "last_batch_end_at, open_requests, CASE WHEN processed + queued_files < "
                    "total THEN (SELECT COUNT(*) FROM upload_files f "
                    "WHERE f.upload_id = uploads.id AND f.state IN ('queued', 'processing') "
                    "AND f.batch_no < uploads.current_batch) ELSE 0 END "
                    "FROM uploads WHERE finished_at = 0 "
                    "AND (queued_files > 0 OR processed + queued_files < total) ORDER BY id",
                    NOARGS, each_sched, &e, err);
}

/* In the upload's transaction, after its row lock: may batch batch_no open now?
 * Compare-and-set: batch batch_no opens only right after batch_no - 1 and while
 * none of the upload's files is in flight, whatever another node's scheduler
 * did since it listed the upload. A scheduler that lost the race assigns
 * nothing (it never opens the same batch twice, or skips one). The overlap
 * (overlap > 0): it also opens while batch batch_no - 1 has no file left to
 * claim, at most `overlap` of its files are still in a worker (none of an older
 * batch) and no other upload has a file waiting for a worker: a worker is idle,
 * and it takes the new batch instead of waiting for the last file's end. Then
 * the yield: within yield_ms of the last batch's end, a file of another upload
 * waiting for a worker (QUEUED and due) keeps this batch closed; the other
 * upload's files are read without a lock, so two nodes may both open (the pace
 * is best effort, the batch numbers are not). */
static int batch_may_open(struct sql_conn *c, int64_t upload_id, int64_t batch_no, int64_t now,
                          int64_t yield_ms, int64_t overlap, bool *open, struct err *err)
{
    int64_t busy = 0, waiting = 0;
    int r;

    *open = false;
    /* 0: nothing in flight; 2: only the previous batch's last files, all claimed. */
    r = sql_scalar(c, &busy, "check the batch to open",
                   "SELECT CASE WHEN current_batch <> ?2 - 1 THEN 1 "
                   "WHEN NOT EXISTS (SELECT 1 FROM upload_files WHERE upload_id = ?1 "
                   "AND state IN ('queued', 'processing')) THEN 0 "
                   "WHEN ?3 > 0 AND (SELECT COUNT(*) FROM upload_files WHERE upload_id = ?1 "
                   "AND state = 'processing') <= ?3 AND NOT EXISTS (SELECT 1 FROM upload_files "
                   "WHERE upload_id = ?1 AND (state = 'queued' OR (state = 'processing' "
                   "AND batch_no <> ?2 - 1))) THEN 2 ELSE 1 END FROM uploads WHERE id = ?1",
                   ARGS(VI(upload_id), VI(batch_no), VI(overlap)), err);
    if (r <= 0 || busy == 1)
        return r < 0 ? -1 : 0;
    if (busy == 2 || yield_ms > 0) {
        r = sql_scalar(c, &waiting, "check for uploads waiting for a worker",
                       "SELECT COUNT(*) FROM uploads u WHERE u.id = ?1 "
                       "AND (?4 = 1 OR ?2 < u.last_batch_end_at + ?3) AND EXISTS (SELECT 1 "
                       "FROM upload_files f WHERE f.state = 'queued' AND f.available_at <= ?2 "
                       "AND f.upload_id <> ?1)",
                       ARGS(VI(upload_id), VI(now), VI(yield_ms), VI(busy == 2)), err);
        if (r < 0)
            return -1;
    }
    *open = waiting == 0;
    return 0;
}

static int sched_assign(struct store *st, int64_t upload_id, int64_t batch_no, int64_t limit,
                        int64_t now, int64_t yield_ms, int64_t overlap, int64_t *assigned,
                        struct err *err)
{
    struct sql_conn *c = NULL;
    struct rules_delta d = {0};
    int64_t n = 0;
    bool open = false;
    int rc = -1;

    if (assigned)
        *assigned = 0;
    if (limit < 1)
        return 0;
    c = sql_pool_borrow(POOL(st), err);
    if (!c)
        return -1;
    if (sql_begin(c, err) || rules_lock_upload(c, upload_id, err) ||
        batch_may_open(c, upload_id, batch_no, now, yield_ms, overlap, &open, err))
        goto out;
    if (!open) {
        sql_rollback(c);
        rc = 0;
        goto out;
    }
    n = sql_run(c, "queue a batch", "UPDATE upload_files SET state = 'queued', batch_no = ?2, "
                "queued_at = ?4, available_at = ?4, updated_at = ?4 WHERE id IN (SELECT id "
                "FROM upload_files WHERE upload_id = ?1 AND state = 'received' "
                "ORDER BY seq LIMIT ?3)",
                ARGS(VI(upload_id), VI(batch_no), VI(limit), VI(now)), err);
    if (n < 0)
        goto out;
    /* An empty batch changes nothing: current_batch only names batches with files. */
    if (n > 0) {
        d.queued = -n;
        if (rules_bump(c, upload_id, &d, now, err))
            goto out;
        if (sql_run(c, "start a batch", "UPDATE uploads SET current_batch = ?2 WHERE id = ?1",
                    ARGS(VI(upload_id), VI(batch_no)), err) < 0)
            goto out;
    }
    if (sql_commit(c, err))
        goto out;
    if (assigned)
        *assigned = n;
    rc = 0;
out:
    sql_pool_give_back(POOL(st), c);
    return rc;
}

static int health_check(struct store *st, int64_t now, struct err *err)
{
    return sql_write1(POOL(st), MISSING_OK, "write the health probe",
                      "INSERT INTO health (id, checked_at) VALUES (1, ?1) "
                      "ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                      ARGS(VI(now)), err);
}

static void read_queue(struct sql_stmt *s, void *out)
{
    struct store_queue *q = out;

    *q = (struct store_queue){sql_col_int64(s, 0), sql_col_int64(s, 1), sql_col_int64(s, 2)};
}

/* RECEIVED from the uploads' counters (unfinished ones, by the partial index);
 * QUEUED and PROCESSING by their partial indexes on upload_files. */
static int queue_depth(struct store *st, struct store_queue *out, struct err *err)
{
    *out = (struct store_queue){0};
    return sql_get_one(POOL(st), "read the queue depth",
                       "SELECT (SELECT COALESCE(SUM(queued_files), 0) FROM uploads "
                       "WHERE finished_at = 0), "
                       "(SELECT COUNT(*) FROM upload_files WHERE state = 'queued'), "
                       "(SELECT COUNT(*) FROM upload_files WHERE state = 'processing')",
                       NOARGS, read_queue, out, err) < 0 ? -1 : 0;
}

void rules_sched_ops(struct store_ops *o)
{
    o->queue_depth = queue_depth;
    o->sched_list = sched_list;
    o->sched_assign = sched_assign;
    o->health_check = health_check;
}
