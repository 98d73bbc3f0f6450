/*
 * migrations: the SQLite schema as an ordered list of steps. Step i (0-based)
 * brings the database from version i to version i + 1; the version lives in
 * PRAGMA user_version. Steps are never edited once released: a change to the
 * schema is a new step appended to the list in migrations.c.
 * Not for PostgreSQL (its backend will carry its own list).
 */
#ifndef SHOEBOX_STORE_MIGRATIONS_H
#define SHOEBOX_STORE_MIGRATIONS_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* The schema version this program writes (the number of steps). */
int64_t migrations_latest(void);

/*
 * Applies the pending steps of `steps` (n of them) to db in one write
 * transaction (BEGIN IMMEDIATE, then the version is read again, so several
 * processes may open a new database at once: the first migrates, the others
 * find the work done). *version (optional) gets the version afterwards.
 * Fails ERR_PERMANENT when the database is newer than n, or when a step fails
 * (nothing of the run is kept). The "commit" fault point is not used here.
 * db must not be inside a transaction. Any thread owning db may call it.
 */
int migrations_run(sqlite3 *db, const char *const *steps, size_t n, int64_t *version,
                   struct err *err);

/* migrations_run with the built-in list. */
int migrations_apply(sqlite3 *db, int64_t *version, struct err *err);

#endif
