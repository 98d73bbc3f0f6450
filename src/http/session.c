/*
 * session: see session.h.
 *
 * DESIGN (the session cache)
 * Every request of a logged-in user needs its session row; reading it is a
 * database read transaction (SQLite) or a round trip (PostgreSQL) per request,
 * the largest cost of a progress poll. So a row read from the store is kept in
 * a small direct-mapped table (SESSION_CACHE_SLOTS, slot chosen by the digest)
 * and reused for at most SESSION_CACHE_MS. Rules:
 * - a logout (session_delete) or a change of the current upload
 *   (session_set_upload) on this process updates the table at once;
 * - a change made elsewhere (another node, `shoebox user passwd` ending the
 *   user's sessions) takes effect within SESSION_CACHE_MS;
 * - an entry is never used past its expires_at, nor for another store.
 * Race: a reader that read the row before a logout and stores it after would
 * bring the session back. Every change bumps cache.changes; a reader stores
 * its row only when no change happened while it read.
 * Threads: MHD threads. Lock: cache.mu guards the table and `changes`; it is
 * never held across a store call.
 */
#include "http/session.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "base/str.h"

struct slot {
    const struct store *st;             /* NULL: empty */
    char digest[SESSION_TOKEN_LEN + 1];
    struct store_session s;
    int64_t read_ms;                    /* now_ms when the row was read */
};

static struct {
    pthread_mutex_t mu;
    struct slot slots[SESSION_CACHE_SLOTS];  /* mu */
    uint64_t changes;                        /* mu */
} cache = {.mu = PTHREAD_MUTEX_INITIALIZER};

static size_t slot_of(const char *digest)
{
    size_t h = 0;

    /* The digest is a hash in hex: its first digits are already uniform. */
    for (int i = 0; i < 8 && digest[i]; i++)
        h = h * 16 + (size_t)(digest[i] <= '9' ? digest[i] - '0' : digest[i] - 'a' + 10);
    return h % SESSION_CACHE_SLOTS;
}

/* A usable cached row for digest into *out (true), else false; *changes gets
 * the change count a reader must see unchanged to store what it reads. */
static bool cache_get(const struct store *st, const char *digest, int64_t now,
                      struct store_session *out, uint64_t *changes)
{
    struct slot *sl = &cache.slots[slot_of(digest)];
    bool hit;

    pthread_mutex_lock(&cache.mu);
    hit = sl->st == st && strcmp(sl->digest, digest) == 0 && now >= sl->read_ms &&
          now - sl->read_ms < SESSION_CACHE_MS && sl->s.expires_at > now;
    if (hit)
        *out = sl->s;
    *changes = cache.changes;
    pthread_mutex_unlock(&cache.mu);
    return hit;
}

static void cache_put(const struct store *st, const char *digest, const struct store_session *s,
                      int64_t now, uint64_t changes)
{
    struct slot *sl = &cache.slots[slot_of(digest)];

    pthread_mutex_lock(&cache.mu);
    if (cache.changes == changes) {
        sl->st = st;
        snprintf(sl->digest, sizeof(sl->digest), "%s", digest);
        sl->s = *s;
        sl->read_ms = now;
    }
    pthread_mutex_unlock(&cache.mu);
}

/* Forget digest's entry (gone: true) or set its current upload. */
static void cache_change(const char *digest, bool gone, int64_t upload_id)
{
    struct slot *sl = &cache.slots[slot_of(digest)];

    pthread_mutex_lock(&cache.mu);
    cache.changes++;
    if (sl->st && strcmp(sl->digest, digest) == 0) {
        if (gone)
            sl->st = NULL;
        else
            sl->s.current_upload = upload_id;
    }
    pthread_mutex_unlock(&cache.mu);
}

/* The touched expiry, so the next hits do not touch again. */
static void cache_touched(const char *digest, int64_t expires_at)
{
    struct slot *sl = &cache.slots[slot_of(digest)];

    pthread_mutex_lock(&cache.mu);
    if (sl->st && strcmp(sl->digest, digest) == 0 && sl->s.expires_at < expires_at)
        sl->s.expires_at = expires_at;
    pthread_mutex_unlock(&cache.mu);
}

void session_cache_clear(void)
{
    pthread_mutex_lock(&cache.mu);
    cache.changes++;
    for (size_t i = 0; i < SESSION_CACHE_SLOTS; i++)
        cache.slots[i].st = NULL;
    pthread_mutex_unlock(&cache.mu);
}

bool session_token_valid(const char *token)
{
    size_t i;

    if (!token)
        return false;
    for (i = 0; token[i]; i++)
        if (!((token[i] >= '0' && token[i] <= '9') || (token[i] >= 'a' && token[i] <= 'f')))
            return false;
    return i == SESSION_TOKEN_LEN;
}

/* The session row of digest, from the cache or the store (then cached). */
static int session_read(struct store *st, const char *digest, int64_t now_ms,
                        struct store_session *s, struct err *err)
{
    uint64_t changes;
    int rc;

    if (cache_get(st, digest, now_ms, s, &changes))
        return 0;
    rc = st->ops->session_get(st, digest, now_ms, s, err);
    if (rc == 0)
        cache_put(st, digest, s, now_ms, changes);
    return rc;
}

int session_load(struct store *st, const char *token, int64_t now_ms, int64_t age_s,
                 struct session_info *out, struct err *err)
{
    struct store_session s;
    int64_t age_ms = age_s * 1000, expires = now_ms + age_ms;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!session_token_valid(token))
        return 0;
    secret_digest(token, out->digest);
    rc = session_read(st, out->digest, now_ms, &s, err);
    if (rc == STORE_NOT_FOUND)
        return 0;
    if (rc < 0)
        return -1;
    /* The row was last touched at expires_at - age: skip the write when that was
     * recent, so a page with many requests costs one update. Short ages (tests)
     * touch after a quarter of the age so activity always keeps them alive. */
    int64_t every = age_ms / 4 < SESSION_TOUCH_MS ? age_ms / 4 : SESSION_TOUCH_MS;
    if (expires - s.expires_at >= every) {
        if (st->ops->session_touch(st, out->digest, expires, err) < 0)
            return -1;
        s.expires_at = expires;
        cache_touched(out->digest, expires);
    }
    out->valid = true;
    out->user_id = s.user_id;
    snprintf(out->user_name, sizeof(out->user_name), "%s", s.user_name);
    out->current_upload = s.current_upload;
    out->expires_at = s.expires_at;
    return 0;
}

int session_create(struct store *st, int64_t user_id, int64_t now_ms, int64_t age_s,
                   char token[SESSION_TOKEN_LEN + 1], struct err *err)
{
    char digest[SESSION_TOKEN_LEN + 1];

    secret_token(token);
    secret_digest(token, digest);
    return st->ops->session_create(st, digest, user_id, now_ms, now_ms + age_s * 1000, err);
}

int session_delete(struct store *st, const char *token, struct err *err)
{
    char digest[SESSION_TOKEN_LEN + 1];
    int rc;

    if (!session_token_valid(token))
        return 0;
    secret_digest(token, digest);
    /* Forget it before and after: no request of this process may use it once the
     * row is gone, and a reader that raced the delete cannot store it again. */
    cache_change(digest, true, 0);
    rc = st->ops->session_delete(st, digest, err);
    cache_change(digest, true, 0);
    return rc < 0 ? -1 : 0;
}

int session_set_upload(struct store *st, const char *digest, int64_t upload_id,
                       struct err *err)
{
    int rc;

    if (!digest || !digest[0])
        return 0;
    rc = st->ops->session_set_upload(st, digest, upload_id, err);
    cache_change(digest, rc != 0, upload_id);
    return rc < 0 ? -1 : 0;
}

/* Every answer to a logged-in request carries it (the sliding expiry), a
 * progress poll's included: put together without printf. */
void session_cookie(char *out, size_t n, const char *token, int64_t age_s, bool secure)
{
    char digits[STR_INT64_LEN];
    size_t len = 0;

    if (n == 0)
        return;
    out[0] = '\0';
    str_append(out, n, &len, SESSION_COOKIE "=");
    str_append(out, n, &len, token ? token : "");
    str_append(out, n, &len, "; Max-Age=");
    str_append(out, n, &len, str_from_int64(token && age_s > 0 ? age_s : 0, digits));
    str_append(out, n, &len, "; Path=/; HttpOnly; SameSite=Lax");
    str_append(out, n, &len, secure ? "; Secure" : "");
}
