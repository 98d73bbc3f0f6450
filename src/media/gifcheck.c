/* gifcheck: see gifcheck.h. The block walk follows the GIF89a specification:
 * header, logical screen descriptor, global colour table, then extensions
 * (0x21) and images (0x2C) made of length-prefixed sub-blocks, then 0x3B. */
#include "media/gifcheck.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <vips/vips.h>

#include "media/internal.h"
#include "media/thumb.h"

/* Skip a chain of sub-blocks; false when the file ends first. */
static bool skip_sub_blocks(FILE *f)
{
    for (;;) {
        int n = getc(f);
        if (n == EOF)
            return false;
        if (n == 0)
            return true;
        if (fseek(f, n, SEEK_CUR) != 0)
            return false;
    }
}

/* Skip n bytes that must all be there. */
static bool skip_exact(FILE *f, long n)
{
    unsigned char buf[256 * 3];

    while (n > 0) {
        size_t k = n < (long)sizeof(buf) ? (size_t)n : sizeof(buf);
        if (fread(buf, 1, k, f) != k)
            return false;
        n -= (long)k;
    }
    return true;
}

/* One image: descriptor (after 0x2C), local colour table, LZW code size, data. */
static bool skip_image(FILE *f)
{
    unsigned char d[9];
    int code_size;

    if (fread(d, 1, sizeof(d), f) != sizeof(d))
        return false;
    if ((d[8] & 0x80) && !skip_exact(f, 3L << ((d[8] & 7) + 1)))
        return false;
    code_size = getc(f);
    if (code_size == EOF)
        return false;
    return skip_sub_blocks(f);
}

static int walk(FILE *f, int *frames, char *why, size_t why_len)
{
    unsigned char h[13];

    if (fread(h, 1, sizeof(h), f) != sizeof(h) || memcmp(h, "GIF", 3) != 0) {
        snprintf(why, why_len, "the GIF header is incomplete");
        return 1;
    }
    if ((h[10] & 0x80) && !skip_exact(f, 3L << ((h[10] & 7) + 1))) {
        snprintf(why, why_len, "the data ends inside the colour table");
        return 1;
    }
    for (;;) {
        int c = getc(f);
        if (c == EOF || c == 0x3B)
            return 0; /* a missing trailer after whole frames loses nothing */
        if (c == 0x21) {
            if (getc(f) == EOF || !skip_sub_blocks(f)) {
                snprintf(why, why_len, "the data ends inside an extension after frame %d", *frames);
                return 1;
            }
        } else if (c == 0x2C) {
            if (!skip_image(f)) {
                snprintf(why, why_len, "the data ends inside frame %d", *frames + 1);
                return 1;
            }
            (*frames)++;
        } else {
            snprintf(why, why_len, "unknown block 0x%02X after frame %d", c, *frames);
            return 1;
        }
    }
}

int gifcheck_structure(const char *path, int *frames, char *why, size_t why_len, struct err *err)
{
    FILE *f = fopen(path, "rbe");
    int rc;

    *frames = 0;
    why[0] = '\0';
    if (!f)
        return err_sys(err, errno, "decode", "cannot open the file");
    rc = walk(f, frames, why, why_len);
    if (ferror(f))
        rc = err_sys(err, EIO, "decode", "cannot read the file");
    fclose(f);
    return rc;
}

int gifcheck_frames(const char *path, int64_t w, int64_t h, int pages, int64_t max_pixels,
                    int *checked, char *why, size_t why_len)
{
    VipsImage *img = NULL;
    double avg;
    int64_t fit = w > 0 && h > 0 ? max_pixels / (w * h) : 0;
    int n = pages < fit ? pages : (int)fit;

    *checked = 1; /* the first frame was decoded for the thumbnails */
    why[0] = '\0';
    if (n < 2)
        return 0;
    vips_error_clear();
    /* Frames 2..n; the first one was decoded for the thumbnails already. */
    if (vips_gifload(path, &img, "page", 1, "n", n - 1, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                     VIPS_FAIL_ON_WARNING, NULL) != 0 ||
        vips_avg(img, &avg, NULL) != 0) {
        thumb_vips_error(why, why_len, path);
        if (img)
            g_object_unref(img);
        return 1;
    }
    g_object_unref(img);
    *checked = n;
    return 0;
}
