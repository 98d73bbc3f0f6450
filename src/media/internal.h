/*
 * media internals shared by media.c, thumb.c, exif.c, raw.c, jpegscale.c and
 * boxshrink.c, implemented in internal.c. Not part of the contract: only
 * files in src/media/ include this.
 */
#ifndef SHOEBOX_MEDIA_INTERNAL_H
#define SHOEBOX_MEDIA_INTERNAL_H

#include <stddef.h>
#include <vips/vips.h>

#include "media/media.h"

/* Append a warning to out->warnings ("; "-separated, cut when full). */
void media_warn(struct media_output *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Set every field of meta to "absent" (NaN, 0, ""). */
void media_meta_clear(struct media_meta *meta);

/* Copy s[0..n) into dst (cap bytes): stops at the first NUL, replaces
 * control characters with spaces, trims trailing spaces. */
void media_text_copy(char *dst, size_t cap, const char *s, size_t n);

/* The last warning libvips logged (any thread), "" if none: a fallback
 * reason for loaders that warn and then fail without error text. */
void media_last_warning(char *dst, size_t cap);

/* Hand over a buffer allocated by glib as a malloc'd copy (the contract says
 * malloc). Returns NULL when malloc fails. */
unsigned char *media_dup_bytes(const void *p, size_t n);

/* A new uchar memory image over buf (malloc'd, w * h * bands bytes) that owns
 * it: buf is free()d when the image closes, or at once when wrapping fails
 * (NULL). */
VipsImage *media_image_adopt(unsigned char *buf, int w, int h, int bands,
                             VipsInterpretation type);

/* Once, from media_init(): libvips' log messages go to our log, and the last
 * one is kept for media_last_warning(). */
void media_route_vips_log(void);

#endif
