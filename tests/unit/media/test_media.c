/*
 * test_media: media_process()/media_probe() on generated images (limits just
 * under and just over, a JPEG header claiming huge dimensions, no upscaling)
 * and on every row of the shared test data's MANIFEST.tsv.
 * Test data: $SHOEBOX_TESTDATA, else ../shared/testdata relative to the cwd;
 * when missing, the manifest tests print SKIP and pass.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <vips/vips.h>

#include "base/sanitizer.h"
#include "media/boxshrink.h"
#include "media/exif.h"
#include "media/jpegenc.h"
#include "media/media.h"

#define MAX_ROWS 256
#define NCOLS 14

enum { C_PATH, C_FORMAT, C_REPO, C_SRC, C_LIC, C_W, C_H, C_MAKE, C_MODEL, C_DATE, C_GPS, C_ORIENT,
       C_EXPECT, C_NOTE };

struct mrow {
    char *col[NCOLS];
};

static char tmpdir[] = "/tmp/test_media.XXXXXX";
static const char *testdata;
static struct mrow mrows[MAX_ROWS];
static int nmrows;
static char *manifest_text;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- helpers ---------------------------------------------------------- */

static void tmp_path(char *dst, size_t cap, const char *name)
{
    int n = snprintf(dst, cap, "%s/%s", tmpdir, name);
    ck_assert(n > 0 && (size_t)n < cap);
}

static void make_jpeg(const char *path, int w, int h)
{
    VipsImage *img = NULL;

    ck_assert_int_eq(vips_black(&img, w, h, "bands", 3, NULL), 0);
    ck_assert_int_eq(vips_jpegsave(img, path, NULL), 0);
    g_object_unref(img);
}

static void thumb_size(const unsigned char *jpg, size_t len, int *w, int *h)
{
    VipsImage *img = NULL;

    ck_assert_msg(jpg && len > 0, "no JPEG");
    ck_assert_int_eq(vips_jpegload_buffer((void *)jpg, len, &img, NULL), 0);
    *w = vips_image_get_width(img);
    *h = vips_image_get_height(img);
    g_object_unref(img);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* Patch the first SOF marker of a JPEG file to claim w x h. */
static void patch_jpeg_size(const char *src, const char *dst, int w, int h)
{
    FILE *f = fopen(src, "rb");
    unsigned char buf[65536];
    size_t n;
    bool done = false;

    ck_assert_ptr_nonnull(f);
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    for (size_t i = 2; i + 9 < n; i++) {
        if (buf[i] == 0xFF && (buf[i + 1] == 0xC0 || buf[i + 1] == 0xC2)) {
            buf[i + 5] = (unsigned char)(h >> 8);
            buf[i + 6] = (unsigned char)h;
            buf[i + 7] = (unsigned char)(w >> 8);
            buf[i + 8] = (unsigned char)w;
            done = true;
            break;
        }
    }
    ck_assert(done);
    write_file(dst, buf, n);
}

/* ---- generated images --------------------------------------------------- */

struct limit_row {
    int w, h;
    int64_t max_pixels, max_dim;
    bool ok;
    const char *msg; /* substring of the error */
};

static const struct limit_row limit_rows[] = {
    {100, 100, 10000, 1000, true, NULL},      /* pixels: the limit */
    {101, 100, 10000, 1000, false, "over the limit"}, /* pixels: limit + one column */
    {200, 10, 1000000, 200, true, NULL},      /* side: the limit */
    {201, 10, 1000000, 200, false, "a side is over the limit of 200"},
    {10, 201, 1000000, 200, false, "a side is over the limit of 200"},
};

START_TEST(test_limits)
{
    const struct limit_row *r = &limit_rows[_i];
    struct media_opts o;
    struct media_output out;
    struct err e = {0};
    char path[512], name[64];
    int rc;

    snprintf(name, sizeof(name), "lim%d.jpg", _i);
    tmp_path(path, sizeof(path), name);
    make_jpeg(path, r->w, r->h);
    media_opts_default(&o);
    o.max_pixels = r->max_pixels;
    o.max_dimension = r->max_dim;
    rc = media_process(path, &o, &out, &e);
    if (r->ok) {
        ck_assert_msg(rc == 0, "%dx%d: %s", r->w, r->h, e.msg);
        ck_assert(out.has_thumb);
        ck_assert_int_eq(out.meta.width, r->w);
    } else {
        ck_assert_int_eq(rc, -1);
        ck_assert_str_eq(e.stage, "limits");
        ck_assert_msg(strstr(e.msg, r->msg), "message '%s'", e.msg);
        ck_assert_int_eq(e.cls, ERR_PERMANENT);
    }
    media_output_release(&out);
}
END_TEST

START_TEST(test_huge_header)
{
    struct media_opts o;
    struct media_output out;
    struct err e = {0};
    char small[512], huge[512], wide[512];
    double t0;

    tmp_path(small, sizeof(small), "small.jpg");
    tmp_path(huge, sizeof(huge), "huge.jpg");
    tmp_path(wide, sizeof(wide), "wide.jpg");
    make_jpeg(small, 16, 16);
    patch_jpeg_size(small, huge, 20000, 14000);
    patch_jpeg_size(small, wide, 40000, 8);
    media_opts_default(&o);
    t0 = now_ms();
    ck_assert_int_eq(media_process(huge, &o, &out, &e), -1);
    ck_assert_str_eq(e.stage, "limits");
    ck_assert_str_eq(e.msg, "20000x14000 pixels (280 Mpx) is over the limit of 120 Mpx");
    ck_assert_msg(now_ms() - t0 < 1000, "refused from the header, not after decoding");
    media_output_release(&out);
    ck_assert_int_eq(media_process(wide, &o, &out, &e), -1);
    ck_assert_str_eq(e.stage, "limits");
    ck_assert_msg(strstr(e.msg, "40000x8 pixels"), "%s", e.msg);
    media_output_release(&out);
}
END_TEST

START_TEST(test_no_upscale)
{
    struct media_opts o;
    struct media_output out;
    struct err e = {0};
    char path[512];
    int w, h;

    tmp_path(path, sizeof(path), "tiny.jpg");
    make_jpeg(path, 100, 50);
    media_opts_default(&o);
    ck_assert_int_eq(media_process(path, &o, &out, &e), 0);
    ck_assert(out.has_thumb);
    thumb_size(out.preview, out.preview_len, &w, &h);
    ck_assert_int_eq(w, 100);
    ck_assert_int_eq(h, 50);
    thumb_size(out.thumb, out.thumb_len, &w, &h);
    ck_assert_int_eq(w, 100);
    ck_assert_int_eq(h, 50);
    media_output_release(&out);

    tmp_path(path, sizeof(path), "big.jpg");
    make_jpeg(path, 3000, 2000);
    ck_assert_int_eq(media_process(path, &o, &out, &e), 0);
    thumb_size(out.preview, out.preview_len, &w, &h);
    /* 3000 px decodes at scale 4/8 to 1500 px: within 10 % of the preview size, kept. */
    ck_assert_int_eq(w, 1500);
    ck_assert_int_eq(h, 1000);
    ck_assert(w >= MEDIA_PREVIEW_SIZE && w <= MEDIA_PREVIEW_MAX);
    thumb_size(out.thumb, out.thumb_len, &w, &h);
    ck_assert_int_eq(w, MEDIA_THUMB_SIZE);
    media_output_release(&out);
}
END_TEST

START_TEST(test_unsupported_and_missing)
{
    struct media_opts o;
    struct media_output out;
    struct err e = {0};
    char path[512];

    media_opts_default(&o);
    tmp_path(path, sizeof(path), "doc.pdf");
    write_file(path, "%PDF-1.4\n", 9);
    ck_assert_int_eq(media_process(path, &o, &out, &e), -1);
    ck_assert_str_eq(e.stage, "sniff");
    ck_assert_str_eq(e.msg, "unsupported format: PDF document");
    media_output_release(&out);

    tmp_path(path, sizeof(path), "does-not-exist");
    ck_assert_int_eq(media_process(path, &o, &out, &e), -1);
    ck_assert_str_eq(e.stage, "sniff");
    ck_assert_int_eq(e.sys_errno, ENOENT);
    media_output_release(&out);
}
END_TEST

struct date_row {
    const char *in, *out;
};

static const struct date_row date_rows[] = {
    {"2021:09:27 07:13:47", "2021-09-27T07:13:47"},
    {"0000:00:00 00:00:00", NULL},
    {"    :  :     :  :  ", NULL},
    {"2021:13:01 00:00:00", NULL},
    {"2021:01:01 24:00:00", NULL},
    {"2021:01:01", NULL},
    {"", NULL},
    {"2021-01-01T10:00:00", NULL},
};

START_TEST(test_exif_date)
{
    const struct date_row *r = &date_rows[_i];
    char out[32];
    int rc = exifmeta_date(r->in, out, sizeof(out));

    if (r->out) {
        ck_assert_int_eq(rc, 0);
        ck_assert_str_eq(out, r->out);
    } else {
        ck_assert_int_eq(rc, -1);
    }
}
END_TEST

/* ---- MANIFEST ----------------------------------------------------------- */

static void load_manifest(void)
{
    char path[1024];
    FILE *f;
    long len;
    char *p;

    testdata = getenv("SHOEBOX_TESTDATA");
    if (!testdata || !testdata[0])
        testdata = "../shared/testdata";
    snprintf(path, sizeof(path), "%s/MANIFEST.tsv", testdata);
    f = fopen(path, "rb");
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    manifest_text = calloc(1, (size_t)len + 1);
    if (fread(manifest_text, 1, (size_t)len, f) != (size_t)len)
        len = 0;
    fclose(f);
    p = manifest_text;
    for (bool header = true; p && *p && nmrows < MAX_ROWS; header = false) {
        char *nl = strchr(p, '\n');
        struct mrow *r = &mrows[nmrows];
        int c = 0;
        if (nl)
            *nl = '\0';
        r->col[c++] = p;
        for (char *q = p; *q && c < NCOLS; q++) {
            if (*q == '\t') {
                *q = '\0';
                r->col[c++] = q + 1;
            }
        }
        if (!header && c == NCOLS)
            nmrows++;
        p = nl ? nl + 1 : NULL;
    }
}

static bool is_blank(const char *s)
{
    return !s || !s[0];
}

static int64_t num(const char *s)
{
    int64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++)
        v = v * 10 + (*s - '0');
    return v;
}

START_TEST(test_manifest_row)
{
    const struct mrow *r = &mrows[_i];
    const char *rel = r->col[C_PATH], *expect = r->col[C_EXPECT];
    struct media_opts o;
    struct media_output out;
    struct err e = {0};
    char path[1024];
    double t0, ms;
    int rc;

    snprintf(path, sizeof(path), "%s/%s", testdata, rel);
    media_opts_default(&o);
    t0 = now_ms();
    rc = media_process(path, &o, &out, &e);
    ms = now_ms() - t0;
    printf("%-70s %-8s rc=%d %5.0f ms %4lldx%-4lld thumb=%d fmt=%s | %s%s%s%s\n", rel, expect, rc,
           ms, (long long)out.meta.width, (long long)out.meta.height, out.has_thumb,
           out.meta.format, rc ? e.stage : "", rc ? ": " : "", rc ? e.msg : "", out.warnings);
    fflush(stdout);
    if (strcmp(expect, "reject") == 0) {
        ck_assert_msg(rc == -1, "%s: expected reject", rel);
        ck_assert_msg(e.msg[0] && e.stage[0], "%s: reject without a reason", rel);
        goto out;
    }
    if (strcmp(expect, "damaged") == 0) {
        ck_assert_msg(rc == -1 ? e.msg[0] != '\0' : (!out.has_thumb && out.warnings[0]),
                      "%s: damaged must fail with a reason or keep without thumbnail + warning",
                      rel);
        goto out;
    }
    if (UNDER_ASAN && rc == -1 && strcmp(e.stage, "decode") == 0 &&
        strstr(r->col[C_NOTE], "not for pixels")) {
        /* Panasonic.rw2 has its image data stripped; LibRaw 0.20's
         * panasonic_load_raw() then reads a part of the LibRaw object its
         * constructor leaves unset. raw.c has malloc zero that object
         * (M_PERTURB); ASan's allocator ignores that, so only there may the
         * decode still fail. Check the metadata then. */
        char w[8];
        printf("  KNOWN: stripped RAW data under ASan; metadata checked\n");
        ck_assert_int_eq(media_probe(path, &o, &out.meta, w, sizeof(w), &e), 0);
        out.has_thumb = false;
    } else {
        ck_assert_msg(rc == 0, "%s: %s: %s", rel, e.stage, e.msg);
    }
    if (out.has_thumb || rc == 0)
        ck_assert_msg(out.has_thumb && out.thumb && out.preview, "%s: no thumbnail (%s)", rel,
                  out.warnings);
    ck_assert_msg(out.meta.width == num(r->col[C_W]) && out.meta.height == num(r->col[C_H]),
                  "%s: size %lldx%lld, want %sx%s", rel, (long long)out.meta.width,
                  (long long)out.meta.height, r->col[C_W], r->col[C_H]);
    ck_assert_msg(strcmp(out.meta.make, r->col[C_MAKE]) == 0, "%s: make '%s', want '%s'", rel,
                  out.meta.make, r->col[C_MAKE]);
    ck_assert_msg(strcmp(out.meta.model, r->col[C_MODEL]) == 0, "%s: model '%s', want '%s'", rel,
                  out.meta.model, r->col[C_MODEL]);
    if (!is_blank(r->col[C_DATE])) {
        char want[32] = "";
        exifmeta_date(r->col[C_DATE], want, sizeof(want)); /* "" for 0000:00:00 */
        ck_assert_msg(strcmp(out.meta.taken_at, want) == 0, "%s: taken_at '%s', want '%s'", rel,
                      out.meta.taken_at, want);
    }
    if (!is_blank(r->col[C_GPS])) {
        double lat = NAN, lon = NAN;
        ck_assert_int_eq(sscanf(r->col[C_GPS], "%lf,%lf", &lat, &lon), 2);
        ck_assert_msg(fabs(out.meta.gps_lat - lat) < 1e-4 && fabs(out.meta.gps_lon - lon) < 1e-4,
                      "%s: gps %f,%f want %f,%f", rel, out.meta.gps_lat, out.meta.gps_lon, lat,
                      lon);
    } else {
        ck_assert_msg(isnan(out.meta.gps_lat), "%s: unexpected gps", rel);
    }
    /* Thumbnails upright: the displayed shape, never the stored one. */
    if (out.has_thumb) {
        int tw, th, pw, ph;
        thumb_size(out.thumb, out.thumb_len, &tw, &th);
        thumb_size(out.preview, out.preview_len, &pw, &ph);
        if (out.meta.width != out.meta.height) {
            bool wide = out.meta.width > out.meta.height;
            ck_assert_msg((tw > th) == wide && (pw > ph) == wide,
                          "%s: thumbnail %dx%d / preview %dx%d not upright", rel, tw, th, pw, ph);
        }
        ck_assert(tw <= MEDIA_THUMB_SIZE && th <= MEDIA_THUMB_SIZE);
        ck_assert(pw <= MEDIA_PREVIEW_MAX && ph <= MEDIA_PREVIEW_MAX);
        if (strncmp(rel, "orientation/Landscape", 21) == 0)
            ck_assert_msg(tw > th, "%s: landscape thumbnail %dx%d", rel, tw, th);
        if (strncmp(rel, "orientation/Portrait", 20) == 0)
            ck_assert_msg(th > tw, "%s: portrait thumbnail %dx%d", rel, tw, th);
    }
out:
    media_output_release(&out);
}
END_TEST

/* media_probe agrees with media_process and decodes nothing. */
START_TEST(test_probe)
{
    struct media_opts o;
    struct media_meta m;
    struct err e = {0};
    char path[1024], warn[256];

    media_opts_default(&o);
    snprintf(path, sizeof(path), "%s/jpeg/Apple iPhone 4.jpg", testdata);
    ck_assert_int_eq(media_probe(path, &o, &m, warn, sizeof(warn), &e), 0);
    ck_assert_str_eq(m.make, "Apple");
    ck_assert_str_eq(m.taken_at, "2011-01-13T14:33:39");
    ck_assert_int_eq(m.width, 1296);
    snprintf(path, sizeof(path), "%s/bad/truncated.jpg", testdata);
    ck_assert_int_eq(media_probe(path, &o, &m, warn, sizeof(warn), &e), 0);
    ck_assert_int_eq(m.width, 2725);
    snprintf(path, sizeof(path), "%s/raw/Panasonic.rw2", testdata);
    ck_assert_int_eq(media_probe(path, &o, &m, NULL, 0, &e), 0);
    ck_assert_str_eq(m.format, "rw2");
    ck_assert_str_eq(m.taken_at, "2008-08-06T15:21:56");
}
END_TEST

/* Timing of the team's benchmark photo (printed, not asserted). */
START_TEST(test_timing_12mp)
{
    struct media_opts o;
    struct media_output out;
    struct err e = {0};
    char path[1024];
    double best = 1e9;

    media_opts_default(&o);
    snprintf(path, sizeof(path), "%s/jpeg/Apple_iPhone_13_Pro__IMG_8568.JPG", testdata);
    for (int i = 0; i < 3; i++) {
        double t0 = now_ms(), t;
        ck_assert_int_eq(media_process(path, &o, &out, &e), 0);
        t = now_ms() - t0;
        if (t < best)
            best = t;
        if (i == 0)
            printf("12 MP JPEG: preview %zu bytes, thumb %zu bytes\n", out.preview_len,
                   out.thumb_len);
        media_output_release(&out);
    }
    printf("12 MP JPEG -> %d + %d px: best of 3 %.0f ms\n", MEDIA_PREVIEW_SIZE, MEDIA_THUMB_SIZE,
           best);
}
END_TEST

/* ---- boxshrink --------------------------------------------------------- */

static VipsImage *noise_image(int w, int h, int bands, unsigned seed, unsigned char **px)
{
    size_t n = (size_t)w * (size_t)h * (size_t)bands;
    VipsImage *img;

    *px = malloc(n);
    ck_assert_ptr_nonnull(*px);
    srand(seed);
    for (size_t i = 0; i < n; i++)
        (*px)[i] = (unsigned char)(rand() % 256);
    img = vips_image_new_from_memory(*px, n, w, h, bands, VIPS_FORMAT_UCHAR);
    ck_assert_ptr_nonnull(img);
    return img;
}

/* Every output pixel is the rounded mean of its block, edge blocks included
 * (37 x 23 by 5: the last column of blocks is 2 wide, the last row 3 high). */
START_TEST(test_boxshrink_mean)
{
    static const int shapes[][4] = {{37, 23, 3, 5}, {40, 40, 1, 4}, {9, 7, 4, 3}, {5, 5, 3, 1},
                                    {255, 3, 2, 255}, {64, 32, 1, 2}, {33, 17, 1, 2},
                                    {1, 1, 1, 2},     {35, 9, 2, 2}};
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        int w = shapes[s][0], h = shapes[s][1], bands = shapes[s][2], k = shapes[s][3];
        unsigned char *px;
        VipsImage *in = noise_image(w, h, bands, (unsigned)s + 1, &px), *out;

        out = boxshrink(in, k);
        ck_assert_ptr_nonnull(out);
        ck_assert_int_eq(out->Xsize, (w + k - 1) / k);
        ck_assert_int_eq(out->Ysize, (h + k - 1) / k);
        ck_assert_int_eq(out->Bands, bands);
        for (int oy = 0; oy < out->Ysize; oy++)
            for (int ox = 0; ox < out->Xsize; ox++)
                for (int b = 0; b < bands; b++) {
                    double sum = 0;
                    int n = 0;
                    for (int y = oy * k; y < h && y < (oy + 1) * k; y++)
                        for (int x = ox * k; x < w && x < (ox + 1) * k; x++, n++)
                            sum += px[((size_t)y * w + x) * bands + b];
                    int want = (int)floor(sum / n + 0.5);
                    int got = ((unsigned char *)VIPS_IMAGE_ADDR(out, ox, oy))[b];
                    ck_assert_msg(got == want, "%dx%dx%d by %d: pixel %d,%d band %d: %d, want %d",
                                  w, h, bands, k, ox, oy, b, got, want);
                }
        g_object_unref(out);
        g_object_unref(in);
        free(px);
    }
}
END_TEST

/* boxshrink_buf between rows with gaps (a decoded tile's stride, a plane's
 * width) writes the same pixels as boxshrink, and nothing beyond each row. */
START_TEST(test_boxshrink_buf_strides)
{
    static const int shapes[][3] = {{33, 17, 2}, {64, 30, 2}, {37, 23, 5}, {20, 20, 1}};
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        int w = shapes[s][0], h = shapes[s][1], k = shapes[s][2];
        int ow = (w + k - 1) / k, oh = (h + k - 1) / k;
        size_t ss = (size_t)w + 13, ds = (size_t)ow + 7;
        unsigned char *px, *src = malloc(ss * (size_t)h), *dst = malloc(ds * (size_t)oh);
        VipsImage *in = noise_image(w, h, 1, (unsigned)s + 40, &px), *want;

        ck_assert_ptr_nonnull(src);
        ck_assert_ptr_nonnull(dst);
        memset(src, 0xEE, ss * (size_t)h);
        memset(dst, 0xAB, ds * (size_t)oh);
        for (int y = 0; y < h; y++)
            memcpy(src + (size_t)y * ss, px + (size_t)y * (size_t)w, (size_t)w);
        ck_assert_int_eq(boxshrink_buf(src, ss, w, h, 1, k, dst, ds), 0);
        want = boxshrink(in, k);
        ck_assert_ptr_nonnull(want);
        for (int y = 0; y < oh; y++) {
            ck_assert_mem_eq(dst + (size_t)y * ds, VIPS_IMAGE_ADDR(want, 0, y), (size_t)ow);
            for (size_t x = (size_t)ow; x < ds; x++)
                ck_assert_uint_eq(dst[(size_t)y * ds + x], 0xAB);
        }
        ck_assert_int_eq(boxshrink_buf(src, ss, w, h, 1, 0, dst, ds), -1);
        g_object_unref(want);
        g_object_unref(in);
        free(px);
        free(src);
        free(dst);
    }
}
END_TEST

/* The same as libvips' own box shrink (which rounds after each direction, so
 * within 1), and refuses what it cannot take. */
START_TEST(test_boxshrink_vips)
{
    unsigned char *px;
    VipsImage *in = noise_image(300, 200, 3, 7, &px), *mine, *theirs = NULL, *mem, *f = NULL;
    int worst = 0;

    mine = boxshrink(in, 4);
    ck_assert_ptr_nonnull(mine);
    ck_assert_int_eq(vips_shrink(in, &theirs, 4, 4, NULL), 0);
    mem = vips_image_copy_memory(theirs);
    ck_assert_ptr_nonnull(mem);
    ck_assert_int_eq(mem->Xsize, mine->Xsize);
    ck_assert_int_eq(mem->Ysize, mine->Ysize);
    for (int y = 0; y < mine->Ysize; y++) {
        const unsigned char *a = VIPS_IMAGE_ADDR(mine, 0, y), *b = VIPS_IMAGE_ADDR(mem, 0, y);
        for (int i = 0; i < mine->Xsize * 3; i++)
            worst = abs(a[i] - b[i]) > worst ? abs(a[i] - b[i]) : worst;
    }
    ck_assert_int_le(worst, 1);
    ck_assert_ptr_null(boxshrink(in, 0));
    ck_assert_ptr_null(boxshrink(in, 256));
    ck_assert_ptr_null(boxshrink(NULL, 2));
    ck_assert_int_eq(vips_cast(in, &f, VIPS_FORMAT_FLOAT, NULL), 0);
    ck_assert_ptr_null(boxshrink(f, 2)); /* not uchar, and not in memory */
    g_object_unref(f);
    g_object_unref(mem);
    g_object_unref(theirs);
    g_object_unref(mine);
    g_object_unref(in);
    free(px);
}
END_TEST

/* ---- jpegenc ----------------------------------------------------------- */

/* What the preview encoder writes reads back as the same picture, about as
 * large as libvips' own jpegsave makes it; what it cannot take goes to libvips. */
START_TEST(test_jpegenc)
{
    VipsImage *grad = NULL, *rgb = NULL, *mem, *back = NULL, *diff = NULL, *f = NULL;
    unsigned char *jpg = NULL;
    size_t len = 0, vlen = 0;
    void *vbuf = NULL;
    char why[200];
    double avg = 0;

    /* a smooth colour image: x and y ramps and their mean */
    ck_assert_int_eq(vips_xyz(&grad, 640, 480, NULL), 0);
    {
        VipsImage *bands[3] = {NULL, NULL, NULL}, *sum = NULL;
        ck_assert_int_eq(vips_extract_band(grad, &bands[0], 0, NULL), 0);
        ck_assert_int_eq(vips_extract_band(grad, &bands[1], 1, NULL), 0);
        ck_assert_int_eq(vips_add(bands[0], bands[1], &sum, NULL), 0);
        ck_assert_int_eq(vips_linear1(sum, &bands[2], 0.2, 0, NULL), 0);
        VipsImage *joined = NULL;
        ck_assert_int_eq(vips_bandjoin(bands, &joined, 3, NULL), 0);
        ck_assert_int_eq(vips_cast(joined, &rgb, VIPS_FORMAT_UCHAR, NULL), 0);
        for (int i = 0; i < 3; i++)
            g_object_unref(bands[i]);
        g_object_unref(sum);
        g_object_unref(joined);
    }
    rgb->Type = VIPS_INTERPRETATION_sRGB;
    mem = vips_image_copy_memory(rgb);
    ck_assert_ptr_nonnull(mem);
    ck_assert_int_eq(jpegenc_encode(mem, 82, &jpg, &len, why, sizeof(why)), JPEGENC_OK);
    ck_assert_uint_gt(len, 1000);
    ck_assert(jpg[0] == 0xFF && jpg[1] == 0xD8 && jpg[len - 2] == 0xFF && jpg[len - 1] == 0xD9);
    ck_assert_int_eq(vips_jpegsave_buffer(mem, &vbuf, &vlen, "Q", 82, "strip", TRUE, NULL), 0);
    ck_assert_msg(len > vlen * 9 / 10 && len < vlen * 11 / 10, "%zu bytes vs libvips %zu", len,
                  vlen);
    back = vips_image_new_from_buffer(jpg, len, "", NULL);
    ck_assert_ptr_nonnull(back);
    ck_assert_int_eq(back->Xsize, 640);
    ck_assert_int_eq(back->Ysize, 480);
    ck_assert_int_eq(back->Bands, 3);
    ck_assert_int_eq(vips_subtract(back, mem, &diff, NULL), 0);
    {
        VipsImage *a = NULL;
        ck_assert_int_eq(vips_abs(diff, &a, NULL), 0);
        ck_assert_int_eq(vips_avg(a, &avg, NULL), 0);
        g_object_unref(a);
    }
    ck_assert_msg(avg < 2.0, "mean difference %.2f", avg);
    /* not for it: float pixels, or pixels not in memory */
    ck_assert_int_eq(vips_cast(mem, &f, VIPS_FORMAT_FLOAT, NULL), 0);
    {
        unsigned char *none = NULL;
        size_t nlen = 0;
        ck_assert_int_eq(jpegenc_encode(f, 82, &none, &nlen, why, sizeof(why)),
                         JPEGENC_NOT_HANDLED);
        ck_assert_int_eq(jpegenc_encode(rgb, 82, &none, &nlen, why, sizeof(why)),
                         JPEGENC_NOT_HANDLED);
        ck_assert_ptr_null(none);
    }
    g_free(vbuf);
    free(jpg);
    g_object_unref(f);
    g_object_unref(diff);
    g_object_unref(back);
    g_object_unref(mem);
    g_object_unref(rgb);
    g_object_unref(grad);
}
END_TEST

START_TEST(test_skip)
{
    printf("SKIP: no MANIFEST.tsv under '%s' (set SHOEBOX_TESTDATA)\n", testdata);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("media");
    TCase *gen = tcase_create("generated"), *man = tcase_create("manifest");
    SRunner *sr;
    struct err e = {0};
    int failed;

    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    if (media_init("test_media", 2, &e) != 0) {
        fprintf(stderr, "media_init: %s\n", e.msg);
        return 1;
    }
    load_manifest();
    tcase_set_timeout(gen, 60);
    tcase_set_timeout(man, 120);
    tcase_add_loop_test(gen, test_limits, 0, (int)(sizeof(limit_rows) / sizeof(limit_rows[0])));
    tcase_add_test(gen, test_huge_header);
    tcase_add_test(gen, test_boxshrink_mean);
    tcase_add_test(gen, test_boxshrink_buf_strides);
    tcase_add_test(gen, test_boxshrink_vips);
    tcase_add_test(gen, test_jpegenc);
    tcase_add_test(gen, test_no_upscale);
    tcase_add_test(gen, test_unsupported_and_missing);
    tcase_add_loop_test(gen, test_exif_date, 0, (int)(sizeof(date_rows) / sizeof(date_rows[0])));
    if (nmrows > 0) {
        tcase_add_loop_test(man, test_manifest_row, 0, nmrows);
        tcase_add_test(man, test_probe);
        tcase_add_test(man, test_timing_12mp);
    } else {
        tcase_add_test(man, test_skip);
    }
    suite_add_tcase(s, gen);
    suite_add_tcase(s, man);
    sr = srunner_create(s);
    /* No fork: libvips was initialised in this process, and its threads do
     * not survive fork(). */
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    free(manifest_text);
    media_thread_shutdown();
    {
        char cmd_dir[64];
        snprintf(cmd_dir, sizeof(cmd_dir), "%s", tmpdir);
        /* remove generated files, then the directory */
        for (int i = 0; i < 16; i++) {
            char p[128];
            const char *names[] = {"lim0.jpg", "lim1.jpg", "lim2.jpg", "lim3.jpg", "lim4.jpg",
                                   "small.jpg", "huge.jpg", "wide.jpg", "tiny.jpg", "big.jpg",
                                   "doc.pdf"};
            if (i >= (int)(sizeof(names) / sizeof(names[0])))
                break;
            snprintf(p, sizeof(p), "%s/%s", cmd_dir, names[i]);
            unlink(p);
        }
        rmdir(cmd_dir);
    }
    return failed ? 1 : 0;
}
