/*
 * make_heic: a corpus of phone-style HEIC photos for bench/heic.py.
 *
 *   make_heic OUT_DIR COUNT [WIDTH HEIGHT [FIRST STEP]]   (default 4032 x 3024, 12 MP)
 *
 * FIRST and STEP (default 1 1) let several processes share the work.
 *
 * Each photo is written as an iPhone writes it (tests/unit/media/heicgen.c):
 * a grid of 512 px HEVC tiles, a 320 px embedded thumbnail, EXIF; every 7th
 * is a portrait stored landscape with irot 90 and EXIF Orientation 6. The
 * pixels: Perlin noise per band (soft, photo-like structure) plus Gaussian
 * sensor noise, seeded by the photo's number, so every file differs. Files
 * that exist are kept.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <vips/vips.h>

#include "heicgen.h"

static const unsigned char exif_o1[] = {
    'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1,
    0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0};
static const unsigned char exif_o6[] = {
    'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1,
    0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0};

/* A w x h uchar sRGB memory image for photo number i. */
static VipsImage *photo(int w, int h, int i)
{
    VipsImage *band[3] = {NULL}, *joined = NULL, *noise = NULL, *sum = NULL, *u8 = NULL;
    VipsImage *mem = NULL;

    for (int b = 0; b < 3; b++)
        if (vips_perlin(&band[b], w, h, "cell_size", 256 + 64 * b, "seed", i * 3 + b, NULL))
            goto out;
    if (vips_bandjoin(band, &joined, 3, NULL) ||
        vips_gaussnoise(&noise, w, h, "sigma", 3.0, "mean", 0.0, "seed", i, NULL) ||
        vips_linear1(joined, &sum, 90.0, 128.0, NULL))
        goto out;
    {
        VipsImage *t = NULL;
        if (vips_add(sum, noise, &t, NULL) || vips_cast(t, &u8, VIPS_FORMAT_UCHAR, NULL)) {
            if (t)
                g_object_unref(t);
            goto out;
        }
        g_object_unref(t);
    }
    mem = vips_image_copy_memory(u8);
    if (mem)
        mem->Type = VIPS_INTERPRETATION_sRGB;
out:
    for (int b = 0; b < 3; b++)
        if (band[b])
            g_object_unref(band[b]);
    if (joined)
        g_object_unref(joined);
    if (noise)
        g_object_unref(noise);
    if (sum)
        g_object_unref(sum);
    if (u8)
        g_object_unref(u8);
    return mem;
}

int main(int argc, char **argv)
{
    int count, w = 4032, h = 3024, first = 1, step = 1;
    char why[256];

    if (VIPS_INIT(argv[0]) || argc < 3) {
        fprintf(stderr, "usage: make_heic OUT_DIR COUNT [WIDTH HEIGHT [FIRST STEP]]\n");
        return 2;
    }
    count = (int)strtol(argv[2], NULL, 10);
    if (argc >= 5) {
        w = (int)strtol(argv[3], NULL, 10);
        h = (int)strtol(argv[4], NULL, 10);
    }
    if (argc >= 7) {
        first = (int)strtol(argv[5], NULL, 10);
        step = (int)strtol(argv[6], NULL, 10);
    }
    if (count < 0 || w < 8 || h < 8 || first < 1 || step < 1) {
        fprintf(stderr, "make_heic: bad numbers\n");
        return 2;
    }
    mkdir(argv[1], 0755);
    for (int i = first; i <= count; i += step) {
        char path[4096], tmp[4200];
        struct stat st;
        bool portrait = i % 7 == 0;
        struct heicgen_opts o = {.tile = 512,
                                 .irot = portrait ? 1 : 0,
                                 .thumb = 320,
                                 .quality = 50,
                                 .exif = portrait ? exif_o6 : exif_o1,
                                 .exif_len = sizeof(exif_o1)};
        VipsImage *img;
        snprintf(path, sizeof(path), "%s/IMG_%04d.HEIC", argv[1], i);
        if (stat(path, &st) == 0 && st.st_size > 0)
            continue;
        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        img = photo(w, h, i);
        /* a temporary name, so that an interrupted run leaves no half file */
        if (!img || heicgen_write(tmp, img, &o, why, sizeof(why)) != 0 || rename(tmp, path)) {
            fprintf(stderr, "make_heic: %s: %s\n", path, img ? why : vips_error_buffer());
            return 1;
        }
        g_object_unref(img);
        printf("%s\n", path);
        fflush(stdout);
    }
    return 0;
}
