/* store_users: the users and password rules of store.h over sql.h. */
#include "store/store_internal.h"

#include <string.h>

static void read_user(struct sql_stmt *s, struct store_user *u)
{
    memset(u, 0, sizeof(*u));
    u->id = sql_col_int64(s, 0);
    sql_col_str(s, 1, u->name, sizeof(u->name));
    sql_col_str(s, 2, u->pw_hash, sizeof(u->pw_hash));
    u->created_at = sql_col_int64(s, 3);
}

static void user_row(struct sql_stmt *s, void *out)
{
    read_user(s, out);
}

/* ON CONFLICT DO NOTHING: an existing name is no row, not a failed statement
 * (which would end the whole transaction on PostgreSQL). */
static int user_create(struct store *st, const char *name, const char *pw_hash, int64_t now,
                       int64_t *id, struct err *err)
{
    struct sql_conn *c = NULL;
    int64_t new_id = 0;
    int rc = -1, r;

    if (strlen(name) > LIMIT_USERNAME_BYTES || !*name)
        return err_set(err, ERR_PERMANENT, "store", "user name must be 1 to %d bytes",
                       LIMIT_USERNAME_BYTES);
    if (strlen(pw_hash) >= sizeof(((struct store_user *)0)->pw_hash))
        return err_set(err, ERR_PERMANENT, "store", "password hash of user '%s' is too long", name);
    c = sql_pool_borrow(POOL(st), err);
    if (!c)
        return -1;
    if (sql_begin(c, err))
        goto out;
    r = sql_scalar(c, &new_id, "create user", "INSERT INTO users (name, pw_hash, created_at) "
                   "VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING RETURNING id",
                   ARGS(VT(name), VT(pw_hash), VI(now)), err);
    if (r < 0)
        goto out;
    if (r == 0) {
        err_set(err, ERR_PERMANENT, "store", "user '%s' already exists", name);
        goto out;
    }
    if (sql_commit(c, err))
        goto out;
    if (id)
        *id = new_id;
    rc = 0;
out:
    sql_pool_give_back(POOL(st), c);
    return rc;
}

static int user_find(struct store *st, const char *name, struct store_user *out,
                     struct err *err)
{
    return rules_get_one(st, "find user", "SELECT id, name, pw_hash, created_at FROM users "
                         "WHERE name = ?1", ARGS(VT(name)), user_row, out, err);
}

struct each_user {
    store_user_cb cb;
    void *ctx;
};

static void each_user(struct sql_stmt *s, void *p)
{
    struct each_user *e = p;
    struct store_user u;

    read_user(s, &u);
    e->cb(e->ctx, &u);
}

static int user_list(struct store *st, store_user_cb cb, void *ctx, struct err *err)
{
    struct each_user e = {cb, ctx};

    return sql_list(POOL(st), "list users",
                    "SELECT id, name, pw_hash, created_at FROM users ORDER BY name", NOARGS,
                    each_user, &e, err);
}

static int user_count(struct store *st, int64_t *n, struct err *err)
{
    return sql_pool_scalar(POOL(st), n, "count users", "SELECT count(*) FROM users", NOARGS,
                           err) == 1 ? 0 : -1;
}

static int user_change_password(struct store *st, const char *name, const char *pw_hash,
                                const char *keep_digest, int64_t *ended, struct err *err)
{
    struct sql_conn *c = sql_pool_borrow(POOL(st), err);
    int64_t user_id = 0, n;
    int rc = -1, r;

    if (!c)
        return -1;
    if (sql_begin(c, err))
        goto out;
    r = sql_scalar(c, &user_id, "change the password",
                   "UPDATE users SET pw_hash = ?2 WHERE name = ?1 RETURNING id",
                   ARGS(VT(name), VT(pw_hash)), err);
    if (r <= 0) {
        rc = r == 0 ? STORE_NOT_FOUND : -1;
        goto out;
    }
    n = sql_run(c, "end the user's sessions",
                "DELETE FROM sessions WHERE user_id = ?1 AND digest <> ?2",
                ARGS(VI(user_id), VT(keep_digest ? keep_digest : "")), err);
    if (n < 0 || sql_commit(c, err))
        goto out;
    if (ended)
        *ended = n;
    rc = 0;
out:
    sql_pool_give_back(POOL(st), c);
    return rc;
}

static int user_set_password(struct store *st, const char *name, const char *pw_hash,
                             struct err *err)
{
    return user_change_password(st, name, pw_hash, NULL, NULL, err);
}

void rules_users_ops(struct store_ops *o)
{
    o->user_create = user_create;
    o->user_find = user_find;
    o->user_set_password = user_set_password;
    o->user_list = user_list;
    o->user_count = user_count;
    o->user_change_password = user_change_password;
}
