/*
 * xalloc: allocation of small, fixed-size objects that aborts on failure
 * (git's xmalloc, redis zmalloc). Sizes that come from input meet a named
 * limit (base/limits.h) before they reach these functions.
 * Everything returned is freed with free().
 */
#ifndef SHOEBOX_BASE_XALLOC_H
#define SHOEBOX_BASE_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a new string; caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
