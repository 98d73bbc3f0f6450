/*
 * str: number parsing and small string helpers. Parsers reject empty input,
 * trailing garbage and overflow (atoi and friends are banned).
 */
#ifndef SHOEBOX_BASE_STR_H
#define SHOEBOX_BASE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int str_to_int64(const char *s, int64_t *out);
int str_to_uint64(const char *s, uint64_t *out);
int str_to_double(const char *s, double *out);
/* "100MB", "64k", "1G", plain bytes; binary multiples (1 MB = 1048576). */
int str_to_size(const char *s, uint64_t *out);
/* A size for messages: "100 MB", "1.5 GB", "512 KB", "10 bytes" (binary units, as
 * str_to_size reads them). */
void str_format_size(int64_t bytes, char *out, size_t n);
bool str_starts_with(const char *s, const char *prefix);
bool str_ends_with(const char *s, const char *suffix);
/* The byte written as two hex digits (either case) at p[0], p[1], or -1 when
 * they are not both hex digits (p[1] is not read when p[0] is not one, so a
 * NUL-terminated string may end anywhere). */
int str_unhex2(const char *p);
/* The decimal digits of v, NUL-terminated, at the end of out: returns where they start.
 * No printf (used on paths that run for every request). */
#define STR_INT64_LEN 21
const char *str_from_int64(int64_t v, char out[STR_INT64_LEN]);
/* v rounded to one decimal ("12.3", "0.5"), the same way at the end of out: for the
 * millisecond and percent figures written on every request. v must be >= 0. */
#define STR_TENTHS_LEN (STR_INT64_LEN + 2)
const char *str_from_tenths(double v, char out[STR_TENTHS_LEN]);
/* s onto out (room for cap bytes, *len of them used, *len < cap) at *len, cut so
 * that out stays NUL-terminated; *len moves past it. For lines put together
 * without printf on per-request paths. */
void str_append(char *out, size_t cap, size_t *len, const char *s);
/* Lower-case hex of n bytes into out (2n+1 bytes). */
void str_hex(const unsigned char *in, size_t n, char *out);
/* Constant-time comparison of two NUL-terminated strings. */
bool str_equal_ct(const char *a, const char *b);

/* Standard base64 (with padding) into out (cap bytes): 0 and *outlen, or -1 when
 * in is not base64 or does not fit. */
int str_base64_decode(const char *in, unsigned char *out, size_t cap, size_t *outlen);

/* Standard base64 of n bytes into out; cap must be at least
 * STR_BASE64_LEN(n). */
#define STR_BASE64_LEN(n) ((((n) + 2) / 3) * 4 + 1)
void str_base64_encode(const unsigned char *in, size_t n, char *out, size_t cap);

#endif
