/*
 * throttle: the login throttle. Counts failed logins per client address and
 * per user name; after LIMIT_LOGIN_FREE_FAILURES of either, each further try
 * must wait LIMIT_LOGIN_DELAY_MS, doubling per failure up to
 * LIMIT_LOGIN_DELAY_MAX_MS. Failures are forgotten after LIMIT_LOGIN_FORGET_MS
 * without one.
 *
 * So that an attacker cannot lock a real user out, the per-name wait does not
 * apply to an address that has logged in as that name before (the last
 * THROTTLE_KNOWN such addresses are remembered), and waits are short. The
 * caller answers a try that must wait at once (429 + Retry-After) rather than
 * sleeping a server thread. Not a database: state is lost on restart.
 *
 * Thread-safe: one mutex guards the table; times are passed in (monotonic ms),
 * which keeps the module testable.
 */
#ifndef SHOEBOX_HTTP_THROTTLE_H
#define SHOEBOX_HTTP_THROTTLE_H

#include <stdint.h>

/* Addresses remembered per user name as having logged in. */
#define THROTTLE_KNOWN 4

struct throttle;

/* New empty throttle; free with throttle_free() (NULL-safe). */
struct throttle *throttle_new(void);
void throttle_free(struct throttle *t);

/* Milliseconds until a login as name (NULL: "") from addr may be tried; 0 now. */
int64_t throttle_wait_ms(struct throttle *t, const char *addr, const char *name, int64_t now_ms);
/* Record a failed login; returns the wait it imposes on the next try (0 while
 * both counts are within the free failures). */
int64_t throttle_failed(struct throttle *t, const char *addr, const char *name, int64_t now_ms);
/* Record a successful login: both counts start again and addr becomes known
 * for name (the per-name wait no longer applies to it). */
void throttle_succeeded(struct throttle *t, const char *addr, const char *name, int64_t now_ms);

#endif
