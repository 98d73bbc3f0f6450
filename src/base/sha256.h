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
/* HMAC-SHA256 (RFC 2104) of msg under key into out (32 bytes): AWS SigV4 signing. */
#define HMAC_SHA256_LEN 32
void hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                 unsigned char out[HMAC_SHA256_LEN]);


/*
 * Savable SHA-256 for a file that arrives over several requests (tus): the
 * state is a plain struct of at most SHA256_STATE_BYTES bytes (OpenSSL's
 * SHA256_CTX, see sha256.c), so it can be written to a file and read back
 * (sha256s_to_hex / sha256s_from_hex) and hashing continues where it stopped
 * without reading the earlier bytes again. An EVP context cannot be saved.
 * The saved text belongs to this build's OpenSSL: a partial upload is
 * resumed by the same binary family (the info file says "tus 1").
 */
#define SHA256_STATE_BYTES 112
struct sha256_saved {
    unsigned char bytes[SHA256_STATE_BYTES];
};
void sha256s_init(struct sha256_saved *s);
void sha256s_update(struct sha256_saved *s, const void *data, size_t len);
/* The digest of the bytes so far; s is not changed (hashing may go on). */
void sha256s_peek_hex(const struct sha256_saved *s, char hex[SHA256_HEX_LEN + 1]);
/* The state as 2 * SHA256_STATE_BYTES hex digits and a NUL. */
void sha256s_to_hex(const struct sha256_saved *s, char hex[2 * SHA256_STATE_BYTES + 1]);
/* Back from sha256s_to_hex's text: 0, or -1 when it is not such a text. */
int sha256s_from_hex(struct sha256_saved *s, const char *hex);

/* Checksums of the tus checksum extension (OpenSSL EVP): "sha1", "sha256",
 * "md5". digest_new returns NULL for another name. */
#define DIGEST_ALGORITHMS "sha1,sha256,md5"
#define DIGEST_MAX 64
struct digest;
struct digest *digest_new(const char *alg);
void digest_update(struct digest *d, const void *data, size_t len);
/* Writes the raw digest into out; returns its length. */
size_t digest_final(struct digest *d, unsigned char out[DIGEST_MAX]);
void digest_free(struct digest *d);

#endif
