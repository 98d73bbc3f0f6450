/* secret: see secret.h. The semaphore is the only shared state. */
#include "base/secret.h"

#include <semaphore.h>
#include <sodium.h>
#include <string.h>

#include "base/str.h"

static sem_t hash_slots;  /* at most SECRET_HASH_CONCURRENCY Argon2 runs */
static char dummy_hash[crypto_pwhash_STRBYTES];

int secret_init(struct err *err)
{
    if (sodium_init() < 0)
        return err_set(err, ERR_PERMANENT, "init", "libsodium failed to initialise");
    if (sem_init(&hash_slots, 0, SECRET_HASH_CONCURRENCY) < 0)
        return err_set(err, ERR_PERMANENT, "init", "cannot create semaphore");
    if (crypto_pwhash_str(dummy_hash, "dummy password", 14, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        return err_set(err, ERR_TRANSIENT, "init", "cannot hash: out of memory");
    return 0;
}

int secret_hash_password(const char *password, char out[SECRET_HASH_MAX], struct err *err)
{
    int rc;
    size_t len = strlen(password);

    if (len > SECRET_PASSWORD_MAX)
        return err_set(err, ERR_PERMANENT, "password", "password longer than %d bytes",
                       SECRET_PASSWORD_MAX);
    sem_wait(&hash_slots);
    rc = crypto_pwhash_str(out, password, len, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                           crypto_pwhash_MEMLIMIT_INTERACTIVE);
    sem_post(&hash_slots);
    if (rc != 0)
        return err_set(err, ERR_TRANSIENT, "password", "cannot hash password: out of memory");
    return 0;
}

bool secret_verify_password(const char *hash, const char *password)
{
    size_t len = strlen(password);
    bool ok;

    if (len > SECRET_PASSWORD_MAX)
        password = "", len = 0;
    sem_wait(&hash_slots);
    ok = crypto_pwhash_str_verify(hash ? hash : dummy_hash, password, len) == 0;
    sem_post(&hash_slots);
    return hash && ok;
}

void secret_token(char out[SECRET_TOKEN_HEX + 1])
{
    unsigned char raw[32];

    randombytes_buf(raw, sizeof(raw));
    str_hex(raw, sizeof(raw), out);
    sodium_memzero(raw, sizeof(raw));
}

void secret_digest(const char *token, char out[SECRET_TOKEN_HEX + 1])
{
    unsigned char md[32];

    crypto_generichash(md, sizeof(md), (const unsigned char *)token, strlen(token), NULL, 0);
    str_hex(md, sizeof(md), out);
}

void secret_password(char *out, size_t len)
{
    static const char alphabet[] = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

    for (size_t i = 0; i < len; i++)
        out[i] = alphabet[randombytes_uniform(sizeof(alphabet) - 1)];
    out[len] = '\0';
}
