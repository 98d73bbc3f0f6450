/*
 * jpegscale: decode a JPEG once, at the smallest libjpeg-turbo DCT scale M/8
 * (M = 1..8) whose long side still reaches the largest size the outputs need.
 * libvips 8.14 only offers the scales 1/2, 1/4 and 1/8 ("shrink"); with M/8 a
 * 4000 px photo decodes straight to 1500 px for a ~1440 px preview, so no
 * full-resolution pass and almost no resampling follow (LIBRARY-NOTES: the
 * 8.14 resampler, not the codec, is the cost).
 * Only for the plain case: 8-bit YCbCr or greyscale without an ICC profile.
 * Anything else (CMYK, a profile to honour) is left to the libvips path.
 */
#ifndef SHOEBOX_MEDIA_JPEGSCALE_H
#define SHOEBOX_MEDIA_JPEGSCALE_H

#include <stdbool.h>
#include <stddef.h>
#include <vips/vips.h>

enum jpegscale_rc {
    JPEGSCALE_OK = 0,
    JPEGSCALE_NOT_HANDLED = 1, /* use the libvips path */
    JPEGSCALE_DAMAGED = 2,     /* corrupt data: why says what libjpeg said */
    JPEGSCALE_NO_MEMORY = 3,
    JPEGSCALE_TOO_MANY_SCANS = 4, /* over LIMIT_JPEG_SCANS: why says so */
};

/* Decode path with long side >= min_long (or full size when smaller). On
 * JPEGSCALE_OK *out is a new uchar memory image (1 or 3 bands) the caller
 * unrefs; orientation is NOT applied. */
enum jpegscale_rc jpegscale_decode(const char *path, int min_long, VipsImage **out, char *why,
                                   size_t why_len);
/* Scans in the JPEG at path, counted from its markers without decoding (for
 * files the libvips path decodes, which has no scan limit): stops counting
 * past `limit`. Returns the count (limit + 1 when over), -1 when unreadable. */
int jpegscale_count_scans(const char *path, int limit);
/* The scale numerator M (1..8) chosen for a long side of `lng` and a wanted min_long. */
int jpegscale_pick(int lng, int min_long);

#endif
