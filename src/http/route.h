/*
 * route: the one table of routes (route.c) and the matcher. Patterns are
 * literal paths with "{id}" segments (1-18 decimal digits, read as int64) and
 * an optional trailing "*" (any rest, including "/"). See http.h for flags.
 */
#ifndef SHOEBOX_HTTP_ROUTE_H
#define SHOEBOX_HTTP_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "http/http.h"

#define ROUTE_MAX_IDS 4

enum route_flags {
    ROUTE_LOGIN_PAGE = 1 << 0,       /* not logged in: 302 to /login?next=<path> */
    ROUTE_LOGIN_JSON = 1 << 1,       /* not logged in: 401 {"error": ...} */
    ROUTE_CSRF_BY_HANDLER = 1 << 2,  /* the handler checks CSRF (http_csrf_ok) */
    ROUTE_BODY_FORM = 1 << 3,        /* urlencoded body, up to LIMIT_FORM_BYTES */
    ROUTE_BODY_STREAM = 1 << 4,      /* body to route_body callbacks */
};

typedef void (*route_handler)(struct http_req *req);

/* Streaming body callbacks; see http.h "STREAMING BODIES". */
struct route_body {
    int (*begin)(struct http_req *req);
    void (*chunk)(struct http_req *req, const char *data, size_t len);
    void (*end)(struct http_req *req);
};

struct route {
    unsigned methods;          /* enum http_method bits; GET implies HEAD */
    const char *pattern;
    unsigned flags;            /* enum route_flags */
    route_handler handler;     /* plain and BODY_FORM routes */
    const struct route_body *body;  /* BODY_STREAM routes */
};

struct route_match {
    const struct route *route;
    int64_t ids[ROUTE_MAX_IDS];
    size_t nids;
    const char *rest;          /* points into the matched path; "" if none */
    unsigned allow;            /* methods the path accepts (for 405) */
};

enum route_result { ROUTE_FOUND = 0, ROUTE_BAD_METHOD, ROUTE_NOT_FOUND };

/* Match method/path against table[0..n). ROUTE_BAD_METHOD: m->allow lists the
 * methods of the path. m->rest points into path. */
enum route_result route_find_in(const struct route *table, size_t n, unsigned method,
                                const char *path, struct route_match *m);
/* The same against the server's table. */
enum route_result route_find(unsigned method, const char *path, struct route_match *m);
/* The server's table, rows in order, and their count in *n (metrics label by row). */
const struct route *route_table(size_t *n);
/* enum http_method bit for a method name; 0 for an unknown method. */
unsigned route_method_bit(const char *method);
/* "GET, HEAD, POST" for an allow set, into out. */
void route_allow_header(unsigned allow, char *out, size_t n);

#endif
