/*
 * metrics_http: GET /metrics (Prometheus text format) on a listener of its
 * own, a second libmicrohttpd daemon apart from the public port: no login,
 * no CSRF, no session; bind it to an address only the monitoring network
 * reaches. Also the counts of the public server's requests by route and
 * status, with their latency, which server.c feeds (metrics_http_request).
 *
 * A scrape writes base/metrics.h's page (everything counted in this process
 * and its worker processes), the request families, and the queue depth read
 * from the store at that moment.
 *
 * Wiring (serve, and the worker-host command, one call each):
 *     metrics_serve_start(cfg->metrics_listen, st, &msrv, &err);
 *     ...
 *     metrics_serve_stop(msrv);
 */
#ifndef SHOEBOX_HTTP_METRICS_HTTP_H
#define SHOEBOX_HTTP_METRICS_HTTP_H

#include "base/buf.h"
#include "base/err.h"
#include "http/route.h"

struct store;
struct metrics_server;

/* Rows of the route table counted apart, with room to grow (a unit test checks
 * the table fits); the last slot counts requests no row matched. */
#define METRICS_HTTP_ROUTE_SLOTS 64

/* Listens on listen ("host:port", "[v6]:port"; port 0 picks one) and answers
 * GET /metrics until stopped. st (may be NULL: no queue depth) must outlive
 * the server. *out is freed by metrics_serve_stop(). Errors: a bad address,
 * the port in use. */
int metrics_serve_start(const char *listen, struct store *st, struct metrics_server **out,
                        struct err *err);
/* The bound port. */
int metrics_serve_port(const struct metrics_server *s);
/* Stops listening, ends open scrapes, frees. NULL is a no-op. */
void metrics_serve_stop(struct metrics_server *s);

/* One request of the public server answered (status 0: none was sent) after
 * seconds; r is its row of the route table (route_table()), NULL when no row
 * matched. Any thread; atomic adds only. */
void metrics_http_request(const struct route *r, int status, double seconds);
/* The whole scrape onto b (what GET /metrics answers). */
void metrics_http_render(struct store *st, struct buf *b);

#endif
