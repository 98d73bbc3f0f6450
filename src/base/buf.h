/*
 * buf: a growable byte buffer, always NUL-terminated (git strbuf).
 * Invariant: b->data[b->len] == '\0' once initialised; b->data is never NULL
 * after buf_init. Release with buf_release(); buf_detach() hands the string over.
 */
#ifndef SHOEBOX_BASE_BUF_H
#define SHOEBOX_BASE_BUF_H

#include <stddef.h>

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

#define BUF_INIT {NULL, 0, 0}

void buf_init(struct buf *b);
void buf_release(struct buf *b);
void buf_reset(struct buf *b);
void buf_grow(struct buf *b, size_t extra);
void buf_add(struct buf *b, const void *data, size_t len);
void buf_adds(struct buf *b, const char *s);
void buf_addc(struct buf *b, char c);
void buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Returns the string (caller frees) and leaves b empty but initialised. */
char *buf_detach(struct buf *b, size_t *len);

#endif
