/*
 * internal: helpers shared by the files of src/media/ (see internal.h). They
 * live here, not in media.c, so that media.c (which includes thumb.h, raw.h)
 * and the files that use the helpers do not include each other in a circle.
 * THREADS: last_warning is guarded by last_warning_lock (the log handler runs
 * in any vips thread); everything else is per call.
 */
#include "media/internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

/* Last libvips warning, for thumb_vips_error()'s fallback. Guarded by
 * last_warning_lock (taken by the log handler in any vips thread). */
G_LOCK_DEFINE_STATIC(last_warning_lock);
static char last_warning[200];

void media_last_warning(char *dst, size_t cap)
{
    if (cap == 0)
        return;
    G_LOCK(last_warning_lock);
    snprintf(dst, cap, "%s", last_warning);
    G_UNLOCK(last_warning_lock);
}

void media_warn(struct media_output *out, const char *fmt, ...)
{
    size_t len = strlen(out->warnings);
    va_list ap;

    if (len + 3 >= sizeof(out->warnings))
        return;
    if (len > 0) {
        memcpy(out->warnings + len, "; ", 3);
        len += 2;
    }
    va_start(ap, fmt);
    vsnprintf(out->warnings + len, sizeof(out->warnings) - len, fmt, ap);
    va_end(ap);
}

void media_meta_clear(struct media_meta *m)
{
    memset(m, 0, sizeof(*m));
    m->exposure_time = m->f_number = m->focal_length = NAN;
    m->gps_lat = m->gps_lon = m->gps_alt = NAN;
}

void media_text_copy(char *dst, size_t cap, const char *s, size_t n)
{
    size_t j = 0;

    if (cap == 0)
        return;
    for (size_t i = 0; i < n && s[i] && j + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[j++] = (c < 0x20 || c == 0x7F) ? ' ' : (char)c;
    }
    while (j > 0 && dst[j - 1] == ' ')
        j--;
    dst[j] = '\0';
}

unsigned char *media_dup_bytes(const void *p, size_t n)
{
    unsigned char *d = malloc(n ? n : 1);

    if (d && n)
        memcpy(d, p, n);
    return d;
}

static void free_adopted(VipsImage *img, void *buf)
{
    (void)img;
    free(buf);
}

VipsImage *media_image_adopt(unsigned char *buf, int w, int h, int bands, VipsInterpretation type)
{
    VipsImage *img = vips_image_new_from_memory(buf, (size_t)w * (size_t)h * (size_t)bands, w, h,
                                                bands, VIPS_FORMAT_UCHAR);

    if (!img) {
        free(buf);
        return NULL;
    }
    img->Type = type;
    g_signal_connect(img, "postclose", G_CALLBACK(free_adopted), buf);
    return img;
}

static void vips_log_handler(const gchar *domain, GLogLevelFlags level, const gchar *message,
                             gpointer data)
{
    (void)data;
    if (message) {
        G_LOCK(last_warning_lock);
        media_text_copy(last_warning, sizeof(last_warning), message, strlen(message));
        G_UNLOCK(last_warning_lock);
    }
    if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
        log_warn("media", "vips.warning", "domain=%s msg=%s", domain ? domain : "",
                 LOG_Q(message ? message : ""));
    else
        log_debug("media", "vips.message", "domain=%s msg=%s", domain ? domain : "",
                  LOG_Q(message ? message : ""));
}

void media_route_vips_log(void)
{
    g_log_set_handler("VIPS", G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION,
                      vips_log_handler, NULL);
}
