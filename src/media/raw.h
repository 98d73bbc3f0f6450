/*
 * raw: camera RAW files with LibRaw (libraw_r). Decides "is RAW" by
 * libraw_open_file() == LIBRAW_SUCCESS, reads metadata from LibRaw's fields
 * (never from the embedded preview's EXIF), and makes the thumbnails from the
 * embedded JPEG preview when it is large enough, else from a half-size
 * demosaic. One libraw_data_t per call: thread-safe.
 */
#ifndef SHOEBOX_MEDIA_RAW_H
#define SHOEBOX_MEDIA_RAW_H

#include <stdbool.h>

#include "base/err.h"
#include "media/media.h"
#include "media/sniff.h"

/* LibRaw's memory cap for one file (params.max_raw_memory_mb). */
#define RAW_MAX_MEMORY_MB 512

/* Try path as a RAW file. *is_raw is set to false (and 0 returned) when
 * LibRaw does not recognise a TIFF or unknown data, so the caller can hand it
 * to libvips or refuse it.
 * Otherwise *is_raw is true and, as media_process: out->meta filled, limits
 * checked, and unless probe_only, thumbnails made. A RAW whose pixel data is
 * missing or corrupt fails (stage "decode") unless its embedded preview is
 * used. Errors: "header", "limits", "decode", ERR_TRANSIENT for ENOMEM. */
int raw_process(const char *path, const struct sniff_result *sn, const struct media_opts *opts,
                bool probe_only, struct media_output *out, bool *is_raw, struct err *err);

#endif
