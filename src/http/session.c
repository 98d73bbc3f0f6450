/* session: see session.h. */
#include "http/session.h"

#include <stdio.h>
#include <string.h>

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
    rc = st->ops->session_get(st, out->digest, now_ms, &s, err);
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
    rc = st->ops->session_delete(st, digest, err);
    return rc < 0 ? -1 : 0;
}

void session_cookie(char *out, size_t n, const char *token, int64_t age_s, bool secure)
{
    snprintf(out, n, "%s=%s; Max-Age=%lld; Path=/; HttpOnly; SameSite=Lax%s", SESSION_COOKIE,
             token ? token : "", token ? (long long)age_s : 0LL, secure ? "; Secure" : "");
}
