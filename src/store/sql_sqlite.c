/*
 * sql_sqlite: the SQLite driver of sql.h. Everything SQLite-specific lives
 * here: WAL, the pragmas (synchronous, foreign keys), the busy timeout,
 * persistent prepared statements, the error classes, user_version.
 *
 * DESIGN
 * A connection is used by one thread at a time (SQLITE_OPEN_NOMUTEX; the pool
 * in sql.c hands it out). Each connection caches its prepared statements,
 * keyed by the address of the SQL text (sql.h).
 * Processes: serve and its workers open the same file. WAL lets readers run
 * beside the one writer; every write transaction starts with BEGIN IMMEDIATE,
 * so it takes the write lock up front (no deadlock upgrading a read lock) and
 * busy_timeout makes it wait up to BUSY_TIMEOUT_MS for it. The whole write
 * transaction is serialised: the rules' row locks are not needed here.
 */
#include "store/sql.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/timeutil.h"
#include "base/xalloc.h"

/* How long a writer waits for another process's write lock. */
#define BUSY_TIMEOUT_MS 5000

struct sqstmt {
    struct sql_stmt base;
    const char *sql;  /* the cache key */
    sqlite3_stmt *st;
};

struct sqconn {
    struct sql_conn base;
    sqlite3 *db;
    struct sqstmt **stmts;
    size_t nstmts, cap;
    int last_rc;  /* the result code of the last failure */
    const volatile unsigned char *shm;  /* the WAL index (mark_init), or NULL */
};

#define SQCONN(c) ((struct sqconn *)(c))
#define SQSTMT(s) ((struct sqstmt *)(s))

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

static int fail(struct sqconn *c, int rc, struct err *err, const char *what)
{
    c->last_rc = rc;
    return err_set(err, classify(rc), "store", "cannot %s: %s", what,
                   c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
}

static enum sql_fail fail_kind(struct sql_conn *conn)
{
    int rc = SQCONN(conn)->last_rc;

    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return SQL_FAIL_UNIQUE;
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return SQL_FAIL_CONSTRAINT;
    return SQL_FAIL_OTHER;
}

/* ---- statements ---- */

static struct sql_stmt *prepare(struct sql_conn *conn, const char *sql, const char *what,
                                struct err *err)
{
    struct sqconn *c = SQCONN(conn);
    sqlite3_stmt *st = NULL;
    struct sqstmt *s;
    int rc;

    for (size_t i = 0; i < c->nstmts; i++) {
        if (c->stmts[i]->sql == sql) {
            sqlite3_reset(c->stmts[i]->st);
            return &c->stmts[i]->base;
        }
    }
    rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK) {
        fail(c, rc, err, what);
        sqlite3_finalize(st);
        return NULL;
    }
    if (c->nstmts == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 32;
        c->stmts = xrealloc(c->stmts, c->cap * sizeof(*c->stmts));
    }
    s = xcalloc(1, sizeof(*s));
    *s = (struct sqstmt){{conn}, sql, st};
    c->stmts[c->nstmts++] = s;
    return &s->base;
}

static int bind1(sqlite3_stmt *st, int idx, const struct sql_val *v)
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

static int bind(struct sql_stmt *s, const struct sql_val *v, size_t n, const char *what,
                struct err *err)
{
    for (size_t i = 0; i < n; i++) {
        int rc = bind1(SQSTMT(s)->st, (int)i + 1, &v[i]);
        if (rc != SQLITE_OK)
            return fail(SQCONN(s->conn), rc, err, what);
    }
    return 0;
}

static int step(struct sql_stmt *s, const char *what, struct err *err)
{
    sqlite3_stmt *st = SQSTMT(s)->st;
    int rc = sqlite3_step(st);

    if (rc == SQLITE_ROW)
        return 1;
    if (rc != SQLITE_DONE)
        fail(SQCONN(s->conn), rc, err, what);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static void reset(struct sql_stmt *s)
{
    sqlite3_reset(SQSTMT(s)->st);
}

static int64_t col_int64(struct sql_stmt *s, int i)
{
    return sqlite3_column_int64(SQSTMT(s)->st, i);
}

static double col_double(struct sql_stmt *s, int i)
{
    if (sqlite3_column_type(SQSTMT(s)->st, i) == SQLITE_NULL)
        return NAN;
    return sqlite3_column_double(SQSTMT(s)->st, i);
}

static const char *col_text(struct sql_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(SQSTMT(s)->st, i);

    return t ? (const char *)t : "";
}

static bool col_null(struct sql_stmt *s, int i)
{
    return sqlite3_column_type(SQSTMT(s)->st, i) == SQLITE_NULL;
}

static int col_count(struct sql_stmt *s)
{
    return sqlite3_column_count(SQSTMT(s)->st);
}

static int64_t changes(struct sql_conn *c)
{
    return sqlite3_changes64(SQCONN(c)->db);
}

/* ---- transactions ---- */

/* Runs one of the fixed transaction statements through the cache. */
static int run_fixed(struct sql_conn *c, const char *sql, const char *what, struct err *err)
{
    struct sql_stmt *s = prepare(c, sql, what, err);

    if (!s)
        return -1;
    return step(s, what, err) < 0 ? -1 : 0;
}

static int begin_write(struct sql_conn *c, struct err *err)
{
    return run_fixed(c, "BEGIN IMMEDIATE", "start a write transaction", err);
}

static int begin_read(struct sql_conn *c, struct err *err)
{
    return run_fixed(c, "BEGIN", "start a read transaction", err);
}

static int commit(struct sql_conn *c, struct err *err)
{
    return run_fixed(c, "COMMIT", "commit", err);
}

static bool in_transaction(struct sql_conn *c)
{
    return !sqlite3_get_autocommit(SQCONN(c)->db);
}

static void rollback(struct sql_conn *c)
{
    if (in_transaction(c))
        sqlite3_exec(SQCONN(c)->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Resets statements an early exit left busy (releasing read locks) and rolls
 * back an open transaction. A SQLite connection never breaks. */
static bool recycle(struct sql_conn *conn)
{
    struct sqconn *c = SQCONN(conn);

    for (size_t i = 0; i < c->nstmts; i++) {
        if (sqlite3_stmt_busy(c->stmts[i]->st))
            sqlite3_reset(c->stmts[i]->st);
    }
    rollback(conn);
    return true;
}

/* ---- migrations ---- */

static int exec(struct sql_conn *c, const char *script, const char *what, struct err *err)
{
    int rc = sqlite3_exec(SQCONN(c)->db, script, NULL, NULL, NULL);

    return rc == SQLITE_OK ? 0 : fail(SQCONN(c), rc, err, what);
}

static int migrate_begin(struct sql_conn *c, struct err *err)
{
    return exec(c, "BEGIN IMMEDIATE", "start the database migration", err);
}

static int version_get(struct sql_conn *conn, int64_t *v, struct err *err)
{
    struct sqconn *c = SQCONN(conn);
    const char *what = "read the database schema version";
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *v = sqlite3_column_int64(st, 0);
    else
        fail(c, rc, err, what);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

static int version_set(struct sql_conn *c, int64_t v, struct err *err)
{
    char sql[64];

    snprintf(sql, sizeof(sql), "PRAGMA user_version = %lld", (long long)v);
    return exec(c, sql, "record the database schema version", err);
}

/* ---- connections ---- */

static void conn_close(struct sql_conn *conn)
{
    struct sqconn *c = SQCONN(conn);

    if (!c)
        return;
    for (size_t i = 0; i < c->nstmts; i++) {
        sqlite3_finalize(c->stmts[i]->st);
        free(c->stmts[i]);
    }
    free(c->stmts);
    sqlite3_close(c->db);
    free(c);
}

/* A pragma's first result column into res (optional): SQLite's result code. */
static int pragma(struct sqconn *c, const char *sql, char *res, size_t n)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && res) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(res, n, "%s", t ? (const char *)t : "");
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : rc;
}

/* WAL is recorded in the file, so only a new database's first opener changes it;
 * the change takes a lock the busy handler may not wait for: retry a while. */
static int set_wal(struct sqconn *c, const char *path, struct err *err)
{
    char mode[16] = "";
    int64_t deadline = time_mono_ms() + BUSY_TIMEOUT_MS;
    int rc;

    for (;;) {
        rc = pragma(c, "PRAGMA journal_mode=WAL", mode, sizeof(mode));
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

static int set_up(struct sqconn *c, const char *path, bool relaxed, struct err *err)
{
    int rc;

    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    if (set_wal(c, path, err))
        return -1;
    rc = pragma(c, relaxed ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL", NULL, 0);
    if (rc == 0)
        rc = pragma(c, "PRAGMA foreign_keys=ON", NULL, 0);
    if (rc)
        return err_set(err, classify(rc), "store", "cannot set up database '%s': %s", path,
                       sqlite3_errmsg(c->db));
    return 0;
}

static int conn_open(const char *path, unsigned flags, struct sql_conn **out, struct err *err)
{
    struct sqconn *c = xcalloc(1, sizeof(*c));
    int oflags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path, &c->db, oflags, NULL);

    *out = NULL;
    c->base.drv = &sql_sqlite_driver;
    if (rc != SQLITE_OK) {
        err_set(err, classify(rc), "store", "cannot open database '%s': %s", path,
                c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        goto fail;
    }
    if (set_up(c, path, flags & SQL_RELAXED_SYNC, err))
        goto fail;
    *out = &c->base;
    return 0;
fail:
    conn_close(&c->base);
    return -1;
}

/* ---- the change mark ---- */

/* The WAL index (https://www.sqlite.org/walformat.html, "the wal-index
 * header"): the -shm file starts with two copies of a 48-byte header. Every
 * commit of any connection, in any process, rewrites it (iChange, mxFrame,
 * checksums); a writer writes the second copy, then the first. Readers read
 * the first, then the second, and trust them only when they agree, as SQLite's
 * own readers do (wal.c walIndexTryHdr). */
#define WAL_INDEX_REGION 32768
#define WAL_HDR_BYTES 48
#define WAL_INDEX_VERSION 3007000u
#define WAL_HDR_ISINIT 12  /* offset of the isInit byte */

/* The WAL index of this connection, mapped by SQLite's own VFS (its xShmMap,
 * without growing it): c->shm stays valid until the connection closes. */
static bool mark_init(struct sql_conn *base)
{
    struct sqconn *c = SQCONN(base);
    sqlite3_file *f = NULL;
    void volatile *p = NULL;
    uint32_t version;

    if (sqlite3_file_control(c->db, "main", SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK || !f ||
        !f->pMethods || f->pMethods->iVersion < 2 || !f->pMethods->xShmMap)
        return false;
    if (f->pMethods->xShmMap(f, 0, WAL_INDEX_REGION, 0, &p) != SQLITE_OK || !p)
        return false;
    memcpy(&version, (const void *)p, sizeof(version));
    if (version != WAL_INDEX_VERSION)
        return false;
    c->shm = p;
    return true;
}

/* FNV-1a over the agreed header: 0 when the copies disagree (a commit is
 * being written) or the index is not initialised. */
static uint64_t change_mark(struct sql_conn *base)
{
    const volatile unsigned char *shm = SQCONN(base)->shm;
    unsigned char h1[WAL_HDR_BYTES], h2[WAL_HDR_BYTES];
    uint64_t h = 14695981039346656037ull;

    if (!shm)
        return 0;
    for (size_t i = 0; i < WAL_HDR_BYTES; i++)
        h1[i] = shm[i];
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    for (size_t i = 0; i < WAL_HDR_BYTES; i++)
        h2[i] = shm[WAL_HDR_BYTES + i];
    if (memcmp(h1, h2, WAL_HDR_BYTES) != 0 || h1[WAL_HDR_ISINIT] != 1)
        return 0;
    for (size_t i = 0; i < WAL_HDR_BYTES; i++)
        h = (h ^ h1[i]) * 1099511628211ull;
    return h ? h : 1;
}

const struct sql_driver sql_sqlite_driver = {
    .name = "sqlite",
    .dialect = SQL_SQLITE,
    .caps = 0,
    .open = conn_open,
    .close = conn_close,
    .prepare = prepare,
    .bind = bind,
    .step = step,
    .reset = reset,
    .col_int64 = col_int64,
    .col_double = col_double,
    .col_text = col_text,
    .col_null = col_null,
    .col_count = col_count,
    .changes = changes,
    .fail_kind = fail_kind,
    .begin_write = begin_write,
    .begin_read = begin_read,
    .commit = commit,
    .rollback = rollback,
    .in_transaction = in_transaction,
    .recycle = recycle,
    .exec = exec,
    .migrate_begin = migrate_begin,
    .version_get = version_get,
    .version_set = version_set,
    .mark_init = mark_init,
    .change_mark = change_mark,
};
