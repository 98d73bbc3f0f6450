/*
 * store_leases: the worker side of the upload_file state machine (store.h)
 * over sql.h: claim (QUEUED -> PROCESSING under a lease), finish (-> DONE,
 * DUPLICATE or FAILED), defer (-> QUEUED later), release (a dead worker's or
 * expired leases), unclaim (a live worker's files it lost track of), renew.
 * Locking: store_internal.h.
 */
#include "store/store_internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"

/* ---- claim ---- */

/* SQLite: the write transaction is exclusive, the oldest file is ours.
 * PostgreSQL: skip files another worker is claiming right now. */
static const char claim_sqlite[] =
    "UPDATE upload_files SET state = 'processing', lease_owner = ?1, "
    "lease_until = ?2 + ?3, attempts = attempts + 1, updated_at = ?2 "
    "WHERE id = (SELECT id FROM upload_files WHERE state = 'queued' "
    "AND available_at <= ?2 ORDER BY queued_at, id LIMIT 1) RETURNING " FILE_COLS;
static const char claim_pg[] =
    "UPDATE upload_files SET state = 'processing', lease_owner = ?1, "
    "lease_until = ?2 + ?3, attempts = attempts + 1, updated_at = ?2 "
    "WHERE id = (SELECT id FROM upload_files WHERE state = 'queued' "
    "AND available_at <= ?2 ORDER BY queued_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) "
    "RETURNING " FILE_COLS;

static int file_claim(struct store *st, const char *owner, int64_t now, int64_t lease_ms,
                      struct store_claim *out, struct err *err)
{
    struct sql_conn *c = NULL;
    struct sql_stmt *s = NULL;
    struct rules_delta d = {0};
    int rc = -1, r;

    if (!owner || !*owner || strlen(owner) >= sizeof(out->file.lease_owner))
        return err_set(err, ERR_PERMANENT, "store", "lease owner must be 1 to %zu bytes",
                       sizeof(out->file.lease_owner) - 1);
    c = sql_pool_borrow(POOL(st), err);
    if (!c)
        return -1;
    if (sql_begin(c, err))
        goto out;
    r = sql_row1(c, &s, "claim a file", sql_pick(c, claim_sqlite, claim_pg),
                 ARGS(VT(owner), VI(now), VI(lease_ms)), err);
    if (r <= 0) {
        rc = r == 0 ? STORE_NOT_FOUND : -1;
        goto out;
    }
    rules_read_file(s, &out->file);
    out->lease_until = sql_col_int64(s, 19);
    sql_reset(s);
    if (rules_bump(c, out->file.upload_id, &d, now, err) || sql_commit(c, err))
        goto out;
    rc = 0;
out:
    sql_pool_give_back(POOL(st), c);
    return rc;
}

/* ---- finish ---- */

/* The leased file's row: 1 when owner holds it (PROCESSING), 0 when not, -1 failed. */
static int leased_file(struct sql_conn *c, int64_t file_id, const char *owner,
                       struct store_file *f, struct err *err)
{
    struct sql_stmt *s = NULL;
    int r;

    if (rules_lock_file_upload(c, file_id, err))
        return -1;
    r = sql_row1(c, &s, "read the file", "SELECT " FILE_COLS " FROM upload_files WHERE id = ?1",
                 ARGS(VI(file_id)), err);
    if (r <= 0)
        return r;
    rules_read_file(s, f);
    sql_reset(s);
    return f->state == FILE_PROCESSING && owner && strcmp(f->lease_owner, owner) == 0;
}

/* Writes the outcome fin of file f and the upload's counters. */
static int record_outcome(struct sql_conn *c, const struct store_file *f,
                          const struct store_result *res, struct store_finish *fin,
                          int64_t now, struct err *err)
{
    struct rules_delta d = {.processed = 1};
    bool failed = fin->state == FILE_FAILED;
    const char *stage = failed ? (res->error.stage[0] ? res->error.stage : "process") : "";
    const char *msg = failed ? (res->error.msg[0] ? res->error.msg : "processing failed") : "";
    /* Done and duplicate files no longer need their spool copy; failed ones keep it
     * only for a manual retry, and only when a retry could help. */
    bool drop_spool = !failed || !res->keep_spool || store_err_refuses_input(&res->error);

    if (sql_run(c, "record the file's outcome",
                "UPDATE upload_files SET state = ?2, photo_id = ?3, duplicate_of = ?4, "
                "error_stage = ?5, error_msg = ?6, "
                "spool = CASE WHEN ?7 <> 0 THEN '' ELSE spool END, "
                "lease_owner = '', lease_until = 0, updated_at = ?8 WHERE id = ?1",
                ARGS(VI(f->id), VT(store_file_state_name(fin->state)),
                     VI(fin->state == FILE_DONE ? fin->photo_id : 0),
                     VI(fin->state == FILE_DUPLICATE ? fin->photo_id : 0), VT(stage), VT(msg),
                     VI(drop_spool), VI(now)),
                err) < 0)
        return -1;
    fin->spool_dropped = drop_spool && f->spool[0];
    d.uploaded = fin->state == FILE_DONE;
    d.duplicates = fin->state == FILE_DUPLICATE;
    d.failed = failed;
    return rules_bump(c, f->upload_id, &d, now, err);
}

static int file_finish(struct store *st, int64_t file_id, const char *owner,
                       const struct store_result *res, int64_t now, struct store_finish *out,
                       struct err *err)
{
    struct sql_conn *c = sql_pool_borrow(POOL(st), err);
    struct store_file f;
    struct store_finish fin = {.state = FILE_FAILED};
    int rc = -1, r;

    if (!c)
        return -1;
    if (sql_begin(c, err))
        goto out;
    r = leased_file(c, file_id, owner, &f, err);
    if (r <= 0) {
        rc = r == 0 ? STORE_NOT_FOUND : -1;
        goto out;
    }
    if (res->outcome == STORE_OK && rules_record_photo(c, &f, &res->photo, now, &fin, err))
        goto out;
    if (record_outcome(c, &f, res, &fin, now, err) ||
        rules_check_batch_end(c, f.upload_id, now, err) ||
        rules_check_finished(c, f.upload_id, now, &fin.upload_finished, err) ||
        sql_commit(c, err))
        goto out;
    if (out)
        *out = fin;
    rc = 0;
out:
    sql_pool_give_back(POOL(st), c);
    return rc;
}

/* ---- defer ---- */

static int file_defer(struct store *st, int64_t file_id, const char *owner, int64_t retry_at,
                      const struct err *why, int64_t now, struct err *err)
{
    struct sql_conn *c = sql_pool_borrow(POOL(st), err);
    int64_t upload_id = 0;
    struct rules_delta d = {0};
    int rc = -1, r;

    if (!c)
        return -1;
    if (sql_begin(c, err) || rules_lock_file_upload(c, file_id, err))
        goto out;
    r = sql_scalar(c, &upload_id, "defer the file",
                   "UPDATE upload_files SET state = 'queued', available_at = ?3, "
                   "lease_owner = '', lease_until = 0, error_stage = ?4, error_msg = ?5, "
                   "updated_at = ?6 WHERE id = ?1 AND state = 'processing' "
                   "AND lease_owner = ?2 RETURNING upload_id",
                   ARGS(VI(file_id), VT(owner), VI(retry_at), VT(why ? why->stage : ""),
                        VT(why ? why->msg : ""), VI(now)),
                   err);
    if (r <= 0) {
        rc = r == 0 ? STORE_NOT_FOUND : -1;
        goto out;
    }
    if (rules_bump(c, upload_id, &d, now, err) || sql_commit(c, err))
        goto out;
    rc = 0;
out:
    sql_pool_give_back(POOL(st), c);
    return rc;
}

/* ---- release ---- */

struct leased {
    int64_t id, upload_id, attempts, lease_until;
    char owner[64];
};

struct collect {
    struct leased *files;
    size_t n, cap;
};

static void collect_row(struct sql_stmt *s, void *p)
{
    struct collect *k = p;
    struct leased *l;

    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 16;
        k->files = xrealloc(k->files, k->cap * sizeof(*k->files));
    }
    l = &k->files[k->n++];
    *l = (struct leased){sql_col_int64(s, 0), sql_col_int64(s, 1), sql_col_int64(s, 2),
                         sql_col_int64(s, 3), ""};
    sql_col_str(s, 4, l->owner, sizeof(l->owner));
}

/* The files leased by owner ("*": every one), or with an expired lease when
 * owner is NULL; in upload order, the order their uploads are locked in. */
static int collect_leased(struct sql_conn *c, const char *owner, int64_t now,
                          struct collect *k, struct err *err)
{
    struct sql_stmt *s;

    if (owner && !strcmp(owner, "*"))
        s = sql_prepare(c, "find leased files", "SELECT id, upload_id, attempts, lease_until, "
                        "lease_owner FROM upload_files WHERE state = 'processing' "
                        "ORDER BY upload_id, id", NOARGS, err);
    else if (owner)
        s = sql_prepare(c, "find leased files", "SELECT id, upload_id, attempts, lease_until, "
                        "lease_owner FROM upload_files WHERE state = 'processing' "
                        "AND lease_owner = ?1 ORDER BY upload_id, id", ARGS(VT(owner)), err);
    else
        s = sql_prepare(c, "find expired leases", "SELECT id, upload_id, attempts, lease_until, "
                        "lease_owner FROM upload_files WHERE state = 'processing' "
                        "AND lease_until < ?1 ORDER BY upload_id, id", ARGS(VI(now)), err);
    if (!s)
        return -1;
    for (;;) {
        int r = sql_step(s, "find leased files", err);
        if (r <= 0)
            return r;
        collect_row(s, k);
    }
}

/* Releases one collected file: 1 released, 0 no longer as collected (renewed
 * or finished meanwhile: only on PostgreSQL), -1 failed. */
static int release_one(struct sql_conn *c, const struct leased *l, int64_t now,
                       int64_t max_attempts, const struct err *why, struct err *err)
{
    struct rules_delta d = {0};
    bool fail = l->attempts >= max_attempts;
    const char *stage = why && why->stage[0] ? why->stage : "worker";
    const char *msg =
        why && why->msg[0] ? why->msg : "the worker stopped while processing the file";
    int64_t n;

    if (rules_lock_upload(c, l->upload_id, err))
        return -1;
    n = sql_run(c, "release the file",
                "UPDATE upload_files SET state = ?2, available_at = ?3, lease_owner = '', "
                "lease_until = 0, error_stage = ?4, error_msg = ?5, updated_at = ?3 "
                "WHERE id = ?1 AND state = 'processing' AND lease_owner = ?6 "
                "AND lease_until = ?7",
                ARGS(VI(l->id), VT(store_file_state_name(fail ? FILE_FAILED : FILE_QUEUED)),
                     VI(now), VT(stage), VT(msg), VT(l->owner), VI(l->lease_until)),
                err);
    if (n <= 0)
        return (int)n;
    if (fail)
        d.processed = d.failed = 1;
    if (rules_bump(c, l->upload_id, &d, now, err))
        return -1;
    if (fail && (rules_check_batch_end(c, l->upload_id, now, err) ||
                 rules_check_finished(c, l->upload_id, now, NULL, err)))
        return -1;
    return 1;
}

static int file_release(struct store *st, const char *owner, int64_t now, int64_t max_attempts,
                        const struct err *why, int64_t *released, struct err *err)
{
    struct sql_conn *c = sql_pool_borrow(POOL(st), err);
    struct collect k = {0};
    int64_t done = 0;
    int rc = -1;

    if (released)
        *released = 0;
    if (!c)
        return -1;
    if (sql_begin(c, err) || collect_leased(c, owner, now, &k, err))
        goto out;
    for (size_t i = 0; i < k.n; i++) {
        int r = release_one(c, &k.files[i], now, max_attempts, why, err);
        if (r < 0)
            goto out;
        done += r;
    }
    if (sql_commit(c, err))
        goto out;
    if (released)
        *released = done;
    rc = 0;
out:
    free(k.files);
    sql_pool_give_back(POOL(st), c);
    return rc;
}

/* ---- unclaim ---- */

/* Gives back one collected file of a worker that lost track of it: 1 given
 * back, 0 no longer held by that owner, -1 failed. */
static int unclaim_one(struct sql_conn *c, const struct leased *l, int64_t now, struct err *err)
{
    struct rules_delta d = {0};
    int64_t n;

    if (rules_lock_upload(c, l->upload_id, err))
        return -1;
    n = sql_run(c, "give the file back",
                "UPDATE upload_files SET state = 'queued', available_at = ?2, lease_owner = '', "
                "lease_until = 0, attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, "
                "updated_at = ?2 WHERE id = ?1 AND state = 'processing' AND lease_owner = ?3",
                ARGS(VI(l->id), VI(now), VT(l->owner)), err);
    if (n <= 0)
        return (int)n;
    return rules_bump(c, l->upload_id, &d, now, err) ? -1 : 1;
}

/* A read first (the partial index of PROCESSING rows): almost always there is
 * nothing to give back, and then no write transaction is opened. */
static int file_unclaim(struct store *st, const char *owner, int64_t now, int64_t *released,
                        struct err *err)
{
    struct sql_conn *c = NULL;
    struct collect k = {0};
    int64_t held = 0, done = 0;
    int rc = -1;

    *released = 0;
    if (!owner || !*owner || !strcmp(owner, "*"))
        return err_set(err, ERR_PERMANENT, "store", "unclaim needs one worker's lease owner");
    if (sql_pool_scalar(POOL(st), &held, "look for files leased by the worker",
                        "SELECT COUNT(*) FROM upload_files WHERE state = 'processing' "
                        "AND lease_owner = ?1",
                        ARGS(VT(owner)), err) < 0)
        return -1;
    if (held == 0)
        return 0;
    c = sql_pool_borrow(POOL(st), err);
    if (!c)
        return -1;
    if (sql_begin(c, err) || collect_leased(c, owner, now, &k, err))
        goto out;
    for (size_t i = 0; i < k.n; i++) {
        int r = unclaim_one(c, &k.files[i], now, err);
        if (r < 0)
            goto out;
        done += r;
    }
    if (sql_commit(c, err))
        goto out;
    *released = done;
    rc = 0;
out:
    free(k.files);
    sql_pool_give_back(POOL(st), c);
    return rc;
}

/* ---- renew ---- */

static int file_renew(struct store *st, int64_t file_id, const char *owner,
                      int64_t lease_until, int64_t now, struct err *err)
{
    struct sql_conn *c = sql_pool_borrow(POOL(st), err);
    int64_t n;

    (void)now; /* renewal is not activity: updated_at stays */
    if (!c)
        return -1;
    /* One statement, no counters: autocommit, no upload lock needed. */
    n = sql_run(c, "renew the lease",
                "UPDATE upload_files SET lease_until = ?3 "
                "WHERE id = ?1 AND state = 'processing' AND lease_owner = ?2",
                ARGS(VI(file_id), VT(owner), VI(lease_until)), err);
    sql_pool_give_back(POOL(st), c);
    if (n < 0)
        return -1;
    return n == 0 ? STORE_NOT_FOUND : 0;
}

void rules_leases_ops(struct store_ops *o)
{
    o->file_claim = file_claim;
    o->file_finish = file_finish;
    o->file_defer = file_defer;
    o->file_release = file_release;
    o->file_unclaim = file_unclaim;
    o->file_renew = file_renew;
}
