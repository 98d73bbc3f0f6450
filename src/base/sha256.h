/*
 * sha256: streaming SHA-256 through OpenSSL's EVP (uses the CPU's SHA
 * instructions where present). One context per stream; not shared.
 */
#ifndef SHOEBOX_BASE_SHA256_H
#define SHOEBOX_BASE_SHA256_H

#include <stddef.h>

#define SHA256_HEX_LEN 64

struct sha256;

/* New context; free with sha256_free(). Aborts on allocation failure. */
struct sha256 *sha256_new(void);
void sha256_update(struct sha256 *h, const void *data, size_t len);
/* Writes 64 hex digits and a NUL into hex; the context may then be reset. */
void sha256_final_hex(struct sha256 *h, char hex[SHA256_HEX_LEN + 1]);
void sha256_reset(struct sha256 *h);
void sha256_free(struct sha256 *h);
/* One-shot helper. */
void sha256_hex(const void *data, size_t len, char hex[SHA256_HEX_LEN + 1]);

#endif
