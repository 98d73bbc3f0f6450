/*
 * server: the HTTP server (libmicrohttpd). Starts the daemon, dispatches every
 * request through the route table (route.c) and stops cleanly. Handlers use
 * http.h; main.c uses only this header.
 */
#ifndef SHOEBOX_HTTP_SERVER_H
#define SHOEBOX_HTTP_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/err.h"

struct store;
struct blob_store;
struct jobs;
struct tus;

struct http_opts {
    const char *listen;        /* "127.0.0.1:8080", also "[::1]:8080" */
    int threads;               /* MHD thread pool size */
    int64_t session_age;       /* seconds, sliding */
    bool secure_cookies;
    const char *assets_dir;    /* "" = embedded assets, else serve web/ from disk */
    const char *data_dir;
    int64_t max_file_size, batch_size;
    /* "" or NULL: media stream through this node. Else the public base of the blob
     * store's objects, no trailing '/' (main adds an s3:// store's prefix): thumbnails
     * and previews answer 302 to media_url/KEY; originals 302 to a presigned URL where
     * the blob store has presign_get, else stream. */
    const char *media_url;
};

struct http_deps {
    struct store *store;
    struct blob_store *blob;
    struct jobs *jobs;  /* jobs may be NULL */
    struct tus *tus;    /* tus uploads (intake/tus.h); NULL: /photos/tus/ answers 503 */
};

struct http_server;

/* Starts listening; returns once the socket is bound (so "listening" can be logged).
 * The strings of o are copied; d's objects must outlive the server.
 * *out is freed by http_server_stop(). Errors: bad listen address, bind failure. */
int http_server_start(const struct http_opts *o, const struct http_deps *d,
                      struct http_server **out, struct err *err);
/* Stops accepting, lets in-flight requests finish (resume any suspended connection
 * first), frees. NULL is a no-op. Call from the thread that started it. */
void http_server_stop(struct http_server *s);
/* Actual bound port (useful with port 0). */
int http_server_port(const struct http_server *s);

/* "host:port" or "[v6]:port" (host may be empty: every address) into *ss and
 * *sslen. Errors: no port, a name that does not resolve. */
int http_parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *sslen,
                      struct err *err);

#endif
