/* sha256: see sha256.h. */
/* The savable state uses SHA256_CTX (deprecated in OpenSSL 3, see below). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "base/sha256.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"

struct sha256 {
    EVP_MD_CTX *ctx;
};

struct sha256 *sha256_new(void)
{
    struct sha256 *h = malloc(sizeof(*h));

    if (!h)
        abort();
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx)
        abort();
    sha256_reset(h);
    return h;
}

void sha256_reset(struct sha256 *h)
{
    if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
        abort();
}

void sha256_update(struct sha256 *h, const void *data, size_t len)
{
    if (EVP_DigestUpdate(h->ctx, data, len) != 1)
        abort();
}

void sha256_final_hex(struct sha256 *h, char hex[SHA256_HEX_LEN + 1])
{
    unsigned char md[32];
    unsigned int n = 0;

    if (EVP_DigestFinal_ex(h->ctx, md, &n) != 1 || n != 32)
        abort();
    str_hex(md, 32, hex);
}

void sha256_free(struct sha256 *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

void sha256_hex(const void *data, size_t len, char hex[SHA256_HEX_LEN + 1])
{
    struct sha256 *h = sha256_new();

    sha256_update(h, data, len);
    sha256_final_hex(h, hex);
    sha256_free(h);
}

void hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                 unsigned char out[HMAC_SHA256_LEN])
{
    unsigned int n = 0;

    if (!HMAC(EVP_sha256(), key, (int)key_len, msg, msg_len, out, &n) || n != HMAC_SHA256_LEN)
        abort();
}

/* ------------------------------------------------------- savable state */

/* OpenSSL's SHA256_CTX is a plain struct (h[8], Nl, Nh, data[16], num, md_len)
 * and SHA256_Update runs the same CPU-specific code as EVP (SHA-NI, AVX2):
 * measured 3.5x libsodium's portable SHA-256 on a 64 MB tus PATCH. The
 * low-level calls are deprecated in OpenSSL 3 (not removed); should they go,
 * libsodium's crypto_hash_sha256_state (also a plain struct) is the fallback
 * with the same interface. */
_Static_assert(sizeof(SHA256_CTX) <= SHA256_STATE_BYTES, "SHA256_CTX grew");

void sha256s_init(struct sha256_saved *s)
{
    SHA256_CTX c;

    memset(s, 0, sizeof(*s));
    if (SHA256_Init(&c) != 1)
        abort();
    memcpy(s->bytes, &c, sizeof(c));
}

void sha256s_update(struct sha256_saved *s, const void *data, size_t len)
{
    SHA256_CTX c;

    memcpy(&c, s->bytes, sizeof(c));
    if (SHA256_Update(&c, data, len) != 1)
        abort();
    memcpy(s->bytes, &c, sizeof(c));
}

void sha256s_peek_hex(const struct sha256_saved *s, char hex[SHA256_HEX_LEN + 1])
{
    SHA256_CTX c;
    unsigned char md[SHA256_DIGEST_LENGTH];

    memcpy(&c, s->bytes, sizeof(c));
    if (SHA256_Final(md, &c) != 1)
        abort();
    str_hex(md, sizeof(md), hex);
}

void sha256s_to_hex(const struct sha256_saved *s, char hex[2 * SHA256_STATE_BYTES + 1])
{
    str_hex(s->bytes, SHA256_STATE_BYTES, hex);
}

int sha256s_from_hex(struct sha256_saved *s, const char *hex)
{
    if (!hex || strlen(hex) != 2 * SHA256_STATE_BYTES)
        return -1;
    for (size_t i = 0; i < SHA256_STATE_BYTES; i++) {
        int byte = str_unhex2(hex + 2 * i);
        if (byte < 0)
            return -1;
        s->bytes[i] = (unsigned char)byte;
    }
    return 0;
}

/* ------------------------------------------- tus checksums (OpenSSL EVP) */

struct digest {
    EVP_MD_CTX *ctx;
};

struct digest *digest_new(const char *alg)
{
    const EVP_MD *md = NULL;
    struct digest *d;

    if (!strcmp(alg, "sha1"))
        md = EVP_sha1();
    else if (!strcmp(alg, "sha256"))
        md = EVP_sha256();
    else if (!strcmp(alg, "md5"))
        md = EVP_md5();
    if (!md)
        return NULL;
    d = malloc(sizeof(*d));
    if (!d)
        abort();
    d->ctx = EVP_MD_CTX_new();
    if (!d->ctx || EVP_DigestInit_ex(d->ctx, md, NULL) != 1)
        abort();
    return d;
}

void digest_update(struct digest *d, const void *data, size_t len)
{
    if (EVP_DigestUpdate(d->ctx, data, len) != 1)
        abort();
}

size_t digest_final(struct digest *d, unsigned char out[DIGEST_MAX])
{
    unsigned int n = 0;

    if (EVP_DigestFinal_ex(d->ctx, out, &n) != 1)
        abort();
    return n;
}

void digest_free(struct digest *d)
{
    if (!d)
        return;
    EVP_MD_CTX_free(d->ctx);
    free(d);
}
