/*
 * log: one line per event on stderr, key=value (logfmt):
 *   ts=2026-11-25T02:40:00.123Z level=info comp=http event=request method=GET ...
 * Client data goes through log_q() (quoted, control characters escaped, cut to
 * LOG_VALUE_MAX bytes), never into the format. Never log secrets.
 * The level test is a macro, so filtered lines cost one call to log_enabled().
 * Thread-safe: each line is written with one write(2), or gathered with
 * others into one (log_write_buffered: the access log of a busy server).
 */
#ifndef SHOEBOX_BASE_LOG_H
#define SHOEBOX_BASE_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

#define LOG_VALUE_MAX 200
/* Longest line; longer ones are cut (a few LOG_VALUE_MAX values fit). */
#define LOG_LINE_MAX 4096
/* Buffered lines are written together once this many bytes are pending: ~100
 * access-log lines, so a server answering 50,000 requests/s makes ~500
 * writes/s instead of 50,000 (each was ~8 % of a progress poll's CPU). */
#define LOG_BUFFER_BYTES 16384
/* ...or once the oldest pending line is this old (checked at the next line and
 * by log_flush): a person tailing the log sees a request within a fraction
 * of a second. */
#define LOG_FLUSH_MS 200

/* Call once from main before threads start. debug_components: "jobs,http",
 * "all" or NULL; those components log at debug level. */
void log_init(enum log_level min, const char *debug_components);
bool log_enabled(enum log_level level, const char *comp);
void log_write(enum log_level level, const char *comp, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* As log_write, but the line may wait in a buffer (log.c's DESIGN block):
 * for frequent lines whose loss in a crash is acceptable (the access log).
 * Never for warnings, errors or anything a crash investigation needs. */
void log_write_buffered(enum log_level level, const char *comp, const char *event,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Write the buffered lines now. Any thread; also runs at exit. */
void log_flush(void);
/* Quote s for a log value into dst (LOG_VALUE_MAX*4+3 bytes is always enough);
 * returns dst. Prefer the LOG_Q() macro, whose buffer lives to the end of the
 * enclosing statement's block. */
const char *log_quote(char *dst, size_t n, const char *s);
#define LOG_Q(s) log_quote((char[LOG_VALUE_MAX * 4 + 3]){0}, LOG_VALUE_MAX * 4 + 3, (s))

#define log_debug(comp, ev, ...) \
    do { if (log_enabled(LOG_DEBUG, comp)) log_write(LOG_DEBUG, comp, ev, __VA_ARGS__); } while (0)
#define log_info(comp, ev, ...) \
    do { if (log_enabled(LOG_INFO, comp)) log_write(LOG_INFO, comp, ev, __VA_ARGS__); } while (0)
#define log_info_buffered(comp, ev, ...) \
    do { if (log_enabled(LOG_INFO, comp)) log_write_buffered(LOG_INFO, comp, ev, __VA_ARGS__); } while (0)
#define log_warn(comp, ev, ...) \
    do { if (log_enabled(LOG_WARN, comp)) log_write(LOG_WARN, comp, ev, __VA_ARGS__); } while (0)
#define log_error(comp, ev, ...) \
    do { if (log_enabled(LOG_ERROR, comp)) log_write(LOG_ERROR, comp, ev, __VA_ARGS__); } while (0)

#endif
