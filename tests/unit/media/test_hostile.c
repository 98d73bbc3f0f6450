/*
 * test_hostile: files that cost too much or hide damage, all generated here.
 *   - a progressive JPEG with more scans than LIMIT_JPEG_SCANS fails at
 *     "limits", on the libjpeg path and on the libvips one (ICC profile); one
 *     with exactly the limit is fine;
 *   - an animated GIF whose later frame has invalid LZW data, or whose data
 *     ends inside a later frame, is kept with a warning, never silently;
 *   - data without magic that LibRaw knows by its size (AVT F-080C: 1024x768
 *     8-bit, 786432 bytes) is a RAW; one byte more is refused as unknown data.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <vips/vips.h>

#include <jpeglib.h> /* after stdio.h: it uses FILE */

#include "base/limits.h"
#include "media/media.h"

static char tmpdir[] = "/tmp/test_hostile.XXXXXX";

static void tmp_path(char *dst, size_t cap, const char *name)
{
    int n = snprintf(dst, cap, "%s/%s", tmpdir, name);
    ck_assert(n > 0 && (size_t)n < cap);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* ---- JPEG with many scans ------------------------------------------------ */

/* The longest valid progressive script for 3 components: per component the DC
 * and then each AC coefficient alone, first at Al=10 (libjpeg's most for 8-bit
 * data), refined bit by bit to 0 (11 scans each: 3 x 64 x 11 = 2112). Its
 * first n scans are a valid script. */
static jpeg_scan_info *long_script(int n)
{
    jpeg_scan_info *s = calloc((size_t)n, sizeof(*s));
    int k = 0;

    ck_assert_ptr_nonnull(s);
    for (int coef = 0; coef < 64 && k < n; coef++)
        for (int c = 0; c < 3 && k < n; c++)
            for (int al = 10; al >= 0 && k < n; al--, k++) {
                s[k].comps_in_scan = 1;
                s[k].component_index[0] = c;
                s[k].Ss = s[k].Se = coef;
                s[k].Ah = al == 10 ? 0 : al + 1;
                s[k].Al = al;
            }
    ck_assert_int_eq(k, n);
    return s;
}

/* icc: with an APP2 ICC profile (any bytes), so that the libvips path decodes it. */
static void make_scans_jpeg(const char *path, int w, int h, int nscans, bool icc)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    jpeg_scan_info *script = long_script(nscans);
    unsigned char *row = malloc((size_t)w * 3);
    FILE *f = fopen(path, "wb");

    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(row);
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    c.scan_info = script;
    c.num_scans = nscans;
    jpeg_start_compress(&c, TRUE);
    if (icc)
        jpeg_write_icc_profile(&c, (const JOCTET *)"not a real profile", 18);
    while (c.next_scanline < c.image_height) {
        for (int x = 0; x < w; x++) {
            row[3 * x] = (unsigned char)(x * 7 + c.next_scanline);
            row[3 * x + 1] = (unsigned char)(x ^ c.next_scanline);
            row[3 * x + 2] = (unsigned char)(255 - x);
        }
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
    free(row);
    free(script);
}

static int process(const char *path, struct media_output *out, struct err *err)
{
    struct media_opts o;

    media_opts_default(&o);
    memset(err, 0, sizeof(*err));
    return media_process(path, &o, out, err);
}

START_TEST(test_jpeg_scan_limit)
{
    char path[256];
    struct media_output out;
    struct err err;

    /* Exactly the limit: an ordinary (if odd) progressive file. */
    tmp_path(path, sizeof(path), "scans-at-limit.jpg");
    make_scans_jpeg(path, 64, 48, LIMIT_JPEG_SCANS, false);
    ck_assert_msg(process(path, &out, &err) == 0, "%s: %s", err.stage, err.msg);
    ck_assert(out.has_thumb);
    ck_assert_str_eq(out.warnings, "");
    media_output_release(&out);

    /* One scan more: refused before the remaining scans cost anything. */
    tmp_path(path, sizeof(path), "scans-over-limit.jpg");
    make_scans_jpeg(path, 64, 48, LIMIT_JPEG_SCANS + 1, false);
    ck_assert_int_eq(process(path, &out, &err), -1);
    ck_assert_str_eq(err.stage, "limits");
    ck_assert_msg(strstr(err.msg, "scans") && strstr(err.msg, "over the limit"), "%s", err.msg);
    ck_assert_int_eq(err.cls, ERR_PERMANENT);
    media_output_release(&out);

    /* The same through libvips (a profile to honour): counted from the markers. */
    tmp_path(path, sizeof(path), "scans-icc.jpg");
    make_scans_jpeg(path, 64, 48, LIMIT_JPEG_SCANS + 1, true);
    ck_assert_int_eq(process(path, &out, &err), -1);
    ck_assert_str_eq(err.stage, "limits");
    ck_assert_msg(strstr(err.msg, "scans") && strstr(err.msg, "over the limit"), "%s", err.msg);
    media_output_release(&out);
}
END_TEST

/* ---- GIF with a damaged later frame -------------------------------------- */

struct bytes {
    unsigned char *p;
    size_t n, cap;
};

static void put(struct bytes *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void put1(struct bytes *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    put(b, &c, 1);
}

static void put16(struct bytes *b, unsigned v)
{
    put1(b, v & 0xFF);
    put1(b, v >> 8);
}

enum damage { D_NONE, D_CODES, D_CUT };

/* An animated GIF of 32x32 frames, 128 colours. LZW without compression: 8-bit
 * codes, a clear code (128) every 100 pixels, so the code width never grows.
 * Frame `bad` gets invalid codes (D_CODES) or the file ends inside it (D_CUT). */
static void make_gif(const char *path, int frames, int bad, enum damage dmg)
{
    struct bytes b = {0};
    enum { W = 32, H = 32 };

    put(&b, "GIF89a", 6);
    put16(&b, W);
    put16(&b, H);
    put1(&b, 0xF6); /* global table of 128 colours */
    put1(&b, 0);
    put1(&b, 0);
    for (unsigned i = 0; i < 128; i++) {
        put1(&b, i * 2);
        put1(&b, i * 5);
        put1(&b, 255 - i * 2);
    }
    put(&b, "\x21\xFF\x0BNETSCAPE2.0\x03\x01\x00\x00\x00", 19);
    for (int k = 0; k < frames; k++) {
        unsigned char codes[W * H + W * H / 100 + 8];
        size_t nc = 0, start = b.n;

        for (int i = 0; i < W * H; i++) {
            if (i % 100 == 0)
                codes[nc++] = 128;
            codes[nc++] = (unsigned char)((i % W + i / W + 17 * k) % 128);
        }
        codes[nc++] = 129;
        if (k == bad && dmg == D_CODES)
            for (size_t i = 50; i < 210; i++)
                codes[i] = (unsigned char)(250 + i % 4); /* codes not in the table */
        put(&b, "\x21\xF9\x04\x00\x0A\x00\x00\x00\x2C", 9);
        put16(&b, 0);
        put16(&b, 0);
        put16(&b, W);
        put16(&b, H);
        put1(&b, 0);
        put1(&b, 7); /* LZW minimum code size */
        for (size_t i = 0; i < nc; i += 255) {
            size_t n = nc - i < 255 ? nc - i : 255;
            put1(&b, (unsigned)n);
            put(&b, codes + i, n);
        }
        put1(&b, 0);
        if (k == bad && dmg == D_CUT) {
            b.n = start + (b.n - start) / 2;
            write_file(path, b.p, b.n);
            free(b.p);
            return;
        }
    }
    put1(&b, 0x3B);
    write_file(path, b.p, b.n);
    free(b.p);
}

struct gif_row {
    const char *name;
    enum damage dmg;
    const char *warning; /* substring, NULL: no warning */
};

static const struct gif_row gif_rows[] = {
    {"whole.gif", D_NONE, NULL},
    {"bad-codes.gif", D_CODES, "later frames damaged"},
    {"cut.gif", D_CUT, "later frames damaged: the data ends inside frame 3"},
};

START_TEST(test_gif_later_frame)
{
    const struct gif_row *r = &gif_rows[_i];
    char path[256];
    struct media_output out;
    struct err err;

    tmp_path(path, sizeof(path), r->name);
    make_gif(path, 4, 2, r->dmg);
    ck_assert_msg(process(path, &out, &err) == 0, "%s: %s: %s", r->name, err.stage, err.msg);
    ck_assert_str_eq(out.meta.format, "gif");
    ck_assert(out.has_thumb); /* the first frame is whole */
    if (r->warning)
        ck_assert_msg(strstr(out.warnings, r->warning), "%s: warnings '%s'", r->name, out.warnings);
    else
        ck_assert_msg(out.warnings[0] == '\0', "%s: warnings '%s'", r->name, out.warnings);
    media_output_release(&out);
}
END_TEST

/* ---- RAW known only by its size ------------------------------------------ */

/* 1024x768 8-bit Bayer data without any header: LibRaw's table of file sizes
 * calls 786432 bytes an AVT F-080C. The pattern has bytes < 0x20, so it is not
 * text, and no magic. */
static void make_raw_dump(const char *path, size_t size)
{
    unsigned char *p = malloc(size);

    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < size; i++)
        p[i] = (unsigned char)((i % 1024) / 5 + (i / 1024) / 4 + (i & 1) * 20);
    p[0] = 0x07;
    write_file(path, p, size);
    free(p);
}

START_TEST(test_raw_known_by_size)
{
    char path[256];
    struct media_output out;
    struct err err;

    tmp_path(path, sizeof(path), "dump.bin");
    make_raw_dump(path, 786432);
    ck_assert_msg(process(path, &out, &err) == 0, "%s: %s", err.stage, err.msg);
    ck_assert_str_eq(out.meta.format, "raw");
    ck_assert_msg(strcasecmp(out.meta.make, "AVT") == 0, "make '%s'", out.meta.make);
    ck_assert_int_eq(out.meta.width, 1024);
    ck_assert_int_eq(out.meta.height, 768);
    ck_assert(out.has_thumb && out.thumb && out.preview);
    media_output_release(&out);

    /* One byte more: no size LibRaw knows, nothing else knows it either. */
    tmp_path(path, sizeof(path), "dump-plus-one.bin");
    make_raw_dump(path, 786433);
    ck_assert_int_eq(process(path, &out, &err), -1);
    ck_assert_str_eq(err.stage, "sniff");
    ck_assert_str_eq(err.msg, "unsupported format: unknown data");
    media_output_release(&out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hostile");
    TCase *tc = tcase_create("hostile");
    SRunner *sr;
    struct err err = {0};
    int failed;

    if (!mkdtemp(tmpdir) || media_init("test_hostile", 1, &err) != 0) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return 1;
    }
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_jpeg_scan_limit);
    tcase_add_loop_test(tc, test_gif_later_frame, 0, (int)(sizeof(gif_rows) / sizeof(gif_rows[0])));
    tcase_add_test(tc, test_raw_known_by_size);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    media_thread_shutdown();
    {
        static const char *const names[] = {"scans-at-limit.jpg", "scans-over-limit.jpg",
                                            "scans-icc.jpg",      "whole.gif",
                                            "bad-codes.gif",      "cut.gif",
                                            "dump.bin",           "dump-plus-one.bin"};
        char p[256];
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            snprintf(p, sizeof(p), "%s/%s", tmpdir, names[i]);
            unlink(p);
        }
        rmdir(tmpdir);
    }
    return failed ? 1 : 0;
}
