/*
 * metrics_http: the /metrics listener and the public server's request counts.
 * See metrics_http.h.
 *
 * DESIGN
 *   Counting: a fixed matrix of atomics, [route row][status], and a latency
 *   histogram per route row (base/metrics.h), all in static storage: a
 *   request costs three relaxed atomic adds and no lock, whatever the thread.
 *   Rows past ROUTE_SLOTS - 1 (none today: a unit test checks the table) and
 *   requests no row matched share the last slot, labelled
 *   route="unmatched".
 *   The listener: MHD with one internal thread (scrapes come every few
 *   seconds from one or two Prometheus servers), a small connection cap and
 *   timeout; each scrape renders into a fresh buffer handed to MHD, so
 *   scrapes share nothing but the atomics they read. The store is read on
 *   that thread (one query, three counts).
 */
#include "http/metrics_http.h"

#include <microhttpd.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/log.h"
#include "base/metrics.h"
#include "base/xalloc.h"
#include "http/server.h"
#include "store/store.h"

#define ROUTE_SLOTS METRICS_HTTP_ROUTE_SLOTS
/* Status codes 0 (no answer was sent) to 599, each its own counter. */
#define STATUS_SLOTS 600
/* Open connections of the listener: a few Prometheus servers and a person with curl. */
#define METRICS_CONNECTIONS 16
/* Seconds an idle connection of the listener is kept. */
#define METRICS_TIMEOUT_S 30

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

static _Atomic uint64_t requests[ROUTE_SLOTS][STATUS_SLOTS];
static struct metrics_hist latency[ROUTE_SLOTS];

struct metrics_server {
    struct MHD_Daemon *daemon;
    struct store *store;
    int port;
};

/* ---- counting ---- */

static size_t slot_of(const struct route *r)
{
    size_t n;
    const struct route *table = route_table(&n);

    if (!r || r < table || r >= table + n || (size_t)(r - table) >= ROUTE_SLOTS - 1)
        return ROUTE_SLOTS - 1;
    return (size_t)(r - table);
}

void metrics_http_request(const struct route *r, int status, double seconds)
{
    size_t slot = slot_of(r);

    if (status < 0 || status >= STATUS_SLOTS)
        status = 0;
    atomic_fetch_add_explicit(&requests[slot][status], 1, memory_order_relaxed);
    metrics_hist_observe(&latency[slot], seconds);
}

/* ---- rendering ---- */

/* The method and route labels of a slot. */
static void slot_labels(size_t slot, char *method, size_t n, const char **route)
{
    size_t count;
    const struct route *table = route_table(&count);

    if (slot >= count || slot == ROUTE_SLOTS - 1) {
        snprintf(method, n, "other");
        *route = "unmatched";
        return;
    }
    route_allow_header(table[slot].methods, method, n); /* "GET, HEAD": the first */
    method[strcspn(method, ",")] = '\0';
    *route = table[slot].pattern;
}

static bool slot_used(size_t slot)
{
    for (size_t i = 0; i <= METRICS_BUCKETS; i++)
        if (atomic_load_explicit(&latency[slot].bucket[i], memory_order_relaxed))
            return true;
    return false;
}

static void render_requests(struct buf *b)
{
    char method[32], code[8];
    const char *route;

    metrics_family(b, "shoebox_http_requests_total", "counter",
                   "requests answered by the public server, by route and status (code 0: none)");
    for (size_t slot = 0; slot < ROUTE_SLOTS; slot++) {
        slot_labels(slot, method, sizeof(method), &route);
        for (int st = 0; st < STATUS_SLOTS; st++) {
            uint64_t v = atomic_load_explicit(&requests[slot][st], memory_order_relaxed);
            if (!v)
                continue;
            snprintf(code, sizeof(code), "%d", st);
            struct metrics_label l[] = {{"method", method}, {"route", route}, {"code", code}};
            metrics_sample(b, "shoebox_http_requests_total", l, 3, (double)v);
        }
    }
    metrics_family(b, "shoebox_http_request_duration_seconds", "histogram",
                   "time from a request's first byte to its completion, by route");
    for (size_t slot = 0; slot < ROUTE_SLOTS; slot++) {
        if (!slot_used(slot))
            continue;
        slot_labels(slot, method, sizeof(method), &route);
        struct metrics_label l[] = {{"method", method}, {"route", route}};
        metrics_hist_write(b, "shoebox_http_request_duration_seconds", l, 2, &latency[slot]);
    }
}

/* Read now: a shared store's queue is every node's, so every node reports the same. */
static void render_queue(struct store *st, struct buf *b)
{
    struct store_queue q;
    struct err err = {0};

    if (!st || !st->ops->queue_depth)
        return;
    if (st->ops->queue_depth(st, &q, &err)) {
        log_warn("http", "metrics.queue_failed", "msg=%s", LOG_Q(err.msg));
        return;
    }
    metrics_family(b, "shoebox_queue_files", "gauge",
                   "files waiting or in work now, in the whole store (every node)");
    metrics_sample(b, "shoebox_queue_files", &(struct metrics_label){"state", "received"}, 1,
                   (double)q.received);
    metrics_sample(b, "shoebox_queue_files", &(struct metrics_label){"state", "queued"}, 1,
                   (double)q.queued);
    metrics_sample(b, "shoebox_queue_files", &(struct metrics_label){"state", "processing"}, 1,
                   (double)q.processing);
}

void metrics_http_render(struct store *st, struct buf *b)
{
    metrics_render(b);
    render_requests(b);
    render_queue(st, b);
}

/* ---- the listener ---- */

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status, const char *ctype,
                              char *body, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result rc;

    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result answer_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    return answer(conn, status, "text/plain; charset=utf-8", xstrdup(text), strlen(text));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    static char seen; /* marks a request whose head has arrived */
    struct metrics_server *s = cls;
    struct buf b = BUF_INIT;
    size_t len;
    char *body;

    (void)version, (void)upload_data;
    if (!*con_cls) {
        *con_cls = &seen;
        return MHD_YES;
    }
    if (*upload_data_size) { /* a body is read and ignored */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return answer_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    if (strcmp(url, "/metrics"))
        return answer_text(conn, MHD_HTTP_NOT_FOUND, "not found: the metrics are at /metrics\n");
    buf_init(&b);
    metrics_http_render(s->store, &b);
    body = buf_detach(&b, &len);
    return answer(conn, MHD_HTTP_OK, CONTENT_TYPE, body, len);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_warn("http", "metrics.mhd", "msg=%s", LOG_Q(msg));
}

int metrics_serve_start(const char *listen, struct store *st, struct metrics_server **out,
                        struct err *err)
{
    struct metrics_server *s;
    struct sockaddr_storage ss;
    socklen_t sslen;
    const union MHD_DaemonInfo *info;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;

    *out = NULL;
    if (http_parse_listen(listen, &ss, &sslen, err) < 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s = xcalloc(1, sizeof(*s));
    s->store = st;
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)METRICS_TIMEOUT_S, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_END);
    if (!s->daemon) {
        free(s);
        return err_set(err, ERR_PERMANENT, "listen",
                       "cannot listen for metrics on '%s' (address in use?)", listen);
    }
    info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    *out = s;
    return 0;
}

int metrics_serve_port(const struct metrics_server *s)
{
    return s->port;
}

void metrics_serve_stop(struct metrics_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->daemon);
    free(s);
}
