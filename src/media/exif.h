/*
 * exif: standard EXIF tags from a raw EXIF block into struct media_meta, with
 * libexif. Reads IFD0, the EXIF IFD and the GPS IFD; never MakerNotes.
 * Pure and thread-safe (one ExifData per call).
 */
#ifndef SHOEBOX_MEDIA_EXIF_H
#define SHOEBOX_MEDIA_EXIF_H

#include <stddef.h>

#include "base/err.h"
#include "media/media.h"

/* Parse data[0..len), which starts with "Exif\0\0" or directly with a TIFF
 * header ("II*\0"/"MM\0*"). Fills the fields it finds and leaves the others
 * untouched. Returns -1 (stage "exif") when the block is unusable or larger
 * than LIMIT_EXIF_BYTES. */
int exifmeta_parse(const void *data, size_t len, struct media_meta *meta, struct err *err);

/* The same for a TIFF-structured file (TIFF, DNG, NEF, KDC; RW2 and ORF
 * with their own magic): IFD0 and its sub-IFDs are read from the first
 * LIMIT_EXIF_BYTES of the file (entries pointing further are dropped). */
int exifmeta_parse_tiff_file(const char *path, struct media_meta *meta, struct err *err);

/* "YYYY:MM:DD HH:MM:SS" -> "YYYY-MM-DDTHH:MM:SS" into out (>= 20 bytes).
 * Returns -1 for anything else, including the unset "0000:00:00 00:00:00". */
int exifmeta_date(const char *in, char *out, size_t cap);

#endif
