/* fake_store: see fake_store.h. A mutex guards everything (MHD threads call in). */
#include "fake_store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/secret.h"
#include "base/xalloc.h"

#define FAKE_MAX 64

struct fake_session {
    char digest[65];
    int64_t user_id, expires_at;
};

struct fake {
    struct store base;
    pthread_mutex_t lock;
    struct store_user users[FAKE_MAX];
    int nusers;
    struct fake_session sessions[FAKE_MAX];
    int nsessions, touches, broken;
};

static struct fake *F(struct store *st) { return (struct fake *)st; }

static int f_schema(struct store *st, int64_t *v, struct err *err)
{
    if (F(st)->broken == 1)
        return err_set(err, ERR_TRANSIENT, "store", "database is broken");
    *v = 1;
    return 0;
}

/* broken 2: reads work, commits fail (a full disk). */
static int f_health(struct store *st, int64_t now, struct err *err)
{
    (void)now;
    if (F(st)->broken)
        return err_set(err, ERR_TRANSIENT, "store", "cannot commit: database or disk is full");
    return 0;
}

static int f_user_find(struct store *st, const char *name, struct store_user *out,
                       struct err *err)
{
    struct fake *f = F(st);
    int rc = STORE_NOT_FOUND;

    pthread_mutex_lock(&f->lock);
    for (int i = 0; i < f->nusers; i++)
        if (strcmp(f->users[i].name, name) == 0) {
            *out = f->users[i];
            rc = 0;
        }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

static struct fake_session *find_session(struct fake *f, const char *digest)
{
    for (int i = 0; i < f->nsessions; i++)
        if (strcmp(f->sessions[i].digest, digest) == 0)
            return &f->sessions[i];
    return NULL;
}

static int f_session_create(struct store *st, const char *digest, int64_t user_id, int64_t now,
                            int64_t expires_at, struct err *err)
{
    struct fake *f = F(st);
    int rc = 0;

    pthread_mutex_lock(&f->lock);
    if (f->nsessions == FAKE_MAX) {
        rc = err_set(err, ERR_PERMANENT, "store", "too many sessions");
    } else {
        struct fake_session *s = &f->sessions[f->nsessions++];
        snprintf(s->digest, sizeof(s->digest), "%s", digest);
        s->user_id = user_id;
        s->expires_at = expires_at;
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

static int f_session_get(struct store *st, const char *digest, int64_t now,
                         struct store_session *out, struct err *err)
{
    struct fake *f = F(st);
    struct fake_session *s;
    int rc = STORE_NOT_FOUND;

    pthread_mutex_lock(&f->lock);
    s = find_session(f, digest);
    if (s && s->expires_at > now) {
        memset(out, 0, sizeof(*out));
        out->user_id = s->user_id;
        out->expires_at = s->expires_at;
        for (int i = 0; i < f->nusers; i++)
            if (f->users[i].id == s->user_id)
                snprintf(out->user_name, sizeof(out->user_name), "%s", f->users[i].name);
        rc = 0;
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

static int f_session_touch(struct store *st, const char *digest, int64_t expires_at,
                           struct err *err)
{
    struct fake *f = F(st);
    struct fake_session *s;

    pthread_mutex_lock(&f->lock);
    s = find_session(f, digest);
    if (s)
        s->expires_at = expires_at;
    f->touches++;
    pthread_mutex_unlock(&f->lock);
    return s ? 0 : STORE_NOT_FOUND;
}

static int f_session_delete(struct store *st, const char *digest, struct err *err)
{
    struct fake *f = F(st);
    struct fake_session *s;

    pthread_mutex_lock(&f->lock);
    s = find_session(f, digest);
    if (s)
        *s = f->sessions[--f->nsessions];
    pthread_mutex_unlock(&f->lock);
    return s ? 0 : STORE_NOT_FOUND;
}

/* The fake library is empty. */
static int f_photo_page(struct store *st, struct store_page *pg, store_photo_cb cb, void *ctx,
                        struct err *err)
{
    (void)st, (void)cb, (void)ctx, (void)err;
    pg->total = pg->n = 0;
    pg->newer = pg->older = false;
    return 0;
}

static void f_close(struct store *st)
{
    pthread_mutex_destroy(&F(st)->lock);
    free(st);
}

static const struct store_ops fake_ops = {
    .close = f_close,
    .schema_version = f_schema,
    .user_find = f_user_find,
    .session_create = f_session_create,
    .session_get = f_session_get,
    .session_touch = f_session_touch,
    .session_delete = f_session_delete,
    .photo_page = f_photo_page,
    .health_check = f_health,
};

struct store *fake_store_new(void)
{
    struct fake *f = xcalloc(1, sizeof(*f));

    f->base.ops = &fake_ops;
    pthread_mutex_init(&f->lock, NULL);
    return &f->base;
}

void fake_store_free(struct store *st)
{
    if (st)
        st->ops->close(st);
}

int64_t fake_store_add_user(struct store *st, const char *name, const char *password)
{
    struct fake *f = F(st);
    struct store_user *u = &f->users[f->nusers++];

    u->id = f->nusers;
    snprintf(u->name, sizeof(u->name), "%s", name);
    if (secret_hash_password(password, u->pw_hash, NULL) < 0)
        abort();
    return u->id;
}

int fake_store_touches(struct store *st) { return F(st)->touches; }
int fake_store_sessions(struct store *st) { return F(st)->nsessions; }
void fake_store_break(struct store *st, int broken) { F(st)->broken = broken; }

void fake_store_shift_sessions(struct store *st, int64_t delta)
{
    struct fake *f = F(st);

    pthread_mutex_lock(&f->lock);
    for (int i = 0; i < f->nsessions; i++)
        f->sessions[i].expires_at += delta;
    pthread_mutex_unlock(&f->lock);
}
