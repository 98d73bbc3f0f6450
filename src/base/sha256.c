/* sha256: see sha256.h. */
#include "base/sha256.h"

#include <openssl/evp.h>
#include <stdlib.h>

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
