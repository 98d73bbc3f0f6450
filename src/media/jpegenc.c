/* jpegenc: see jpegenc.h. The destination is our own growing malloc buffer:
 * libjpeg-turbo's jpeg_mem_dest leaves its grown buffer unreachable when the
 * encoder longjmps out, which would leak it (or hand back a freed one). */
#include "media/jpegenc.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#define DST_FIRST (256 * 1024) /* a 1440 px preview at Q 82 is ~150-250 KB */

struct enc_err {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
};

struct memdst {
    struct jpeg_destination_mgr pub;
    unsigned char *buf;
    size_t cap;
};

static void on_error(j_common_ptr cinfo)
{
    struct enc_err *e = (struct enc_err *)cinfo->err;

    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level)
{
    (void)cinfo;
    (void)level; /* the encoder's warnings and traces say nothing we keep */
}

static void dst_init(j_compress_ptr c)
{
    struct memdst *d = (struct memdst *)c->dest;

    d->buf = malloc(DST_FIRST);
    if (!d->buf)
        ERREXIT1(c, JERR_OUT_OF_MEMORY, 0);
    d->cap = DST_FIRST;
    d->pub.next_output_byte = d->buf;
    d->pub.free_in_buffer = d->cap;
}

static boolean dst_empty(j_compress_ptr c)
{
    struct memdst *d = (struct memdst *)c->dest;
    unsigned char *grown = realloc(d->buf, d->cap * 2);

    if (!grown)
        ERREXIT1(c, JERR_OUT_OF_MEMORY, 1);
    d->buf = grown;
    /* libjpeg calls this only with the whole buffer full */
    d->pub.next_output_byte = d->buf + d->cap;
    d->pub.free_in_buffer = d->cap;
    d->cap *= 2;
    return TRUE;
}

static void dst_term(j_compress_ptr c)
{
    (void)c;
}

enum jpegenc_rc jpegenc_encode(VipsImage *img, int quality, unsigned char **out, size_t *out_len,
                               char *why, size_t why_len)
{
    struct jpeg_compress_struct c;
    struct enc_err e;
    struct memdst d;
    volatile enum jpegenc_rc rc = JPEGENC_FAILED;

    *out = NULL;
    *out_len = 0;
    why[0] = '\0';
    if (!img || !img->data || img->BandFmt != VIPS_FORMAT_UCHAR ||
        (img->Bands != 1 && img->Bands != 3) || img->Xsize < 1 || img->Ysize < 1 ||
        img->Xsize > JPEG_MAX_DIMENSION || img->Ysize > JPEG_MAX_DIMENSION)
        return JPEGENC_NOT_HANDLED;
    memset(&e, 0, sizeof(e));
    memset(&d, 0, sizeof(d));
    c.err = jpeg_std_error(&e.mgr);
    e.mgr.error_exit = on_error;
    e.mgr.emit_message = on_message;
    if (setjmp(e.jump)) {
        snprintf(why, why_len, "%s", e.msg);
        rc = strstr(e.msg, "memory") ? JPEGENC_NO_MEMORY : JPEGENC_FAILED;
        jpeg_destroy_compress(&c);
        free(d.buf);
        return rc;
    }
    jpeg_create_compress(&c);
    d.pub.init_destination = dst_init;
    d.pub.empty_output_buffer = dst_empty;
    d.pub.term_destination = dst_term;
    c.dest = &d.pub;
    c.image_width = (JDIMENSION)img->Xsize;
    c.image_height = (JDIMENSION)img->Ysize;
    c.input_components = img->Bands;
    c.in_color_space = img->Bands == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)VIPS_IMAGE_ADDR(img, 0, (int)c.next_scanline);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    *out_len = d.cap - d.pub.free_in_buffer;
    *out = d.buf;
    jpeg_destroy_compress(&c);
    return JPEGENC_OK;
}
