/*
 * request: the insides of struct http_req and struct http_server, shared by
 * server.c (the MHD glue) and http.c (the handler API). Handlers include
 * http.h only and never touch these fields.
 */
#ifndef SHOEBOX_HTTP_REQUEST_H
#define SHOEBOX_HTTP_REQUEST_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "http/csrf.h"
#include "http/form.h"
#include "http/guard.h"
#include "http/http.h"
#include "http/route.h"
#include "http/session.h"

struct http_server {
    struct MHD_Daemon *daemon;
    struct http_opts opts;       /* strings below are owned copies */
    char *listen, *assets_dir, *data_dir, *media_url;
    char *csp;                   /* Content-Security-Policy (http_csp) */
    struct http_deps deps;
    int port;
    atomic_int active;           /* requests between first callback and completion */
    pthread_mutex_t lock;        /* guards stopping, parked and every req's park fields */
    bool stopping;
    struct http_req *parked;     /* suspended requests (doubly linked) */
    struct guard *guard;         /* deadlines and the waiting cap (guard.h) */
    unsigned conn_limit;         /* MHD's connection limit, from the descriptor limit */
    int anon_cap;                /* requests without a session at once (the reserve) */
    atomic_int anon;             /* such requests now */
};

/* The Content-Security-Policy of every response: images from 'self', data:, blob: and,
 * when media_url is set, its origin (scheme://host[:port]). Free it. */
char *http_csp(const char *media_url);

struct http_header {
    struct http_header *next;
    char *name, *value;
};

enum req_state { REQ_START, REQ_FORM, REQ_STREAM, REQ_PLAIN, REQ_DONE };

/* How the response sets the sessionid cookie. */
enum req_cookie { COOKIE_REFRESH, COOKIE_SET, COOKIE_CLEAR };

struct http_req {
    struct http_server *srv;
    struct MHD_Connection *conn;
    struct guard_conn *gconn;    /* the connection's guard entry (may be NULL) */
    bool anon_counted;           /* counted in srv->anon */
    char method[16];
    unsigned method_bit;
    char addr[64];               /* client address text */
    char *path;
    struct route_match match;
    enum req_state state;
    bool gated;                  /* gate() has run */
    int64_t start_us;            /* monotonic, for dur_ms */

    struct buf body;             /* BODY_FORM bytes */
    bool body_too_large;
    struct form form;

    struct session_info session;
    bool session_unknown;        /* a session cookie the store could not read: 503, not 401 */
    struct http_user user;       /* name points into session.user_name */
    char session_token[SESSION_TOKEN_LEN + 1];  /* presented and valid, else "" */
    enum req_cookie cookie;
    char new_token[SESSION_TOKEN_LEN + 1];      /* COOKIE_SET */
    char csrf_set[CSRF_TOKEN_LEN + 1];          /* new csrftoken cookie, "" none */

    struct http_header *headers; /* extra response headers, in order added */
    bool has_cache_control;
    bool responded;
    int status;
    int64_t bytes;

    void *ctx;
    http_cleanup_fn cleanup;

    http_reader_fn reader;       /* http_send_stream */
    void *reader_ctx;

    /* Under srv->lock: */
    bool parked_, wake_pending_;
    struct http_req *park_prev_, *park_next_;
};

/* Take req off srv->parked and resume its connection; caller holds srv->lock. */
void req_unpark_locked(struct http_req *req);

/* Queue resp with the common headers (security, cookies, extra), record
 * status and bytes, destroy resp. For http.c and server.c. */
int req_queue(struct http_req *req, int status, struct MHD_Response *resp, int64_t bytes);

#endif
