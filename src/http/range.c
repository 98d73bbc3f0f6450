/* range: see range.h. */
#include "http/range.h"

#include <stdint.h>
#include <string.h>

#include "base/str.h"

/* Digits only (no sign, no spaces). A number too long for int64 is larger
 * than any file: it saturates to INT64_MAX, so an end past the file is
 * clamped like any other (RFC 9110 14.1.2) instead of ignoring the Range. */
static int parse_num(const char *s, size_t len, int64_t *out)
{
    char tmp[19];

    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return -1;
    if (len > 18) {
        *out = INT64_MAX;
        return 0;
    }
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    return str_to_int64(tmp, out);
}

enum range_result range_parse(const char *hdr, int64_t size, int64_t *start, int64_t *len)
{
    const char *spec, *dash;
    int64_t a, b;

    if (!hdr || !str_starts_with(hdr, "bytes="))
        return RANGE_NONE;
    spec = hdr + 6;
    if (strchr(spec, ','))
        return RANGE_NONE;
    dash = strchr(spec, '-');
    if (!dash)
        return RANGE_NONE;
    if (dash == spec) {  /* suffix: the last N bytes */
        if (parse_num(dash + 1, strlen(dash + 1), &b) < 0)
            return RANGE_NONE;
        if (b == 0 || size == 0)
            return RANGE_UNSATISFIABLE;
        *len = b < size ? b : size;
        *start = size - *len;
        return RANGE_PARTIAL;
    }
    if (parse_num(spec, (size_t)(dash - spec), &a) < 0)
        return RANGE_NONE;
    if (dash[1] == '\0') {
        b = size - 1;
    } else if (parse_num(dash + 1, strlen(dash + 1), &b) < 0 || b < a) {
        return RANGE_NONE;
    }
    if (a >= size)
        return RANGE_UNSATISFIABLE;
    if (b >= size)
        b = size - 1;
    *start = a;
    *len = b - a + 1;
    return RANGE_PARTIAL;
}
