/*
 * csrf: Django-compatible CSRF tokens. The token lives in the csrftoken cookie
 * (readable by JS); a state-changing request repeats it in the form field
 * csrfmiddlewaretoken or the X-CSRFToken header (double submit). Tokens are 64
 * hex characters; comparison is constant time.
 */
#ifndef SHOEBOX_HTTP_CSRF_H
#define SHOEBOX_HTTP_CSRF_H

#include <stdbool.h>
#include <stddef.h>

#define CSRF_COOKIE "csrftoken"
#define CSRF_FIELD "csrfmiddlewaretoken"
#define CSRF_HEADER "X-CSRFToken"
#define CSRF_TOKEN_LEN 64
#define CSRF_COOKIE_AGE (365LL * 24 * 3600)
#define CSRF_FAILED_MSG "CSRF token missing or incorrect"

/* 64 hex digits? */
bool csrf_token_valid(const char *t);
/* cookie well formed and submitted equal to it (constant time). NULLs are false. */
bool csrf_check(const char *cookie, const char *submitted);
/* A fresh token. */
void csrf_new(char out[CSRF_TOKEN_LEN + 1]);
/* Set-Cookie value for token: SameSite=Lax, Path=/, one year, not HttpOnly. */
void csrf_cookie(char *out, size_t n, const char *token, bool secure);

#endif
