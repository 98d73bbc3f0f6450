/*
 * secret: passwords and tokens (libsodium).
 * Passwords are Argon2id hashes (crypto_pwhash_str, INTERACTIVE limits); at most
 * SECRET_HASH_CONCURRENCY hashes run at once so a login flood cannot take
 * 64 MB x N of memory or starve the workers.
 * Tokens are 32 random bytes in hex; only their digest is stored.
 */
#ifndef SHOEBOX_BASE_SECRET_H
#define SHOEBOX_BASE_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"

#define SECRET_HASH_MAX 128       /* crypto_pwhash_STRBYTES */
#define SECRET_TOKEN_HEX 64       /* 32 random bytes */
#define SECRET_HASH_CONCURRENCY 2
#define SECRET_PASSWORD_MAX 1024  /* longer passwords are refused before hashing */

/* Call once from main before threads start. */
int secret_init(struct err *err);
/* Argon2id hash of password into out (SECRET_HASH_MAX bytes). */
int secret_hash_password(const char *password, char out[SECRET_HASH_MAX], struct err *err);
/* True when password matches hash. With hash == NULL it still spends the time
 * of one verification (against a dummy hash) and returns false, so a missing
 * user costs the same as a wrong password. */
bool secret_verify_password(const char *hash, const char *password);
/* 64 hex characters of fresh randomness (+ NUL). */
void secret_token(char out[SECRET_TOKEN_HEX + 1]);
/* Digest of a token for storage: 64 hex characters (+ NUL). */
void secret_digest(const char *token, char out[SECRET_TOKEN_HEX + 1]);
/* A random password of len characters from an unambiguous alphabet. */
void secret_password(char *out, size_t len);

#endif
