/*
 * store_sqlite: the SQLite backend of store.h (schema in migrations.c).
 *
 * DESIGN
 * Threads: any thread may call any operation. Each operation borrows one
 * connection from a pool (opened on demand, at most POOL_MAX), runs, and gives
 * it back; a connection is used by one thread at a time (SQLITE_OPEN_NOMUTEX).
 * Each connection caches its prepared statements, keyed by the address of the
 * SQL text (every statement is a string literal at one call site).
 * Locks: sq.mu guards sq.free and sq.count only; it is held to pop or push a
 * connection, never across a SQLite call. Waiters for a connection sleep on sq.cv.
 * Processes: serve and its workers open the same file. WAL lets readers run
 * beside the one writer; every write transaction starts with BEGIN IMMEDIATE,
 * so it takes the write lock up front (no deadlock upgrading a read lock) and
 * busy_timeout makes it wait up to BUSY_TIMEOUT_MS for it.
 * Callbacks (user_list, photo_list, ...) run while the operation holds its
 * connection, outside any lock; they may call the store again (another
 * connection is borrowed) but must not keep the records they are given.
 */
#include "store/store_sqlite.h"

#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/fault.h"
#include "base/timeutil.h"
#include "base/xalloc.h"
#include "store/migrations.h"

/* Connections per store: workers and request threads beyond this wait. */
#define POOL_MAX 16
/* How long a writer waits for another process's write lock. */
#define BUSY_TIMEOUT_MS 5000

struct slot {
    const char *sql;
    sqlite3_stmt *st;
};

struct conn {
    sqlite3 *db;
    struct slot *stmts;
    size_t nstmts, cap;
    struct conn *next;
};

struct sq {
    struct store base;
    char *path;
    bool relaxed;        /* STORE_RELAXED_SYNC: synchronous=NORMAL */
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* signalled when a connection is returned */
    struct conn *free;   /* mu */
    int count;           /* mu: connections open, free or borrowed */
};

/* ---- errors ---- */

static enum err_class classify(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_NOMEM:
    case SQLITE_PROTOCOL:
        return ERR_TRANSIENT;
    default:
        return ERR_PERMANENT;
    }
}

static int db_fail(sqlite3 *db, int rc, struct err *err, const char *what)
{
    return err_set(err, classify(rc), "store", "cannot %s: %s", what,
                   db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

/* ---- statements ---- */

struct val {
    char type;  /* 'i' int64, 'd' double (NaN binds NULL), 't' text (NULL binds '') */
    int64_t i;
    double d;
    const char *s;
};

#define VI(x) ((struct val){'i', (int64_t)(x), 0.0, NULL})
#define VD(x) ((struct val){'d', 0, (x), NULL})
#define VT(x) ((struct val){'t', 0, 0.0, (x)})
#define ARGS(...)                   \
    (const struct val[]){__VA_ARGS__}, \
        sizeof((const struct val[]){__VA_ARGS__}) / sizeof(struct val)
#define NOARGS NULL, 0

static sqlite3_stmt *cached(struct conn *c, const char *sql, const char *what, struct err *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    for (size_t i = 0; i < c->nstmts; i++) {
        if (c->stmts[i].sql == sql)
            return c->stmts[i].st;
    }
    rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK) {
        db_fail(c->db, rc, err, what);
        sqlite3_finalize(st);
        return NULL;
    }
    if (c->nstmts == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 32;
        c->stmts = xrealloc(c->stmts, c->cap * sizeof(*c->stmts));
    }
    c->stmts[c->nstmts++] = (struct slot){sql, st};
    return st;
}

static int bind(sqlite3_stmt *st, int idx, const struct val *v)
{
    switch (v->type) {
    case 'i':
        return sqlite3_bind_int64(st, idx, v->i);
    case 'd':
        if (isnan(v->d))
            return sqlite3_bind_null(st, idx);
        return sqlite3_bind_double(st, idx, v->d);
    default:
        return sqlite3_bind_text(st, idx, v->s ? v->s : "", -1, SQLITE_STATIC);
    }
}

/* The cached statement for sql with v bound, ready to step. Text is bound
 * without a copy: the caller's strings must live until the statement is reset. */
static sqlite3_stmt *prepare(struct conn *c, const char *what, const char *sql,
                             const struct val *v, size_t n, struct err *err)
{
    sqlite3_stmt *st = cached(c, sql, what, err);

    if (!st)
        return NULL;
    sqlite3_reset(st);
    for (size_t i = 0; i < n; i++) {
        int rc = bind(st, (int)i + 1, &v[i]);
        if (rc != SQLITE_OK) {
            db_fail(c->db, rc, err, what);
            return NULL;
        }
    }
    return st;
}

/* One step: 1 a row, 0 done (st reset), -1 failed (st reset, err filled). */
static int step(struct conn *c, sqlite3_stmt *st, const char *what, struct err *err)
{
    int rc = sqlite3_step(st);

    if (rc == SQLITE_ROW)
        return 1;
    if (rc != SQLITE_DONE)
        db_fail(c->db, rc, err, what);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Runs a statement without result rows: the number of rows changed, or -1.
 * The failing result code is kept in *code (optional) for constraint checks. */
static int64_t run_code(struct conn *c, int *code, const char *what, const char *sql,
                        const struct val *v, size_t n, struct err *err)
{
    sqlite3_stmt *st = prepare(c, what, sql, v, n, err);
    int rc;

    if (!st)
        return -1;
    rc = sqlite3_step(st);
    if (code)
        *code = rc;
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
        sqlite3_reset(st);
        return sqlite3_changes64(c->db);
    }
    db_fail(c->db, rc, err, what);
    sqlite3_reset(st);
    return -1;
}

static int64_t run(struct conn *c, const char *what, const char *sql, const struct val *v,
                   size_t n, struct err *err)
{
    return run_code(c, NULL, what, sql, v, n, err);
}

/* The first row: 1 with *out positioned on it (reset it when done), 0 none, -1 failed. */
static int row1(struct conn *c, sqlite3_stmt **out, const char *what, const char *sql,
                const struct val *v, size_t n, struct err *err)
{
    sqlite3_stmt *st = prepare(c, what, sql, v, n, err);
    int rc;

    if (!st)
        return -1;
    rc = step(c, st, what, err);
    if (rc == 1)
        *out = st;
    return rc;
}

/* The first column of the first row as an integer: 1, 0 no row, -1 failed. */
static int scalar(struct conn *c, int64_t *out, const char *what, const char *sql,
                  const struct val *v, size_t n, struct err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = row1(c, &st, what, sql, v, n, err);

    if (rc == 1) {
        *out = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
    }
    return rc;
}

static void col_str(sqlite3_stmt *st, int i, char *out, size_t n)
{
    const unsigned char *s = sqlite3_column_text(st, i);

    snprintf(out, n, "%s", s ? (const char *)s : "");
}

static double col_double(sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return NAN;
    return sqlite3_column_double(st, i);
}

/* ---- transactions ---- */

static int tx_begin(struct conn *c, struct err *err)
{
    return run(c, "start a write transaction", "BEGIN IMMEDIATE", NOARGS, err) < 0 ? -1 : 0;
}

/* Commit, or the "commit" fault point: roll back and fail as a transient error. */
static int tx_commit(struct conn *c, struct err *err)
{
    if (fault_hit("commit", NULL)) {
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        return err_set(err, ERR_TRANSIENT, "store", "cannot commit: injected fault");
    }
    return run(c, "commit", "COMMIT", NOARGS, err) < 0 ? -1 : 0;
}

/* A read transaction, so several queries see one snapshot. */
static int read_begin(struct conn *c, struct err *err)
{
    return run(c, "start a read transaction", "BEGIN", NOARGS, err) < 0 ? -1 : 0;
}

static int read_end(struct conn *c, struct err *err)
{
    return run(c, "end a read transaction", "COMMIT", NOARGS, err) < 0 ? -1 : 0;
}

/* ---- connections ---- */

static void conn_close(struct conn *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nstmts; i++)
        sqlite3_finalize(c->stmts[i].st);
    free(c->stmts);
    sqlite3_close(c->db);
    free(c);
}

static int exec_pragma(struct conn *c, const char *sql, char *res, size_t n, struct err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && res)
        col_str(st, 0, res, n);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        return 0;
    return rc;
}

/* WAL is recorded in the file, so only a new database's first opener changes it;
 * the change takes a lock the busy handler may not wait for: retry a while. */
static int set_wal(struct conn *c, const char *path, struct err *err)
{
    char mode[16] = "";
    int64_t deadline = time_mono_ms() + BUSY_TIMEOUT_MS;
    int rc;

    for (;;) {
        rc = exec_pragma(c, "PRAGMA journal_mode=WAL", mode, sizeof(mode), err);
        if ((rc & 0xff) != SQLITE_BUSY || time_mono_ms() > deadline)
            break;
        time_sleep_ms(10);
    }
    if (rc)
        return err_set(err, classify(rc), "store", "cannot open database '%s': %s", path,
                       sqlite3_errmsg(c->db));
    if (strcmp(mode, "wal") != 0)
        return err_set(err, ERR_PERMANENT, "store",
                       "cannot use WAL mode for database '%s' (journal mode is '%s')", path, mode);
    return 0;
}

static struct conn *conn_open(const char *path, bool relaxed, struct err *err)
{
    struct conn *c = xcalloc(1, sizeof(*c));
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path, &c->db, flags, NULL);

    if (rc != SQLITE_OK) {
        err_set(err, classify(rc), "store", "cannot open database '%s': %s", path,
                c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    if (set_wal(c, path, err))
        goto fail;
    rc = exec_pragma(c, relaxed ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL", NULL,
                     0, err);
    if (rc == 0)
        rc = exec_pragma(c, "PRAGMA foreign_keys=ON", NULL, 0, err);
    if (rc) {
        err_set(err, classify(rc), "store", "cannot set up database '%s': %s", path,
                sqlite3_errmsg(c->db));
        goto fail;
    }
    return c;
fail:
    conn_close(c);
    return NULL;
}

static struct conn *borrow(struct store *st, struct err *err)
{
    struct sq *s = (struct sq *)st;
    struct conn *c = NULL;

    pthread_mutex_lock(&s->mu);
    while (!s->free && s->count >= POOL_MAX)
        pthread_cond_wait(&s->cv, &s->mu);
    if (s->free) {
        c = s->free;
        s->free = c->next;
    } else {
        s->count++;
    }
    pthread_mutex_unlock(&s->mu);
    if (c)
        return c;
    c = conn_open(s->path, s->relaxed, err);
    if (c)
        return c;
    pthread_mutex_lock(&s->mu);
    s->count--;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Returns c to the pool, first ending whatever an early exit left open: a
 * transaction is rolled back, statements are reset (releasing read locks). */
static void give_back(struct store *st, struct conn *c)
{
    struct sq *s = (struct sq *)st;

    if (!c)
        return;
    for (size_t i = 0; i < c->nstmts; i++) {
        if (sqlite3_stmt_busy(c->stmts[i].st))
            sqlite3_reset(c->stmts[i].st);
    }
    if (!sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_lock(&s->mu);
    c->next = s->free;
    s->free = c;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Reads one row into out with reader: 0, STORE_NOT_FOUND, or -1. The one shape of
 * every single-row lookup (users, sessions, uploads, files, photos). */
typedef void (*row_reader)(sqlite3_stmt *s, void *out);

static int get_one(struct store *st, const char *what, const char *sql, const struct val *v,
                   size_t n, row_reader reader, void *out, struct err *err)
{
    struct conn *c = borrow(st, err);
    sqlite3_stmt *s = NULL;
    int rc;

    if (!c)
        return -1;
    rc = row1(c, &s, what, sql, v, n, err);
    if (rc == 1) {
        reader(s, out);
        sqlite3_reset(s);
    }
    give_back(st, c);
    return rc == 1 ? 0 : rc == 0 ? STORE_NOT_FOUND : -1;
}

static void sq_close(struct store *st)
{
    struct sq *s = (struct sq *)st;

    if (!s)
        return;
    /* Every operation has returned its connection by now (callers' contract). */
    while (s->free) {
        struct conn *c = s->free;
        s->free = c->next;
        conn_close(c);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->path);
    free(s);
}

static int sq_schema_version(struct store *st, int64_t *version, struct err *err)
{
    struct conn *c = borrow(st, err);
    int rc = -1;

    if (!c)
        return -1;
    if (scalar(c, version, "read the schema version", "PRAGMA user_version", NOARGS, err) == 1)
        rc = 0;
    give_back(st, c);
    return rc;
}

/* ---- users ---- */

static int sq_user_create(struct store *st, const char *name, const char *pw_hash, int64_t now,
                          int64_t *id, struct err *err)
{
    struct conn *c = NULL;
    int code = 0, rc = -1;

    if (strlen(name) > LIMIT_USERNAME_BYTES || !*name)
        return err_set(err, ERR_PERMANENT, "store", "user name must be 1 to %d bytes",
                       LIMIT_USERNAME_BYTES);
    if (strlen(pw_hash) >= sizeof(((struct store_user *)0)->pw_hash))
        return err_set(err, ERR_PERMANENT, "store", "password hash of user '%s' is too long", name);
    c = borrow(st, err);
    if (!c)
        return -1;
    if (tx_begin(c, err))
        goto out;
    if (run_code(c, &code, "create user", "INSERT INTO users (name, pw_hash, created_at) "
                 "VALUES (?1, ?2, ?3)", ARGS(VT(name), VT(pw_hash), VI(now)), err) < 0) {
        if ((code & 0xff) == SQLITE_CONSTRAINT)
            err_set(err, ERR_PERMANENT, "store", "user '%s' already exists", name);
        goto out;
    }
    if (id)
        *id = sqlite3_last_insert_rowid(c->db);
    if (tx_commit(c, err))
        goto out;
    rc = 0;
out:
    give_back(st, c);
    return rc;
}

static void read_user(sqlite3_stmt *s, struct store_user *u)
{
    memset(u, 0, sizeof(*u));
    u->id = sqlite3_column_int64(s, 0);
    col_str(s, 1, u->name, sizeof(u->name));
    col_str(s, 2, u->pw_hash, sizeof(u->pw_hash));
    u->created_at = sqlite3_column_int64(s, 3);
}

static void user_row(sqlite3_stmt *s, void *out)
{
    read_user(s, out);
}

static int sq_user_find(struct store *st, const char *name, struct store_user *out,
                        struct err *err)
{
    return get_one(st, "find user", "SELECT id, name, pw_hash, created_at FROM users "
                   "WHERE name = ?1", ARGS(VT(name)), user_row, out, err);
}

/* What write1 does when its statement changed no row. */
#define MISSING_OK NULL       /* nothing: deleting what is gone is fine */
#define MISSING_NOT_FOUND ""  /* return STORE_NOT_FOUND, as the contract says */

/* Runs one write statement in its own transaction: 0, or for no changed row
 * what `missing` says (else a message: -1 with ERR_PERMANENT and that text). */
static int write1(struct store *st, const char *missing, const char *what, const char *sql,
                  const struct val *v, size_t n, struct err *err)
{
    struct conn *c = borrow(st, err);
    int64_t changed;
    int rc = -1;

    if (!c)
        return -1;
    if (tx_begin(c, err))
        goto out;
    changed = run(c, what, sql, v, n, err);
    if (changed < 0)
        goto out;
    if (changed == 0 && missing && !*missing) {
        rc = STORE_NOT_FOUND;
        goto out;
    }
    if (changed == 0 && missing) {
        err_set(err, ERR_PERMANENT, "store", "cannot %s: %s", what, missing);
        goto out;
    }
    if (tx_commit(c, err))
        goto out;
    rc = 0;
out:
    give_back(st, c);
    return rc;
}

/* "upload N does not exist" into buf, for write1. */
static const char *no_upload(char *buf, size_t n, int64_t id)
{
    snprintf(buf, n, "upload %lld does not exist", (long long)id);
    return buf;
}

static int sq_user_change_password(struct store *st, const char *name, const char *pw_hash,
                                   const char *keep_digest, int64_t *ended, struct err *err);

static int sq_user_set_password(struct store *st, const char *name, const char *pw_hash,
                                struct err *err)
{
    return sq_user_change_password(st, name, pw_hash, NULL, NULL, err);
}

static int sq_user_list(struct store *st, store_user_cb cb, void *ctx, struct err *err)
{
    struct conn *c = borrow(st, err);
    sqlite3_stmt *s = NULL;
    struct store_user u;
    int rc = -1;

    if (!c)
        return -1;
    s = prepare(c, "list users", "SELECT id, name, pw_hash, created_at FROM users ORDER BY name",
                NOARGS, err);
    if (!s)
        goto out;
    for (;;) {
        int r = step(c, s, "list users", err);
        if (r < 0)
            goto out;
        if (r == 0)
            break;
        read_user(s, &u);
        cb(ctx, &u);
    }
    rc = 0;
out:
    give_back(st, c);
    return rc;
}

static int sq_user_count(struct store *st, int64_t *n, struct err *err)
{
    struct conn *c = borrow(st, err);
    int rc = -1;

    if (!c)
        return -1;
    if (scalar(c, n, "count users", "SELECT count(*) FROM users", NOARGS, err) == 1)
        rc = 0;
    give_back(st, c);
    return rc;
}

/* ---- sessions ---- */

static int sq_session_create(struct store *st, const char *digest, int64_t user_id, int64_t now,
                             int64_t expires_at, struct err *err)
{
    return write1(st, MISSING_OK, "create a session", "INSERT INTO sessions (digest, user_id, "
                  "created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                  ARGS(VT(digest), VI(user_id), VI(now), VI(expires_at)), err);
}

static void session_row(sqlite3_stmt *s, void *p)
{
    struct store_session *out = p;

    memset(out, 0, sizeof(*out));
    out->user_id = sqlite3_column_int64(s, 0);
    col_str(s, 1, out->user_name, sizeof(out->user_name));
    out->expires_at = sqlite3_column_int64(s, 2);
    out->current_upload = sqlite3_column_int64(s, 3);
}

static int sq_session_get(struct store *st, const char *digest, int64_t now,
                          struct store_session *out, struct err *err)
{
    return get_one(st, "read a session",
                   "SELECT s.user_id, u.name, s.expires_at, s.current_upload FROM sessions s "
                   "JOIN users u ON u.id = s.user_id WHERE s.digest = ?1 AND s.expires_at > ?2",
                   ARGS(VT(digest), VI(now)), session_row, out, err);
}

static int sq_session_touch(struct store *st, const char *digest, int64_t expires_at,
                            struct err *err)
{
    return write1(st, MISSING_OK, "extend a session", "UPDATE sessions SET expires_at = ?2 "
                  "WHERE digest = ?1", ARGS(VT(digest), VI(expires_at)), err);
}

static int sq_session_set_upload(struct store *st, const char *digest, int64_t upload_id,
                                 struct err *err)
{
    return write1(st, MISSING_OK, "set the session's upload", "UPDATE sessions "
                  "SET current_upload = ?2 WHERE digest = ?1", ARGS(VT(digest), VI(upload_id)),
                  err);
}

static int sq_session_delete(struct store *st, const char *digest, struct err *err)
{
    return write1(st, MISSING_OK, "delete a session", "DELETE FROM sessions WHERE digest = ?1",
                  ARGS(VT(digest)), err);
}

static int sq_session_purge(struct store *st, int64_t now, struct err *err)
{
    return write1(st, MISSING_OK, "remove expired sessions", "DELETE FROM sessions "
                  "WHERE expires_at <= ?1", ARGS(VI(now)), err);
}

/* ---- upload counters ---- */

struct delta {
    int64_t total, processed, uploaded, failed, duplicates, queued;
    bool reopen;  /* clear finished_at: the upload has work again */
};

/* Applies d to the upload's counters and bumps version and updated_at. */
static int bump(struct conn *c, int64_t upload_id, const struct delta *d, int64_t now,
                struct err *err)
{
    int64_t n = run(c, "update the upload's counters",
                    "UPDATE uploads SET total = total + ?2, processed = processed + ?3, "
                    "uploaded = uploaded + ?4, failed = failed + ?5, "
                    "duplicates = duplicates + ?6, queued_files = queued_files + ?7, "
                    "finished_at = CASE WHEN ?8 THEN 0 ELSE finished_at END, "
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

/* Marks the upload finished (once) when no request is open, the announced
 * files have arrived and each has its outcome. *finished: it happened now. */
static int check_finished(struct conn *c, int64_t upload_id, int64_t now, bool *finished,
                          struct err *err)
{
    int64_t n = run(c, "finish the upload",
                    "UPDATE uploads SET finished_at = ?2, version = version + 1, "
                    "updated_at = ?2 WHERE id = ?1 AND finished_at = 0 AND open_requests = 0 "
                    "AND total >= expected AND processed = total",
                    ARGS(VI(upload_id), VI(now)), err);
    if (n < 0)
        return -1;
    if (finished)
        *finished = n > 0;
    return 0;
}

/* After an outcome: the current batch has ended when none of its files is
 * still queued or processing. */
static int check_batch_end(struct conn *c, int64_t upload_id, int64_t now, struct err *err)
{
    return run(c, "end the batch",
               "UPDATE uploads SET last_batch_end_at = ?2 WHERE id = ?1 AND current_batch > 0 "
               "AND NOT EXISTS (SELECT 1 FROM upload_files f WHERE f.upload_id = ?1 "
               "AND f.state IN ('queued', 'processing') AND f.batch_no = uploads.current_batch)",
               ARGS(VI(upload_id), VI(now)), err) < 0 ? -1 : 0;
}

/* ---- uploads ---- */

#define UPLOAD_COLS \
    "id, user_id, created_at, updated_at, finished_at, expected, open_requests, total, " \
    "processed, uploaded, failed, duplicates, queued_files, current_batch, batch_size, " \
    "bytes_received, bytes_total, last_batch_end_at, version, cleared, fatal"

static void read_upload(sqlite3_stmt *s, struct store_upload *u)
{
    int64_t *ints[] = {&u->id, &u->user_id, &u->created_at, &u->updated_at, &u->finished_at,
                       &u->expected, &u->open_requests, &u->total, &u->processed, &u->uploaded,
                       &u->failed, &u->duplicates, &u->queued_files, &u->current_batch,
                       &u->batch_size, &u->bytes_received, &u->bytes_total,
                       &u->last_batch_end_at, &u->version};

    memset(u, 0, sizeof(*u));
    for (int i = 0; i < (int)(sizeof(ints) / sizeof(ints[0])); i++)
        *ints[i] = sqlite3_column_int64(s, i);
    u->cleared = sqlite3_column_int64(s, 19) != 0;
    col_str(s, 20, u->fatal, sizeof(u->fatal));
}

static int sq_upload_create(struct store *st, int64_t user_id, int64_t expected,
                            int64_t batch_size, int64_t now, int64_t *id, struct err *err)
{
    struct conn *c = NULL;
    int rc = -1;

    if (batch_size < 1 || expected < 0 || expected > LIMIT_UPLOAD_FILES)
        return err_set(err, ERR_PERMANENT, "store",
                       "cannot create upload: batch size %lld or expected files %lld out of range",
                       (long long)batch_size, (long long)expected);
    c = borrow(st, err);
    if (!c)
        return -1;
    if (tx_begin(c, err))
        goto out;
    if (run(c, "create an upload", "INSERT INTO uploads (user_id, created_at, updated_at, "
            "expected, batch_size) VALUES (?1, ?2, ?2, ?3, ?4)",
            ARGS(VI(user_id), VI(now), VI(expected), VI(batch_size)), err) < 0)
        goto out;
    if (id)
        *id = sqlite3_last_insert_rowid(c->db);
    if (tx_commit(c, err))
        goto out;
    rc = 0;
out:
    give_back(st, c);
    return rc;
}

static void upload_row(sqlite3_stmt *s, void *out)
{
    read_upload(s, out);
}

static int sq_upload_get(struct store *st, int64_t id, int64_t user_id, struct store_upload *out,
                         struct err *err)
{
    return get_one(st, "read the upload", "SELECT " UPLOAD_COLS " FROM uploads WHERE id = ?1 "
                   "AND (?2 = 0 OR user_id = ?2)", ARGS(VI(id), VI(user_id)), upload_row, out,
                   err);
}

static int sq_upload_list(struct store *st, int64_t user_id, int64_t limit, store_upload_cb cb,
                          void *ctx, struct err *err)
{
    struct conn *c = borrow(st, err);
    sqlite3_stmt *s = NULL;
    struct store_upload u;
    int rc = -1;

    if (!c)
        return -1;
    s = prepare(c, "list uploads", "SELECT " UPLOAD_COLS " FROM uploads WHERE user_id = ?1 "
                "ORDER BY id DESC LIMIT ?2", ARGS(VI(user_id), VI(limit > 0 ? limit : -1)), err);
    if (!s)
        goto out;
    for (;;) {
        int r = step(c, s, "list uploads", err);
        if (r < 0)
            goto out;
        if (r == 0)
            break;
        read_upload(s, &u);
        cb(ctx, &u);
    }
    rc = 0;
out:
    give_back(st, c);
    return rc;
}

/* A new request reopens a finished upload: more files may come. */
static int sq_upload_request_begin(struct store *st, int64_t id, int64_t expected,
                                   int64_t bytes_total, int64_t now, struct err *err)
{
    char missing[64];

    if (expected > LIMIT_UPLOAD_FILES)
        return err_set(err, ERR_PERMANENT, "store", "an upload may announce at most %d files",
                       LIMIT_UPLOAD_FILES);
    return write1(st, no_upload(missing, sizeof(missing), id), "start a request",
                  "UPDATE uploads SET open_requests = open_requests + 1, "
                  "expected = max(expected, ?2), bytes_total = bytes_total + max(?3, 0), "
                  "finished_at = 0, version = version + 1, updated_at = ?4 WHERE id = ?1",
                  ARGS(VI(id), VI(expected), VI(bytes_total), VI(now)), err);
}

/* An upload no request sends into and without any file (id 0: every such upload)
 * is deleted: its first request was cut off before a file was complete, and an
 * empty upload would only show as "failed" with no reason. */
static int drop_empty(struct conn *c, int64_t id, struct err *err)
{
    return run(c, "delete an empty upload", "DELETE FROM uploads WHERE (?1 = 0 OR id = ?1) "
               "AND open_requests = 0 AND total = 0", ARGS(VI(id)), err) < 0 ? -1 : 0;
}

static int sq_upload_request_end(struct store *st, int64_t id, int64_t now, struct err *err)
{
    struct conn *c = borrow(st, err);
    int64_t n;
    int rc = -1;

    if (!c)
        return -1;
    if (tx_begin(c, err))
        goto out;
    n = run(c, "end a request", "UPDATE uploads SET open_requests = max(open_requests - 1, 0), "
            "version = version + 1, updated_at = ?2 WHERE id = ?1", ARGS(VI(id), VI(now)), err);
    if (n < 0)
        goto out;
    if (n == 0) {
        err_set(err, ERR_PERMANENT, "store", "cannot end a request: upload %lld does not exist",
                (long long)id);
        goto out;
    }
    if (drop_empty(c, id, err) || check_finished(c, id, now, NULL, err) || tx_commit(c, err))
        goto out;
    rc = 0;
out:
    give_back(st, c);
    return rc;
}

static int sq_upload_add_bytes(struct store *st, int64_t id, int64_t bytes, int64_t now,
                               struct err *err)
{
    char missing[64];

    return write1(st, no_upload(missing, sizeof(missing), id), "count received bytes",
                  "UPDATE uploads SET bytes_received = bytes_received + ?2, "
                  "version = version + 1, updated_at = ?3 WHERE id = ?1",
                  ARGS(VI(id), VI(bytes), VI(now)), err);
}

/* Copies a client's file name, cut to fit at a UTF-8 character boundary. */
static void cut_name(const char *name, char out[STORE_FILENAME_MAX])
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

static int insert_file(struct conn *c, const struct store_file_new *f, int64_t seq, int64_t now,
                       struct err *err)
{
    char name[STORE_FILENAME_MAX];
    const char *stage = "", *msg = "";

    cut_name(f->name, name);
    if (f->failed) {
        stage = f->error && f->error->stage[0] ? f->error->stage : "receive";
        msg = f->error && f->error->msg[0] ? f->error->msg : "the file was rejected";
    }
    return run(c, "record the file",
               "INSERT INTO upload_files (upload_id, user_id, seq, state, name, size, sha256, "
               "format, spool, error_stage, error_msg, created_at, updated_at) "
               "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
               ARGS(VI(f->upload_id), VI(f->user_id), VI(seq),
                    VT(store_file_state_name(f->failed ? FILE_FAILED : FILE_RECEIVED)), VT(name),
                    VI(f->size), VT(f->sha256), VT(f->format), VT(f->spool), VT(stage), VT(msg),
                    VI(now)),
               err) < 0 ? -1 : 0;
}

/* 1 (and *file_id) when the upload already has a file of that name and content:
 * a request cut off by a crash and sent again. Rejected files have no content
 * hash and never match. 0 when none, -1 failed. */
static int same_file(struct conn *c, const struct store_file_new *f, int64_t *file_id,
                     struct err *err)
{
    char name[STORE_FILENAME_MAX];
    int64_t id = 0;
    int r;

    if (f->failed || !f->sha256 || !f->sha256[0])
        return 0;
    cut_name(f->name, name);
    r = scalar(c, &id, "look for the same file", "SELECT id FROM upload_files "
               "WHERE upload_id = ?1 AND name = ?2 AND sha256 = ?3 LIMIT 1",
               ARGS(VI(f->upload_id), VT(name), VT(f->sha256)), err);
    if (r > 0 && file_id)
        *file_id = id;
    return r;
}

static int sq_upload_add_file(struct store *st, const struct store_file_new *f, int64_t now,
                              int64_t *file_id, struct err *err)
{
    struct conn *c = NULL;
    sqlite3_stmt *s = NULL;
    struct delta d = {.total = 1};
    int64_t owner, seq;
    int rc = -1, r;

    if (f->spool && strlen(f->spool) >= STORE_PATH_MAX)
        return err_set(err, ERR_PERMANENT, "store", "spool path is too long");
    c = borrow(st, err);
    if (!c)
        return -1;
    if (tx_begin(c, err))
        goto out;
    r = row1(c, &s, "read the upload", "SELECT user_id, total FROM uploads WHERE id = ?1",
             ARGS(VI(f->upload_id)), err);
    if (r < 0)
        goto out;
    if (r == 0) {
        err_set(err, ERR_PERMANENT, "store", "upload %lld does not exist",
                (long long)f->upload_id);
        goto out;
    }
    owner = sqlite3_column_int64(s, 0);
    seq = sqlite3_column_int64(s, 1) + 1;  /* total counts every file recorded */
    sqlite3_reset(s);
    if (owner != f->user_id) {
        err_set(err, ERR_PERMANENT, "store", "upload %lld belongs to another user",
                (long long)f->upload_id);
        goto out;
    }
    r = same_file(c, f, file_id, err);
    if (r != 0) {
        rc = r > 0 ? STORE_EXISTS : -1;
        goto out;
    }
    if (insert_file(c, f, seq, now, err))
        goto out;
    if (file_id)
        *file_id = sqlite3_last_insert_rowid(c->db);
    if (f->failed) {
        d.processed = d.failed = 1;
    } else {
        d.queued = 1;
        d.reopen = true;
    }
    if (bump(c, f->upload_id, &d, now, err))
        goto out;
    if (f->failed && check_finished(c, f->upload_id, now, NULL, err))
        goto out;
    if (tx_commit(c, err))
        goto out;
    rc = 0;
out:
    give_back(st, c);
    return rc;
}

static int sq_upload_set_cleared(struct store *st, int64_t id, bool cleared, struct err *err)
{
    char missing[64];

    return write1(st, no_upload(missing, sizeof(missing), id), "clear the upload's progress",
                  "UPDATE uploads SET cleared = ?2, version = version + 1 WHERE id = ?1",
                  ARGS(VI(id), VI(cleared)), err);
}

/* ---- files ---- */

#define FILE_COLS \
    "id, upload_id, user_id, seq, state, name, size, sha256, format, spool, batch_no, " \
    "attempts, photo_id, duplicate_of, error_stage, error_msg, lease_owner, created_at, " \
    "updated_at, lease_until"

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

static void read_file(sqlite3_stmt *s, struct store_file *f)
{
    char state[16];

    memset(f, 0, sizeof(*f));
    f->id = sqlite3_column_int64(s, 0);
    f->upload_id = sqlite3_column_int64(s, 1);
    f->user_id = sqlite3_column_int64(s, 2);
    f->seq = sqlite3_column_int64(s, 3);
    col_str(s, 4, state, sizeof(state));
    f->state = parse_state(state);
    col_str(s, 5, f->name, sizeof(f->name));
    f->size = sqlite3_column_int64(s, 6);
    col_str(s, 7, f->sha256, sizeof(f->sha256));
    col_str(s, 8, f->format, sizeof(f->format));
    col_str(s, 9, f->spool, sizeof(f->spool));
    f->batch_no = sqlite3_column_int64(s, 10);
    f->attempts = sqlite3_column_int64(s, 11);
    f->photo_id = sqlite3_column_int64(s, 12);
    f->duplicate_of = sqlite3_column_int64(s, 13);
    col_str(s, 14, f->error_stage, sizeof(f->error_stage));
    col_str(s, 15, f->error_msg, sizeof(f->error_msg));
    col_str(s, 16, f->lease_owner, sizeof(f->lease_owner));
    f->created_at = sqlite3_column_int64(s, 17);
    f->updated_at = sqlite3_column_int64(s, 18);
    if (sqlite3_column_count(s) > 20) /* FILE_COLS_THUMB */
        f->photo_has_thumb = sqlite3_column_int(s, 20) != 0;
}

static int list_files(struct store *st, const char *what, const char *sql, int64_t upload_id,
                      store_file_cb cb, void *ctx, struct err *err)
{
    struct conn *c = borrow(st, err);
    sqlite3_stmt *s = NULL;
    struct store_file f;
    int rc = -1;

    if (!c)
        return -1;
    s = prepare(c, what, sql, ARGS(VI(upload_id)), err);
    if (!s)
        goto out;
    for (;;) {
        int r = step(c, s, what, err);
        if (r < 0)
            goto out;
        if (r == 0)
            break;
        read_file(s, &f);
        cb(ctx, &f);
    }
    rc = 0;
out:
    give_back(st, c);
    return rc;
}

static int sq_upload_files(struct store *st, int64_t upload_id, store_file_cb cb, void *ctx,
                           struct err *err)
{
    return list_files(st, "list the upload's files", "SELECT " FILE_COLS_THUMB
                      " FROM upload_files WHERE upload_id = ?1 ORDER BY seq", upload_id, cb, ctx,
                      err);
}

static int sq_upload_errors(struct store *st, int64_t upload_id, store_file_cb cb, void *ctx,
                            struct err *err)
{
    return list_files(st, "list the upload's failed files", "SELECT " FILE_COLS
                      " FROM upload_files WHERE upload_id = ?1 AND state = 'failed' ORDER BY seq",
                      upload_id, cb, ctx, err);
}

static int sq_upload_reset_requests(struct store *st, int64_t now, struct err *err)
{
    struct conn *c = borrow(st, err);
    int rc = -1;

    if (!c)
        return -1;
    if (tx_begin(c, err))
        goto out;
    if (run(c, "reset open requests", "UPDATE uploads SET open_requests = 0, "
            "version = version + 1, updated_at = ?1 WHERE open_requests <> 0", ARGS(VI(now)),
            err) < 0)
        goto out;
    if (drop_empty(c, 0, err))
        goto out;
    /* Uploads whose only missing piece was the end of a request are finished now. */
    if (run(c, "finish uploads", "UPDATE uploads SET finished_at = ?1, version = version + 1, "
            "updated_at = ?1 WHERE finished_at = 0 AND open_requests = 0 "
            "AND total >= expected AND processed = total", ARGS(VI(now)), err) < 0)
        goto out;
    if (tx_commit(c, err))
        goto out;
    rc = 0;
out:
    give_back(st, c);
    return rc;
}

static int sq_upload_close_idle(struct store *st, int64_t idle_before, int64_t now,
                                int64_t *closed, struct err *err)
{
    struct conn *c = borrow(st, err);
    int64_t n;
    int rc = -1;

    if (closed)
        *closed = 0;
    if (!c)
        return -1;
    if (tx_begin(c, err))
        goto out;
    n = run(c, "close idle uploads", "UPDATE uploads SET expected = total, "
            "version = version + 1, updated_at = ?2 WHERE finished_at = 0 "
            "AND open_requests = 0 AND total < expected AND updated_at < ?1",
            ARGS(VI(idle_before), VI(now)), err);
    if (n < 0)
        goto out;
    if (n > 0 && run(c, "finish uploads", "UPDATE uploads SET finished_at = ?1, "
                     "version = version + 1, updated_at = ?1 WHERE finished_at = 0 "
                     "AND open_requests = 0 AND total >= expected AND processed = total",
                     ARGS(VI(now)), err) < 0)
        goto out;
    if (tx_commit(c, err))
        goto out;
    if (closed)
        *closed = n;
    rc = 0;
out:
    give_back(st, c);
    return rc;
}

/* ---- scheduling ---- */

static int sq_sched_list(struct store *st, store_sched_cb cb, void *ctx, struct err *err)
{
    struct conn *c = borrow(st, err);
    sqlite3_stmt *s = NULL;
    struct store_sched x;
    int rc = -1;

    if (!c)
        return -1;
    s = prepare(c, "list uploads to schedule",
                "SELECT id, batch_size, current_batch, queued_files, "
                "total - processed - queued_files, open_requests = 0 AND total >= expected, "
                "last_batch_end_at, open_requests FROM uploads WHERE finished_at = 0 "
                "AND (queued_files > 0 OR processed + queued_files < total) ORDER BY id",
                NOARGS, err);
    if (!s)
        goto out;
    for (;;) {
        int r = step(c, s, "list uploads to schedule", err);
        if (r < 0)
            goto out;
        if (r == 0)
            break;
        x = (struct store_sched){
            .upload_id = sqlite3_column_int64(s, 0),
            .batch_size = sqlite3_column_int64(s, 1),
            .current_batch = sqlite3_column_int64(s, 2),
            .unassigned = sqlite3_column_int64(s, 3),
            .in_flight = sqlite3_column_int64(s, 4),
            .arrived = sqlite3_column_int64(s, 5) != 0,
            .last_batch_end_at = sqlite3_column_int64(s, 6),
            .open_requests = sqlite3_column_int64(s, 7),
        };
        cb(ctx, &x);
    }
    rc = 0;
out:
    give_back(st, c);
    return rc;
}

static int sq_sched_assign(struct store *st, int64_t upload_id, int64_t batch_no, int64_t limit,
                           int64_t now, int64_t *assigned, struct err *err)
{
    struct conn *c = NULL;
    struct delta d = {0};
    int64_t n = 0;
    int rc = -1;

    if (assigned)
        *assigned = 0;
    if (limit < 1)
        return 0;
    c = borrow(st, err);
    if (!c)
        return -1;
    if (tx_begin(c, err))
        goto out;
    n = run(c, "queue a batch", "UPDATE upload_files SET state = 'queued', batch_no = ?2, "
            "queued_at = ?4, available_at = ?4, updated_at = ?4 WHERE id IN (SELECT id "
            "FROM upload_files WHERE upload_id = ?1 AND state = 'received' ORDER BY seq LIMIT ?3)",
            ARGS(VI(upload_id), VI(batch_no), VI(limit), VI(now)), err);
    if (n < 0)
        goto out;
    /* An empty batch changes nothing: current_batch only names batches with files. */
    if (n > 0) {
        d.queued = -n;
        if (bump(c, upload_id, &d, now, err))
            goto out;
        if (run(c, "start a batch", "UPDATE uploads SET current_batch = ?2 WHERE id = ?1",
                ARGS(VI(upload_id), VI(batch_no)), err) < 0)
            goto out;
    }
    if (tx_commit(c, err))
        goto out;
    if (assigned)
        *assigned = n;
    rc = 0;
out:
    give_back(st, c);
    return rc;
}

/* ---- workers ---- */

static int sq_file_claim(struct store *st, const char *owner, int64_t now, int64_t lease_ms,
                         struct store_claim *out, struct err *err)
{
    struct conn *c = NULL;
    sqlite3_stmt *s = NULL;
    struct delta d = {0};
    int rc = -1, r;

    if (!owner || !*owner || strlen(owner) >= sizeof(out->file.lease_owner))
        return err_set(err, ERR_PERMANENT, "store", "lease owner must be 1 to %zu bytes",
                       sizeof(out->file.lease_owner) - 1);
    c = borrow(st, err);
    if (!c)
        return -1;
    if (tx_begin(c, err))
        goto out;
    r = row1(c, &s, "claim a file",
             "UPDATE upload_files SET state = 'processing', lease_owner = ?1, "
             "lease_until = ?2 + ?3, attempts = attempts + 1, updated_at = ?2 "
             "WHERE id = (SELECT id FROM upload_files WHERE state = 'queued' "
             "AND available_at <= ?2 ORDER BY queued_at, id LIMIT 1) RETURNING " FILE_COLS,
             ARGS(VT(owner), VI(now), VI(lease_ms)), err);
    if (r <= 0) {
        rc = r == 0 ? STORE_NOT_FOUND : -1;
        goto out;
    }
    read_file(s, &out->file);
    out->lease_until = sqlite3_column_int64(s, 19);
    sqlite3_reset(s);
    if (bump(c, out->file.upload_id, &d, now, err) || tx_commit(c, err))
        goto out;
    rc = 0;
out:
    give_back(st, c);
    return rc;
}

/* The leased file's row: 1 when owner holds it (PROCESSING), 0 when not, -1 failed. */
static int leased_file(struct conn *c, int64_t file_id, const char *owner, struct store_file *f,
                       struct err *err)
{
    sqlite3_stmt *s = NULL;
    int r = row1(c, &s, "read the file", "SELECT " FILE_COLS " FROM upload_files WHERE id = ?1",
                 ARGS(VI(file_id)), err);

    if (r <= 0)
        return r;
    read_file(s, f);
    sqlite3_reset(s);
    return f->state == FILE_PROCESSING && owner && strcmp(f->lease_owner, owner) == 0;
}

static void sort_key(const struct store_photo *p, int64_t now, char out[32])
{
    time_t secs = (time_t)(now / 1000);
    struct tm tm;

    if (p->taken_at[0]) {
        snprintf(out, 32, "%s", p->taken_at);
        return;
    }
    gmtime_r(&secs, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
}

/* Inserts the photo of file f: 1 done (*id set), 0 the user already had this
 * content (UNIQUE), -1 failed. */
static int insert_photo(struct conn *c, const struct store_file *f, const struct store_photo *p,
                        const char *sha, int64_t now, int64_t *id, struct err *err)
{
    char sort[32];
    int code = 0;
    int64_t n;

    sort_key(p, now, sort);
    n = run_code(c, &code, "record the photo",
                 "INSERT INTO photos (user_id, upload_id, file_id, name, format, size, sha256, "
                 "width, height, taken_at, taken_offset, make, model, lens, exposure_time, "
                 "f_number, focal_length, iso, orientation, gps_lat, gps_lon, gps_alt, "
                 "has_thumb, warnings, blob_key, thumb_key, preview_key, created_at, sort_at) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "
                 "?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29)",
                 ARGS(VI(f->user_id), VI(f->upload_id), VI(f->id),
                      VT(p->name[0] ? p->name : f->name), VT(p->format[0] ? p->format : f->format),
                      VI(p->size ? p->size : f->size), VT(sha), VI(p->width), VI(p->height),
                      VT(p->taken_at), VT(p->taken_offset), VT(p->make), VT(p->model),
                      VT(p->lens), VD(p->exposure_time), VD(p->f_number), VD(p->focal_length),
                      VI(p->iso), VI(p->orientation), VD(p->gps_lat), VD(p->gps_lon),
                      VD(p->gps_alt), VI(p->has_thumb), VT(p->warnings), VT(p->blob_key),
                      VT(p->thumb_key), VT(p->preview_key), VI(now), VT(sort)),
                 err);
    if (n >= 0) {
        *id = sqlite3_last_insert_rowid(c->db);
        return 1;
    }
    if (code == SQLITE_CONSTRAINT_UNIQUE) {
        err_clear(err);
        return 0;
    }
    return -1;
}

static int find_sha(struct conn *c, int64_t user_id, const char *sha, int64_t *id,
                    struct err *err)
{
    return scalar(c, id, "look for the same photo", "SELECT id FROM photos "
                  "WHERE user_id = ?1 AND sha256 = ?2", ARGS(VI(user_id), VT(sha)), err);
}

/* STORE_OK: the photo row, or DUPLICATE of the user's photo with the same content. */
static int record_photo(struct conn *c, const struct store_file *f, const struct store_photo *p,
                        int64_t now, struct store_finish *fin, struct err *err)
{
    const char *sha = p->sha256[0] ? p->sha256 : f->sha256;
    int r;

    if (!p->blob_key[0])
        return err_set(err, ERR_PERMANENT, "store", "photo '%s' has no blob key", f->name);
    r = find_sha(c, f->user_id, sha, &fin->photo_id, err);
    if (r < 0)
        return -1;
    if (r == 0) {
        r = insert_photo(c, f, p, sha, now, &fin->photo_id, err);
        if (r < 0)
            return -1;
        /* r == 0: the same content arrived first through another path */
        if (r == 0 && find_sha(c, f->user_id, sha, &fin->photo_id, err) != 1)
            return err_set(err, ERR_TRANSIENT, "store", "cannot record photo '%s'", f->name);
        if (r == 1) {
            fin->state = FILE_DONE;
            return 0;
        }
    }
    fin->state = FILE_DUPLICATE;
    return 0;
}

/* Writes the outcome fin of file f and the upload's counters. */
static int record_outcome(struct conn *c, const struct store_file *f,
                          const struct store_result *res, struct store_finish *fin,
                          int64_t now, struct err *err)
{
    struct delta d = {.processed = 1};
    bool failed = fin->state == FILE_FAILED;
    const char *stage = failed ? (res->error.stage[0] ? res->error.stage : "process") : "";
    const char *msg = failed ? (res->error.msg[0] ? res->error.msg : "processing failed") : "";
    /* Done and duplicate files no longer need their spool copy; failed ones keep it
     * only for a manual retry, and only when a retry could help. */
    bool drop_spool = !failed || !res->keep_spool || store_err_refuses_input(&res->error);

    if (run(c, "record the file's outcome",
            "UPDATE upload_files SET state = ?2, photo_id = ?3, duplicate_of = ?4, "
            "error_stage = ?5, error_msg = ?6, spool = CASE WHEN ?7 THEN '' ELSE spool END, "
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
    return bump(c, f->upload_id, &d, now, err);
}

static int sq_file_finish(struct store *st, int64_t file_id, const char *owner,
                          const struct store_result *res, int64_t now, struct store_finish *out,
                          struct err *err)
{
    struct conn *c = borrow(st, err);
    struct store_file f;
    struct store_finish fin = {.state = FILE_FAILED};
    int rc = -1, r;

    if (!c)
        return -1;
    if (tx_begin(c, err))
        goto out;
    r = leased_file(c, file_id, owner, &f, err);
    if (r <= 0) {
        rc = r == 0 ? STORE_NOT_FOUND : -1;
        goto out;
    }
    if (res->outcome == STORE_OK && record_photo(c, &f, &res->photo, now, &fin, err))
        goto out;
    if (record_outcome(c, &f, res, &fin, now, err) ||
        check_batch_end(c, f.upload_id, now, err) ||
        check_finished(c, f.upload_id, now, &fin.upload_finished, err) || tx_commit(c, err))
        goto out;
    if (out)
        *out = fin;
    rc = 0;
out:
    give_back(st, c);
    return rc;
}

static int sq_file_defer(struct store *st, int64_t file_id, const char *owner, int64_t retry_at,
                         const struct err *why, int64_t now, struct err *err)
{
    struct conn *c = borrow(st, err);
    int64_t upload_id = 0;
    struct delta d = {0};
    int rc = -1, r;

    if (!c)
        return -1;
    if (tx_begin(c, err))
        goto out;
    r = scalar(c, &upload_id, "defer the file",
               "UPDATE upload_files SET state = 'queued', available_at = ?3, lease_owner = '', "
               "lease_until = 0, error_stage = ?4, error_msg = ?5, updated_at = ?6 "
               "WHERE id = ?1 AND state = 'processing' AND lease_owner = ?2 RETURNING upload_id",
               ARGS(VI(file_id), VT(owner), VI(retry_at), VT(why ? why->stage : ""),
                    VT(why ? why->msg : ""), VI(now)),
               err);
    if (r <= 0) {
        rc = r == 0 ? STORE_NOT_FOUND : -1;
        goto out;
    }
    if (bump(c, upload_id, &d, now, err) || tx_commit(c, err))
        goto out;
    rc = 0;
out:
    give_back(st, c);
    return rc;
}

struct leased {
    int64_t id, upload_id, attempts;
};

/* The files leased by owner, or with an expired lease when owner is NULL. */
static int collect_leased(struct conn *c, const char *owner, int64_t now, struct leased **out,
                          size_t *n, struct err *err)
{
    sqlite3_stmt *s;
    size_t cap = 0;

    *out = NULL;
    *n = 0;
    if (owner && !strcmp(owner, "*"))
        s = prepare(c, "find leased files", "SELECT id, upload_id, attempts FROM upload_files "
                    "WHERE state = 'processing'", ARGS(), err);
    else if (owner)
        s = prepare(c, "find leased files", "SELECT id, upload_id, attempts FROM upload_files "
                    "WHERE state = 'processing' AND lease_owner = ?1",
                    ARGS(VT(owner)), err);
    else
        s = prepare(c, "find expired leases", "SELECT id, upload_id, attempts FROM upload_files "
                    "WHERE state = 'processing' AND lease_until < ?1",
                    ARGS(VI(now)), err);
    if (!s)
        return -1;
    for (;;) {
        int r = step(c, s, "find leased files", err);
        if (r <= 0)
            return r;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *out = xrealloc(*out, cap * sizeof(**out));
        }
        (*out)[(*n)++] = (struct leased){sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
                                         sqlite3_column_int64(s, 2)};
    }
}

static int release_one(struct conn *c, const struct leased *l, int64_t now, int64_t max_attempts,
                       const struct err *why, struct err *err)
{
    struct delta d = {0};
    bool fail = l->attempts >= max_attempts;
    const char *stage = why && why->stage[0] ? why->stage : "worker";
    const char *msg =
        why && why->msg[0] ? why->msg : "the worker stopped while processing the file";

    if (run(c, "release the file",
            "UPDATE upload_files SET state = ?2, available_at = ?3, lease_owner = '', "
            "lease_until = 0, error_stage = ?4, error_msg = ?5, updated_at = ?3 WHERE id = ?1",
            ARGS(VI(l->id), VT(store_file_state_name(fail ? FILE_FAILED : FILE_QUEUED)),
                 VI(now), VT(stage), VT(msg)),
            err) < 0)
        return -1;
    if (fail)
        d.processed = d.failed = 1;
    if (bump(c, l->upload_id, &d, now, err))
        return -1;
    if (!fail)
        return 0;
    if (check_batch_end(c, l->upload_id, now, err))
        return -1;
    return check_finished(c, l->upload_id, now, NULL, err);
}

static int sq_file_release(struct store *st, const char *owner, int64_t now,
                           int64_t max_attempts, const struct err *why, int64_t *released,
                           struct err *err)
{
    struct conn *c = borrow(st, err);
    struct leased *files = NULL;
    size_t n = 0;
    int rc = -1;

    if (released)
        *released = 0;
    if (!c)
        return -1;
    if (tx_begin(c, err) || collect_leased(c, owner, now, &files, &n, err))
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (release_one(c, &files[i], now, max_attempts, why, err))
            goto out;
    }
    if (tx_commit(c, err))
        goto out;
    if (released)
        *released = (int64_t)n;
    rc = 0;
out:
    free(files);
    give_back(st, c);
    return rc;
}

static int sq_file_retry(struct store *st, int64_t user_id, int64_t upload_id, int64_t file_id,
                         int64_t now, struct err *err)
{
    struct conn *c = borrow(st, err);
    sqlite3_stmt *s = NULL;
    struct store_file f;
    struct delta d = {.processed = -1, .failed = -1, .reopen = true};
    int rc = -1, r;

    if (!c)
        return -1;
    if (tx_begin(c, err))
        goto out;
    r = row1(c, &s, "read the file", "SELECT " FILE_COLS " FROM upload_files WHERE id = ?1 "
             "AND upload_id = ?2 AND user_id = ?3 AND state = 'failed'",
             ARGS(VI(file_id), VI(upload_id), VI(user_id)), err);
    if (r <= 0) {
        rc = r == 0 ? STORE_NOT_FOUND : -1;
        goto out;
    }
    read_file(s, &f);
    sqlite3_reset(s);
    if (!f.spool[0]) {
        err_set(err, ERR_PERMANENT, "store",
                "cannot retry '%s': the file's bytes are no longer held; upload it again", f.name);
        goto out;
    }
    /* Into the upload's current batch, so the batch-end test waits for it. */
    if (run(c, "queue the file again",
            "UPDATE upload_files SET state = 'queued', attempts = 0, available_at = ?2, "
            "queued_at = ?2, error_stage = '', error_msg = '', updated_at = ?2, "
            "batch_no = (SELECT max(u.current_batch, upload_files.batch_no) FROM uploads u "
            "WHERE u.id = upload_files.upload_id) WHERE id = ?1",
            ARGS(VI(file_id), VI(now)), err) < 0)
        goto out;
    if (bump(c, upload_id, &d, now, err) || tx_commit(c, err))
        goto out;
    rc = 0;
out:
    give_back(st, c);
    return rc;
}

static void file_row(sqlite3_stmt *s, void *out)
{
    read_file(s, out);
}

static int sq_file_get(struct store *st, int64_t id, int64_t user_id, struct store_file *out,
                       struct err *err)
{
    return get_one(st, "read the file", "SELECT " FILE_COLS " FROM upload_files WHERE id = ?1 "
                   "AND (?2 = 0 OR user_id = ?2)", ARGS(VI(id), VI(user_id)), file_row, out,
                   err);
}

static int sq_file_drop_spool(struct store *st, int64_t file_id, struct err *err)
{
    return write1(st, MISSING_OK, "forget the spool file", "UPDATE upload_files SET spool = '' "
                  "WHERE id = ?1", ARGS(VI(file_id)), err);
}

static int list_keys(struct store *st, const char *what, const char *sql, store_key_cb cb,
                     void *ctx, struct err *err)
{
    struct conn *c = borrow(st, err);
    sqlite3_stmt *s = NULL;
    int rc = -1;

    if (!c)
        return -1;
    s = prepare(c, what, sql, NOARGS, err);
    if (!s)
        goto out;
    for (;;) {
        int r = step(c, s, what, err);
        if (r < 0)
            goto out;
        if (r == 0)
            break;
        cb(ctx, (const char *)sqlite3_column_text(s, 0));
    }
    rc = 0;
out:
    give_back(st, c);
    return rc;
}

static int sq_spool_refs(struct store *st, store_key_cb cb, void *ctx, struct err *err)
{
    return list_keys(st, "list spool files", "SELECT spool FROM upload_files WHERE spool <> ''",
                     cb, ctx, err);
}

static int sq_file_renew(struct store *st, int64_t file_id, const char *owner,
                         int64_t lease_until, int64_t now, struct err *err)
{
    struct conn *c = borrow(st, err);
    int64_t n;

    (void)now; /* renewal is not activity: updated_at stays */
    if (!c)
        return -1;
    n = run(c, "renew the lease",
            "UPDATE upload_files SET lease_until = ?3 "
            "WHERE id = ?1 AND state = 'processing' AND lease_owner = ?2",
            ARGS(VI(file_id), VT(owner), VI(lease_until)), err);
    give_back(st, c);
    if (n < 0)
        return -1;
    return n == 0 ? STORE_NOT_FOUND : 0;
}

/* ---- photos ---- */

#define PHOTO_COLS \
    "id, user_id, upload_id, file_id, name, format, size, sha256, width, height, taken_at, " \
    "taken_offset, make, model, lens, exposure_time, f_number, focal_length, iso, " \
    "orientation, gps_lat, gps_lon, gps_alt, has_thumb, warnings, blob_key, thumb_key, " \
    "preview_key, created_at"

static void read_photo(sqlite3_stmt *s, struct store_photo *p)
{
    memset(p, 0, sizeof(*p));
    p->id = sqlite3_column_int64(s, 0);
    p->user_id = sqlite3_column_int64(s, 1);
    p->upload_id = sqlite3_column_int64(s, 2);
    p->file_id = sqlite3_column_int64(s, 3);
    col_str(s, 4, p->name, sizeof(p->name));
    col_str(s, 5, p->format, sizeof(p->format));
    p->size = sqlite3_column_int64(s, 6);
    col_str(s, 7, p->sha256, sizeof(p->sha256));
    p->width = sqlite3_column_int64(s, 8);
    p->height = sqlite3_column_int64(s, 9);
    col_str(s, 10, p->taken_at, sizeof(p->taken_at));
    col_str(s, 11, p->taken_offset, sizeof(p->taken_offset));
    col_str(s, 12, p->make, sizeof(p->make));
    col_str(s, 13, p->model, sizeof(p->model));
    col_str(s, 14, p->lens, sizeof(p->lens));
    p->exposure_time = col_double(s, 15);
    p->f_number = col_double(s, 16);
    p->focal_length = col_double(s, 17);
    p->iso = sqlite3_column_int64(s, 18);
    p->orientation = sqlite3_column_int64(s, 19);
    p->gps_lat = col_double(s, 20);
    p->gps_lon = col_double(s, 21);
    p->gps_alt = col_double(s, 22);
    p->has_thumb = sqlite3_column_int64(s, 23) != 0;
    col_str(s, 24, p->warnings, sizeof(p->warnings));
    col_str(s, 25, p->blob_key, sizeof(p->blob_key));
    col_str(s, 26, p->thumb_key, sizeof(p->thumb_key));
    col_str(s, 27, p->preview_key, sizeof(p->preview_key));
    p->created_at = sqlite3_column_int64(s, 28);
}

static void photo_row(sqlite3_stmt *s, void *out)
{
    read_photo(s, out);
}

static int get_photo(struct store *st, const char *sql, const struct val *v, size_t n,
                     struct store_photo *out, struct err *err)
{
    return get_one(st, "read the photo", sql, v, n, photo_row, out, err);
}

static int sq_photo_get(struct store *st, int64_t id, int64_t user_id, struct store_photo *out,
                        struct err *err)
{
    return get_photo(st, "SELECT " PHOTO_COLS " FROM photos WHERE id = ?1 "
                     "AND (?2 = 0 OR user_id = ?2)", ARGS(VI(id), VI(user_id)), out, err);
}

static int sq_photo_find_sha(struct store *st, int64_t user_id, const char *sha256,
                             struct store_photo *out, struct err *err)
{
    return get_photo(st, "SELECT " PHOTO_COLS " FROM photos WHERE user_id = ?1 "
                     "AND sha256 = ?2", ARGS(VI(user_id), VT(sha256)), out, err);
}

static int sq_photo_list(struct store *st, int64_t user_id, int64_t upload_id, int64_t limit,
                         int64_t offset, store_photo_cb cb, void *ctx, int64_t *total,
                         struct err *err)
{
    struct conn *c = borrow(st, err);
    sqlite3_stmt *s = NULL;
    struct store_photo p;
    int rc = -1;

    if (!c)
        return -1;
    if (read_begin(c, err))
        goto out;
    if (total && scalar(c, total, "count photos", "SELECT count(*) FROM photos "
                        "WHERE user_id = ?1 AND (?2 = 0 OR upload_id = ?2)",
                        ARGS(VI(user_id), VI(upload_id)), err) != 1)
        goto out;
    s = prepare(c, "list photos", "SELECT " PHOTO_COLS " FROM photos WHERE user_id = ?1 "
                "AND (?2 = 0 OR upload_id = ?2) ORDER BY sort_at DESC, created_at DESC, id DESC "
                "LIMIT ?3 OFFSET ?4",
                ARGS(VI(user_id), VI(upload_id), VI(limit > 0 ? limit : -1),
                     VI(offset > 0 ? offset : 0)),
                err);
    if (!s)
        goto out;
    for (;;) {
        int r = step(c, s, "list photos", err);
        if (r < 0)
            goto out;
        if (r == 0)
            break;
        read_photo(s, &p);
        cb(ctx, &p);
    }
    if (read_end(c, err))
        goto out;
    rc = 0;
out:
    give_back(st, c);
    return rc;
}

static int sq_photo_delete(struct store *st, int64_t id, int64_t user_id, struct store_photo *out,
                           bool *last_ref, struct err *err)
{
    struct conn *c = borrow(st, err);
    sqlite3_stmt *s = NULL;
    struct store_photo p;
    int64_t others = 0;
    int rc = -1, r;

    if (!c)
        return -1;
    if (tx_begin(c, err))
        goto out;
    r = row1(c, &s, "read the photo", "SELECT " PHOTO_COLS " FROM photos WHERE id = ?1 "
             "AND (?2 = 0 OR user_id = ?2)", ARGS(VI(id), VI(user_id)), err);
    if (r <= 0) {
        rc = r == 0 ? STORE_NOT_FOUND : -1;
        goto out;
    }
    read_photo(s, &p);
    sqlite3_reset(s);
    if (run(c, "delete the photo", "DELETE FROM photos WHERE id = ?1", ARGS(VI(id)), err) < 0)
        goto out;
    /* Keys are derived from the content, so one test covers thumb and preview too. */
    if (scalar(c, &others, "count the photo's other uses", "SELECT count(*) FROM photos "
               "WHERE blob_key = ?1", ARGS(VT(p.blob_key)), err) != 1)
        goto out;
    if (tx_commit(c, err))
        goto out;
    if (out)
        *out = p;
    if (last_ref)
        *last_ref = others == 0;
    rc = 0;
out:
    give_back(st, c);
    return rc;
}

static int sq_blob_refs(struct store *st, store_key_cb cb, void *ctx, struct err *err)
{
    return list_keys(st, "list stored blobs",
                     "SELECT blob_key FROM photos WHERE blob_key <> '' "
                     "UNION SELECT thumb_key FROM photos WHERE thumb_key <> '' "
                     "UNION SELECT preview_key FROM photos WHERE preview_key <> ''",
                     cb, ctx, err);
}

/* ---- health ---- */

static int sq_health_check(struct store *st, int64_t now, struct err *err)
{
    return write1(st, MISSING_OK, "write the health probe",
                  "INSERT INTO health (id, checked_at) VALUES (1, ?1) "
                  "ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                  ARGS(VI(now)), err);
}

/* ---- password changes ---- */

static int sq_user_change_password(struct store *st, const char *name, const char *pw_hash,
                                   const char *keep_digest, int64_t *ended, struct err *err)
{
    struct conn *c = borrow(st, err);
    int64_t user_id = 0, n;
    int rc = -1, r;

    if (!c)
        return -1;
    if (tx_begin(c, err))
        goto out;
    r = scalar(c, &user_id, "change the password",
               "UPDATE users SET pw_hash = ?2 WHERE name = ?1 RETURNING id",
               ARGS(VT(name), VT(pw_hash)), err);
    if (r <= 0) {
        rc = r == 0 ? STORE_NOT_FOUND : -1;
        goto out;
    }
    n = run(c, "end the user's sessions",
            "DELETE FROM sessions WHERE user_id = ?1 AND digest <> ?2",
            ARGS(VI(user_id), VT(keep_digest ? keep_digest : "")), err);
    if (n < 0 || tx_commit(c, err))
        goto out;
    if (ended)
        *ended = n;
    rc = 0;
out:
    give_back(st, c);
    return rc;
}

static const struct store_ops sq_ops = {
    .close = sq_close,
    .schema_version = sq_schema_version,
    .user_create = sq_user_create,
    .user_find = sq_user_find,
    .user_set_password = sq_user_set_password,
    .user_list = sq_user_list,
    .user_count = sq_user_count,
    .session_create = sq_session_create,
    .session_get = sq_session_get,
    .session_touch = sq_session_touch,
    .session_set_upload = sq_session_set_upload,
    .session_delete = sq_session_delete,
    .session_purge = sq_session_purge,
    .upload_create = sq_upload_create,
    .upload_get = sq_upload_get,
    .upload_list = sq_upload_list,
    .upload_request_begin = sq_upload_request_begin,
    .upload_request_end = sq_upload_request_end,
    .upload_add_bytes = sq_upload_add_bytes,
    .upload_add_file = sq_upload_add_file,
    .upload_set_cleared = sq_upload_set_cleared,
    .upload_files = sq_upload_files,
    .upload_errors = sq_upload_errors,
    .upload_reset_requests = sq_upload_reset_requests,
    .upload_close_idle = sq_upload_close_idle,
    .sched_list = sq_sched_list,
    .sched_assign = sq_sched_assign,
    .file_claim = sq_file_claim,
    .file_finish = sq_file_finish,
    .file_defer = sq_file_defer,
    .file_release = sq_file_release,
    .file_retry = sq_file_retry,
    .file_get = sq_file_get,
    .file_drop_spool = sq_file_drop_spool,
    .spool_refs = sq_spool_refs,
    .file_renew = sq_file_renew,
    .photo_get = sq_photo_get,
    .photo_find_sha = sq_photo_find_sha,
    .photo_list = sq_photo_list,
    .photo_delete = sq_photo_delete,
    .blob_refs = sq_blob_refs,
    .health_check = sq_health_check,
    .user_change_password = sq_user_change_password,
};

int store_sqlite_open(const char *path, unsigned flags, struct store **out, struct err *err)
{
    struct sq *s = xcalloc(1, sizeof(*s));
    struct conn *c = NULL;
    int rc = -1;

    *out = NULL;
    s->base.ops = &sq_ops;
    s->path = xstrdup(path);
    s->relaxed = flags & STORE_RELAXED_SYNC;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    c = borrow(&s->base, err);
    if (!c)
        goto out;
    if (migrations_apply(c->db, NULL, err))
        goto out;
    rc = 0;
out:
    give_back(&s->base, c);
    if (rc) {
        sq_close(&s->base);
        return -1;
    }
    *out = &s->base;
    return 0;
}
