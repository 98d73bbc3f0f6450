/*
 * boxshrink: area-average an 8-bit image by an integer factor, the first step
 * of making the 256 px grid thumbnail from the ~1440 px preview, and of
 * scaling a HEIC's decoded tiles towards it (heifgrid.c).
 *
 * libvips 8.14's vips_shrink does the same box average, but cost 6.5 ms for a
 * 1500x1125 preview (perf: its generic per-pixel loops and region hand-offs),
 * about a tenth of all the CPU a 12 MP photo takes. This is the same
 * arithmetic in two passes the compiler vectorises: about 1 ms.
 * tests/unit/media/test_media.c checks it against vips_shrink.
 */
#ifndef SHOEBOX_MEDIA_BOXSHRINK_H
#define SHOEBOX_MEDIA_BOXSHRINK_H

#include <vips/vips.h>

/* Every k x k block of in (uchar, 1-4 bands, its pixels in memory: a
 * vips_image_copy_memory result) becomes one pixel, the rounded mean. The
 * last column and row of blocks may be narrower: they average the pixels they
 * hold, so the output is ceil(w / k) x ceil(h / k) and nothing is cut off.
 * Returns a new memory image (same bands and interpretation), or NULL when
 * in is not such an image, k < 1 or k > 255, or memory runs out. */
VipsImage *boxshrink(VipsImage *in, int k);

/* The same on bytes: src is w x h pixels of bands bytes, rows src_stride
 * apart; the ceil(w / k) x ceil(h / k) result goes to dst, rows dst_stride
 * apart. heifgrid shrinks each decoded tile with it, so a 12 MP plane is never
 * made. Returns 0, or -1 on bad arguments or no memory. */
int boxshrink_buf(const unsigned char *src, size_t src_stride, int w, int h, int bands, int k,
                  unsigned char *dst, size_t dst_stride);

#endif
