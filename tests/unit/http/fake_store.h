/* fake_store: an in-memory store with users and sessions only, for http tests. */
#ifndef SHOEBOX_TESTS_FAKE_STORE_H
#define SHOEBOX_TESTS_FAKE_STORE_H

#include <stdint.h>

#include "store/store.h"

struct store *fake_store_new(void);
void fake_store_free(struct store *st);
/* Adds a user with the Argon2 hash of password; returns its id. */
int64_t fake_store_add_user(struct store *st, const char *name, const char *password);
/* Counters of calls, for tests of throttling and rotation. */
int fake_store_touches(struct store *st);
int fake_store_sessions(struct store *st);
/* Move every session's expiry by delta ms. */
void fake_store_shift_sessions(struct store *st, int64_t delta);
/* 1: schema_version and health_check fail; 2: only health_check (healthz). */
void fake_store_break(struct store *st, int broken);

#endif
