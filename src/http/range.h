/*
 * range: the Range request header (RFC 9110 14.2), single byte ranges only.
 * Several ranges are answered with the whole file (allowed by the RFC).
 */
#ifndef SHOEBOX_HTTP_RANGE_H
#define SHOEBOX_HTTP_RANGE_H

#include <stdint.h>

enum range_result {
    RANGE_NONE = 0,         /* absent, malformed or multiple: send everything (200) */
    RANGE_PARTIAL,          /* send [*start, *start + *len) (206) */
    RANGE_UNSATISFIABLE,    /* 416 with Content-Range: bytes * / size */
};

/* hdr may be NULL. size is the file's length. */
enum range_result range_parse(const char *hdr, int64_t size, int64_t *start, int64_t *len);

#endif
