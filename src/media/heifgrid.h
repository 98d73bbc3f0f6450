/*
 * heifgrid: decode a phone HEIC (one HEVC image, or a grid of HEVC tiles as
 * an iPhone writes: 512 px tiles) with libavcodec's HEVC decoder (hevc.h), at
 * the preview size.
 *
 * Why not libheif (1.15) through libvips: for a grid, libheif converts every
 * tile from YCbCr 4:2:0 to planar RGB 4:4:4 with per-pixel float arithmetic
 * before pasting it, then converts the whole 12 MP image again to what the
 * caller asked for; that is ~30 % of its decode time (perf, iPhone photos),
 * and the full-size RGB copies are most of a worker's memory. Here each
 * tile's Y, Cb and Cr planes are box-shrunk as they are pasted, scaled to the
 * preview size plane by plane, and only the ~1.5 MP result is converted to
 * RGB.
 * libheif 1.15 has no API for a tile's coded data, so this file reads the few
 * ISOBMFF boxes it needs itself (meta: pitm, iinf, iloc, iref, iprp, idat),
 * every size checked against what was read. Anything it does not expect
 * (other bit depths or chroma formats, alpha, clap/imir, extents spread over
 * several pieces, data references) is left to the libvips path.
 */
#ifndef SHOEBOX_MEDIA_HEIFGRID_H
#define SHOEBOX_MEDIA_HEIFGRID_H

#include <stddef.h>
#include <stdint.h>
#include <vips/vips.h>

enum heifgrid_rc {
    HEIFGRID_OK = 0,
    HEIFGRID_NOT_HANDLED = 1, /* use the libvips path */
    HEIFGRID_DAMAGED = 2,     /* corrupt data: why says what */
    HEIFGRID_NO_MEMORY = 3,   /* out of memory (libavcodec's included): try again later;
                               * why says where */
};

/* Decode the primary image of the HEIC at path, whose displayed size libheif
 * reported as disp_w x disp_h (already checked against the limits: the coded
 * size must match it), scaled so that its long side is about min_long (never
 * below it, never upscaled). On HEIFGRID_OK *out is a new uchar 3-band RGB
 * memory image, upright (irot applied), carrying the file's ICC profile when
 * it has one; the caller unrefs it. */
enum heifgrid_rc heifgrid_decode(const char *path, int64_t disp_w, int64_t disp_h, int min_long,
                                 VipsImage **out, char *why, size_t why_len);

#endif
