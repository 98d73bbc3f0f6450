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

VipsImage *boxshrink(VipsImage *in, int k)
{
    int w, h, bands, ow, oh;
    size_t row_len;
    uint16_t *acc = NULL;
    unsigned char *out = NULL;

    if (!in || k < 1 || k > 255 || in->BandFmt != VIPS_FORMAT_UCHAR || in->Bands < 1 ||
        in->Bands > 4 || !in->data || in->Xsize < 1 || in->Ysize < 1)
        return NULL;
    w = in->Xsize;
    h = in->Ysize;
    bands = in->Bands;
    ow = (w + k - 1) / k;
    oh = (h + k - 1) / k;
    row_len = (size_t)w * (size_t)bands;
    acc = malloc(row_len * sizeof(*acc));
    out = malloc((size_t)ow * (size_t)oh * (size_t)bands);
    if (!acc || !out) {
        free(acc);
        free(out);
        return NULL;
    }
    for (int oy = 0; oy < oh; oy++) {
        int y0 = oy * k, rows = h - y0 < k ? h - y0 : k;
        int last_cols = w - (ow - 1) * k;
        uint32_t n_full = (uint32_t)rows * (uint32_t)k, n_last = (uint32_t)rows * (uint32_t)last_cols;
        uint64_t m_full = recip(n_full), m_last = recip(n_last);
        unsigned char *dst = out + (size_t)oy * (size_t)ow * (size_t)bands;

        memset(acc, 0, row_len * sizeof(*acc));
        for (int y = y0; y < y0 + rows; y++)
            add_row(acc, (const unsigned char *)VIPS_IMAGE_ADDR(in, 0, y), row_len);
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
                *dst++ = (unsigned char)(((uint64_t)sum * m) >> 40);
            }
        }
    }
    free(acc);
    return media_image_adopt(out, ow, oh, bands, in->Type);
}
