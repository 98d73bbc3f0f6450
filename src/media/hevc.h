/*
 * hevc: decode HEVC still pictures (a HEIC's image items) with libavcodec's
 * HEVC decoder, one picture per call, single-threaded (the workers are one per
 * core already).
 *
 * Why libavcodec and not libde265 (which libheif uses): its decoder has x86
 * SIMD for the transforms, motion compensation, SAO and deblocking, and does
 * a phone photo's tiles in about 0.7x of libde265's CPU time (see
 * docs/PERFORMANCE.md, "Phone photos: HEIC").
 *
 * Input is what a HEIF file stores: the hvcC box (its parameter sets) and the
 * item's coded data, NAL units each prefixed by its length. A picture with any
 * decoding error is refused, never concealed: hostile files reach this code.
 * Every pixel of a returned picture was decoded, never memory left from
 * elsewhere.
 */
#ifndef SHOEBOX_MEDIA_HEVC_H
#define SHOEBOX_MEDIA_HEVC_H

#include <stddef.h>

struct hevc;

/* An 8-bit 4:2:0 picture: plane 0 is luma (w x h), planes 1 and 2 Cb and Cr
 * ((w + 1) / 2 x (h + 1) / 2). Borrowed from the decoder: valid until the
 * next hevc_decode() or hevc_free(). */
struct hevc_picture {
    int w, h;
    const unsigned char *plane[3];
    int stride[3];
};

enum hevc_rc {
    HEVC_OK = 0,
    HEVC_DAMAGED = 1,     /* the data is damaged, or not one 8-bit 4:2:0 picture */
    HEVC_NO_MEMORY = 2,   /* memory ran out (under RLIMIT_AS: also a thread's stack); the
                           * same data may well decode later */
    HEVC_UNAVAILABLE = 3, /* hevc_new only: libavcodec has no HEVC decoder, or refuses
                           * to open it for another reason */
};

/* A new decoder in *out (NULL unless HEVC_OK), to free with hevc_free().
 * HEVC_OK, HEVC_NO_MEMORY or HEVC_UNAVAILABLE, with a message for a person
 * in why. One decoder serves any number of pictures, also after a failed
 * one. */
enum hevc_rc hevc_new(struct hevc **out, char *why, size_t why_len);
void hevc_free(struct hevc *d);

/* Decode one picture from hvcc (the hvcC box body, hvcc_len bytes) and data
 * (data_len bytes of NAL units, each after a big-endian length of nal_len_size
 * bytes, 1-4). HEVC_OK and *pic; HEVC_DAMAGED when the data is damaged or is
 * not one 8-bit 4:2:0 picture, or when some of the picture was never decoded
 * (a slice ended early); HEVC_NO_MEMORY when memory ran out. A message for a
 * person in why on failure. Bytes flipped inside a slice's data can still
 * go unnoticed: libavcodec 5.1 may decode them to noise (see hevc.c). */
enum hevc_rc hevc_decode(struct hevc *d, const unsigned char *hvcc, size_t hvcc_len,
                         const unsigned char *data, size_t data_len, int nal_len_size,
                         struct hevc_picture *pic, char *why, size_t why_len);

#endif
