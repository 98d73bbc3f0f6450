/* migrations: see migrations.h. */
#include "store/migrations.h"

#include <stdio.h>

/*
 * Conventions of the schema: times are INTEGER milliseconds since the epoch,
 * 0 = never; ids 0 = none; text is NOT NULL with '' = absent, except photo
 * doubles, where NULL = absent (NaN in struct store_photo).
 * upload_files.state holds store_file_state_name() of the state.
 * photos.sort_at is the list order key: taken_at, or created_at as UTC
 * "YYYY-MM-DDTHH:MM:SS" when the photo has no capture time.
 */
static const char *const steps[] = {
    /* 1: the initial schema */
    "CREATE TABLE users ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  pw_hash TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"

    "CREATE TABLE sessions ("
    "  digest TEXT PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  current_upload INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX sessions_expires ON sessions(expires_at);"
    "CREATE INDEX sessions_user ON sessions(user_id);"

    "CREATE TABLE uploads ("
    "  id INTEGER PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  finished_at INTEGER NOT NULL DEFAULT 0,"
    "  expected INTEGER NOT NULL DEFAULT 0,"
    "  open_requests INTEGER NOT NULL DEFAULT 0,"
    "  total INTEGER NOT NULL DEFAULT 0,"
    "  processed INTEGER NOT NULL DEFAULT 0,"
    "  uploaded INTEGER NOT NULL DEFAULT 0,"
    "  failed INTEGER NOT NULL DEFAULT 0,"
    "  duplicates INTEGER NOT NULL DEFAULT 0,"
    "  queued_files INTEGER NOT NULL DEFAULT 0,"
    "  current_batch INTEGER NOT NULL DEFAULT 0,"
    "  batch_size INTEGER NOT NULL,"
    "  bytes_received INTEGER NOT NULL DEFAULT 0,"
    "  bytes_total INTEGER NOT NULL DEFAULT 0,"
    "  last_batch_end_at INTEGER NOT NULL DEFAULT 0,"
    "  version INTEGER NOT NULL DEFAULT 1,"
    "  cleared INTEGER NOT NULL DEFAULT 0,"
    "  fatal TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX uploads_user ON uploads(user_id, id);"
    "CREATE INDEX uploads_unfinished ON uploads(id) WHERE finished_at = 0;"

    "CREATE TABLE upload_files ("
    "  id INTEGER PRIMARY KEY,"
    "  upload_id INTEGER NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,"
    "  user_id INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN"
    "    ('received', 'queued', 'processing', 'done', 'duplicate', 'failed')),"
    "  name TEXT NOT NULL,"
    "  size INTEGER NOT NULL DEFAULT 0,"
    "  sha256 TEXT NOT NULL DEFAULT '',"
    "  format TEXT NOT NULL DEFAULT '',"
    "  spool TEXT NOT NULL DEFAULT '',"
    "  batch_no INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  photo_id INTEGER NOT NULL DEFAULT 0,"
    "  duplicate_of INTEGER NOT NULL DEFAULT 0,"
    "  error_stage TEXT NOT NULL DEFAULT '',"
    "  error_msg TEXT NOT NULL DEFAULT '',"
    "  lease_owner TEXT NOT NULL DEFAULT '',"
    "  lease_until INTEGER NOT NULL DEFAULT 0,"
    "  available_at INTEGER NOT NULL DEFAULT 0,"
    "  queued_at INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  UNIQUE (upload_id, seq));"
    /* file_claim: the oldest queued file */
    "CREATE INDEX upload_files_queue ON upload_files(queued_at, id) WHERE state = 'queued';"
    /* file_release: expired leases and a dead owner's files */
    "CREATE INDEX upload_files_leased ON upload_files(lease_until) WHERE state = 'processing';"
    /* sched_assign, upload_errors, the batch-end test */
    "CREATE INDEX upload_files_upload_state ON upload_files(upload_id, state, seq);"
    "CREATE INDEX upload_files_spool ON upload_files(id) WHERE spool <> '';"

    "CREATE TABLE photos ("
    "  id INTEGER PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  upload_id INTEGER NOT NULL DEFAULT 0,"
    "  file_id INTEGER NOT NULL DEFAULT 0,"
    "  name TEXT NOT NULL,"
    "  format TEXT NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  sha256 TEXT NOT NULL,"
    "  width INTEGER NOT NULL DEFAULT 0,"
    "  height INTEGER NOT NULL DEFAULT 0,"
    "  taken_at TEXT NOT NULL DEFAULT '',"
    "  taken_offset TEXT NOT NULL DEFAULT '',"
    "  make TEXT NOT NULL DEFAULT '',"
    "  model TEXT NOT NULL DEFAULT '',"
    "  lens TEXT NOT NULL DEFAULT '',"
    "  exposure_time REAL,"
    "  f_number REAL,"
    "  focal_length REAL,"
    "  iso INTEGER NOT NULL DEFAULT 0,"
    "  orientation INTEGER NOT NULL DEFAULT 0,"
    "  gps_lat REAL,"
    "  gps_lon REAL,"
    "  gps_alt REAL,"
    "  has_thumb INTEGER NOT NULL DEFAULT 0,"
    "  warnings TEXT NOT NULL DEFAULT '',"
    "  blob_key TEXT NOT NULL,"
    "  thumb_key TEXT NOT NULL DEFAULT '',"
    "  preview_key TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL,"
    "  sort_at TEXT NOT NULL,"
    "  UNIQUE (user_id, sha256));"
    "CREATE INDEX photos_list ON photos(user_id, sort_at DESC, created_at DESC, id DESC);"
    "CREATE INDEX photos_upload ON photos(upload_id);"
    "CREATE INDEX photos_blob ON photos(blob_key);",

    /* 2: /healthz proves the database can commit by writing its one row;
     * upload_add_file finds a file sent again (same name and content) */
    "CREATE TABLE health ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  checked_at INTEGER NOT NULL);"
    "CREATE INDEX upload_files_name ON upload_files(upload_id, name);",
};

int64_t migrations_latest(void)
{
    return (int64_t)(sizeof(steps) / sizeof(steps[0]));
}

static int fail(sqlite3 *db, int rc, struct err *err, const char *what)
{
    int code = rc & 0xff;
    enum err_class cls = ERR_PERMANENT;

    if (code == SQLITE_BUSY || code == SQLITE_LOCKED || code == SQLITE_IOERR ||
        code == SQLITE_FULL || code == SQLITE_NOMEM)
        cls = ERR_TRANSIENT;
    return err_set(err, cls, "store", "cannot %s: %s", what, sqlite3_errmsg(db));
}

static int read_version(sqlite3 *db, int64_t *v, struct err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        fail(db, rc, err, "read the database schema version");
        sqlite3_finalize(st);
        return -1;
    }
    *v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return 0;
}

static int exec(sqlite3 *db, const char *sql, struct err *err, const char *what)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

    if (rc != SQLITE_OK)
        return fail(db, rc, err, what);
    return 0;
}

static int too_new(int64_t v, size_t n, struct err *err)
{
    return err_set(err, ERR_PERMANENT, "store",
                   "database schema version %lld is newer than this program's %zu: "
                   "upgrade shoebox",
                   (long long)v, n);
}

/* Steps v..n-1 and the new version; the caller holds the write transaction. */
static int apply_steps(sqlite3 *db, const char *const *steps_, size_t n, int64_t v,
                       struct err *err)
{
    char sql[64], what[64];

    for (size_t i = (size_t)v; i < n; i++) {
        snprintf(what, sizeof(what), "apply database migration %zu", i + 1);
        if (exec(db, steps_[i], err, what))
            return -1;
    }
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %zu", n);
    return exec(db, sql, err, "record the database schema version");
}

int migrations_run(sqlite3 *db, const char *const *steps_, size_t n, int64_t *version,
                   struct err *err)
{
    int64_t v = 0;
    int rc = -1;

    if (read_version(db, &v, err))
        return -1;
    if (v >= 0 && (size_t)v == n)  /* the common case: nothing to do, no write lock */
        goto done;
    if (v < 0 || (size_t)v > n)
        return too_new(v, n, err);
    if (exec(db, "BEGIN IMMEDIATE", err, "start the database migration"))
        return -1;
    /* Another process may have migrated while we waited for the write lock. */
    if (read_version(db, &v, err))
        goto out;
    if ((size_t)v > n) {
        too_new(v, n, err);
        goto out;
    }
    if (apply_steps(db, steps_, n, v, err))
        goto out;
    if (exec(db, "COMMIT", err, "commit the database migration"))
        goto out;
    v = (int64_t)n;
    rc = 0;
out:
    if (rc) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
done:
    if (version)
        *version = v;
    return 0;
}

int migrations_apply(sqlite3 *db, int64_t *version, struct err *err)
{
    return migrations_run(db, steps, sizeof(steps) / sizeof(steps[0]), version, err);
}
