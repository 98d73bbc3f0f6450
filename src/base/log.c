/*
 * log: see log.h. Configuration is written once by log_init before threads.
 *
 * DESIGN (buffered lines)
 * log_write_buffered() appends its line to `pending` instead of writing it;
 * pending is written (one write(2), whole lines) when the next line would not
 * fit, when its oldest line is LOG_FLUSH_MS old at the next append, before any
 * unbuffered line (so lines keep their order), by log_flush() (a ticking
 * thread of the server calls it; an idle server's last lines wait one tick),
 * and at exit (atexit). A forked child drops the parent's pending lines, so
 * they are written once. Lock: pending.mu guards pending; it is held across
 * the write(2) so that lines keep their order.
 */
#include "base/log.h"
#include "base/str.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/timeutil.h"

static enum log_level min_level = LOG_INFO;
static char debug_comps[256];

static struct {
    pthread_mutex_t mu;
    char data[LOG_BUFFER_BYTES];  /* mu */
    size_t len;                   /* mu */
    int64_t first_ms;             /* mu: monotonic time of the oldest pending line */
} pending = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w <= 0)
            return;  /* nowhere else to report it */
        p += w;
        n -= (size_t)w;
    }
}

/* pending.mu held. */
static void flush_locked(void)
{
    write_all(pending.data, pending.len);
    pending.len = 0;
}

void log_flush(void)
{
    pthread_mutex_lock(&pending.mu);
    flush_locked();
    pthread_mutex_unlock(&pending.mu);
}

static void fork_prepare(void) { pthread_mutex_lock(&pending.mu); }
static void fork_parent(void) { pthread_mutex_unlock(&pending.mu); }

static void fork_child(void)
{
    pending.len = 0;  /* the parent writes them */
    pthread_mutex_unlock(&pending.mu);
}

void log_init(enum log_level min, const char *debug_components)
{
    static bool hooked;

    min_level = min;
    snprintf(debug_comps, sizeof(debug_comps), "%s", debug_components ? debug_components : "");
    if (!hooked) {
        hooked = true;
        atexit(log_flush);
        pthread_atfork(fork_prepare, fork_parent, fork_child);
    }
}

static bool comp_listed(const char *comp)
{
    size_t n = strlen(comp);
    const char *p = debug_comps;

    if (!*p)
        return false;
    if (strcmp(p, "all") == 0)
        return true;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, comp, n) == 0)
            return true;
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

bool log_enabled(enum log_level level, const char *comp)
{
    if (level >= min_level)
        return true;
    return level == LOG_DEBUG && comp_listed(comp);
}

static const char *level_name(enum log_level l)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    return names[l];
}

/* "ts=YYYY-MM-DDTHH:MM:SS." of second sec into line (room for 32 bytes): the
 * date is formatted once a second per thread, not per line (a busy server's
 * access log writes thousands a second). */
static size_t ts_prefix(char *line, time_t sec)
{
    static __thread time_t cached_sec = (time_t)-1;
    static __thread char cached[32];
    static __thread size_t cached_len;

    if (sec != cached_sec) {
        struct tm tm;
        int n;

        gmtime_r(&sec, &tm);
        n = snprintf(cached, sizeof(cached), "ts=%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached_len = n > 0 && (size_t)n < sizeof(cached) ? (size_t)n : 0;
        cached_sec = sec;
    }
    memcpy(line, cached, cached_len);
    return cached_len;
}

/* The line of one event, '\n'-terminated, into line (cap >= 64); returns its length. */
static size_t format_line(char *line, size_t cap, enum log_level level, const char *comp,
                          const char *event, const char *fmt, va_list ap)
{
    struct timespec ts;
    long ms;
    size_t len;
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    len = ts_prefix(line, ts.tv_sec);
    ms = ts.tv_nsec / 1000000;
    line[len++] = (char)('0' + ms / 100);
    line[len++] = (char)('0' + ms / 10 % 10);
    line[len++] = (char)('0' + ms % 10);
    /* cap - 1: room is left for the '\n' */
    str_append(line, cap - 1, &len, "Z level=");
    str_append(line, cap - 1, &len, level_name(level));
    str_append(line, cap - 1, &len, " comp=");
    str_append(line, cap - 1, &len, comp);
    str_append(line, cap - 1, &len, " event=");
    str_append(line, cap - 1, &len, event);
    str_append(line, cap - 1, &len, " ");
    n = vsnprintf(line + len, cap - len - 1, fmt, ap);
    if (n > 0)
        len += (size_t)n < cap - len - 1 ? (size_t)n : cap - len - 2;
    while (len > 0 && line[len - 1] == ' ')
        len--;
    line[len++] = '\n';
    return len;
}

void log_write(enum log_level level, const char *comp, const char *event, const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    size_t len;
    va_list ap;

    va_start(ap, fmt);
    len = format_line(line, sizeof(line), level, comp, event, fmt, ap);
    va_end(ap);
    /* One write per line so lines from threads and worker processes do not
     * interleave; buffered lines go first to keep the order. */
    pthread_mutex_lock(&pending.mu);
    if (pending.len + len <= sizeof(pending.data) && pending.len > 0) {
        memcpy(pending.data + pending.len, line, len);
        pending.len += len;
        flush_locked();
    } else {
        flush_locked();
        write_all(line, len);
    }
    pthread_mutex_unlock(&pending.mu);
}

void log_write_buffered(enum log_level level, const char *comp, const char *event,
                        const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    int64_t now = time_mono_ms();
    size_t len;
    va_list ap;

    va_start(ap, fmt);
    len = format_line(line, sizeof(line), level, comp, event, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&pending.mu);
    if (pending.len + len > sizeof(pending.data))
        flush_locked();
    if (pending.len == 0)
        pending.first_ms = now;
    memcpy(pending.data + pending.len, line, len);
    pending.len += len;
    if (now - pending.first_ms >= LOG_FLUSH_MS)
        flush_locked();
    pthread_mutex_unlock(&pending.mu);
}

const char *log_quote(char *dst, size_t n, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, i = 0;

    if (n < 3)
        return "";
    if (!s)
        s = "";
    dst[o++] = '"';
    for (; s[i] && i < LOG_VALUE_MAX && o + 5 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            dst[o++] = '\\';
            dst[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        } else {
            dst[o++] = (char)c;
        }
    }
    if (s[i] && o + 4 < n) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o++] = '"';
    dst[o] = '\0';
    return dst;
}
