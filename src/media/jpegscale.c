/* jpegscale: see jpegscale.h. libjpeg errors longjmp back to the decode; its
 * warnings (corrupt data, premature end) mark the image damaged, as libvips'
 * fail_on=warning does on the other path. */
#include "media/jpegscale.h"

#include <errno.h>
#include <fcntl.h>
#include <jpeglib.h>
#include <jerror.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/limits.h"
#include "media/internal.h"

/* Bytes read from the file at a time. libjpeg-turbo's fast Huffman decoder
 * only runs while at least 512 bytes per block of the MCU (3 KB for 4:2:0)
 * are in the buffer; jpeg_stdio_src's 4 KB buffer left it on the slow path
 * most of the time (jpeg_fill_bit_buffer was 7 % of a photo's CPU, perf).
 * With 64 KB the slow path covers ~5 % of the data, at no RSS cost worth
 * naming, where mapping the whole file would count it all against the
 * worker's memory limit. */
#ifndef SRC_BUF
#define SRC_BUF (64 * 1024)
#endif

struct fdsrc {
    struct jpeg_source_mgr pub;
    int fd;
    bool eof;
    JOCTET buf[SRC_BUF];
};

static void src_init(j_decompress_ptr d)
{
    (void)d;
}

/* Same behaviour as jpeg_stdio_src at the end of the file: warn (the image
 * is then marked damaged) and hand over a fake EOI. */
static boolean src_fill(j_decompress_ptr d)
{
    static const JOCTET eoi[2] = {0xFF, JPEG_EOI};
    struct fdsrc *s = (struct fdsrc *)d->src;
    ssize_t n = 0;

    if (!s->eof) {
        do
            n = read(s->fd, s->buf, sizeof(s->buf));
        while (n < 0 && errno == EINTR);
    }
    if (n <= 0) {
        s->eof = true;
        WARNMS(d, JWRN_JPEG_EOF);
        s->pub.next_input_byte = eoi;
        s->pub.bytes_in_buffer = 2;
        return TRUE;
    }
    s->pub.next_input_byte = s->buf;
    s->pub.bytes_in_buffer = (size_t)n;
    return TRUE;
}

static void src_skip(j_decompress_ptr d, long n)
{
    struct fdsrc *s = (struct fdsrc *)d->src;

    while (n > 0) {
        if ((size_t)n <= s->pub.bytes_in_buffer) {
            s->pub.next_input_byte += n;
            s->pub.bytes_in_buffer -= (size_t)n;
            return;
        }
        n -= (long)s->pub.bytes_in_buffer;
        s->pub.bytes_in_buffer = 0;
        (void)src_fill(d);
    }
}

static void src_term(j_decompress_ptr d)
{
    (void)d;
}

static void src_attach(j_decompress_ptr d, struct fdsrc *s, int fd)
{
    memset(&s->pub, 0, sizeof(s->pub));
    s->fd = fd;
    s->eof = false;
    s->pub.init_source = src_init;
    s->pub.fill_input_buffer = src_fill;
    s->pub.skip_input_data = src_skip;
    s->pub.resync_to_restart = jpeg_resync_to_restart;
    s->pub.term_source = src_term;
    d->src = &s->pub;
}

struct jerr {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    bool warned;
    bool too_many_scans;
    char msg[JMSG_LENGTH_MAX];
};

static void on_error(j_common_ptr cinfo)
{
    struct jerr *e = (struct jerr *)cinfo->err;

    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level)
{
    struct jerr *e = (struct jerr *)cinfo->err;

    /* level -1: a warning, i.e. corrupt data; higher levels are trace output. */
    if (level < 0 && !e->warned) {
        e->warned = true;
        (*cinfo->err->format_message)(cinfo, e->msg);
    }
}

/* libjpeg calls this between units of work while it reads scans (libjpeg.txt,
 * "Progress monitoring"; djpeg -maxscans): stop a progressive file whose scan
 * count passes the limit before it costs seconds of CPU. */
static void on_progress(j_common_ptr cinfo)
{
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    struct jerr *e = (struct jerr *)cinfo->err;

    if (!cinfo->is_decompressor || d->input_scan_number <= LIMIT_JPEG_SCANS)
        return;
    e->too_many_scans = true;
    snprintf(e->msg, sizeof(e->msg), "progressive JPEG with more than %d scans: over the limit",
             LIMIT_JPEG_SCANS);
    longjmp(e->jump, 1);
}

/* Marker walk state for jpegscale_count_scans: a byte reader over fd. */
struct walk {
    int fd;
    unsigned char buf[SRC_BUF];
    size_t pos, len;
};

static bool refill(struct walk *w)
{
    ssize_t n;

    do
        n = read(w->fd, w->buf, sizeof(w->buf));
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return false;
    w->len = (size_t)n;
    w->pos = 0;
    return true;
}

static int next_byte(struct walk *w)
{
    if (w->pos == w->len && !refill(w))
        return -1;
    return w->buf[w->pos++];
}

/* Move past the next 0xFF byte; false at the end of the file. */
static bool past_next_ff(struct walk *w)
{
    for (;;) {
        const unsigned char *p;
        if (w->pos == w->len && !refill(w))
            return false;
        p = memchr(w->buf + w->pos, 0xFF, w->len - w->pos);
        if (p) {
            w->pos = (size_t)(p - w->buf) + 1;
            return true;
        }
        w->pos = w->len;
    }
}

/* Skip a marker segment's payload (its 2-byte length counts itself). */
static bool skip_segment(struct walk *w)
{
    int hi = next_byte(w), lo = next_byte(w);
    size_t n;

    if (hi < 0 || lo < 0 || (hi << 8 | lo) < 2)
        return false;
    n = (size_t)(hi << 8 | lo) - 2;
    while (n > 0) {
        size_t k;
        if (w->pos == w->len && !refill(w))
            return false;
        k = w->len - w->pos < n ? w->len - w->pos : n;
        w->pos += k;
        n -= k;
    }
    return true;
}

int jpegscale_count_scans(const char *path, int limit)
{
    struct walk *w = malloc(sizeof(*w));
    int scans = 0;

    if (!w)
        return -1;
    w->fd = open(path, O_RDONLY | O_CLOEXEC);
    w->pos = w->len = 0;
    if (w->fd < 0) {
        free(w);
        return -1;
    }
    /* Outside a segment: find 0xFF, then the marker code. In entropy-coded
     * data 0xFF is followed by 0x00 (stuffing) or a restart marker. */
    while (scans <= limit && past_next_ff(w)) {
        int m;
        do
            m = next_byte(w);
        while (m == 0xFF);
        if (m < 0 || m == JPEG_EOI)
            break;
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8))
            continue; /* stuffing, TEM, RSTn, SOI: no payload */
        if (m == 0xDA)
            scans++;
        if (!skip_segment(w))
            break;
    }
    close(w->fd);
    free(w);
    return scans;
}

int jpegscale_pick(int lng, int min_long)
{
    for (int m = 1; m < 8; m++)
        if ((lng * m + 7) / 8 >= min_long)
            return m;
    return 8;
}

static bool has_icc(struct jpeg_decompress_struct *d)
{
    for (jpeg_saved_marker_ptr m = d->marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 2 && m->data_length >= 12 &&
            memcmp(m->data, "ICC_PROFILE", 12) == 0)
            return true;
    return false;
}

enum jpegscale_rc jpegscale_decode(const char *path, int min_long, VipsImage **out, char *why,
                                   size_t why_len)
{
    struct jpeg_decompress_struct d;
    struct jpeg_progress_mgr progress = {.progress_monitor = on_progress};
    struct jerr e;
    /* volatile: read after a longjmp */
    unsigned char *volatile pixels = NULL;
    struct fdsrc *volatile src = NULL;
    volatile int fd = -1;
    volatile enum jpegscale_rc rc = JPEGSCALE_NOT_HANDLED;
    size_t stride;
    int bands, lng;

    *out = NULL;
    why[0] = '\0';
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, why_len, "cannot open the file: %s", strerror(errno));
        return errno == ENOMEM ? JPEGSCALE_NO_MEMORY : JPEGSCALE_NOT_HANDLED;
    }
    src = malloc(sizeof(*src));
    if (!src) {
        close(fd);
        snprintf(why, why_len, "out of memory for the read buffer");
        return JPEGSCALE_NO_MEMORY;
    }
    memset(&e, 0, sizeof(e));
    d.err = jpeg_std_error(&e.mgr);
    e.mgr.error_exit = on_error;
    e.mgr.emit_message = on_message;
    if (setjmp(e.jump)) {
        snprintf(why, why_len, "%s", e.msg);
        rc = e.too_many_scans ? JPEGSCALE_TOO_MANY_SCANS : JPEGSCALE_DAMAGED;
        goto out;
    }
    jpeg_create_decompress(&d);
    d.progress = &progress;
    src_attach(&d, src, fd);
    jpeg_save_markers(&d, JPEG_APP0 + 2, 0xffff);
    jpeg_read_header(&d, TRUE);
    if (has_icc(&d) || d.data_precision != 8 ||
        (d.jpeg_color_space != JCS_YCbCr && d.jpeg_color_space != JCS_GRAYSCALE))
        goto out; /* not handled: CMYK, a profile, 12-bit */
    bands = d.jpeg_color_space == JCS_GRAYSCALE ? 1 : 3;
    d.out_color_space = bands == 1 ? JCS_GRAYSCALE : JCS_RGB;
    lng = d.image_width > d.image_height ? (int)d.image_width : (int)d.image_height;
    d.scale_num = (unsigned)jpegscale_pick(lng, min_long);
    d.scale_denom = 8;
    d.dct_method = JDCT_ISLOW;
    jpeg_start_decompress(&d);
    stride = (size_t)d.output_width * (size_t)bands;
    pixels = malloc(stride * d.output_height);
    if (!pixels) {
        rc = JPEGSCALE_NO_MEMORY;
        snprintf(why, why_len, "out of memory for %ux%u pixels", d.output_width, d.output_height);
        goto out;
    }
    while (d.output_scanline < d.output_height) {
        JSAMPROW row = pixels + stride * d.output_scanline;
        if (jpeg_read_scanlines(&d, &row, 1) != 1)
            break;
    }
    if (e.warned || d.output_scanline < d.output_height) {
        snprintf(why, why_len, "%s", e.warned ? e.msg : "premature end of JPEG data");
        rc = JPEGSCALE_DAMAGED;
        goto out;
    }
    jpeg_finish_decompress(&d);
    /* The image owns the pixels from here, or freed them. */
    *out = media_image_adopt(pixels, (int)d.output_width, (int)d.output_height, bands,
                             bands == 1 ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB);
    pixels = NULL;
    rc = *out ? JPEGSCALE_OK : JPEGSCALE_NO_MEMORY;
out:
    jpeg_destroy_decompress(&d);
    free(pixels);
    free(src);
    close(fd);
    return rc;
}
