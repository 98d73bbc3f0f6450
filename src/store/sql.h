/*
 * sql: the small SQL driver seam under the store's rules (SQLite's VFS, curl's
 * connection filters). A driver (sql_sqlite.c, sql_pg.c) is a table of function
 * pointers over one connection; the pool, the transaction helpers and the
 * statement helpers (run, row1, scalar, get_one, write1, list) are written once
 * above it in sql.c; the store's rules (store_*.c) are written once above those.
 * Not for anything outside src/store/.
 *
 * DESIGN
 * SQL text: the rules write `?N` (or `?`) placeholders, integers for booleans
 * (`CASE WHEN ?8 <> 0`, never a bare parameter as a condition), CASE instead of
 * two-argument max()/min(), RETURNING for new ids, no rowid, no INSERT OR IGNORE,
 * a LIMIT always given (SQL_NO_LIMIT for "all"). Such text runs on SQLite 3.40
 * and PostgreSQL 15 alike; a driver may rewrite it once at prepare time (the
 * PostgreSQL driver turns `?N` into `$N`). Where the dialects really differ the
 * rules pick the text by drv->dialect / drv->caps in one place (sql_pick()).
 * Statements are cached per connection, keyed by the ADDRESS of the SQL text:
 * every text is a string literal (or a static constant) at one call site, so
 * the same address always means the same text. A driver that needs parameter
 * types at prepare time (libpq PQprepare) may prepare lazily at the first bind,
 * when the types of the values are known: 'i' int8, 'd' float8, 't' text.
 *
 * Transactions: the guarantees the rules rely on.
 *  - sql_begin() starts a write transaction. On SQLite it is BEGIN IMMEDIATE:
 *    the whole write transaction is serialised against every other writer of
 *    the file, so a read followed by a write inside it sees no interleaving.
 *  - On PostgreSQL (caps SQL_CAP_ROW_LOCKS) it is READ COMMITTED. The rules
 *    make that as safe as the serialised case by one locking rule: every
 *    transaction that changes an upload's counters or batches first locks the
 *    upload row (lock_upload() in store_internal.h: SELECT ... FOR UPDATE;
 *    nothing on SQLite),
 *    and only then reads or changes that upload's files. Lock order is always
 *    upload, then files, so two transactions never wait on each other in a
 *    circle; counters are changed with relative updates (x = x + d) so they
 *    stay exact under concurrency. A claim picks its file with
 *    FOR UPDATE SKIP LOCKED (sql_pick()), so workers never wait on each other.
 *    Transactions that touch several uploads (release of expired leases) lock
 *    them one at a time in id order.
 *  - sql_read_begin()/sql_read_end() give several reads one snapshot (SQLite:
 *    BEGIN DEFERRED; PostgreSQL: REPEATABLE READ, READ ONLY).
 *  - A failed statement inside a transaction poisons it on PostgreSQL: the
 *    rules never continue a transaction after a failure; they roll back. An
 *    insert that may meet a UNIQUE key is written `ON CONFLICT (...) DO NOTHING
 *    RETURNING id` (no row: the key exists), so no expected case fails.
 *  - The "commit" fault point (base/fault.h) is in sql_commit(): rolled back,
 *    ERR_TRANSIENT, whatever the driver.
 * Threads: a connection is used by one thread at a time (the pool hands it
 * out); the driver table is immutable; the pool is thread-safe (see sql.c).
 */
#ifndef SHOEBOX_STORE_SQL_H
#define SHOEBOX_STORE_SQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* "All rows" for a LIMIT parameter: a number both engines take. */
#define SQL_NO_LIMIT INT64_MAX
/* Default connections per pool: workers and request threads beyond this wait. */
#define SQL_POOL_DEFAULT 16
/* Upper bound for the pool size option (each PostgreSQL connection is a process). */
#define SQL_POOL_MAX 256

enum sql_dialect {
    SQL_SQLITE,
    SQL_POSTGRES,
};

enum sql_caps {
    /* Row locks exist (SELECT ... FOR UPDATE [SKIP LOCKED]); write transactions
     * are not serialised as a whole. Absent on SQLite. */
    SQL_CAP_ROW_LOCKS = 1 << 0,
    /* Several nodes may share the database (only expired leases are taken back). */
    SQL_CAP_SHARED = 1 << 1,
};

enum sql_open_flags {
    /* Commits need not reach the disk before they return (store.h STORE_RELAXED_SYNC):
     * SQLite synchronous=NORMAL, PostgreSQL synchronous_commit=off. */
    SQL_RELAXED_SYNC = 1 << 0,
};

/* What kind of failure a statement had (sql_driver.fail_kind). */
enum sql_fail {
    SQL_FAIL_OTHER = 0,
    SQL_FAIL_UNIQUE,      /* a UNIQUE or PRIMARY KEY violation */
    SQL_FAIL_CONSTRAINT,  /* another constraint: NOT NULL, CHECK, FOREIGN KEY */
};

/* A value to bind. */
struct sql_val {
    char type;  /* 'i' int64, 'd' double (NaN binds NULL), 't' text (NULL binds '') */
    int64_t i;
    double d;
    const char *s;
};

#define SQL_VI(x) ((struct sql_val){'i', (int64_t)(x), 0.0, NULL})
#define SQL_VD(x) ((struct sql_val){'d', 0, (x), NULL})
#define SQL_VT(x) ((struct sql_val){'t', 0, 0.0, (x)})
/* (values, count) for the helpers: SQL_ARGS(SQL_VI(id), SQL_VT(name)). */
#define SQL_ARGS(...)                      \
    (const struct sql_val[]){__VA_ARGS__}, \
        sizeof((const struct sql_val[]){__VA_ARGS__}) / sizeof(struct sql_val)
#define SQL_NOARGS NULL, 0

struct sql_driver;

/* A connection. Drivers embed it as the first member of their own struct;
 * fields ending in _ belong to the pool. */
struct sql_conn {
    const struct sql_driver *drv;
    struct sql_conn *next_;  /* pool free list */
};

/* A prepared statement, owned and cached by its connection (drivers embed it). */
struct sql_stmt {
    struct sql_conn *conn;
};

/*
 * The driver. Every function is called by the one thread that holds the
 * connection. Functions returning int return 0 or -1 with err filled (stage
 * "store", ERR_TRANSIENT for busy/locked/I-O/lost connection, else
 * ERR_PERMANENT, the engine's message in the text; never a password).
 */
struct sql_driver {
    const char *name;          /* "sqlite", "postgres" */
    enum sql_dialect dialect;
    unsigned caps;             /* enum sql_caps */

    /* Opens a connection to location (a file path, a postgres:// URL) with
     * flags (enum sql_open_flags). Caller frees with close. */
    int (*open)(const char *location, unsigned flags, struct sql_conn **out, struct err *err);
    /* Finalizes the cached statements and closes. NULL is a no-op. */
    void (*close)(struct sql_conn *c);

    /* The cached statement for sql (keyed by its address), prepared on first
     * use and reset; `what` names the operation for messages. NULL on failure.
     * The statement lives as long as the connection. */
    struct sql_stmt *(*prepare)(struct sql_conn *c, const char *sql, const char *what,
                                struct err *err);
    /* Binds v[0..n) to parameters 1..n of a reset statement. Text is not
     * copied: it must live until the statement is reset or stepped to done. */
    int (*bind)(struct sql_stmt *s, const struct sql_val *v, size_t n, const char *what,
                struct err *err);
    /* 1: a row is ready; 0: done (statement reset); -1: failed (statement reset,
     * err filled, fail_kind tells the kind). The first step executes. */
    int (*step)(struct sql_stmt *s, const char *what, struct err *err);
    /* Ends the current execution (rows not read are dropped). */
    void (*reset)(struct sql_stmt *s);

    /* Columns of the current row, 0-based. NULL reads as 0, NaN, "" and true. */
    int64_t (*col_int64)(struct sql_stmt *s, int i);
    double (*col_double)(struct sql_stmt *s, int i);
    /* Borrowed until the next step or reset; never NULL. */
    const char *(*col_text)(struct sql_stmt *s, int i);
    bool (*col_null)(struct sql_stmt *s, int i);
    int (*col_count)(struct sql_stmt *s);

    /* Rows changed by the last INSERT/UPDATE/DELETE stepped to done. */
    int64_t (*changes)(struct sql_conn *c);
    /* The kind of the last failure on c. */
    enum sql_fail (*fail_kind)(struct sql_conn *c);

    /* Transactions (see DESIGN): a write transaction, a read snapshot, the end
     * of either. rollback never fails (a broken connection is marked broken). */
    int (*begin_write)(struct sql_conn *c, struct err *err);
    int (*begin_read)(struct sql_conn *c, struct err *err);
    int (*commit)(struct sql_conn *c, struct err *err);
    void (*rollback)(struct sql_conn *c);
    bool (*in_transaction)(struct sql_conn *c);

    /* Before the pool takes c back: resets busy statements, rolls back an open
     * transaction. false: c is broken (lost server), the pool closes it. */
    bool (*recycle)(struct sql_conn *c);

    /* Migrations (migrations.c). exec runs a script of several statements.
     * migrate_begin starts the write transaction in which the runner alone
     * migrates (SQLite: BEGIN IMMEDIATE; PostgreSQL: BEGIN and an advisory
     * transaction lock, creating schema_version if missing). version_get/set
     * read and write the schema version (SQLite: PRAGMA user_version). The runner
     * first calls version_get outside any transaction (no lock when the schema is
     * current); there a database never migrated may fail it (no schema_version
     * table yet), and the runner reads it again after migrate_begin. */
    int (*exec)(struct sql_conn *c, const char *script, const char *what, struct err *err);
    int (*migrate_begin)(struct sql_conn *c, struct err *err);
    int (*version_get)(struct sql_conn *c, int64_t *version, struct err *err);
    int (*version_set)(struct sql_conn *c, int64_t version, struct err *err);

    /* The change feed (PostgreSQL LISTEN; NULL where the engine has none, as on
     * SQLite: then the caller polls). A connection that listens is used for
     * nothing else (sql_pool_open_extra). listen subscribes c to channel;
     * listen_fd is the socket to poll for readability; listen_read reads what
     * arrived without blocking and calls each(ctx, payload) per notification:
     * 0, or -1 when the connection is lost (notifications may have been missed:
     * close it, open another, listen again and look at everything once). */
    int (*listen)(struct sql_conn *c, const char *channel, struct err *err);
    int (*listen_fd)(struct sql_conn *c);
    int (*listen_read)(struct sql_conn *c, void (*each)(void *ctx, const char *payload),
                       void *ctx, struct err *err);

    /* The change mark (SQLite; NULL where the engine has none, as on PostgreSQL,
     * whose change feed tells instead): a number that moves with every commit
     * to the database by any connection of any process, read from shared memory
     * without a transaction or a lock. mark_init prepares c, a connection kept
     * for this alone (sql_pool_open_extra), once; false: no mark. change_mark
     * may then be called from any thread at once; 0: cannot tell now (read). */
    bool (*mark_init)(struct sql_conn *c);
    uint64_t (*change_mark)(struct sql_conn *c);
};

/* The SQLite driver (sql_sqlite.c): location is a file path. */
extern const struct sql_driver sql_sqlite_driver;

/* The driver for a location: postgres:// and postgresql:// URLs go to the
 * PostgreSQL driver, anything else is a SQLite file path. NULL when the
 * location names a driver that is not built (err says so, without the URL). */
const struct sql_driver *sql_driver_for(const char *location, struct err *err);

/* ---- the pool (sql.c) ---- */

struct sql_pool;

/* A pool of up to max_conns connections (0 = SQL_POOL_DEFAULT) to location,
 * opened on demand with drv->open(location, flags). One connection is opened
 * now so a bad location fails here. Free with sql_pool_free(). */
int sql_pool_new(const struct sql_driver *drv, const char *location, unsigned flags,
                 int max_conns, struct sql_pool **out, struct err *err);
/* Closes every connection; all must have been given back. NULL is a no-op. */
void sql_pool_free(struct sql_pool *p);
const struct sql_driver *sql_pool_driver(const struct sql_pool *p);
/* A connection for the calling thread, waiting while max_conns are out.
 * NULL when a new connection cannot be opened. Give it back with
 * sql_pool_give_back() (which ends what an early exit left open). */
struct sql_conn *sql_pool_borrow(struct sql_pool *p, struct err *err);
void sql_pool_give_back(struct sql_pool *p, struct sql_conn *c);
/* A connection to the pool's database outside the pool (not counted in
 * max_conns; the caller closes it with drv->close): for the change feed. */
int sql_pool_open_extra(struct sql_pool *p, struct sql_conn **out, struct err *err);

/* ---- statement helpers over one connection (sql.c) ---- */

/* The cached statement for sql with v bound, ready to step; NULL failed. */
struct sql_stmt *sql_prepare(struct sql_conn *c, const char *what, const char *sql,
                             const struct sql_val *v, size_t n, struct err *err);
/* 1 a row, 0 done, -1 failed (see sql_driver.step). */
int sql_step(struct sql_stmt *s, const char *what, struct err *err);
void sql_reset(struct sql_stmt *s);
/* Runs a statement without result rows: rows changed, or -1. *unique
 * (optional) tells whether a failure was a UNIQUE violation. */
int64_t sql_run(struct sql_conn *c, const char *what, const char *sql, const struct sql_val *v,
                size_t n, struct err *err);
int64_t sql_run_unique(struct sql_conn *c, bool *unique, const char *what, const char *sql,
                       const struct sql_val *v, size_t n, struct err *err);
/* The first row: 1 with *out positioned on it (sql_reset it when done), 0 none, -1 failed. */
int sql_row1(struct sql_conn *c, struct sql_stmt **out, const char *what, const char *sql,
             const struct sql_val *v, size_t n, struct err *err);
/* The first column of the first row as an integer: 1, 0 no row, -1 failed. */
int sql_scalar(struct sql_conn *c, int64_t *out, const char *what, const char *sql,
               const struct sql_val *v, size_t n, struct err *err);

/* Column getters of the current row (see sql_driver). */
int64_t sql_col_int64(struct sql_stmt *s, int i);
double sql_col_double(struct sql_stmt *s, int i);
const char *sql_col_text(struct sql_stmt *s, int i);
int sql_col_count(struct sql_stmt *s);
/* Copies column i into out (n bytes, cut to fit). */
void sql_col_str(struct sql_stmt *s, int i, char *out, size_t n);

/* Transactions (see DESIGN). sql_commit holds the "commit" fault point. */
int sql_begin(struct sql_conn *c, struct err *err);
int sql_commit(struct sql_conn *c, struct err *err);
void sql_rollback(struct sql_conn *c);
int sql_read_begin(struct sql_conn *c, struct err *err);
int sql_read_end(struct sql_conn *c, struct err *err);

/* The text for c's dialect: `sqlite` on SQLite, `pg` on PostgreSQL. Both must
 * be string literals (the statement cache keys on the address). */
const char *sql_pick(const struct sql_conn *c, const char *sqlite, const char *pg);

/* ---- operation helpers over a pool (sql.c) ---- */

/* Reads the current row into out. */
typedef void (*sql_row_fn)(struct sql_stmt *s, void *out);

/* One row into out with reader: 0, 1 (no row), or -1. */
int sql_get_one(struct sql_pool *p, const char *what, const char *sql, const struct sql_val *v,
                size_t n, sql_row_fn reader, void *out, struct err *err);
/* Every row, each through each(s, ctx), on one borrowed connection. */
int sql_list(struct sql_pool *p, const char *what, const char *sql, const struct sql_val *v,
             size_t n, sql_row_fn each, void *ctx, struct err *err);
/* What sql_write1 does when its statement changed no row. */
#define SQL_MISSING_OK NULL       /* nothing: deleting what is gone is fine */
#define SQL_MISSING_NOT_FOUND ""  /* return 1 (the store's STORE_NOT_FOUND) */
/* Runs one write statement in its own transaction: 0, or for no changed row
 * what `missing` says (else a message: -1 with ERR_PERMANENT and that text). */
int sql_write1(struct sql_pool *p, const char *missing, const char *what, const char *sql,
               const struct sql_val *v, size_t n, struct err *err);
/* sql_scalar on a borrowed connection: 1, 0 no row, -1 failed. */
int sql_pool_scalar(struct sql_pool *p, int64_t *out, const char *what, const char *sql,
                    const struct sql_val *v, size_t n, struct err *err);

#endif
