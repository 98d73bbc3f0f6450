/*
 * heicgen: write phone-style HEIC files for tests and benchmarks: the image
 * as a grid of HEVC tiles (an iPhone writes 512 px tiles), hidden tiles, an
 * optional irot rotation, an optional embedded thumbnail and EXIF block.
 *
 * libheif 1.15 cannot write grids (heif_context_encode_grid came in 1.18)
 * and `vips heifsave` writes one image, so each tile is encoded on its own
 * with libheif (x265) and the boxes of the grid file are written here:
 * ftyp, meta (hdlr, pitm, iinf, iloc, iref, iprp), mdat.
 * Not part of Shoebox: linked by tests/unit/media and bench/make_heic.
 */
#ifndef SHOEBOX_TESTS_HEICGEN_H
#define SHOEBOX_TESTS_HEICGEN_H

#include <stddef.h>
#include <vips/vips.h>

struct heicgen_opts {
    int tile;        /* tile side (multiple of 8), 0: one image, no grid */
    int irot;        /* anticlockwise quarter turns stored in irot, 0-3 */
    int thumb;       /* long side of an embedded thumbnail, 0: none */
    int quality;     /* x265 quality 1-100 */
    const unsigned char *exif; /* "Exif\0\0" + TIFF, NULL for none */
    size_t exif_len;
};

/* Write rgb (uchar, 3 bands, any size) to path as HEIC. 0, or -1 with a
 * message in why. */
int heicgen_write(const char *path, VipsImage *rgb, const struct heicgen_opts *o, char *why,
                  size_t why_len);

#endif
