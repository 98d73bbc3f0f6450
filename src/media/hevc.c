/*
 * hevc: HEVC pictures with libavcodec (see hevc.h).
 *
 * Each picture goes to the decoder as one packet in Annex B form (a start
 * code before every NAL unit): the hvcC's parameter sets, then the item's NAL
 * units, their length prefixes replaced. Then end of stream, one frame out,
 * and a flush, so the decoder starts the next picture from nothing (tiles
 * are independent pictures; so is whatever followed a damaged one).
 *
 * Errors are not concealed: err_recognition includes AV_EF_EXPLODE, so a
 * slice that fails to decode fails the picture, and a frame flagged corrupt
 * or with decode_error_flags is refused as well. Frames are filled with a
 * colour no decoded picture has (UNSET_*) before the decoder writes them: a
 * slice that ended early (damage libavcodec does not report) leaves its
 * blocks showing it, and the picture is refused. What neither catches is
 * damage inside a slice's data that still parses to the picture's end:
 * libavcodec 5.1's CABAC decoding never checks that a slice ends where its
 * data ends, none of AV_EF_CAREFUL, _COMPLIANT or _AGGRESSIVE changes that
 * for HEVC, and the slice decodes to noise (AV_EF_CRCCHECK would check a
 * picture hash SEI, which phones do not write). Such a tile is stored as it
 * decodes: 2 to 6 of 24 flips in iPhone photos (docs/PERFORMANCE.md).
 *
 * Out of memory is told apart from damage all the way up (heifgrid.c makes
 * it HEIFGRID_NO_MEMORY, which is retried): libavcodec reports a failed
 * allocation as AVERROR(ENOMEM), and a thread it cannot start as the
 * pthread_create error, EAGAIN (frame threads; slice threads fall back to one
 * silently in 5.1 and return it in later versions), both from avcodec_open2.
 * The decoder runs single-threaded, so it starts no thread today.
 */
#include "media/hevc.h"

#include <errno.h>
#include <libavcodec/avcodec.h>
#include <libavutil/error.h>
#include <libavutil/log.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hevc {
    AVCodecContext *ctx;
    AVPacket *pkt;
    AVFrame *frame;
};

/* Big-endian value of n bytes at p (n <= 4). */
static size_t be(const unsigned char *p, int n)
{
    size_t v = 0;

    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Append a start code and the NAL unit (p, n) at out + *at, or only count
 * its size when out is NULL. */
static void put_nal(unsigned char *out, size_t *at, const unsigned char *p, size_t n)
{
    static const unsigned char start[4] = {0, 0, 0, 1};

    if (out) {
        memcpy(out + *at, start, sizeof(start));
        memcpy(out + *at + sizeof(start), p, n);
    }
    *at += sizeof(start) + n;
}

/* The hvcC's parameter sets as Annex B at out (NULL: count only). -1 when
 * an array runs past the box. */
static int hvcc_nals(const unsigned char *b, size_t n, unsigned char *out, size_t *at)
{
    size_t off = 23;
    int arrays;

    if (n < 23)
        return -1;
    arrays = b[22];
    for (int a = 0; a < arrays; a++) {
        size_t count;
        if (n - off < 3)
            return -1;
        count = be(b + off + 1, 2);
        off += 3;
        for (size_t i = 0; i < count; i++) {
            size_t len;
            if (n - off < 2)
                return -1;
            len = be(b + off, 2);
            off += 2;
            if (n - off < len)
                return -1;
            put_nal(out, at, b + off, len);
            off += len;
        }
    }
    return 0;
}

/* The item's length-prefixed NAL units as Annex B at out (NULL: count only).
 * -1 when a length is 0 or runs past the data. */
static int data_nals(const unsigned char *d, size_t n, int ls, unsigned char *out, size_t *at)
{
    size_t off = 0;

    while (off < n) {
        size_t len;
        if (n - off < (size_t)ls)
            return -1;
        len = be(d + off, ls);
        off += (size_t)ls;
        if (len == 0 || n - off < len)
            return -1;
        put_nal(out, at, d + off, len);
        off += len;
    }
    return 0;
}

/* The colour of a sample no slice wrote: Y 0, Cb 0, Cr 255 lies far outside
 * the RGB cube (R 178, G -47, B -227 in BT.601), so no camera's picture
 * decodes to it, let alone to a 4 x 4 block of it. */
#define UNSET_Y 0
#define UNSET_CB 0
#define UNSET_CR 255

/* Frames come filled with the unset colour (padding and all, never an
 * earlier photo left in the pool): what no slice reached is found after. */
static int get_buffer(AVCodecContext *ctx, AVFrame *f, int flags)
{
    static const unsigned char v[3] = {UNSET_Y, UNSET_CB, UNSET_CR};
    int rc = avcodec_default_get_buffer2(ctx, f, flags);

    for (int i = 0; rc == 0 && i < AV_NUM_DATA_POINTERS && f->buf[i]; i++)
        memset(f->buf[i]->data, 0, f->buf[i]->size);
    /* f's size is the coded one here: every row the decoder may write */
    for (int c = 0; rc == 0 && c < 3 && f->data[c]; c++) {
        int rows = c ? (f->height + 1) / 2 : f->height;
        for (int y = 0; y < rows; y++)
            memset(f->data[c] + (size_t)y * (size_t)f->linesize[c], v[c], (size_t)f->linesize[c]);
    }
    return rc;
}

/* The 4 x 4 luma samples at (x, y) (even) and their 2 x 2 chroma samples all
 * still unset. */
static bool unset_at(const AVFrame *f, int x, int y)
{
    for (int j = 0; j < 4; j++)
        for (int i = 0; i < 4; i++)
            if (f->data[0][(size_t)(y + j) * (size_t)f->linesize[0] + (size_t)(x + i)] != UNSET_Y)
                return false;
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < 2; i++) {
            size_t at1 = (size_t)(y / 2 + j) * (size_t)f->linesize[1] + (size_t)(x / 2 + i);
            size_t at2 = (size_t)(y / 2 + j) * (size_t)f->linesize[2] + (size_t)(x / 2 + i);
            if (f->data[1][at1] != UNSET_CB || f->data[2][at2] != UNSET_CR)
                return false;
        }
    return true;
}

/* Some part of the picture no slice reached: the middle of a 16 x 16 block
 * (the smallest coding tree block) still unset. A slice whose data was
 * damaged can end early without libavcodec saying so. */
static bool has_unset(const AVFrame *f)
{
    if (f->width < 4 || f->height < 4)
        return false;
    for (int by = 0; by < f->height; by += 16) {
        int y = (by + 6 < f->height - 4 ? by + 6 : f->height - 4) & ~1;
        for (int bx = 0; bx < f->width; bx += 16) {
            int x = (bx + 6 < f->width - 4 ? bx + 6 : f->width - 4) & ~1;
            if (unset_at(f, x, y))
                return true;
        }
    }
    return false;
}

enum hevc_rc hevc_new(struct hevc **out, char *why, size_t why_len)
{
    const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_HEVC);
    struct hevc *d = NULL;
    int rc;

    *out = NULL;
    /* Hostile files make the decoder talk; the result says what failed. */
    av_log_set_level(AV_LOG_QUIET);
    if (!codec) {
        snprintf(why, why_len, "libavcodec has no HEVC decoder");
        return HEVC_UNAVAILABLE;
    }
    d = calloc(1, sizeof(*d));
    if (!d)
        goto no_memory;
    d->ctx = avcodec_alloc_context3(codec);
    d->pkt = av_packet_alloc();
    d->frame = av_frame_alloc();
    if (!d->ctx || !d->pkt || !d->frame)
        goto no_memory;
    d->ctx->thread_count = 1;
    d->ctx->thread_type = 0;
    d->ctx->err_recognition = AV_EF_EXPLODE | AV_EF_BITSTREAM | AV_EF_BUFFER | AV_EF_CRCCHECK;
    d->ctx->get_buffer2 = get_buffer;
    rc = avcodec_open2(d->ctx, codec, NULL);
    if (rc == AVERROR(ENOMEM) || rc == AVERROR(EAGAIN)) /* EAGAIN: a thread (see above) */
        goto no_memory;
    if (rc != 0) {
        hevc_free(d);
        snprintf(why, why_len, "cannot open libavcodec's HEVC decoder: %s", av_err2str(rc));
        return HEVC_UNAVAILABLE;
    }
    *out = d;
    return HEVC_OK;
no_memory:
    hevc_free(d);
    snprintf(why, why_len, "out of memory starting the HEVC decoder");
    return HEVC_NO_MEMORY;
}

void hevc_free(struct hevc *d)
{
    if (!d)
        return;
    av_frame_free(&d->frame);
    av_packet_free(&d->pkt);
    avcodec_free_context(&d->ctx);
    free(d);
}

/* The Annex B packet of one picture in d->pkt. */
static enum hevc_rc make_packet(struct hevc *d, const unsigned char *hvcc, size_t hvcc_len,
                                const unsigned char *data, size_t data_len, int ls, char *why,
                                size_t why_len)
{
    size_t n = 0, at = 0;

    if (ls < 1 || ls > 4 || hvcc_nals(hvcc, hvcc_len, NULL, &n) != 0 ||
        data_nals(data, data_len, ls, NULL, &n) != 0 || n > INT32_MAX / 2) {
        snprintf(why, why_len, "damaged HEVC data: a NAL unit runs past its box");
        return HEVC_DAMAGED;
    }
    av_packet_unref(d->pkt);
    if (av_new_packet(d->pkt, (int)n) != 0) {
        snprintf(why, why_len, "out of memory for %zu bytes of HEVC data", n);
        return HEVC_NO_MEMORY;
    }
    (void)hvcc_nals(hvcc, hvcc_len, d->pkt->data, &at);
    (void)data_nals(data, data_len, ls, d->pkt->data, &at);
    return HEVC_OK;
}

static bool usable(const AVFrame *f)
{
    return (f->format == AV_PIX_FMT_YUV420P || f->format == AV_PIX_FMT_YUVJ420P) &&
           f->width > 0 && f->height > 0 && f->decode_error_flags == 0 &&
           !(f->flags & AV_FRAME_FLAG_CORRUPT) && f->data[0] && f->data[1] && f->data[2];
}

/* The picture libavcodec returned, or why there is none. */
static enum hevc_rc check_frame(int averr, const AVFrame *f, char *why, size_t why_len)
{
    if (averr == AVERROR(ENOMEM)) {
        snprintf(why, why_len, "out of memory decoding HEVC");
        return HEVC_NO_MEMORY;
    }
    if (averr != 0 || !usable(f)) {
        snprintf(why, why_len, "%s",
                 averr == AVERROR_EOF ? "damaged HEVC data: no picture"
                 : averr != 0        ? "damaged HEVC data: decoding error"
                                     : "HEVC picture flagged damaged or not 8-bit 4:2:0");
        return HEVC_DAMAGED;
    }
    if (has_unset(f)) {
        snprintf(why, why_len, "damaged HEVC data: part of the picture was never decoded");
        return HEVC_DAMAGED;
    }
    return HEVC_OK;
}

enum hevc_rc hevc_decode(struct hevc *d, const unsigned char *hvcc, size_t hvcc_len,
                         const unsigned char *data, size_t data_len, int nal_len_size,
                         struct hevc_picture *pic, char *why, size_t why_len)
{
    enum hevc_rc res;
    int rc;

    av_frame_unref(d->frame);
    avcodec_flush_buffers(d->ctx); /* a new stream: nothing of the last picture */
    res = make_packet(d, hvcc, hvcc_len, data, data_len, nal_len_size, why, why_len);
    if (res != HEVC_OK)
        return res;
    rc = avcodec_send_packet(d->ctx, d->pkt);
    av_packet_unref(d->pkt);
    if (rc == 0)
        rc = avcodec_send_packet(d->ctx, NULL); /* end of stream: out with it */
    if (rc == 0)
        rc = avcodec_receive_frame(d->ctx, d->frame);
    res = check_frame(rc, d->frame, why, why_len);
    if (res != HEVC_OK)
        return res;
    pic->w = d->frame->width;
    pic->h = d->frame->height;
    for (int c = 0; c < 3; c++) {
        pic->plane[c] = d->frame->data[c];
        pic->stride[c] = d->frame->linesize[c];
    }
    return HEVC_OK;
}
