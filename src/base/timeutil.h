/* timeutil: clocks and timestamps. */
#ifndef SHOEBOX_BASE_TIMEUTIL_H
#define SHOEBOX_BASE_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Wall clock, milliseconds since the Unix epoch. */
int64_t time_now_ms(void);
/* Monotonic clock in milliseconds, for durations and deadlines. */
int64_t time_mono_ms(void);
/* "2026-11-25T02:40:00.123Z" into out (at least 32 bytes). */
void time_iso8601(int64_t epoch_ms, char *out, size_t n);
/* Sleep for ms milliseconds (restarts on EINTR). */
void time_sleep_ms(int64_t ms);

#endif
