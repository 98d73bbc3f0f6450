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
 * or with decode_error_flags is refused as well.
 */
#include "media/hevc.h"

#include <errno.h>
#include <libavcodec/avcodec.h>
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

/* Frames come zeroed: a picture some slice did not reach (and the decoder
 * did not notice) shows black, not an earlier photo left in the pool. */
static int get_buffer(AVCodecContext *ctx, AVFrame *f, int flags)
{
    int rc = avcodec_default_get_buffer2(ctx, f, flags);

    for (int i = 0; rc == 0 && i < AV_NUM_DATA_POINTERS && f->buf[i]; i++)
        memset(f->buf[i]->data, 0, f->buf[i]->size);
    return rc;
}

struct hevc *hevc_new(void)
{
    const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_HEVC);
    struct hevc *d = calloc(1, sizeof(*d));

    /* Hostile files make the decoder talk; the result says what failed. */
    av_log_set_level(AV_LOG_QUIET);
    if (!d || !codec)
        goto fail;
    d->ctx = avcodec_alloc_context3(codec);
    d->pkt = av_packet_alloc();
    d->frame = av_frame_alloc();
    if (!d->ctx || !d->pkt || !d->frame)
        goto fail;
    d->ctx->thread_count = 1;
    d->ctx->thread_type = 0;
    d->ctx->err_recognition = AV_EF_EXPLODE | AV_EF_BITSTREAM | AV_EF_BUFFER | AV_EF_CRCCHECK;
    d->ctx->get_buffer2 = get_buffer;
    if (avcodec_open2(d->ctx, codec, NULL) != 0)
        goto fail;
    return d;
fail:
    hevc_free(d);
    return NULL;
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
static int make_packet(struct hevc *d, const unsigned char *hvcc, size_t hvcc_len,
                       const unsigned char *data, size_t data_len, int ls)
{
    size_t n = 0, at = 0;

    if (ls < 1 || ls > 4 || hvcc_nals(hvcc, hvcc_len, NULL, &n) != 0 ||
        data_nals(data, data_len, ls, NULL, &n) != 0 || n > INT32_MAX / 2)
        return -1;
    av_packet_unref(d->pkt);
    if (av_new_packet(d->pkt, (int)n) != 0)
        return -1;
    (void)hvcc_nals(hvcc, hvcc_len, d->pkt->data, &at);
    (void)data_nals(data, data_len, ls, d->pkt->data, &at);
    return 0;
}

static bool usable(const AVFrame *f)
{
    return (f->format == AV_PIX_FMT_YUV420P || f->format == AV_PIX_FMT_YUVJ420P) &&
           f->width > 0 && f->height > 0 && f->decode_error_flags == 0 &&
           !(f->flags & AV_FRAME_FLAG_CORRUPT) && f->data[0] && f->data[1] && f->data[2];
}

int hevc_decode(struct hevc *d, const unsigned char *hvcc, size_t hvcc_len,
                const unsigned char *data, size_t data_len, int nal_len_size,
                struct hevc_picture *pic, char *why, size_t why_len)
{
    int rc;

    av_frame_unref(d->frame);
    avcodec_flush_buffers(d->ctx); /* a new stream: nothing of the last picture */
    if (make_packet(d, hvcc, hvcc_len, data, data_len, nal_len_size) != 0) {
        snprintf(why, why_len, "damaged HEVC data");
        return -1;
    }
    rc = avcodec_send_packet(d->ctx, d->pkt);
    av_packet_unref(d->pkt);
    if (rc == 0)
        rc = avcodec_send_packet(d->ctx, NULL); /* end of stream: out with it */
    if (rc == 0)
        rc = avcodec_receive_frame(d->ctx, d->frame);
    if (rc == AVERROR(ENOMEM)) {
        snprintf(why, why_len, "out of memory decoding HEVC");
        return -1;
    }
    if (rc != 0 || !usable(d->frame)) {
        snprintf(why, why_len, "%s",
                 rc == AVERROR_EOF ? "damaged HEVC data: no picture"
                 : rc != 0        ? "damaged HEVC data: decoding error"
                                  : "HEVC picture flagged damaged or not 8-bit 4:2:0");
        return -1;
    }
    pic->w = d->frame->width;
    pic->h = d->frame->height;
    for (int c = 0; c < 3; c++) {
        pic->plane[c] = d->frame->data[c];
        pic->stride[c] = d->frame->linesize[c];
    }
    return 0;
}
