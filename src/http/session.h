/*
 * session: login sessions kept in the store, keyed by the digest of a random
 * token (the sessionid cookie); the raw token is never stored. Expiry slides:
 * each request of a valid session pushes expires_at to now + age (written at
 * most once per SESSION_TOUCH_MS per session to spare the database).
 * A row read from the store is reused for up to SESSION_CACHE_MS (session.c's
 * DESIGN block): a logout or upload change through this module is seen at once
 * in this process, a change made by another node or process within that bound.
 * Thread-safe (the store is; the cache has its own lock).
 */
#ifndef SHOEBOX_HTTP_SESSION_H
#define SHOEBOX_HTTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/secret.h"
#include "store/store.h"

#define SESSION_COOKIE "sessionid"
#define SESSION_TOKEN_LEN SECRET_TOKEN_HEX
/* Touch the session row only when its expiry would move by more than this
 * (or a quarter of the session age, when that is shorter). */
#define SESSION_TOUCH_MS 5000
/* How long a session row read from the store is reused without reading it
 * again: the bound within which a logout or password change made on another
 * node (or by `shoebox user`) ends the session here. One second keeps that
 * shorter than a person notices and still spares all but one read a second
 * per session to a page that polls many times a second. */
#define SESSION_CACHE_MS 1000
/* Entries in the session cache (direct-mapped; a collision only costs a read).
 * Far more than the sessions active within one SESSION_CACHE_MS on one node. */
#define SESSION_CACHE_SLOTS 1024

struct session_info {
    bool valid;
    int64_t user_id;
    char user_name[STORE_NAME_MAX];
    int64_t current_upload;
    int64_t expires_at;                    /* ms, after a touch */
    char digest[SESSION_TOKEN_LEN + 1];    /* store key */
};

/* 64 lower-case hex digits? */
bool session_token_valid(const char *token);
/* Look token up (NULL or malformed: not valid, no store call). A valid session
 * is touched (sliding expiry). Returns 0 with out->valid telling, or -1 with
 * err on a store failure. age_s: session age in seconds. */
int session_load(struct store *st, const char *token, int64_t now_ms, int64_t age_s,
                 struct session_info *out, struct err *err);
/* New session for user_id: fresh token into token, digest stored. */
int session_create(struct store *st, int64_t user_id, int64_t now_ms, int64_t age_s,
                   char token[SESSION_TOKEN_LEN + 1], struct err *err);
/* Delete the session of token (malformed or unknown: nothing to do); this
 * process stops using it at once. */
int session_delete(struct store *st, const char *token, struct err *err);
/* Make upload_id (0: none) the current upload of the session with digest (the
 * store key, http_session_digest(); "" or NULL: nothing to do), in the store
 * and in this process's cache. Returns 0, or -1 with err. */
int session_set_upload(struct store *st, const char *digest, int64_t upload_id,
                       struct err *err);
/* Empty the session cache (tests; a store closed and another opened). */
void session_cache_clear(void);
/* Set-Cookie value: token with Max-Age age_s; token NULL clears the cookie. */
void session_cookie(char *out, size_t n, const char *token, int64_t age_s, bool secure);

#endif
