/*
 * store_files: the file records of store.h over sql.h: recording a new file
 * (with the resend test), reading and listing files, the user's retry, spool
 * references. The worker side (claim, finish, defer, release, renew) is in
 * store_leases.c; the state diagram is in store.h.
 */
#include "store/store_internal.h"

#include <string.h>

/* FILE_COLS and whether the file's photo has a thumbnail: for a DUPLICATE that
 * photo came from an earlier upload, and the page shows its thumbnail too. */
#define FILE_COLS_THUMB \
    FILE_COLS ", (SELECT has_thumb FROM photos WHERE photos.id = upload_files.photo_id " \
    "OR photos.id = upload_files.duplicate_of LIMIT 1)"

static enum store_file_state parse_state(const char *s)
{
    for (int i = FILE_RECEIVED; i <= FILE_FAILED; i++) {
        if (strcmp(s, store_file_state_name((enum store_file_state)i)) == 0)
            return (enum store_file_state)i;
    }
    return FILE_FAILED;  /* the CHECK constraint keeps other names out */
}

void rules_read_file(struct sql_stmt *s, struct store_file *f)
{
    memset(f, 0, sizeof(*f));
    f->id = sql_col_int64(s, 0);
    f->upload_id = sql_col_int64(s, 1);
    f->user_id = sql_col_int64(s, 2);
    f->seq = sql_col_int64(s, 3);
    f->state = parse_state(sql_col_text(s, 4));
    sql_col_str(s, 5, f->name, sizeof(f->name));
    f->size = sql_col_int64(s, 6);
    sql_col_str(s, 7, f->sha256, sizeof(f->sha256));
    sql_col_str(s, 8, f->format, sizeof(f->format));
    sql_col_str(s, 9, f->spool, sizeof(f->spool));
    f->batch_no = sql_col_int64(s, 10);
    f->attempts = sql_col_int64(s, 11);
    f->photo_id = sql_col_int64(s, 12);
    f->duplicate_of = sql_col_int64(s, 13);
    sql_col_str(s, 14, f->error_stage, sizeof(f->error_stage));
    sql_col_str(s, 15, f->error_msg, sizeof(f->error_msg));
    sql_col_str(s, 16, f->lease_owner, sizeof(f->lease_owner));
    f->created_at = sql_col_int64(s, 17);
    f->updated_at = sql_col_int64(s, 18);
    if (sql_col_count(s) > 20) /* FILE_COLS_THUMB */
        f->photo_has_thumb = sql_col_int64(s, 20) != 0;
}

void rules_cut_name(const char *name, char out[STORE_FILENAME_MAX])
{
    size_t len = strlen(name ? name : "");

    if (len >= STORE_FILENAME_MAX) {
        len = STORE_FILENAME_MAX - 1;
        while (len > 0 && ((unsigned char)name[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(out, name ? name : "", len);
    out[len] = '\0';
}

/* ---- recording a new file ---- */

static int insert_file(struct sql_conn *c, const struct store_file_new *f, int64_t seq,
                       int64_t now, int64_t *id, struct err *err)
{
    char name[STORE_FILENAME_MAX];
    const char *stage = "", *msg = "";

    rules_cut_name(f->name, name);
    if (f->failed) {
        stage = f->error && f->error->stage[0] ? f->error->stage : "receive";
        msg = f->error && f->error->msg[0] ? f->error->msg : "the file was rejected";
    }
    return sql_scalar(c, id, "record the file",
                      "INSERT INTO upload_files (upload_id, user_id, seq, state, name, size, "
                      "sha256, format, spool, error_stage, error_msg, created_at, updated_at) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12) "
                      "RETURNING id",
                      ARGS(VI(f->upload_id), VI(f->user_id), VI(seq),
                           VT(store_file_state_name(f->failed ? FILE_FAILED : FILE_RECEIVED)),
                           VT(name), VI(f->size), VT(f->sha256), VT(f->format), VT(f->spool),
                           VT(stage), VT(msg), VI(now)),
                      err) == 1 ? 0 : -1;
}

/* 1 (and *file_id) when the upload already has a file of that name and content:
 * a request cut off by a crash and sent again. Rejected files have no content
 * hash and never match. 0 when none, -1 failed. */
static int same_file(struct sql_conn *c, const struct store_file_new *f, int64_t *file_id,
                     struct err *err)
{
    char name[STORE_FILENAME_MAX];
    int64_t id = 0;
    int r;

    if (f->failed || !f->sha256 || !f->sha256[0])
        return 0;
    rules_cut_name(f->name, name);
    r = sql_scalar(c, &id, "look for the same file", "SELECT id FROM upload_files "
                   "WHERE upload_id = ?1 AND name = ?2 AND sha256 = ?3 LIMIT 1",
                   ARGS(VI(f->upload_id), VT(name), VT(f->sha256)), err);
    if (r > 0 && file_id)
        *file_id = id;
    return r;
}

/* The next seq of the upload (total counts every file recorded), checking the
 * owner: 0, or -1 with err. The upload row is locked first (store_internal.h). */
static int next_seq(struct sql_conn *c, const struct store_file_new *f, int64_t *seq,
                    struct err *err)
{
    struct sql_stmt *s = NULL;
    int64_t owner;
    int r;

    if (rules_lock_upload(c, f->upload_id, err))
        return -1;
    r = sql_row1(c, &s, "read the upload", "SELECT user_id, total FROM uploads WHERE id = ?1",
                 ARGS(VI(f->upload_id)), err);
    if (r < 0)
        return -1;
    if (r == 0)
        return err_set(err, ERR_PERMANENT, "store", "upload %lld does not exist",
                       (long long)f->upload_id);
    owner = sql_col_int64(s, 0);
    *seq = sql_col_int64(s, 1) + 1;
    sql_reset(s);
    if (owner != f->user_id)
        return err_set(err, ERR_PERMANENT, "store", "upload %lld belongs to another user",
                       (long long)f->upload_id);
    return 0;
}

static int upload_add_file(struct store *st, const struct store_file_new *f, int64_t now,
                           int64_t *file_id, struct err *err)
{
    struct sql_conn *c = NULL;
    struct rules_delta d = {.total = 1};
    int64_t seq = 0, id = 0;
    int rc = -1, r;

    if (f->spool && strlen(f->spool) >= STORE_PATH_MAX)
        return err_set(err, ERR_PERMANENT, "store", "spool path is too long");
    c = sql_pool_borrow(POOL(st), err);
    if (!c)
        return -1;
    if (sql_begin(c, err) || next_seq(c, f, &seq, err))
        goto out;
    r = same_file(c, f, file_id, err);
    if (r != 0) {
        rc = r > 0 ? STORE_EXISTS : -1;
        goto out;
    }
    if (insert_file(c, f, seq, now, &id, err))
        goto out;
    if (file_id)
        *file_id = id;
    if (f->failed) {
        d.processed = d.failed = 1;
    } else {
        d.queued = 1;
        d.reopen = true;
    }
    if (rules_bump(c, f->upload_id, &d, now, err))
        goto out;
    if (f->failed && rules_check_finished(c, f->upload_id, now, NULL, err))
        goto out;
    if (sql_commit(c, err))
        goto out;
    rc = 0;
out:
    sql_pool_give_back(POOL(st), c);
    return rc;
}

/* ---- reading ---- */

struct each_file {
    store_file_cb cb;
    void *ctx;
};

static void each_file(struct sql_stmt *s, void *p)
{
    struct each_file *e = p;
    struct store_file f;

    rules_read_file(s, &f);
    e->cb(e->ctx, &f);
}

static int upload_files(struct store *st, int64_t upload_id, store_file_cb cb, void *ctx,
                        struct err *err)
{
    struct each_file e = {cb, ctx};

    return sql_list(POOL(st), "list the upload's files", "SELECT " FILE_COLS_THUMB
                    " FROM upload_files WHERE upload_id = ?1 ORDER BY seq",
                    ARGS(VI(upload_id)), each_file, &e, err);
}

static int upload_errors(struct store *st, int64_t upload_id, store_file_cb cb, void *ctx,
                         struct err *err)
{
    struct each_file e = {cb, ctx};

    return sql_list(POOL(st), "list the upload's failed files", "SELECT " FILE_COLS
                    " FROM upload_files WHERE upload_id = ?1 AND state = 'failed' ORDER BY seq",
                    ARGS(VI(upload_id)), each_file, &e, err);
}

static void file_row(struct sql_stmt *s, void *out)
{
    rules_read_file(s, out);
}

static int file_get(struct store *st, int64_t id, int64_t user_id, struct store_file *out,
                    struct err *err)
{
    return rules_get_one(st, "read the file", "SELECT " FILE_COLS " FROM upload_files "
                         "WHERE id = ?1 AND (?2 = 0 OR user_id = ?2)",
                         ARGS(VI(id), VI(user_id)), file_row, out, err);
}

/* ---- the user's retry ---- */

/* The failed file of that user and upload: 1, 0 none, -1 failed. */
static int failed_file(struct sql_conn *c, int64_t user_id, int64_t upload_id, int64_t file_id,
                       struct store_file *f, struct err *err)
{
    struct sql_stmt *s = NULL;
    int r = sql_row1(c, &s, "read the file", "SELECT " FILE_COLS " FROM upload_files "
                     "WHERE id = ?1 AND upload_id = ?2 AND user_id = ?3 AND state = 'failed'",
                     ARGS(VI(file_id), VI(upload_id), VI(user_id)), err);

    if (r == 1) {
        rules_read_file(s, f);
        sql_reset(s);
    }
    return r;
}

static int file_retry(struct store *st, int64_t user_id, int64_t upload_id, int64_t file_id,
                      int64_t now, struct err *err)
{
    struct sql_conn *c = sql_pool_borrow(POOL(st), err);
    struct store_file f;
    struct rules_delta d = {.processed = -1, .failed = -1, .reopen = true};
    int rc = -1, r;

    if (!c)
        return -1;
    if (sql_begin(c, err) || rules_lock_upload(c, upload_id, err))
        goto out;
    r = failed_file(c, user_id, upload_id, file_id, &f, err);
    if (r <= 0) {
        rc = r == 0 ? STORE_NOT_FOUND : -1;
        goto out;
    }
    if (!f.spool[0]) {
        err_set(err, ERR_PERMANENT, "store",
                "cannot retry '%s': the file's bytes are no longer held; upload it again", f.name);
        goto out;
    }
    /* Into the upload's current batch, so the batch-end test waits for it. */
    if (sql_run(c, "queue the file again",
                "UPDATE upload_files SET state = 'queued', attempts = 0, available_at = ?2, "
                "queued_at = ?2, error_stage = '', error_msg = '', updated_at = ?2, "
                "batch_no = (SELECT CASE WHEN u.current_batch > upload_files.batch_no "
                "THEN u.current_batch ELSE upload_files.batch_no END FROM uploads u "
                "WHERE u.id = upload_files.upload_id) WHERE id = ?1",
                ARGS(VI(file_id), VI(now)), err) < 0)
        goto out;
    if (rules_bump(c, upload_id, &d, now, err) || sql_commit(c, err))
        goto out;
    rc = 0;
out:
    sql_pool_give_back(POOL(st), c);
    return rc;
}

/* ---- spool references ---- */

static int file_drop_spool(struct store *st, int64_t file_id, struct err *err)
{
    return sql_write1(POOL(st), MISSING_OK, "forget the spool file",
                      "UPDATE upload_files SET spool = '' WHERE id = ?1", ARGS(VI(file_id)), err);
}

void rules_each_key(struct sql_stmt *s, void *p)
{
    struct rules_each_key *e = p;

    e->cb(e->ctx, sql_col_text(s, 0));
}

static int spool_refs(struct store *st, store_key_cb cb, void *ctx, struct err *err)
{
    struct rules_each_key e = {cb, ctx};

    return sql_list(POOL(st), "list spool files",
                    "SELECT spool FROM upload_files WHERE spool <> ''", NOARGS, rules_each_key, &e,
                    err);
}

void rules_files_ops(struct store_ops *o)
{
    o->upload_add_file = upload_add_file;
    o->upload_files = upload_files;
    o->upload_errors = upload_errors;
    o->file_get = file_get;
    o->file_retry = file_retry;
    o->file_drop_spool = file_drop_spool;
    o->spool_refs = spool_refs;
}
