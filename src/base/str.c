/* str: see str.h. */
#include "base/str.h"

#include <sodium.h>

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int str_to_int64(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (!s || !*s || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

int str_to_uint64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (!s || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

int str_to_double(const char *s, double *out)
{
    char *end;
    double v;

    if (!s || !*s || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int str_to_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    uint64_t mult = 1;

    if (!s || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    switch (tolower((unsigned char)*end)) {
    case '\0': break;
    case 'k': mult = 1ULL << 10; end++; break;
    case 'm': mult = 1ULL << 20; end++; break;
    case 'g': mult = 1ULL << 30; end++; break;
    default: return -1;
    }
    if (mult > 1 && (*end == 'b' || *end == 'B'))
        end++;
    if (*end)
        return -1;
    if (__builtin_mul_overflow((uint64_t)v, mult, out))
        return -1;
    return 0;
}

void str_format_size(int64_t bytes, char *out, size_t n)
{
    static const char *const units[] = {"KB", "MB", "GB", "TB"};
    double v = (double)bytes;
    int u = -1;
    long long tenths;

    if (bytes < 1024) {
        snprintf(out, n, "%lld bytes", (long long)bytes);
        return;
    }
    while (v >= 1024 && u < 3) {
        v /= 1024;
        u++;
    }
    tenths = (long long)(v * 10 + 0.5);
    if (tenths % 10 == 0)
        snprintf(out, n, "%lld %s", tenths / 10, units[u]);
    else
        snprintf(out, n, "%lld.%lld %s", tenths / 10, tenths % 10, units[u]);
}

bool str_starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool str_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

const char *str_from_int64(int64_t v, char out[STR_INT64_LEN])
{
    size_t i = STR_INT64_LEN;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    out[--i] = '\0';
    do {
        out[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        out[--i] = '-';
    return out + i;
}

const char *str_from_tenths(double v, char out[STR_TENTHS_LEN])
{
    int64_t tenths = (int64_t)floor(v * 10.0 + 0.5);
    const char *whole = str_from_int64(tenths / 10, out);
    size_t n = strlen(whole);

    memmove(out, whole, n);
    out[n] = '.';
    out[n + 1] = (char)('0' + tenths % 10);
    out[n + 2] = '\0';
    return out;
}

void str_append(char *out, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);

    if (n > cap - *len - 1)
        n = cap - *len - 1;
    memcpy(out + *len, s, n);
    *len += n;
    out[*len] = '\0';
}

void str_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

bool str_equal_ct(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    unsigned char diff = (unsigned char)(n != m);

    for (size_t i = 0; i < n && i < m; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int str_unhex2(const char *p)
{
    int hi = hex_digit(p[0]), lo = hi < 0 ? -1 : hex_digit(p[1]);

    return lo < 0 ? -1 : hi * 16 + lo;
}

int str_base64_decode(const char *in, unsigned char *out, size_t cap, size_t *outlen)
{
    const char *end = NULL;

    if (sodium_base642bin(out, cap, in, strlen(in), NULL, outlen, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        *end != '\0')
        return -1;
    return 0;
}

void str_base64_encode(const unsigned char *in, size_t n, char *out, size_t cap)
{
    sodium_bin2base64(out, cap, in, n, sodium_base64_VARIANT_ORIGINAL);
}
