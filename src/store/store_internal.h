/*
 * store_internal: what the files of the store's rules share. The rules are
 * written once over sql.h and split by area:
 *   store_sql.c       the constructor, close, schema version, the ops table
 *   store_users.c     users, password changes
 *   store_sessions.c  sessions
 *   store_uploads.c   uploads, requests, the upload counters
 *   store_files.c     file records: add, read, list, the user's retry, spool refs
 *   store_leases.c    the worker side: claim, finish, defer, release, renew
 *   store_photos.c    photos, dedup, blob refs
 *   store_sched.c     the scheduler's lists and batches, health
 * Each area file fills its part of struct store_ops (rules_*_ops). Names shared
 * between the files start with rules_. Nothing outside src/store/ includes this.
 *
 * DESIGN (locking; see sql.h for the transaction guarantees)
 * A transaction that changes an upload's counters or batches calls
 * rules_lock_upload() (or rules_lock_file_upload()) before it reads or changes
 * that upload's files: on PostgreSQL the upload row is locked FOR UPDATE, on
 * SQLite nothing is done (BEGIN IMMEDIATE already serialises). Lock order:
 * upload, then files. The one exception is file_claim, which picks and locks
 * its QUEUED file first (SKIP LOCKED never waits) and then bumps the upload:
 * no transaction that holds an upload lock waits for a QUEUED file's lock
 * (assign changes RECEIVED files, release PROCESSING ones, retry a FAILED one),
 * so no cycle can form. file_release locks uploads one at a time in id order.
 */
#ifndef SHOEBOX_STORE_STORE_INTERNAL_H
#define SHOEBOX_STORE_STORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "store/sql.h"
#include "store/store.h"

/* The rules' store: the vtable and the pool behind it. */
struct rules {
    struct store base;
    struct store_ops ops;
    struct sql_pool *pool;
    char node[STORE_NODE_MAX];  /* node_register: requests are recorded as this node's */
    /* change_mark (store_sql.c): a connection kept for the driver's mark,
     * opened at the first call; mark_state 0 untried, 1 ready, -1 none. */
    pthread_mutex_t mark_mu;
    struct sql_conn *mark_conn;  /* mark_mu to set; read once mark_state is 1 */
    _Atomic int mark_state;
};

#define POOL(st) (((struct rules *)(st))->pool)
#define NODE(st) (((struct rules *)(st))->node)

/* The shapes the rules were written in (sql.h's helpers, short names). */
#define VI SQL_VI
#define VD SQL_VD
#define VT SQL_VT
#define ARGS SQL_ARGS
#define NOARGS SQL_NOARGS
#define MISSING_OK SQL_MISSING_OK
#define MISSING_NOT_FOUND SQL_MISSING_NOT_FOUND

/* sql_get_one() with the store's result: 0, STORE_NOT_FOUND or -1. */
int rules_get_one(struct store *st, const char *what, const char *sql, const struct sql_val *v,
                  size_t n, sql_row_fn reader, void *out, struct err *err);

/* ---- upload counters (store_uploads.c) ---- */

struct rules_delta {
    int64_t total, processed, uploaded, failed, duplicates, queued;
    bool reopen;  /* clear finished_at: the upload has work again */
};

/* Locks the upload row for the transaction (PostgreSQL; nothing on SQLite). */
int rules_lock_upload(struct sql_conn *c, int64_t upload_id, struct err *err);
/* Locks the row of file_id, then its upload (PostgreSQL; nothing on SQLite): the
 * order of file_claim (file, then the upload's counters), which may also hold rows it
 * skipped, so a finish that locked the upload first deadlocked with a claim. A missing
 * file is not an error here: the caller's own read finds it missing. */
int rules_lock_file_upload(struct sql_conn *c, int64_t file_id, struct err *err);
/* Applies d to the upload's counters and bumps version and updated_at. */
int rules_bump(struct sql_conn *c, int64_t upload_id, const struct rules_delta *d, int64_t now,
               struct err *err);
/* Marks the upload finished (once) when no request is open, the announced
 * files have arrived and each has its outcome. *finished: it happened now. */
int rules_check_finished(struct sql_conn *c, int64_t upload_id, int64_t now, bool *finished,
                         struct err *err);
/* After an outcome: the current batch has ended when none of its files is
 * still queued or processing. */
int rules_check_batch_end(struct sql_conn *c, int64_t upload_id, int64_t now, struct err *err);

/* Runs sql, a DELETE FROM uploads of uploads without any file, and clears the
 * current upload of every session that pointed to one of them (a page opened later
 * would ask for it): the one way the rules delete uploads. Returns how many went,
 * or -1. */
int64_t rules_delete_uploads(struct sql_conn *c, const char *what, const char *sql,
                             const struct sql_val *v, size_t n, struct err *err);

/* ---- files (store_files.c) ---- */

#define FILE_COLS \
    "id, upload_id, user_id, seq, state, name, size, sha256, format, spool, batch_no, " \
    "attempts, photo_id, duplicate_of, error_stage, error_msg, lease_owner, created_at, " \
    "updated_at, lease_until"

void rules_read_file(struct sql_stmt *s, struct store_file *f);
/* Copies a client's file name, cut to fit at a UTF-8 character boundary. */
void rules_cut_name(const char *name, char out[STORE_FILENAME_MAX]);

/* sql_list's callback for a column of keys: cb(ctx, column 0). */
struct rules_each_key {
    store_key_cb cb;
    void *ctx;
};
void rules_each_key(struct sql_stmt *s, void *p);

/* ---- photos (store_photos.c) ---- */

/* STORE_OK: the photo row of file f, or DUPLICATE of the user's photo with the
 * same content: fin->state and fin->photo_id. */
int rules_record_photo(struct sql_conn *c, const struct store_file *f,
                       const struct store_photo *p, int64_t now, struct store_finish *fin,
                       struct err *err);

/* ---- the parts of the ops table ---- */

void rules_users_ops(struct store_ops *o);
void rules_sessions_ops(struct store_ops *o);
void rules_uploads_ops(struct store_ops *o);
void rules_files_ops(struct store_ops *o);
void rules_leases_ops(struct store_ops *o);
void rules_photos_ops(struct store_ops *o);
void rules_sched_ops(struct store_ops *o);
void rules_nodes_ops(struct store_ops *o);

/* ---- nodes (store_nodes.c) ---- */

/* Counts a request of st's node (if registered) into upload_id: delta +1 or -1. */
int rules_node_request(struct store *st, struct sql_conn *c, int64_t upload_id, int delta,
                       struct err *err);

/* The store over a pool of drv connections to location, migrated. */
int rules_open(const struct sql_driver *drv, const char *location, unsigned flags,
               struct store **out, struct err *err);
/* rules_open with at most pool_conns connections (0 = SQL_POOL_DEFAULT). */
int rules_open_pool(const struct sql_driver *drv, const char *location, unsigned flags,
                    int pool_conns, struct store **out, struct err *err);

#endif
