/*
 * Fuzz target for the urlencoded form parser (src/http/form.c) and the checks
 * our cookies' values go through (session and CSRF tokens, src/http/session.c
 * and csrf.c; the Cookie header itself is split by libmicrohttpd).
 *
 * The input is a form body. Promises checked: form_parse refuses (-1) a body
 * with a NUL byte in a pair and accepts one with neither a NUL nor "%00";
 * every parsed name is found by form_get; decoding never lengthens a string;
 * there are no more fields than '&'-separated pieces. The input is also taken
 * as a cookie value, cut in two at its first ';': a token is valid only when it
 * is 64 lower-case hex digits, and csrf_check(a, b) is valid(a) && a == b.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/csrf.h"
#include "http/form.h"
#include "http/session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t pieces(const char *s, size_t len)
{
    size_t n = 1;

    for (size_t i = 0; i < len; i++)
        n += s[i] == '&';
    return n;
}

static void check_form(const char *s, size_t len)
{
    struct form f = FORM_INIT;
    int rc = form_parse(&f, s, len);
    bool has_nul = memchr(s, '\0', len) != NULL;

    if (rc != 0 && rc != -1)
        abort();
    if (rc == 0 && has_nul)
        abort(); /* a raw NUL inside a pair is refused */
    if (rc != 0 && !has_nul && !memmem(s, len, "%00", 3))
        abort(); /* nothing to refuse */
    if (f.n > pieces(s, len))
        abort();
    for (size_t i = 0; i < f.n; i++) {
        const char *v = form_get(&f, f.fields[i].name);
        if (!v)
            abort();
        (void)strlen(f.fields[i].value);
    }
    form_release(&f);
    if (f.n || f.fields)
        abort();
}

static void check_decode(const char *s)
{
    size_t before = strlen(s);
    char *copy = strdup(s);

    if (!copy)
        abort();
    if (form_decode(copy) > before || strlen(copy) > before)
        abort();
    free(copy);
}

static bool hex64(const char *t)
{
    size_t n = strlen(t);

    return n == 64 && strspn(t, "0123456789abcdef") == n;
}

static void check_tokens(const char *s)
{
    char *a = strdup(s), *b;

    if (!a)
        abort();
    b = strchr(a, ';');
    if (b)
        *b++ = '\0';
    if (session_token_valid(a) != hex64(a) || csrf_token_valid(a) != hex64(a))
        abort();
    if (b && csrf_check(a, b) != (hex64(a) && strcmp(a, b) == 0))
        abort();
    if (csrf_check(a, NULL) || csrf_check(NULL, a))
        abort();
    free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    check_form(s, size);
    check_decode(s);
    check_tokens(s);
    free(s);
    return 0;
}
