/* buf: see buf.h. */
#include "base/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"

static char empty[1];

void buf_init(struct buf *b)
{
    b->data = empty;
    b->len = 0;
    b->cap = 0;
}

void buf_release(struct buf *b)
{
    if (b->cap)
        free(b->data);
    buf_init(b);
}

void buf_reset(struct buf *b)
{
    if (!b->data)
        buf_init(b);
    b->len = 0;
    if (b->cap)
        b->data[0] = '\0';
}

void buf_grow(struct buf *b, size_t extra)
{
    size_t need;

    if (!b->data)
        buf_init(b);
    if (__builtin_add_overflow(b->len, extra + 1, &need))
        abort();
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    if (b->cap) {
        b->data = xrealloc(b->data, cap);
    } else {
        char *p = xmalloc(cap);
        memcpy(p, b->data, b->len + 1);
        b->data = p;
    }
    b->cap = cap;
}

void buf_add(struct buf *b, const void *data, size_t len)
{
    buf_grow(b, len);
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void buf_adds(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

void buf_addc(struct buf *b, char c)
{
    buf_add(b, &c, 1);
}

void buf_addf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    buf_grow(b, 64);
    va_start(ap, fmt);
    n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= b->cap - b->len) {
        buf_grow(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

char *buf_detach(struct buf *b, size_t *len)
{
    char *s;

    if (len)
        *len = b->len;
    if (!b->cap) {
        s = xstrndup(b->data ? b->data : "", b->len);
    } else {
        s = b->data;
    }
    buf_init(b);
    return s;
}
