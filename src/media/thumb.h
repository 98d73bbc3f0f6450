/*
 * thumb: the libvips side of media. Opens non-RAW images with the loader the
 * sniffer chose (never by file name), reads the header and EXIF block,
 * checks the limits before any pixel is decoded, and renders the preview and
 * grid thumbnail from one decode. Also renders thumbnails for RAW pixels
 * that raw.c hands over as a VipsImage.
 * Thread-safe after media_init(); each call owns its images.
 */
#ifndef SHOEBOX_MEDIA_THUMB_H
#define SHOEBOX_MEDIA_THUMB_H

#include <stdint.h>
#include <vips/vips.h>

#include "base/err.h"
#include "media/media.h"
#include "media/sniff.h"

/* Text metadata (PNG comments, ...) allowed after the header is read: a
 * 1x1 PNG can carry megabytes of zTXt. NEEDSWORK: move to base/limits.h. */
#define THUMB_META_TEXT_MAX (1024 * 1024)

/* Refuse w x h before decoding: -1 with stage "limits" and a message such as
 * "20000x14000 pixels (280 Mpx) is over the limit of 120 Mpx". */
int thumb_check_limits(int64_t w, int64_t h, const struct media_opts *opts, struct err *err);

/* Open the header of path with the loader for sn->fmt (sequential access,
 * fail_on error), fill out->meta (format, display width/height, orientation,
 * EXIF tags; an unreadable EXIF block only adds a warning) and check limits.
 * On success *hdr (if hdr is not NULL) is the header image, which the caller
 * unrefs with g_object_unref(); no pixel has been decoded yet.
 * Errors: stage "header" (unreadable), "limits", ERR_TRANSIENT for ENOMEM. */
int thumb_probe(const char *path, const struct sniff_result *sn, const struct media_opts *opts,
                struct media_output *out, VipsImage **hdr, struct err *err);

/* Decode path (whose header hdr came from thumb_probe) once, at the largest
 * JPEG shrink-on-load that keeps the preview size, and fill out->preview,
 * out->thumb, out->has_thumb. Damaged pixels are not an error: has_thumb
 * stays false and out->warnings gets "pixels damaged: <reason>". Returns -1
 * only for transient failures (out of memory). */
int thumb_render(const char *path, const struct sniff_result *sn, VipsImage *hdr,
                 const struct media_opts *opts, struct media_output *out, struct err *err);

/* Make preview and thumbnail JPEGs from in (any size, any orientation tag:
 * it is applied). Fills out->preview/thumb and sets has_thumb. Returns -1 with
 * stage "thumbnail" or "decode" and the libvips reason when pixels fail. */
int thumb_from_image(VipsImage *in, const struct media_opts *opts, struct media_output *out,
                     struct err *err);

/* Copy and clear the libvips error buffer into dst: one line, repeated
 * messages once, occurrences of path (may be NULL) replaced by "file".
 * Returns dst. */
const char *thumb_vips_error(char *dst, size_t cap, const char *path);

#endif
