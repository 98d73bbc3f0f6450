/* log: see log.h. Configuration is written once by log_init before threads. */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;
static char debug_comps[256];

void log_init(enum log_level min, const char *debug_components)
{
    min_level = min;
    snprintf(debug_comps, sizeof(debug_comps), "%s", debug_components ? debug_components : "");
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

void log_write(enum log_level level, const char *comp, const char *event, const char *fmt, ...)
{
    char line[4096];
    struct timespec ts;
    struct tm tm;
    size_t len;
    va_list ap;
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof(line),
                 "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s comp=%s event=%s ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                 tm.tm_sec, ts.tv_nsec / 1000000, level_name(level), comp, event);
    len = n > 0 ? (size_t)n : 0;
    va_start(ap, fmt);
    n = vsnprintf(line + len, sizeof(line) - len - 1, fmt, ap);
    va_end(ap);
    if (n > 0)
        len += (size_t)n < sizeof(line) - len - 1 ? (size_t)n : sizeof(line) - len - 2;
    while (len > 0 && line[len - 1] == ' ')
        len--;
    line[len++] = '\n';
    /* One write per line so lines from threads and worker processes do not interleave. */
    if (write(STDERR_FILENO, line, len) < 0)
        return;
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
