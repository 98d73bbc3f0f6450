/* timeutil: clocks and timestamps. */
#ifndef SHOEBOX_BASE_TIMEUTIL_H
#define SHOEBOX_BASE_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Wall clock, milliseconds since the Unix epoch. */
int64_t time_now_ms(void);
/* Monotonic clock in milliseconds, for durations and deadlines. */
int64_t time_mono_ms(void);
/* "2026-11-25T02:40:00.123Z" into out (at least 32 bytes). */
void time_iso8601(int64_t epoch_ms, char *out, size_t n);
/* The clock's time ms milliseconds from now, for pthread_cond_timedwait (clk is
 * the condition variable's clock: CLOCK_REALTIME unless its attribute says so). */
struct timespec time_after_ms(clockid_t clk, int64_t ms);
/* Sleep for ms milliseconds (restarts on EINTR). */
void time_sleep_ms(int64_t ms);

#endif
