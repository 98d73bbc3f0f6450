/*
 * sql_pg: the PostgreSQL driver of sql.h, over libpq. Everything
 * PostgreSQL-specific lives here: the connection URL, placeholders rewritten
 * to $N, server-side prepared statements, SQLSTATE classes, reconnecting,
 * the isolation levels, the advisory lock and the schema_version table.
 *
 * DESIGN
 * Threads: a connection is used by one thread at a time (the pool in sql.c
 * hands it out); nothing here is shared between connections but the atomic
 * `outage` flag, so there are no locks. libpq is thread-safe for distinct
 * PGconn objects.
 * Statements: cached per connection by the ADDRESS of the SQL text (sql.h).
 * The text is rewritten once (`?N` and `?` to `$N`, outside quotes and
 * comments) when it is first seen; PQprepare runs lazily at the first step,
 * when the bound values' types are known ('i' int8, 'd' float8, 't' text), and
 * again only if a later call binds other types. Parameters travel in text
 * format, each as its own protocol field (never spliced into SQL), so any text
 * is safe; NaN binds NULL. PQexecPrepared fetches the whole result, so several
 * statements of one connection may be stepped at once (a list callback may run
 * other statements on the same connection).
 * Lost connections: before a statement or BEGIN outside a transaction, the
 * socket is polled; a connection the server closed (EOF, or a FATAL notice
 * such as pg_terminate_backend's or a shutdown's) is reset there, before
 * anything is sent, and the prepared statements are marked unprepared (the
 * server forgot them). A statement that lost its connection while it ran is
 * run again on a reset connection only when that cannot apply it twice:
 * outside a transaction, and either a read (the text starts with SELECT) or
 * answered by the server with an error (so it was rolled back). A write
 * without an answer, or anything inside a transaction, fails ERR_TRANSIENT
 * and says so; the caller (the store's rules, the job layer) decides whether
 * to run the whole operation again, and the next BEGIN resets the connection.
 * A statement runs at most twice. A reset, and opening a connection while this
 * process knows of an outage, wait up to RECONNECT_WAIT_MS for a server that
 * is restarting; each outage is logged once per process (db.lost, then
 * db.reconnected; `outage` is the only state shared between connections).
 * Durability: sessions set synchronous_commit on, relaxed ones off.
 * Transactions: begin_write is READ COMMITTED (the rules take row locks, see
 * sql.h); begin_read is REPEATABLE READ, READ ONLY. A COMMIT of a transaction
 * that had failed is reported as a failure (the server answers ROLLBACK).
 * Migrations: migrate_begin takes pg_advisory_xact_lock(MIGRATE_LOCK) in its
 * transaction, so nodes starting together migrate one after the other; the
 * version is the one row of schema_version.
 * Secrets: the URL's password never enters a message: the URL is printed
 * masked (sql_pg_mask_url) and every message is scrubbed of the password.
 */
#include "store/sql_pg.h"

#include <libpq-fe.h>
#include <math.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/timeutil.h"
#include "base/xalloc.h"

/* The key of the migration lock: "shoebox" in ASCII. */
#define MIGRATE_LOCK "32484449973333880"
/* Seconds to wait for a connection unless the URL says connect_timeout. */
#define CONNECT_TIMEOUT "10"
/* How long connecting waits for a server that went away (its connections were
 * lost) to come back before the operation fails: a restart or a failover takes
 * a few seconds, and an operation that waits it out is neither failed nor sent
 * again. Pauses between tries start at RECONNECT_PAUSE_MS and double to
 * RECONNECT_PAUSE_MAX_MS. A first connection (no outage seen) does not wait. */
#define RECONNECT_WAIT_MS 5000
#define RECONNECT_PAUSE_MS 50
#define RECONNECT_PAUSE_MAX_MS 500
/* Bytes for one int64 or double parameter in text form. */
#define NUM_MAX 32

struct pgstmt {
    struct sql_stmt base;
    const char *sql; /* the cache key (the caller's text) */
    char *text;      /* the text with $N placeholders */
    bool read_only;  /* a SELECT: safe to run again after a lost connection */
    int max_param;   /* the highest $N in text */
    char name[24];   /* the server-side name once prepared, "" before */
    char *types;     /* the types it was prepared with ('i', 'd', 't'), max_param long */
    /* bound values: nbound of them; numbers live in nums */
    int nbound, cap;
    const char **values;
    char (*nums)[NUM_MAX];
    char *btypes;
    /* the current execution: res (NULL before the first step), row */
    PGresult *res;
    int row;
};

struct pgconn {
    struct sql_conn base;
    PGconn *pg;
    bool relaxed; /* SQL_RELAXED_SYNC */
    bool in_tx;   /* we sent BEGIN and neither COMMIT nor ROLLBACK */
    bool doomed;  /* the server said FATAL while we were idle: it is closing */
    struct pgstmt **stmts;
    size_t nstmts, cap;
    unsigned serial; /* for statement names */
    int64_t changes;
    enum sql_fail last_fail;
};

#define PGC(c) ((struct pgconn *)(c))
#define PGS(s) ((struct pgstmt *)(s))

/* Whether this process saw a connection lost and has opened none since: the
 * log tells each outage once (db.lost, then db.reconnected), not once per
 * pooled connection. */
static atomic_bool outage;

static void note_lost(const char *why)
{
    if (!atomic_exchange(&outage, true))
        log_warn("store", "db.lost", "msg=%s", LOG_Q(why));
}

static void note_connected(void)
{
    if (atomic_exchange(&outage, false))
        log_warn("store", "db.reconnected",
                 "msg=\"the connection to PostgreSQL was lost and is open again\"");
}

/* ---- secrets and messages ---- */

void sql_pg_mask_url(const char *url, char *out, size_t n)
{
    const char *scheme = strstr(url, "://");
    const char *auth = scheme ? scheme + 3 : url;
    const char *at = strchr(auth, '@');
    const char *slash = strchr(auth, '/');
    const char *colon = strchr(auth, ':');
    const char *q;

    if (at && (!slash || at < slash) && colon && colon < at) {
        snprintf(out, n, "%.*s:***%s", (int)(colon - url), url, at);
    } else {
        snprintf(out, n, "%s", url);
    }
    /* A password given as a query parameter: cut everything after it. */
    q = strstr(out, "password=");
    if (q && (size_t)(q - out) + 12 < n)
        snprintf(out + (q - out), n - (size_t)(q - out), "password=***");
}

/* Replaces every occurrence of the connection's password in msg by "***". */
static void scrub(PGconn *pg, char *msg, size_t n)
{
    const char *pw = pg ? PQpass(pg) : NULL;
    size_t plen = pw ? strlen(pw) : 0, o = 0;
    char out[ERR_MSG_MAX];

    if (plen < 1 || !strstr(msg, pw))
        return;
    for (const char *m = msg; *m && o + 4 < sizeof(out);) {
        if (!strncmp(m, pw, plen)) {
            memcpy(out + o, "***", 3);
            o += 3, m += plen;
        } else {
            out[o++] = *m++;
        }
    }
    out[o] = '\0';
    snprintf(msg, n, "%s", out);
}

/* The first line of libpq's message, without "ERROR:  "/"FATAL:  ", into out. */
static void first_line(const char *text, char *out, size_t n)
{
    static const char *const prefixes[] = {"ERROR:  ", "FATAL:  ", "PANIC:  "};
    size_t len;

    if (!text || !*text)
        text = "no message from the server";
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        if (!strncmp(text, prefixes[i], strlen(prefixes[i])))
            text += strlen(prefixes[i]);
    }
    len = strcspn(text, "\n");
    snprintf(out, n, "%.*s", (int)len, text);
}

static bool transient_state(const char *st)
{
    static const char *const codes[] = {"40001", "40P01", "57P01", "57P02", "57P03", "55P03"};

    if (!st)
        return false;
    if (!strncmp(st, "08", 2) || !strncmp(st, "53", 2))
        return true;
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (!strcmp(st, codes[i]))
            return true;
    }
    return false;
}

/* Fills err from a failed result (res may be NULL) and remembers its kind. */
static int fail_res(struct pgconn *c, const PGresult *res, struct err *err, const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    bool lost = PQstatus(c->pg) == CONNECTION_BAD;
    char text[ERR_MSG_MAX];

    c->last_fail = SQL_FAIL_OTHER;
    if (state && !strcmp(state, "23505"))
        c->last_fail = SQL_FAIL_UNIQUE;
    else if (state && !strncmp(state, "23", 2))
        c->last_fail = SQL_FAIL_CONSTRAINT;
    first_line(primary ? primary : PQerrorMessage(c->pg), text, sizeof(text));
    if (lost) {
        err_set(err, ERR_TRANSIENT, "store",
                "cannot %s: the connection to PostgreSQL was lost%s (%s)", what,
                c->in_tx ? " inside a transaction" : "", text);
        scrub(c->pg, text, sizeof(text));
        note_lost(text);
    } else {
        err_set(err, transient_state(state) ? ERR_TRANSIENT : ERR_PERMANENT, "store",
                "cannot %s: %s%s%s%s", what, text, state ? " (SQLSTATE " : "", state ? state : "",
                state ? ")" : "");
    }
    if (err)
        scrub(c->pg, err->msg, sizeof(err->msg));
    return -1;
}

/* Whether a failed result is the server's answer (an error it sent, so the
 * statement's transaction was rolled back) rather than libpq's report of a
 * connection that broke without one. libpq may keep only the text of a FATAL
 * that came just before the connection closed. */
static bool server_answered(struct pgconn *c, const PGresult *res)
{
    return (res && PQresultErrorField(res, PG_DIAG_SQLSTATE)) ||
           !strncmp(PQerrorMessage(c->pg), "FATAL:", 6);
}

/* ---- connections ---- */

/* NOTICEs ("relation already exists, skipping") are not for the log. An error
 * the server sends while the connection is idle arrives here too: FATAL (an
 * administrator's pg_terminate_backend, a shutdown) means the server is closing
 * the connection, even before its end of the socket is seen. */
static void on_notice(void *arg, const PGresult *res)
{
    struct pgconn *c = arg;
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);

    if (sev && (!strcmp(sev, "FATAL") || !strcmp(sev, "PANIC")))
        c->doomed = true;
}

/* One command without parameters or rows wanted: 0 or -1. */
static int command(struct pgconn *c, const char *sql, const char *what, struct err *err)
{
    PGresult *res = PQexec(c->pg, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = 0;

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = fail_res(c, res, err, what);
    PQclear(res);
    return rc;
}

/* What a new (or reset) session needs. */
static int session_setup(struct pgconn *c, struct err *err)
{
    c->doomed = false;
    PQsetNoticeReceiver(c->pg, on_notice, c);
    /* A commit answers once it is durable (the page is told its file is safe on the
     * strength of it), whatever the server's default; relaxed sessions (workers: a
     * lost commit only means a file processed again) need not wait for it. */
    if (command(c, c->relaxed ? "SET synchronous_commit = off" : "SET synchronous_commit = on",
                "set up the database session", err))
        return -1;
    return 0;
}

static void forget_prepared(struct pgconn *c)
{
    for (size_t i = 0; i < c->nstmts; i++)
        c->stmts[i]->name[0] = '\0';
}

static enum err_class connect_class(const char *text);

/* After a failed connection attempt on pg: whether to try again. Yes when the
 * server refused for a reason that passes (not listening, starting up, shutting
 * down) and time is left until `until` (time_mono_ms); then it has paused. */
static bool wait_more(PGconn *pg, int64_t until, int64_t *pause)
{
    char text[ERR_MSG_MAX];

    first_line(PQerrorMessage(pg), text, sizeof(text));
    if (connect_class(text) != ERR_TRANSIENT || time_mono_ms() + *pause > until)
        return false;
    time_sleep_ms(*pause);
    *pause = *pause * 2 < RECONNECT_PAUSE_MAX_MS ? *pause * 2 : RECONNECT_PAUSE_MAX_MS;
    return true;
}

/* Reconnects a connection the server closed, waiting up to RECONNECT_WAIT_MS
 * for the server to come back: 0, or -1 (ERR_TRANSIENT). */
static int reconnect(struct pgconn *c, struct err *err)
{
    char text[ERR_MSG_MAX];
    int64_t until = time_mono_ms() + RECONNECT_WAIT_MS, pause = RECONNECT_PAUSE_MS;

    forget_prepared(c);
    c->in_tx = false;
    PQreset(c->pg);
    while (PQstatus(c->pg) != CONNECTION_OK && wait_more(c->pg, until, &pause))
        PQreset(c->pg);
    if (PQstatus(c->pg) != CONNECTION_OK) {
        first_line(PQerrorMessage(c->pg), text, sizeof(text));
        err_set(err, ERR_TRANSIENT, "store",
                "cannot reconnect to PostgreSQL after the connection was lost: %s", text);
        if (err)
            scrub(c->pg, err->msg, sizeof(err->msg));
        log_warn("store", "db.reconnect_failed", "msg=%s", LOG_Q(err ? err->msg : text));
        return -1;
    }
    note_connected();
    return session_setup(c, err);
}

/* Outside a transaction, before anything is sent: a connection the server has
 * closed meanwhile (its socket is readable: EOF or a FATAL message) is reset. */
static int ensure_alive(struct pgconn *c, struct err *err)
{
    struct pollfd pfd = {.fd = PQsocket(c->pg), .events = POLLIN};

    if (c->in_tx)
        return 0;
    /* Something arrived while idle: read it. EOF marks the connection bad; a
     * FATAL message (read as a notice) is followed by EOF, hence the second
     * look; a notification or a NOTICE leaves it good. */
    for (int i = 0; i < 2 && PQstatus(c->pg) == CONNECTION_OK && pfd.fd >= 0; i++) {
        if (poll(&pfd, 1, 0) != 1)
            break;
        (void)PQconsumeInput(c->pg);
    }
    if (PQstatus(c->pg) == CONNECTION_OK && !c->doomed)
        return 0;
    note_lost("the server closed an idle connection (restarted, or the session was ended)");
    return reconnect(c, err);
}

/* A URL libpq cannot parse, a wrong password, a database or user that does not
 * exist are mistakes to fix (permanent); a server that does not answer, is
 * starting or shutting down, or has no free slot may come back (transient). */
static enum err_class connect_class(const char *text)
{
    static const char *const permanent[] = {
        "invalid",
        "missing",
        "authentication failed",
        "does not exist",
        "no password supplied",
        "no pg_hba.conf entry",
        "permission denied",
    };

    for (size_t i = 0; i < sizeof(permanent) / sizeof(permanent[0]); i++) {
        if (strstr(text, permanent[i]))
            return ERR_PERMANENT;
    }
    return ERR_TRANSIENT;
}

static int pg_open(const char *location, unsigned flags, struct sql_conn **out, struct err *err)
{
    /* Our defaults come first: the URL (expanded from dbname) overrides them. */
    const char *const keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
    const char *const vals[] = {CONNECT_TIMEOUT, "shoebox", location, NULL};
    struct pgconn *c = xcalloc(1, sizeof(*c));
    char masked[512], text[ERR_MSG_MAX];
    int64_t until = time_mono_ms() + RECONNECT_WAIT_MS, pause = RECONNECT_PAUSE_MS;

    *out = NULL;
    c->base.drv = &sql_pg_driver;
    c->relaxed = (flags & SQL_RELAXED_SYNC) != 0;
    c->pg = PQconnectdbParams(keys, vals, 1);
    /* During an outage (a connection of this process was lost) a new connection,
     * which replaces a lost one, waits for the server as reconnect() does. */
    while (c->pg && PQstatus(c->pg) != CONNECTION_OK && atomic_load(&outage) &&
           wait_more(c->pg, until, &pause)) {
        PQfinish(c->pg);
        c->pg = PQconnectdbParams(keys, vals, 1);
    }
    if (!c->pg) {
        free(c);
        return err_set(err, ERR_TRANSIENT, "store", "cannot connect to PostgreSQL: out of memory");
    }
    if (PQstatus(c->pg) != CONNECTION_OK) {
        sql_pg_mask_url(location, masked, sizeof(masked));
        first_line(PQerrorMessage(c->pg), text, sizeof(text));
        err_set(err, connect_class(text), "store", "cannot connect to PostgreSQL '%s': %s", masked,
                text);
        if (err)
            scrub(c->pg, err->msg, sizeof(err->msg));
        PQfinish(c->pg);
        free(c);
        return -1;
    }
    if (session_setup(c, err)) {
        PQfinish(c->pg);
        free(c);
        return -1;
    }
    note_connected();
    *out = &c->base;
    return 0;
}

static void stmt_free(struct pgstmt *s)
{
    PQclear(s->res);
    free(s->text);
    free(s->types);
    free(s->values);
    free(s->nums);
    free(s->btypes);
    free(s);
}

static void pg_close(struct sql_conn *conn)
{
    struct pgconn *c = PGC(conn);

    if (!c)
        return;
    for (size_t i = 0; i < c->nstmts; i++)
        stmt_free(c->stmts[i]);
    free(c->stmts);
    PQfinish(c->pg);
    free(c);
}

/* ---- statements ---- */

/* Copies a quoted run ('...', "...") from *in to the buffer; both advance. */
static void copy_quoted(const char **in, char **o)
{
    char q = **in;

    *(*o)++ = *(*in)++;
    while (**in) {
        char ch = *(*in)++;
        *(*o)++ = ch;
        if (ch == q) {
            if (**in != q)
                return;
            *(*o)++ = *(*in)++; /* a doubled quote stays inside */
        }
    }
}

/* The text with `?N` and `?` as `$N` (malloc'd); *max_param the highest N. */
char *sql_pg_rewrite(const char *sql, int *max_param)
{
    /* One "?" becomes at most "$100000" (7 bytes). */
    char *out = xmalloc(strlen(sql) * 7 + 1), *o = out;
    const char *in = sql;
    int max = 0;

    while (*in) {
        if (*in == '\'' || *in == '"') {
            copy_quoted(&in, &o);
        } else if (in[0] == '-' && in[1] == '-') {
            while (*in && *in != '\n')
                *o++ = *in++;
        } else if (in[0] == '/' && in[1] == '*') {
            const char *end = strstr(in + 2, "*/");
            size_t len = end ? (size_t)(end + 2 - in) : strlen(in);
            memcpy(o, in, len);
            o += len, in += len;
        } else if (*in == '?') {
            long num = 0;
            in++;
            if (*in >= '0' && *in <= '9') {
                while (*in >= '0' && *in <= '9' && num < 100000)
                    num = num * 10 + (*in++ - '0');
            } else {
                num = max + 1;
            }
            if (num > 99999)
                num = 99999; /* far beyond any statement; the server refuses it */
            if (num > max)
                max = (int)num;
            o += snprintf(o, 8, "$%ld", num);
        } else {
            *o++ = *in++;
        }
    }
    *o = '\0';
    *max_param = max;
    return out;
}

static bool starts_with_select(const char *sql)
{
    while (*sql == ' ' || *sql == '\n' || *sql == '\t' || *sql == '(')
        sql++;
    return !strncasecmp(sql, "SELECT", 6);
}

static void stmt_reset(struct pgstmt *s)
{
    PQclear(s->res);
    s->res = NULL;
    s->row = 0;
}

static struct sql_stmt *pg_prepare(struct sql_conn *conn, const char *sql, const char *what,
                                   struct err *err)
{
    struct pgconn *c = PGC(conn);
    struct pgstmt *s;

    (void)what, (void)err;
    for (size_t i = 0; i < c->nstmts; i++) {
        if (c->stmts[i]->sql == sql) {
            stmt_reset(c->stmts[i]);
            c->stmts[i]->nbound = 0;
            return &c->stmts[i]->base;
        }
    }
    if (c->nstmts == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 32;
        c->stmts = xrealloc(c->stmts, c->cap * sizeof(*c->stmts));
    }
    s = xcalloc(1, sizeof(*s));
    s->base.conn = conn;
    s->sql = sql;
    s->text = sql_pg_rewrite(sql, &s->max_param);
    s->read_only = starts_with_select(sql);
    c->stmts[c->nstmts++] = s;
    return &s->base;
}

static int pg_bind(struct sql_stmt *st, const struct sql_val *v, size_t n, const char *what,
                   struct err *err)
{
    struct pgstmt *s = PGS(st);

    if (n > 99999)
        return err_set(err, ERR_PERMANENT, "store", "cannot %s: too many parameters", what);
    if ((int)n > s->cap) {
        s->cap = (int)n;
        s->values = xrealloc(s->values, n * sizeof(*s->values));
        s->nums = xrealloc(s->nums, n * sizeof(*s->nums));
        s->btypes = xrealloc(s->btypes, n);
    }
    for (size_t i = 0; i < n; i++) {
        s->btypes[i] = v[i].type == 'i' || v[i].type == 'd' ? v[i].type : 't';
        switch (v[i].type) {
        case 'i':
            snprintf(s->nums[i], NUM_MAX, "%lld", (long long)v[i].i);
            s->values[i] = s->nums[i];
            break;
        case 'd':
            /* %.17g reads back to the same double; PostgreSQL reads inf and nan too. */
            snprintf(s->nums[i], NUM_MAX, "%.17g", v[i].d);
            s->values[i] = isnan(v[i].d) ? NULL : s->nums[i];
            break;
        default: s->values[i] = v[i].s ? v[i].s : ""; break;
        }
    }
    s->nbound = (int)n;
    return 0;
}

static Oid type_oid(char t)
{
    /* pg_type.h: INT8OID 20, FLOAT8OID 701, TEXTOID 25 (stable since 7.x). */
    return t == 'i' ? 20 : t == 'd' ? 701 : 25;
}

/* Whether s is prepared on the server with the types now bound. */
static bool prepared_as_bound(const struct pgstmt *s)
{
    if (!s->name[0])
        return false;
    for (int i = 0; i < s->nbound && i < s->max_param; i++) {
        if (s->types[i] != s->btypes[i])
            return false;
    }
    return true;
}

/* PQprepare with the bound types (parameters beyond them are left to the server). */
static int server_prepare(struct pgconn *c, struct pgstmt *s, const char *what, struct err *err)
{
    int np = s->max_param;
    Oid *oids = xcalloc((size_t)np + 1, sizeof(Oid));
    PGresult *res;
    char name[24];
    int rc = 0;

    free(s->types);
    s->types = xcalloc((size_t)np + 1, 1);
    for (int i = 0; i < np; i++) {
        s->types[i] = i < s->nbound ? s->btypes[i] : '?';
        oids[i] = i < s->nbound ? type_oid(s->btypes[i]) : 0;
    }
    snprintf(name, sizeof(name), "sb%u", ++c->serial);
    res = PQprepare(c->pg, name, s->text, np, oids);
    if (PQresultStatus(res) == PGRES_COMMAND_OK)
        snprintf(s->name, sizeof(s->name), "%s", name);
    else
        rc = fail_res(c, res, err, what);
    PQclear(res);
    free(oids);
    return rc;
}

/* Runs s once: 0 with s->res (rows) or c->changes set, -1 failed. *may_have_run
 * tells whether a failed statement might have taken effect: false when it
 * failed before it was sent for execution, or when the server answered with an
 * error (the statement's implicit transaction was rolled back); true when the
 * connection broke without an answer. */
static int run_once(struct pgconn *c, struct pgstmt *s, const char *what, struct err *err,
                    bool *may_have_run)
{
    PGresult *res;
    ExecStatusType st;
    const char *tag;

    *may_have_run = false;
    if (!prepared_as_bound(s) && server_prepare(c, s, what, err))
        return -1;
    res = PQexecPrepared(c->pg, s->name, s->nbound < s->max_param ? s->nbound : s->max_param,
                         s->values, NULL, NULL, 0);
    st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        *may_have_run = !server_answered(c, res);
        fail_res(c, res, err, what);
        PQclear(res);
        return -1;
    }
    tag = PQcmdStatus(res);
    if (!strncmp(tag, "INSERT", 6) || !strncmp(tag, "UPDATE", 6) || !strncmp(tag, "DELETE", 6) ||
        !strncmp(tag, "MERGE", 5))
        c->changes = strtoll(PQcmdTuples(res), NULL, 10);
    s->res = res;
    s->row = -1;
    return 0;
}

/* Runs s, resetting a lost connection first, and once more after a loss
 * mid-statement when that is safe (see DESIGN). */
static int execute(struct pgconn *c, struct pgstmt *s, const char *what, struct err *err)
{
    bool outside = !c->in_tx, may_have_run = false;

    if (ensure_alive(c, err))
        return -1;
    if (run_once(c, s, what, err, &may_have_run) == 0)
        return 0;
    if (!outside || PQstatus(c->pg) != CONNECTION_BAD || (may_have_run && !s->read_only))
        return -1;
    if (reconnect(c, err))
        return -1;
    err_clear(err);
    return run_once(c, s, what, err, &may_have_run);
}

static int pg_step(struct sql_stmt *st, const char *what, struct err *err)
{
    struct pgstmt *s = PGS(st);
    struct pgconn *c = PGC(st->conn);

    if (!s->res && execute(c, s, what, err))
        return -1;
    s->row++;
    if (PQresultStatus(s->res) == PGRES_TUPLES_OK && s->row < PQntuples(s->res))
        return 1;
    stmt_reset(s);
    return 0;
}

static void pg_reset(struct sql_stmt *st)
{
    stmt_reset(PGS(st));
}

/* ---- columns ---- */

static bool has_value(const struct pgstmt *s, int i)
{
    return s->res && s->row >= 0 && s->row < PQntuples(s->res) && i >= 0 && i < PQnfields(s->res) &&
           !PQgetisnull(s->res, s->row, i);
}

static int64_t pg_col_int64(struct sql_stmt *st, int i)
{
    struct pgstmt *s = PGS(st);
    const char *v;

    if (!has_value(s, i))
        return 0;
    v = PQgetvalue(s->res, s->row, i);
    if (*v == 't')
        return 1; /* a boolean column */
    if (strpbrk(v, ".eE"))
        return (int64_t)strtod(v, NULL); /* a float or numeric, as SQLite casts */
    return strtoll(v, NULL, 10);
}

static double pg_col_double(struct sql_stmt *st, int i)
{
    struct pgstmt *s = PGS(st);

    if (!has_value(s, i))
        return NAN;
    return strtod(PQgetvalue(s->res, s->row, i), NULL);
}

static const char *pg_col_text(struct sql_stmt *st, int i)
{
    struct pgstmt *s = PGS(st);

    return has_value(s, i) ? PQgetvalue(s->res, s->row, i) : "";
}

static bool pg_col_null(struct sql_stmt *st, int i)
{
    return !has_value(PGS(st), i);
}

static int pg_col_count(struct sql_stmt *st)
{
    struct pgstmt *s = PGS(st);

    return s->res ? PQnfields(s->res) : 0;
}

static int64_t pg_changes(struct sql_conn *c)
{
    return PGC(c)->changes;
}

static enum sql_fail pg_fail_kind(struct sql_conn *c)
{
    return PGC(c)->last_fail;
}

/* ---- transactions ---- */

static int begin_with(struct pgconn *c, const char *sql, struct err *err)
{
    if (c->in_tx)
        return err_set(err, ERR_PERMANENT, "store",
                       "cannot begin a transaction: one is already open");
    if (ensure_alive(c, err))
        return -1;
    /* A BEGIN that met a lost connection did nothing: reconnect and send it again. */
    if (command(c, sql, "begin a transaction", err) &&
        (PQstatus(c->pg) != CONNECTION_BAD || reconnect(c, err) ||
         command(c, sql, "begin a transaction", err)))
        return -1;
    err_clear(err);
    c->in_tx = true;
    return 0;
}

static int pg_begin_write(struct sql_conn *c, struct err *err)
{
    return begin_with(PGC(c), "BEGIN ISOLATION LEVEL READ COMMITTED", err);
}

static int pg_begin_read(struct sql_conn *c, struct err *err)
{
    return begin_with(PGC(c), "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", err);
}

static int pg_commit(struct sql_conn *conn, struct err *err)
{
    struct pgconn *c = PGC(conn);
    bool failed = PQtransactionStatus(c->pg) == PQTRANS_INERROR;
    PGresult *res;
    int rc = 0;

    if (!c->in_tx)
        return err_set(err, ERR_PERMANENT, "store", "cannot commit: no transaction is open");
    res = PQexec(c->pg, "COMMIT");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        /* An answer from the server (the FATAL of a terminated session; libpq
         * may keep only its text) means the transaction ended without its
         * commit; no answer leaves the outcome unknown. */
        bool lost = PQstatus(c->pg) == CONNECTION_BAD;

        if (lost && (PQresultErrorField(res, PG_DIAG_SQLSTATE) ||
                     !strncmp(PQerrorMessage(c->pg), "FATAL:", 6)))
            err_set(err, ERR_TRANSIENT, "store",
                    "cannot commit: the connection to PostgreSQL was lost; the transaction "
                    "was rolled back");
        else if (lost)
            err_set(err, ERR_TRANSIENT, "store",
                    "cannot commit: the connection to PostgreSQL was lost; the transaction "
                    "may or may not have been committed");
        else
            fail_res(c, res, err, "commit");
        if (lost)
            note_lost("the connection was lost at a commit");
        rc = -1;
    } else if (failed || strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        /* The server rolled back a transaction in which a statement had failed. */
        rc = err_set(err, ERR_PERMANENT, "store",
                     "cannot commit: a statement of the transaction had failed; rolled back");
    }
    PQclear(res);
    c->in_tx = false;
    if (rc && PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        PQclear(PQexec(c->pg, "ROLLBACK"));
    return rc;
}

static void pg_rollback(struct sql_conn *conn)
{
    struct pgconn *c = PGC(conn);

    /* A lost connection has nothing to roll back: the server ended the session. */
    if (PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        PQclear(PQexec(c->pg, "ROLLBACK"));
    c->in_tx = false;
}

static bool pg_in_transaction(struct sql_conn *c)
{
    return PGC(c)->in_tx;
}

static bool pg_recycle(struct sql_conn *conn)
{
    struct pgconn *c = PGC(conn);

    for (size_t i = 0; i < c->nstmts; i++)
        stmt_reset(c->stmts[i]);
    if (c->in_tx)
        pg_rollback(conn);
    return PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) == PQTRANS_IDLE;
}

/* ---- migrations ---- */

static int pg_exec(struct sql_conn *conn, const char *script, const char *what, struct err *err)
{
    struct pgconn *c = PGC(conn);

    if (ensure_alive(c, err))
        return -1;
    return command(c, script, what, err);
}

static int pg_migrate_begin(struct sql_conn *conn, struct err *err)
{
    struct pgconn *c = PGC(conn);

    if (begin_with(c, "BEGIN ISOLATION LEVEL READ COMMITTED", err))
        return -1;
    /* Held to the end of the transaction: nodes starting together queue here. */
    if (command(c, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ")", "take the migration lock",
                err) ||
        command(c,
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "  id INTEGER PRIMARY KEY CHECK (id = 1),"
                "  version BIGINT NOT NULL)",
                "create the schema_version table", err)) {
        pg_rollback(conn);
        return -1;
    }
    return 0;
}

/* The version, 0 when schema_version does not exist yet (a new database: the
 * table is made by migrate_begin; asking first keeps a transaction unbroken). */
static int pg_version_get(struct sql_conn *conn, int64_t *version, struct err *err)
{
    struct pgconn *c = PGC(conn);
    PGresult *res = NULL;
    int rc = -1;

    *version = 0;
    if (ensure_alive(c, err))
        return -1;
    res = PQexec(c->pg, "SELECT to_regclass('schema_version') IS NOT NULL");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        goto fail;
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        rc = 0;
        goto out;
    }
    PQclear(res);
    res = PQexec(c->pg, "SELECT version FROM schema_version WHERE id = 1");
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        goto fail;
    if (PQntuples(res) == 1)
        *version = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    rc = 0;
    goto out;
fail:
    fail_res(c, res, err, "read the database schema version");
out:
    PQclear(res);
    return rc;
}

static int pg_version_set(struct sql_conn *conn, int64_t version, struct err *err)
{
    struct pgconn *c = PGC(conn);
    char num[NUM_MAX];
    const char *vals[] = {num};
    PGresult *res;
    int rc = 0;

    snprintf(num, sizeof(num), "%lld", (long long)version);
    res = PQexecParams(c->pg,
                       "INSERT INTO schema_version (id, version) VALUES (1, $1::bigint)"
                       " ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
                       1, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = fail_res(c, res, err, "write the database schema version");
    PQclear(res);
    return rc;
}

/* ---- the change feed ---- */

static int pg_listen(struct sql_conn *conn, const char *channel, struct err *err)
{
    struct pgconn *c = PGC(conn);
    char *ident, sql[256];
    int rc;

    if (ensure_alive(c, err))
        return -1;
    ident = PQescapeIdentifier(c->pg, channel, strlen(channel));
    if (!ident)
        return err_set(err, ERR_TRANSIENT, "store", "cannot listen: out of memory");
    snprintf(sql, sizeof(sql), "LISTEN %s", ident);
    PQfreemem(ident);
    rc = command(c, sql, "listen for changes", err);
    /* The socket is polled by the caller: reads must not block. */
    if (rc == 0 && PQsetnonblocking(c->pg, 1) != 0)
        rc = err_set(err, ERR_TRANSIENT, "store", "cannot listen: no non-blocking mode");
    return rc;
}

static int pg_listen_fd(struct sql_conn *conn)
{
    return PQsocket(PGC(conn)->pg);
}

static int pg_listen_read(struct sql_conn *conn, void (*each)(void *ctx, const char *payload),
                          void *ctx, struct err *err)
{
    struct pgconn *c = PGC(conn);
    PGnotify *n;
    int ok = PQconsumeInput(c->pg);

    while ((n = PQnotifies(c->pg)) != NULL) {
        each(ctx, n->extra ? n->extra : "");
        PQfreemem(n);
    }
    if (ok && PQstatus(c->pg) == CONNECTION_OK && !c->doomed)
        return 0;
    note_lost("the change feed's connection was closed");
    return err_set(err, ERR_TRANSIENT, "store",
                   "the change feed's connection to PostgreSQL was lost");
}

const struct sql_driver sql_pg_driver = {
    .name = "postgres",
    .dialect = SQL_POSTGRES,
    .caps = SQL_CAP_ROW_LOCKS | SQL_CAP_SHARED,
    .open = pg_open,
    .close = pg_close,
    .prepare = pg_prepare,
    .bind = pg_bind,
    .step = pg_step,
    .reset = pg_reset,
    .col_int64 = pg_col_int64,
    .col_double = pg_col_double,
    .col_text = pg_col_text,
    .col_null = pg_col_null,
    .col_count = pg_col_count,
    .changes = pg_changes,
    .fail_kind = pg_fail_kind,
    .begin_write = pg_begin_write,
    .begin_read = pg_begin_read,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .in_transaction = pg_in_transaction,
    .recycle = pg_recycle,
    .exec = pg_exec,
    .migrate_begin = pg_migrate_begin,
    .version_get = pg_version_get,
    .version_set = pg_version_set,
    .listen = pg_listen,
    .listen_fd = pg_listen_fd,
    .listen_read = pg_listen_read,
};
