/*
 * sql_pg: the PostgreSQL driver of sql.h (libpq). Only sql.c (to pick the
 * driver for a postgres:// URL) and the driver's tests include this header.
 * The location is a libpq URL, postgres://user:pass@host:port/db?sslmode=...
 * (a unix socket: postgres://user@%2Frun%2Fpostgresql/db or ?host=/dir).
 */
#ifndef SHOEBOX_STORE_SQL_PG_H
#define SHOEBOX_STORE_SQL_PG_H

#include <stddef.h>

#include "store/sql.h"

extern const struct sql_driver sql_pg_driver;

/* url with its password shown as "***" (user:***@host, password=***) into
 * out (n bytes, cut to fit). For messages and logs; any thread. */
void sql_pg_mask_url(const char *url, char *out, size_t n);

/* sql with its `?N` and `?` placeholders as `$N` (outside quotes and
 * comments); *max_param gets the highest N. The caller frees the result. */
char *sql_pg_rewrite(const char *sql, int *max_param);

#endif
