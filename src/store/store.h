/*
 * store: the only database interface. Nothing outside src/store/ knows which
 * database is behind it (the rules in store_*.c over the SQL driver seam sql.h:
 * SQLite, sql_sqlite.c, or PostgreSQL, sql_pg.c).
 *
 * A `struct store` is thread-safe: any thread may call any operation (the
 * backend keeps a connection per thread or a pool). Several processes may
 * open the same store (serve and its workers).
 *
 * Calls go through the vtable: st->ops->user_create(st, ...).
 * Every operation returns 0 on success, STORE_NOT_FOUND (1) or STORE_EXISTS (2)
 * where the comment says so, or -1 with err filled (stage "store"; busy/locked and I/O
 * errors are ERR_TRANSIENT, constraint violations ERR_PERMANENT).
 * Times are milliseconds since the Unix epoch (int64_t). Strings in records
 * are NUL-terminated copies owned by the record.
 *
 * The upload_file states (the transitions and who performs them):
 *
 *   ingest ──upload_add_file──> RECEIVED ──sched_assign──> QUEUED ──file_claim──> PROCESSING
 *      │                                                    ^  ^                     │
 *      └──(too large / unsupported)──> FAILED               │  └──file_defer─────────┤ transient
 *                                        ^   │              └──file_release (crash)──┤ attempts left
 *                                        │   │                 file_unclaim (lost)───┤
 *                                        │   └──file_retry (user, bytes held)──> QUEUED
 *                                        └──file_finish(failed) / file_release ──────┤ attempts used
 *                                           DONE / DUPLICATE <──file_finish(ok)──────┘
 *
 * Every transition updates the upload's counters in the same transaction.
 */
#ifndef SHOEBOX_STORE_STORE_H
#define SHOEBOX_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/limits.h"

#define STORE_NOT_FOUND 1
/* upload_add_file: the same file (name and content) is already in the upload. */
#define STORE_EXISTS 2
#define STORE_NAME_MAX (LIMIT_USERNAME_BYTES + 1)
#define STORE_FILENAME_MAX (LIMIT_FILENAME_BYTES + 1)
#define STORE_TEXT_MAX 128   /* make, model, lens */
#define STORE_MSG_MAX 256    /* error messages, matches ERR_MSG_MAX */
#define STORE_PATH_MAX 512   /* spool paths and blob keys, relative to the data dir */
#define STORE_NODE_MAX 128   /* a node id ("host:pid:start") */

struct store;

struct store_user {
    int64_t id;
    char name[STORE_NAME_MAX];
    char pw_hash[128];
    int64_t created_at;
};

struct store_session {
    int64_t user_id;
    char user_name[STORE_NAME_MAX];
    int64_t expires_at;
    int64_t current_upload;  /* 0 = none */
};

enum store_file_state {
    FILE_RECEIVED = 0,
    FILE_QUEUED,
    FILE_PROCESSING,
    FILE_DONE,
    FILE_DUPLICATE,
    FILE_FAILED,
};

/* Name used in JSON and the database ("received", "queued", ...). */
const char *store_file_state_name(enum store_file_state s);

struct store_upload {
    int64_t id, user_id;
    int64_t created_at, updated_at, finished_at;  /* finished_at 0 while not finished */
    int64_t expected;        /* files announced by the client, 0 = unknown */
    int64_t open_requests;   /* requests still sending files into it */
    int64_t total, processed, uploaded, failed, duplicates;
    int64_t queued_files;    /* files in RECEIVED state (not yet in a batch) */
    int64_t current_batch, batch_size;
    int64_t bytes_received, bytes_total;  /* bytes_total 0 = unknown */
    int64_t last_batch_end_at;
    int64_t version;         /* bumped on every change, for change notification */
    bool cleared;            /* progress cleared by the user (history keeps it) */
    char fatal[STORE_MSG_MAX];  /* non-empty: the upload as a whole failed */
};

struct store_file {
    int64_t id, upload_id, user_id, seq;
    enum store_file_state state;
    char name[STORE_FILENAME_MAX];  /* client's display name, never a path */
    int64_t size;
    char sha256[65];
    char format[16];
    char spool[STORE_PATH_MAX];     /* relative to the data dir; "" when not held */
    int64_t batch_no, attempts;
    int64_t photo_id, duplicate_of;  /* 0 = none */
    bool photo_has_thumb;  /* the photo (or duplicate_of) has a thumbnail; upload_files only */
    char error_stage[32];
    char error_msg[STORE_MSG_MAX];
    char lease_owner[64];
    int64_t created_at, updated_at;
};

/* Metadata of a stored photo. Absent values: NaN for doubles, 0 for iso and
 * orientation, "" for text. taken_at is "YYYY-MM-DDTHH:MM:SS", taken_offset "+02:00" or "". */
struct store_photo {
    int64_t id, user_id, upload_id, file_id;
    char name[STORE_FILENAME_MAX];
    char format[16];
    int64_t size;
    char sha256[65];
    int64_t width, height;
    char taken_at[32], taken_offset[8];
    char make[STORE_TEXT_MAX], model[STORE_TEXT_MAX], lens[STORE_TEXT_MAX];
    double exposure_time, f_number, focal_length;
    int64_t iso, orientation;
    double gps_lat, gps_lon, gps_alt;
    bool has_thumb;
    char warnings[512];
    char blob_key[STORE_PATH_MAX];       /* the original */
    char thumb_key[STORE_PATH_MAX];      /* "" without thumbnail */
    char preview_key[STORE_PATH_MAX];
    int64_t created_at;
    char sort_at[32];  /* the list order key: taken_at, or created_at as UTC text */
};

/* A photo's place in the list order (newest first: sort_at, created_at, id, all
 * descending): what a page cursor holds. */
struct store_photo_key {
    char sort_at[32];
    int64_t created_at, id;
};

/* Where a page of photo_page starts. */
enum store_page_from {
    STORE_PAGE_OFFSET,  /* `offset` photos from the newest */
    STORE_PAGE_BEFORE,  /* the photos just older than `key` */
    STORE_PAGE_AFTER,   /* the photos just newer than `key` */
};

/* A page of photo_page: the request, then what was read. */
struct store_page {
    int64_t user_id, upload_id;  /* upload_id 0 = the user's whole library */
    int64_t limit;               /* > 0 */
    enum store_page_from from;
    int64_t offset;              /* STORE_PAGE_OFFSET */
    struct store_photo_key key;  /* STORE_PAGE_BEFORE / STORE_PAGE_AFTER */
    /* out */
    int64_t total;               /* the library's (or the upload's) photos */
    int64_t n;                   /* photos on this page */
    bool newer, older;           /* photos exist before the first / after the last */
    struct store_photo_key first, last;  /* the page's ends (n > 0) */
};

/* A new file recorded by ingest once its bytes are complete and fsynced. */
struct store_file_new {
    int64_t upload_id, user_id;
    const char *name, *sha256, *format, *spool;
    int64_t size;
    bool failed;              /* rejected at ingest (too large, unsupported): */
    const struct err *error;  /* its reason */
};

/* What the scheduler needs to know of an unfinished upload. */
struct store_sched {
    int64_t upload_id, batch_size, current_batch;
    int64_t unassigned;   /* RECEIVED files */
    int64_t in_flight;    /* QUEUED + PROCESSING files */
    int64_t in_flight_before;  /* of those, in batches before current_batch (an overlap) */
    bool arrived;         /* no open request and expected reached: no more files come */
    int64_t open_requests;  /* requests sending files into it now */
    int64_t last_batch_end_at;
};

/* The queue's depth (queue_depth). */
struct store_queue {
    int64_t received;   /* not yet in a batch */
    int64_t queued;     /* in a batch, waiting for a worker */
    int64_t processing; /* held by a worker */
};

/* A file claimed by a worker. */
struct store_claim {
    struct store_file file;
    int64_t lease_until;
};

enum store_outcome { STORE_OK, STORE_FAILED };

struct store_result {
    enum store_outcome outcome;
    struct store_photo photo;  /* STORE_OK: metadata and keys (ids filled by the store) */
    struct err error;          /* STORE_FAILED: why */
    bool keep_spool;           /* STORE_FAILED: bytes still held for a manual retry
                                  (ignored when store_err_refuses_input(&error)) */
};

/* What file_finish did. */
struct store_finish {
    enum store_file_state state;  /* DONE, DUPLICATE or FAILED */
    int64_t photo_id;             /* new photo, or the existing one for a duplicate */
    bool upload_finished;         /* this was the upload's last outcome */
    bool spool_dropped;           /* the record no longer holds the spool copy: unlink it */
};

typedef void (*store_user_cb)(void *ctx, const struct store_user *u);
typedef void (*store_upload_cb)(void *ctx, const struct store_upload *u);
typedef void (*store_file_cb)(void *ctx, const struct store_file *f);
typedef void (*store_photo_cb)(void *ctx, const struct store_photo *p);
typedef void (*store_sched_cb)(void *ctx, const struct store_sched *s);
typedef void (*store_key_cb)(void *ctx, const char *key);
/* An upload changed: its id and new version (0, 0: anything may have changed). */
typedef void (*store_change_cb)(void *ctx, int64_t upload_id, int64_t version);

/* The change feed of a store (feed_open). */
struct store_feed;

struct store_ops {
    void (*close)(struct store *st);
    /* Whether several server nodes may share this database (PostgreSQL; not
     * SQLite, which is one server per data directory). A shared store's
     * start-up sweep takes back only expired leases and leaves other nodes'
     * open requests and young orphans alone (jobs/sweep.h). */
    bool (*shared)(struct store *st);
    /* Schema version after migrations. */
    int (*schema_version)(struct store *st, int64_t *version, struct err *err);

    /* --- users --- */
    /* Fails ERR_PERMANENT "user 'NAME' already exists". */
    int (*user_create)(struct store *st, const char *name, const char *pw_hash, int64_t now,
                       int64_t *id, struct err *err);
    /* STORE_NOT_FOUND when absent. */
    int (*user_find)(struct store *st, const char *name, struct store_user *out, struct err *err);
    /* Sets the password and ends all the user's sessions (user_change_password
     * with keep_digest NULL). STORE_NOT_FOUND. */
    int (*user_set_password)(struct store *st, const char *name, const char *pw_hash,
                             struct err *err);
    int (*user_list)(struct store *st, store_user_cb cb, void *ctx, struct err *err);
    int (*user_count)(struct store *st, int64_t *n, struct err *err);

    /* --- sessions (keyed by the digest of the cookie token) --- */
    int (*session_create)(struct store *st, const char *digest, int64_t user_id, int64_t now,
                          int64_t expires_at, struct err *err);
    /* STORE_NOT_FOUND when absent or expired at `now`. */
    int (*session_get)(struct store *st, const char *digest, int64_t now,
                       struct store_session *out, struct err *err);
    int (*session_touch)(struct store *st, const char *digest, int64_t expires_at,
                         struct err *err);
    int (*session_set_upload)(struct store *st, const char *digest, int64_t upload_id,
                              struct err *err);
    int (*session_delete)(struct store *st, const char *digest, struct err *err);
    int (*session_purge)(struct store *st, int64_t now, struct err *err);

    /* --- uploads --- */
    int (*upload_create)(struct store *st, int64_t user_id, int64_t expected, int64_t batch_size,
                         int64_t now, int64_t *id, struct err *err);
    /* upload_create and upload_request_begin of its first request in one transaction:
     * when it fails there is no upload (none that no request will ever send into). */
    int (*upload_open)(struct store *st, int64_t user_id, int64_t expected, int64_t batch_size,
                       int64_t bytes_total, int64_t now, int64_t *id, struct err *err);
    /* STORE_NOT_FOUND when absent or owned by another user (user_id 0 = any owner). */
    int (*upload_get)(struct store *st, int64_t id, int64_t user_id, struct store_upload *out,
                      struct err *err);
    /* Newest first; limit 0 = all. */
    int (*upload_list)(struct store *st, int64_t user_id, int64_t limit, store_upload_cb cb,
                       void *ctx, struct err *err);
    /* A request starts/stops sending files into the upload. expected > 0 raises the
     * announced count; bytes_total > 0 adds to the known total. request_end may
     * finish the upload when every file already has its outcome; an upload that
     * no request sends into any more and that got no file at all (its first
     * request was cut off before a file was complete) is deleted, not kept as
     * an empty "failed" upload. */
    int (*upload_request_begin)(struct store *st, int64_t id, int64_t expected,
                                int64_t bytes_total, int64_t now, struct err *err);
    int (*upload_request_end)(struct store *st, int64_t id, int64_t now, struct err *err);
    /* Adds bytes to bytes_received (called as data arrives, at most a few times a second). */
    int (*upload_add_bytes)(struct store *st, int64_t id, int64_t bytes, int64_t now,
                            struct err *err);
    /* Records a complete file (RECEIVED) or a rejected one (FAILED, counted processed).
     * A file already in the upload under the same name with the same content (a
     * request cut off by a crash and sent again) is the same file: STORE_EXISTS,
     * *file_id is that file, nothing is written. */
    int (*upload_add_file)(struct store *st, const struct store_file_new *f, int64_t now,
                           int64_t *file_id, struct err *err);
    int (*upload_set_cleared)(struct store *st, int64_t id, bool cleared, struct err *err);
    /* Files of an upload in order (seq). */
    int (*upload_files)(struct store *st, int64_t upload_id, store_file_cb cb, void *ctx,
                        struct err *err);
    /* Only the FAILED files, in order. */
    int (*upload_errors)(struct store *st, int64_t upload_id, store_file_cb cb, void *ctx,
                         struct err *err);
    /* After a restart no request is open: zero open_requests everywhere, and
     * delete uploads without any file that had a request open (cut off, as
     * upload_request_end does) or have not changed since drop_before, except the
     * n_keep ids in keep (uploads a tus file in progress points to: the file
     * completes into them later). keep is borrowed for the call. */
    int (*upload_reset_requests)(struct store *st, int64_t now, int64_t drop_before,
                                 const int64_t *keep, size_t n_keep, struct err *err);
    /* Uploads still waiting for announced files (total < expected) with no request
     * open and no change since idle_before stop waiting: expected becomes total, and
     * they finish once their files have outcomes. *closed counts them. One without
     * any file is not finished (it would only show as "failed" with nothing in it):
     * it keeps waiting, as a tus upload pointing to it may still complete, and is
     * deleted once unchanged since empty_before; *dropped counts those. */
    int (*upload_close_idle)(struct store *st, int64_t idle_before, int64_t empty_before,
                             int64_t now, int64_t *closed, int64_t *dropped,
                             struct err *err);
    /* One of the files the upload expects will never arrive (the tus upload sending
     * it was terminated): while fewer files have arrived than it expects, expected
     * goes down by one (version bumped), in one transaction that also does what the
     * new count implies: the upload finishes at once when each file it has has its
     * outcome and no request is open, and one left with no file, nothing expected
     * and no request open is deleted (*deleted), as an upload that ends without a
     * file always is (sessions whose current upload it was then have none).
     * *lowered is false when nothing was owed (every expected file has arrived, or
     * expected is 0, unknown): nothing is written then. Not idempotent: the caller
     * calls it once per file (tus.c: the DELETE that removed the tus upload's
     * info). STORE_NOT_FOUND when absent. */
    int (*upload_drop_expected)(struct store *st, int64_t id, int64_t now, bool *lowered,
                                bool *deleted, struct err *err);

    /* --- scheduling (the server's batch scheduler) --- */
    /* Unfinished uploads with unassigned or in-flight files. */
    int (*sched_list)(struct store *st, store_sched_cb cb, void *ctx, struct err *err);
    /* Moves up to `limit` RECEIVED files (oldest first) into batch batch_no (QUEUED)
     * and sets current_batch. *assigned says how many moved. Compare-and-set:
     * only when batch_no is current_batch + 1 and no file of the upload is QUEUED
     * or PROCESSING, else nothing moves (*assigned 0): another scheduler opened
     * it first. The overlap (overlap > 0): the batch also opens while batch_no - 1
     * has no QUEUED file left and at most `overlap` PROCESSING ones (and no file of an
     * older batch is in flight), provided no other upload has a QUEUED file due by
     * `now`. The yield (yield_ms > 0, the batch delay): until yield_ms after the
     * upload's last batch ended, the batch opens only while no other upload has a
     * QUEUED file due by `now` (a file waiting for a worker); else nothing moves
     * and *assigned is 0. All are read in the transaction that opens the batch. */
    int (*sched_assign)(struct store *st, int64_t upload_id, int64_t batch_no, int64_t limit,
                        int64_t now, int64_t yield_ms, int64_t overlap, int64_t *assigned,
                        struct err *err);

    /* --- workers --- */
    /* Claims the oldest QUEUED file whose retry time has come: PROCESSING, owner,
     * lease until now + lease_ms, attempts + 1. STORE_NOT_FOUND when none. */
    int (*file_claim)(struct store *st, const char *owner, int64_t now, int64_t lease_ms,
                      struct store_claim *out, struct err *err);
    /* Records the outcome (and the photo) in one transaction. A duplicate of a photo the
     * user already has becomes DUPLICATE. STORE_NOT_FOUND when the lease was lost
     * (owner no longer holds the file): nothing is written. */
    int (*file_finish)(struct store *st, int64_t file_id, const char *owner,
                       const struct store_result *res, int64_t now, struct store_finish *out,
                       struct err *err);
    /* Transient failure: back to QUEUED, not before retry_at, reason kept for the log.
     * STORE_NOT_FOUND when the lease was lost. */
    int (*file_defer)(struct store *st, int64_t file_id, const char *owner, int64_t retry_at,
                      const struct err *why, int64_t now, struct err *err);
    /* Files leased by owner (a dead worker), or every expired lease when owner is NULL:
     * back to QUEUED while attempts < max_attempts, else FAILED with `why`.
     * *released counts them. */
    int (*file_release)(struct store *st, const char *owner, int64_t now, int64_t max_attempts,
                        const struct err *why, int64_t *released, struct err *err);
    /* Files leased by owner, a live worker that holds none of them right now (between
     * files): it lost track of them (the answer to a claim or an outcome was cut off with
     * its connection, or PostgreSQL lost a commit in a crash). Back to QUEUED at once,
     * that claim not counted as an attempt. *released counts them. */
    int (*file_unclaim)(struct store *st, const char *owner, int64_t now, int64_t *released,
                        struct err *err);
    /* The user's retry of a FAILED file whose bytes are held: QUEUED again with
     * attempts 0 (counters step back). STORE_NOT_FOUND when no such failed file of
     * that user and upload; ERR_PERMANENT "bytes no longer held" when spool is "". */
    int (*file_retry)(struct store *st, int64_t user_id, int64_t upload_id, int64_t file_id,
                      int64_t now, struct err *err);
    /* STORE_NOT_FOUND when absent (user_id 0 = any owner). */
    int (*file_get)(struct store *st, int64_t id, int64_t user_id, struct store_file *out,
                    struct err *err);
    /* Forget the spool path of a file (after its bytes were removed). */
    int (*file_drop_spool)(struct store *st, int64_t file_id, struct err *err);
    /* Every spool path still referenced (for the orphan sweep). */
    int (*spool_refs)(struct store *st, store_key_cb cb, void *ctx, struct err *err);
    /* The worker still works on the file: its lease runs until lease_until.
     * STORE_NOT_FOUND when owner no longer holds it (expired and taken, or
     * finished): nothing is written, the worker's result will not count. */
    int (*file_renew)(struct store *st, int64_t file_id, const char *owner, int64_t lease_until,
                      int64_t now, struct err *err);

    /* --- photos --- */
    /* STORE_NOT_FOUND when absent or another user's. */
    int (*photo_get)(struct store *st, int64_t id, int64_t user_id, struct store_photo *out,
                     struct err *err);
    /* STORE_NOT_FOUND when the user has no photo with that content. */
    int (*photo_find_sha)(struct store *st, int64_t user_id, const char *sha256,
                          struct store_photo *out, struct err *err);
    /* One page of the user's photos (pg->upload_id 0: all of them), newest first
     * (taken_at, then created_at, then id); pg->limit 0 = all. Read in one
     * snapshot: a cursor page (BEFORE/AFTER) is one index range scan, an OFFSET page
     * is walked to from the nearer end of the list (the total is kept per user, not
     * counted), so the first and the last pages cost the same. Fills pg's out part. */
    int (*photo_page)(struct store *st, struct store_page *pg, store_photo_cb cb, void *ctx,
                      struct err *err);
    /* Deletes the row; *last_ref tells whether no other photo uses its blob keys. */
    int (*photo_delete)(struct store *st, int64_t id, int64_t user_id, struct store_photo *out,
                        bool *last_ref, struct err *err);
    /* Every blob key referenced by a photo (for the orphan sweep). */
    int (*blob_refs)(struct store *st, store_key_cb cb, void *ctx, struct err *err);

    /* --- health --- */
    /* Can the database commit? One small write in its own transaction (what a full
     * disk or a read-only database refuses: ERR_TRANSIENT or ERR_PERMANENT, with the
     * database's reason). For /healthz; any thread. */
    int (*health_check)(struct store *st, int64_t now, struct err *err);

    /* --- password changes --- */
    /* Sets name's password and, in the same transaction, deletes the user's
     * sessions except the one keyed keep_digest (NULL or "": all of them), so a
     * stolen session cookie stops working with the old password. *ended (may be
     * NULL) gets the number of sessions deleted. STORE_NOT_FOUND when no user. */
    int (*user_change_password)(struct store *st, const char *name, const char *pw_hash,
                                const char *keep_digest, int64_t *ended, struct err *err);

    /* --- several nodes on one database (shared stores) --- */
    /* The change feed: every committed change of an upload, whichever process or
     * node made it, arrives as (upload id, version), on a connection of its own.
     * STORE_NOT_FOUND: this store has none (SQLite): poll, as without a feed.
     * A feed can lose changes (a lost connection): callers keep polling slowly. */
    int (*feed_open)(struct store *st, struct store_feed **out, struct err *err);
    /* The descriptor to poll for readability. */
    int (*feed_fd)(struct store *st, struct store_feed *f);
    /* Calls cb for each change that arrived, without blocking. -1: the feed is
     * lost (changes may be missed): close it, open another later. */
    int (*feed_read)(struct store *st, struct store_feed *f, store_change_cb cb, void *ctx,
                     struct err *err);
    void (*feed_close)(struct store *st, struct store_feed *f);
    /* A number that moves with every commit to the database by any process,
     * read without a transaction (SQLite: the WAL index in shared memory), so
     * a reader may keep what it read while the mark stays the same. 0: this
     * store cannot tell, now or ever (PostgreSQL: the feed tells): read. */
    uint64_t (*change_mark)(struct store *st);
    /* This process is server node `node` (unique: host, pid, start time): from
     * now on the requests it begins and ends are recorded as its own, and it is
     * alive while its heartbeat goes on. */
    int (*node_register)(struct store *st, const char *node, int64_t now, struct err *err);
    /* The registered node's heartbeat (now); nodes whose heartbeat is older than
     * expire_before are gone: the requests they had open are closed (their
     * uploads go on with the files they got, as after a restart), and they are
     * forgotten. *expired (may be NULL) counts them. */
    int (*node_heartbeat)(struct store *st, int64_t now, int64_t expire_before,
                          int64_t *expired, struct err *err);

    /* --- metrics --- */
    /* Files waiting or in work now, over every unfinished upload (all nodes of a
     * shared store): for the queue-depth gauge, read at scrape time. */
    int (*queue_depth)(struct store *st, struct store_queue *out, struct err *err);
};

struct store {
    const struct store_ops *ops;
};

/* True for a failure that refuses the input itself: ERR_PERMANENT at stage
 * "limits" (pixels, sides, metadata) or "sniff" (a format we do not take). The
 * same bytes would fail again, so file_finish drops their spool copy and the
 * file is not retryable (the API's "retryable", the report's Retry button). */
bool store_err_refuses_input(const struct err *e);

/*
 * Open the store at location (a SQLite file path, or a PostgreSQL URL
 * "postgres://user:pass@host:port/db?..."; errors never show its password)
 * and apply pending migrations. Caller frees with st->ops->close(st). Safe to
 * call from several processes at once (PostgreSQL: an advisory lock).
 */
int store_open(const char *location, struct store **out, struct err *err);

enum store_open_flags {
    /* Commits need not reach the disk before they return (SQLite synchronous=NORMAL
     * in WAL mode): still safe against a process crash, and after a power cut only
     * the newest commits may be lost. For workers: a lost outcome is re-processed
     * from the durable blob, never lost. Acknowledging an upload needs the default. */
    STORE_RELAXED_SYNC = 1 << 0,
};
/* store_open with flags (enum store_open_flags). */
int store_open_flags(const char *location, unsigned flags, struct store **out, struct err *err);
/* store_open_flags with at most pool_conns database connections at once
 * (0 = 16; more threads wait for one). On PostgreSQL each is a server process. */
int store_open_pool(const char *location, unsigned flags, int pool_conns, struct store **out,
                    struct err *err);

/* Whether location is a database URL (postgres://, postgresql://) rather than
 * a SQLite file path. A URL may hold a password: print it only through
 * store_location_masked(). */
bool store_location_is_url(const char *location);
/* location as it may be shown in logs and messages: a URL's password as "***"
 * (user:***@host), a file path as it is; into out (n bytes, cut to fit). */
void store_location_masked(const char *location, char *out, size_t n);

#endif
