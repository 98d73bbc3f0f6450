/* throttle: see throttle.h. A fixed table searched linearly: LIMIT_LOGIN_TRACKED
 * entries cost microseconds, next to the ~60 ms of the password check. */
#include "http/throttle.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/limits.h"
#include "base/xalloc.h"

/* Longest address text (IPv6 with scope) and key ("a:" or "u:" + address or name). */
#define ADDR_MAX 64
#define KEY_MAX (2 + (ADDR_MAX > LIMIT_USERNAME_BYTES ? ADDR_MAX : LIMIT_USERNAME_BYTES))

struct entry {
    char key[KEY_MAX + 1]; /* "" = free slot */
    int64_t failures;
    int64_t last_ms;                          /* last failure or success */
    int64_t until_ms;                         /* no try before this */
    char known[THROTTLE_KNOWN][ADDR_MAX + 1]; /* names only: addresses that logged in */
};

struct throttle {
    pthread_mutex_t mu; /* guards table */
    struct entry table[LIMIT_LOGIN_TRACKED];
};

struct throttle *throttle_new(void)
{
    struct throttle *t = xcalloc(1, sizeof(*t));

    pthread_mutex_init(&t->mu, NULL);
    return t;
}

void throttle_free(struct throttle *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static void make_key(char *key, char kind, const char *s)
{
    snprintf(key, KEY_MAX + 1, "%c:%s", kind, s ? s : "");
}

/* The entry of key, or NULL. Forgets old failures on the way. */
static struct entry *find(struct throttle *t, const char *key, int64_t now)
{
    for (size_t i = 0; i < LIMIT_LOGIN_TRACKED; i++) {
        struct entry *e = &t->table[i];
        if (!e->key[0] || strcmp(e->key, key) != 0)
            continue;
        if (now - e->last_ms > LIMIT_LOGIN_FORGET_MS) {
            e->failures = 0;
            e->until_ms = 0;
        }
        return e;
    }
    return NULL;
}

/* The entry of key, made (in a free slot or the one idle the longest) if absent. */
static struct entry *get(struct throttle *t, const char *key, int64_t now)
{
    struct entry *e = find(t, key, now), *oldest = &t->table[0];

    if (e)
        return e;
    for (size_t i = 0; i < LIMIT_LOGIN_TRACKED && oldest->key[0]; i++)
        if (!t->table[i].key[0] || t->table[i].last_ms < oldest->last_ms)
            oldest = &t->table[i];
    memset(oldest, 0, sizeof(*oldest));
    snprintf(oldest->key, sizeof(oldest->key), "%s", key);
    oldest->last_ms = now;
    return oldest;
}

static bool is_known(const struct entry *name, const char *addr)
{
    for (size_t i = 0; name && i < THROTTLE_KNOWN; i++)
        if (name->known[i][0] && strncmp(name->known[i], addr, ADDR_MAX) == 0)
            return true;
    return false;
}

static int64_t wait_of(const struct entry *e, int64_t now)
{
    return e && e->until_ms > now ? e->until_ms - now : 0;
}

int64_t throttle_wait_ms(struct throttle *t, const char *addr, const char *name, int64_t now_ms)
{
    char akey[KEY_MAX + 1], nkey[KEY_MAX + 1];
    int64_t wa, wn = 0;
    struct entry *n;

    make_key(akey, 'a', addr);
    make_key(nkey, 'u', name);
    pthread_mutex_lock(&t->mu);
    wa = wait_of(find(t, akey, now_ms), now_ms);
    n = find(t, nkey, now_ms);
    if (!is_known(n, addr ? addr : ""))
        wn = wait_of(n, now_ms);
    pthread_mutex_unlock(&t->mu);
    return wa > wn ? wa : wn;
}

/* Count one failure on e; returns the wait it now imposes. */
static int64_t count_failure(struct entry *e, int64_t now)
{
    int64_t over, delay = LIMIT_LOGIN_DELAY_MS;

    e->failures++;
    e->last_ms = now;
    over = e->failures - LIMIT_LOGIN_FREE_FAILURES;
    if (over < 0)
        return 0;
    for (int64_t i = 0; i < over && delay < LIMIT_LOGIN_DELAY_MAX_MS; i++)
        delay *= 2;
    if (delay > LIMIT_LOGIN_DELAY_MAX_MS)
        delay = LIMIT_LOGIN_DELAY_MAX_MS;
    e->until_ms = now + delay;
    return delay;
}

int64_t throttle_failed(struct throttle *t, const char *addr, const char *name, int64_t now_ms)
{
    char akey[KEY_MAX + 1], nkey[KEY_MAX + 1];
    int64_t wa, wn;
    struct entry *n;

    make_key(akey, 'a', addr);
    make_key(nkey, 'u', name);
    pthread_mutex_lock(&t->mu);
    wa = count_failure(get(t, akey, now_ms), now_ms);
    n = get(t, nkey, now_ms);
    wn = count_failure(n, now_ms);
    if (is_known(n, addr ? addr : ""))
        wn = 0;
    pthread_mutex_unlock(&t->mu);
    return wa > wn ? wa : wn;
}

void throttle_succeeded(struct throttle *t, const char *addr, const char *name, int64_t now_ms)
{
    char akey[KEY_MAX + 1], nkey[KEY_MAX + 1];
    struct entry *a, *n;

    make_key(akey, 'a', addr);
    make_key(nkey, 'u', name);
    pthread_mutex_lock(&t->mu);
    a = get(t, akey, now_ms);
    a->failures = 0;
    a->until_ms = 0;
    a->last_ms = now_ms;
    n = get(t, nkey, now_ms);
    n->failures = 0;
    n->until_ms = 0;
    n->last_ms = now_ms;
    if (!is_known(n, addr ? addr : "")) {
        /* newest first; the oldest known address drops off the end */
        memmove(n->known[1], n->known[0], sizeof(n->known[0]) * (THROTTLE_KNOWN - 1));
        snprintf(n->known[0], sizeof(n->known[0]), "%s", addr ? addr : "");
    }
    pthread_mutex_unlock(&t->mu);
}
