/* csrf: see csrf.h. */
#include "http/csrf.h"

#include <stdio.h>
#include <string.h>

#include "base/secret.h"
#include "base/str.h"

bool csrf_token_valid(const char *t)
{
    size_t i;

    if (!t)
        return false;
    for (i = 0; t[i]; i++)
        if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f')))
            return false;
    return i == CSRF_TOKEN_LEN;
}

bool csrf_check(const char *cookie, const char *submitted)
{
    if (!csrf_token_valid(cookie) || !submitted)
        return false;
    return str_equal_ct(cookie, submitted);
}

void csrf_new(char out[CSRF_TOKEN_LEN + 1])
{
    secret_token(out);
}

void csrf_cookie(char *out, size_t n, const char *token, bool secure)
{
    snprintf(out, n, "%s=%s; Max-Age=%lld; Path=/; SameSite=Lax%s", CSRF_COOKIE, token,
             (long long)CSRF_COOKIE_AGE, secure ? "; Secure" : "");
}
