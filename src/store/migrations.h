/*
 * migrations: the schema as an ordered list of steps per SQL dialect, applied
 * over the driver (sql.h) by one runner. Step i (0-based) brings the database
 * from version i to version i + 1; the driver keeps the version (SQLite: PRAGMA
 * user_version, so databases of earlier releases open and migrate; PostgreSQL:
 * a schema_version table). Steps are never edited once released: a change to
 * the schema is a new step appended to every dialect's list in migrations.c.
 */
#ifndef SHOEBOX_STORE_MIGRATIONS_H
#define SHOEBOX_STORE_MIGRATIONS_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "store/sql.h"

/* The schema version this program writes (the number of steps). */
int64_t migrations_latest(void);

/*
 * Applies the pending steps of `steps` (n of them) to c in one transaction
 * opened by the driver's migrate_begin (SQLite: BEGIN IMMEDIATE; PostgreSQL:
 * an advisory lock), then the version is read again, so several processes
 * may open a new database at once: the first migrates, the others find the
 * work done. *version (optional) gets the version afterwards.
 * Fails ERR_PERMANENT when the database is newer than n, or when a step fails
 * (nothing of the run is kept). The "commit" fault point is not used here.
 * c must not be inside a transaction. The thread holding c calls it.
 */
int migrations_run(struct sql_conn *c, const char *const *steps, size_t n, int64_t *version,
                   struct err *err);

/* migrations_run with the built-in list of c's dialect. */
int migrations_apply(struct sql_conn *c, int64_t *version, struct err *err);

#endif
