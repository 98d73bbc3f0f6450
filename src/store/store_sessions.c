/* store_sessions: the session rules of store.h over sql.h (keyed by the digest
 * of the cookie token, never the token itself). */
#include "store/store_internal.h"

#include <string.h>

static int session_create(struct store *st, const char *digest, int64_t user_id, int64_t now,
                          int64_t expires_at, struct err *err)
{
    return sql_write1(POOL(st), MISSING_OK, "create a session", "INSERT INTO sessions (digest, "
                      "user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                      ARGS(VT(digest), VI(user_id), VI(now), VI(expires_at)), err);
}

static void session_row(struct sql_stmt *s, void *p)
{
    struct store_session *out = p;

    memset(out, 0, sizeof(*out));
    out->user_id = sql_col_int64(s, 0);
    sql_col_str(s, 1, out->user_name, sizeof(out->user_name));
    out->expires_at = sql_col_int64(s, 2);
    out->current_upload = sql_col_int64(s, 3);
}

static int session_get(struct store *st, const char *digest, int64_t now,
                       struct store_session *out, struct err *err)
{
    return rules_get_one(st, "read a session",
                         "SELECT s.user_id, u.name, s.expires_at, s.current_upload "
                         "FROM sessions s JOIN users u ON u.id = s.user_id "
                         "WHERE s.digest = ?1 AND s.expires_at > ?2",
                         ARGS(VT(digest), VI(now)), session_row, out, err);
}

static int session_touch(struct store *st, const char *digest, int64_t expires_at,
                         struct err *err)
{
    return sql_write1(POOL(st), MISSING_OK, "extend a session", "UPDATE sessions "
                      "SET expires_at = ?2 WHERE digest = ?1", ARGS(VT(digest), VI(expires_at)),
                      err);
}

static int session_set_upload(struct store *st, const char *digest, int64_t upload_id,
                              struct err *err)
{
    return sql_write1(POOL(st), MISSING_OK, "set the session's upload", "UPDATE sessions "
                      "SET current_upload = ?2 WHERE digest = ?1",
                      ARGS(VT(digest), VI(upload_id)), err);
}

static int session_delete(struct store *st, const char *digest, struct err *err)
{
    return sql_write1(POOL(st), MISSING_OK, "delete a session",
                      "DELETE FROM sessions WHERE digest = ?1", ARGS(VT(digest)), err);
}

static int session_purge(struct store *st, int64_t now, struct err *err)
{
    return sql_write1(POOL(st), MISSING_OK, "remove expired sessions", "DELETE FROM sessions "
                      "WHERE expires_at <= ?1", ARGS(VI(now)), err);
}

void rules_sessions_ops(struct store_ops *o)
{
    o->session_create = session_create;
    o->session_get = session_get;
    o->session_touch = session_touch;
    o->session_set_upload = session_set_upload;
    o->session_delete = session_delete;
    o->session_purge = session_purge;
}
