/* A fresh PostgreSQL database for a unit test, on the throwaway server tests/run.py
 * starts for the whole run (tests/pgserver.py) and names in the environment:
 *
 *   SHOEBOX_TEST_PG      postgres://shoebox:PASS@127.0.0.1:PORT   (no database name)
 *   SHOEBOX_TEST_PG_DIR  its directory (unix socket, log)
 *
 *   int main(void) { if (!pg_fixture_available()) return PG_FIXTURE_SKIP; ... }
 *   char *url = pg_fixture_create_db();   // postgres://shoebox:PASS@127.0.0.1:PORT/sbt_..., malloc'd
 *   ... PQconnectdb(url) or store_open(url, ...) ...
 *   pg_fixture_drop_db(url);              // DROP DATABASE ... WITH (FORCE); frees url
 *
 * Without SHOEBOX_TEST_PG (no PostgreSQL installed) a test program returns
 * PG_FIXTURE_SKIP (77), which tests/run.py reports as skipped. Header only (static inline);
 * link libpq (pq_test_dep in tests/unit/meson.build). Safe under Check's fork mode: the
 * name has the pid, a counter and the clock in it. */
#ifndef SHOEBOX_TESTS_PG_FIXTURE_H
#define SHOEBOX_TESTS_PG_FIXTURE_H

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PG_FIXTURE_SKIP 77

/* SHOEBOX_TEST_PG, or NULL when unset or empty. */
static inline const char *pg_fixture_base(void)
{
    const char *base = getenv("SHOEBOX_TEST_PG");

    return base && *base ? base : NULL;
}

static inline int pg_fixture_available(void)
{
    return pg_fixture_base() != NULL;
}

/* The URL of database dbname on the test server into out; 0, or -1 when unset or too long. */
static inline int pg_fixture_url(const char *dbname, char *out, size_t size)
{
    const char *base = pg_fixture_base();
    size_t len;
    int n;

    if (!base)
        return -1;
    len = strlen(base);
    while (len > 0 && base[len - 1] == '/')
        len--;
    n = snprintf(out, size, "%.*s/%s", (int)len, base, dbname);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* One statement on the server's maintenance database "postgres"; 0, or -1 with the
 * reason on stderr. */
static inline int pg_fixture_admin_exec(const char *sql)
{
    char url[1024];
    PGconn *conn;
    PGresult *res;
    int ok;

    if (pg_fixture_url("postgres", url, sizeof url) != 0) {
        fprintf(stderr, "pg_fixture: SHOEBOX_TEST_PG is not set\n");
        return -1;
    }
    conn = PQconnectdb(url);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "pg_fixture: connect: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return -1;
    }
    res = PQexec(conn, sql);
    ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "pg_fixture: %s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
    PQfinish(conn);
    return ok ? 0 : -1;
}

/* Create a uniquely named empty database (owned by the URL's user) and return its URL
 * (malloc'd; give it to pg_fixture_drop_db), or NULL with the reason on stderr. */
static inline char *pg_fixture_create_db(void)
{
    static unsigned counter;
    struct timespec ts;
    char name[64], sql[128], url[1024];
    char *copy;

    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(name, sizeof name, "sbt_%ld_%u_%ld", (long)getpid(), ++counter,
             (long)(ts.tv_nsec / 1000));
    if (pg_fixture_url(name, url, sizeof url) != 0) {
        fprintf(stderr, "pg_fixture: SHOEBOX_TEST_PG is not set\n");
        return NULL;
    }
    snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", name);
    if (pg_fixture_admin_exec(sql) != 0)
        return NULL;
    copy = malloc(strlen(url) + 1);
    if (copy)
        memcpy(copy, url, strlen(url) + 1);
    return copy;
}

/* Drop the database of a pg_fixture_create_db URL (closing its open connections) and
 * free the URL; 0, or -1 with the reason on stderr. NULL is a no-op. */
static inline int pg_fixture_drop_db(char *url)
{
    const char *name;
    char sql[160];
    int rc;

    if (!url)
        return 0;
    name = strrchr(url, '/');
    name = name ? name + 1 : url;
    if (strlen(name) > 63 || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(name)) {
        fprintf(stderr, "pg_fixture: not a fixture database: %s\n", name);
        free(url);
        return -1;
    }
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", name);
    rc = pg_fixture_admin_exec(sql);
    free(url);
    return rc;
}

#endif
