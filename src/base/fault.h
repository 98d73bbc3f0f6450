/*
 * fault: failure injection points for tests (SQLite faultsim, curl torture).
 *
 * A spec (from --faults / SHOEBOX_FAULTS, parsed once at start) is a comma
 * list of rules:
 *   POINT=N       the Nth call of POINT fails (once); N=1 is the next call
 *   POINT=N+      every call from the Nth on fails
 *   POINT@TEXT    calls of POINT whose subject contains TEXT fail (every time)
 * A rule may start with a role, "serve:" or "worker:", to apply only in that
 * kind of process (counters are per process): "worker:commit=2" fails each
 * worker's second commit and leaves the server alone.
 * Points used: fsync, write (fails as ENOSPC "disk full"), rename, commit
 * (store), decode_crash (worker aborts while decoding a matching file name),
 * decode_hang (worker sleeps forever on a matching name), decode_slow (worker
 * sleeps 4 s on a matching name), decode_spin (worker burns CPU on a matching
 * name until the CPU limit ends it).
 * Thread-safe (counters are atomic). With no spec, fault_hit() is a single load.
 */
#ifndef SHOEBOX_BASE_FAULT_H
#define SHOEBOX_BASE_FAULT_H

#include <stdbool.h>

/* Returns 0, or -1 for a malformed spec. Call before threads start.
 * fault_arm keeps every rule; fault_arm_role keeps the rules without a role
 * and those for `role` ("serve", "worker"). */
int fault_arm(const char *spec);
int fault_arm_role(const char *spec, const char *role);
/* Should this call of point fail? subject may be NULL (counted rules only). */
bool fault_hit(const char *point, const char *subject);

#endif
