/* boxshrink: see boxshrink.h. Pass 1 sums up to k rows into a 16-bit row
 * (contiguous: vectorised; 255 rows * 255 fits), pass 2 sums k-wide runs of
 * that row per band (32 bits) and divides with rounding by a multiply with
 * the reciprocal (a division per output byte was half the cost). */
#include "media/boxshrink.h"

#include "media/internal.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* 2^40 / n rounded up: (x * recip(n)) >> 40 == x / n (integer division)
 * whenever x < 2^40 / n; here x = sum + n / 2 < 256 n and n <= 255 * 255,
 * so 256 n < 2^40 / n holds. */
static uint64_t recip(uint32_t n)
{
    return ((UINT64_C(1) << 40) + n - 1) / n;
}

#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic")))
#endif
static void add_row(uint16_t *restrict acc, const unsigned char *restrict src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        acc[i] = (uint16_t)(acc[i] + src[i]);
}

/* k = 2 on one band, the common case (a HEIC tile's planes, halved): one
 * output row from two input rows, each pixel the rounded mean of 2 x 2;
 * w / 2 whole blocks (the odd last column is left to the caller). */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic")))
#endif
static void halve_row(unsigned char *restrict dst, const unsigned char *restrict r0,
                      const unsigned char *restrict r1, int pairs)
{
    for (int x = 0; x < pairs; x++)
        dst[x] = (unsigned char)((r0[2 * x] + r0[2 * x + 1] + r1[2 * x] + r1[2 * x + 1] + 2) >> 2);
}

static void halve(const unsigned char *src, size_t src_stride, int w, int h, unsigned char *dst,
                  size_t dst_stride)
{
    for (int oy = 0; oy < (h + 1) / 2; oy++) {
        const unsigned char *r0 = src + (size_t)(2 * oy) * src_stride;
        const unsigned char *r1 = 2 * oy + 1 < h ? r0 + src_stride : r0;
        unsigned char *d = dst + (size_t)oy * dst_stride;
        halve_row(d, r0, r1, w / 2);
        if (w & 1) /* the last column; an odd last row reads r0 twice, which
                       * rounds exactly as the mean of its own pixels */
            d[w / 2] = (unsigned char)((r0[w - 1] + r1[w - 1] + 1) >> 1);
    }
}

int boxshrink_buf(const unsigned char *src, size_t src_stride, int w, int h, int bands, int k,
                  unsigned char *dst, size_t dst_stride)
{
    int ow, oh;
    size_t row_len;
    uint16_t *acc;

    if (k < 1 || k > 255 || bands < 1 || bands > 4 || w < 1 || h < 1)
        return -1;
    ow = (w + k - 1) / k;
    oh = (h + k - 1) / k;
    row_len = (size_t)w * (size_t)bands;
    if (k == 1) {
        for (int y = 0; y < h; y++)
            memcpy(dst + (size_t)y * dst_stride, src + (size_t)y * src_stride, row_len);
        return 0;
    }
    if (k == 2 && bands == 1) {
        halve(src, src_stride, w, h, dst, dst_stride);
        return 0;
    }
    acc = malloc(row_len * sizeof(*acc));
    if (!acc)
        return -1;
    for (int oy = 0; oy < oh; oy++) {
        int y0 = oy * k, rows = h - y0 < k ? h - y0 : k;
        int last_cols = w - (ow - 1) * k;
        uint32_t n_full = (uint32_t)rows * (uint32_t)k, n_last = (uint32_t)rows * (uint32_t)last_cols;
        uint64_t m_full = recip(n_full), m_last = recip(n_last);
        unsigned char *d = dst + (size_t)oy * dst_stride;

        memset(acc, 0, row_len * sizeof(*acc));
        for (int y = y0; y < y0 + rows; y++)
            add_row(acc, src + (size_t)y * src_stride, row_len);
        for (int ox = 0; ox < ow; ox++) {
            bool last = ox == ow - 1;
            int cols = last ? last_cols : k;
            uint32_t n = last ? n_last : n_full;
            uint64_t m = last ? m_last : m_full;
            const uint16_t *a = acc + (size_t)ox * (size_t)k * (size_t)bands;
            for (int b = 0; b < bands; b++) {
                uint32_t sum = n / 2;
                for (int x = 0; x < cols; x++)
                    sum += a[(size_t)x * (size_t)bands + (size_t)b];
                *d++ = (unsigned char)(((uint64_t)sum * m) >> 40);
            }
        }
    }
    free(acc);
    return 0;
}

VipsImage *boxshrink(VipsImage *in, int k)
{
    int ow, oh;
    unsigned char *out;

    if (!in || k < 1 || k > 255 || in->BandFmt != VIPS_FORMAT_UCHAR || in->Bands < 1 ||
        in->Bands > 4 || !in->data || in->Xsize < 1 || in->Ysize < 1)
        return NULL;
    ow = (in->Xsize + k - 1) / k;
    oh = (in->Ysize + k - 1) / k;
    out = malloc((size_t)ow * (size_t)oh * (size_t)in->Bands);
    if (!out)
        return NULL;
    if (boxshrink_buf(VIPS_IMAGE_ADDR(in, 0, 0), VIPS_IMAGE_SIZEOF_LINE(in), in->Xsize,
                      in->Ysize, in->Bands, k, out, (size_t)ow * (size_t)in->Bands) != 0) {
        free(out);
        return NULL;
    }
    return media_image_adopt(out, ow, oh, in->Bands, in->Type);
}
