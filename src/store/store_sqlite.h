/*
 * store_sqlite: the store's rules (store_sql.c) over the SQLite driver
 * (sql_sqlite.c). Callers use store_open(); this constructor exists for
 * store.c and the tests.
 */
#ifndef SHOEBOX_STORE_STORE_SQLITE_H
#define SHOEBOX_STORE_STORE_SQLITE_H

#include "store/store.h"

/* Opens (creating if missing) the SQLite database file at path, sets WAL,
 * synchronous=FULL (NORMAL with STORE_RELAXED_SYNC), foreign keys and a 5 s
 * busy timeout, applies pending migrations. Caller frees with st->ops->close(st). */
int store_sqlite_open(const char *path, unsigned flags, struct store **out, struct err *err);

#endif
