/*
 * limits: every bound on untrusted input, in one place (SQLite's sqliteLimit.h).
 * Each has a test just under and just over it. Values configurable at run time
 * (file size, pixels) have their default here and their option in config.c.
 */
#ifndef SHOEBOX_BASE_LIMITS_H
#define SHOEBOX_BASE_LIMITS_H

/* Per-file byte limit default: the seed's 100 MB; camera RAW files reach ~80 MB. */
#define LIMIT_FILE_BYTES_DEFAULT (100ULL * 1024 * 1024)
/* Pixel limit default: 120 Mpx covers 100 MP medium-format sensors; decoding
 * 120 Mpx x 3 bytes x 2 workers stays under half a gigabyte. */
#define LIMIT_PIXELS_DEFAULT (120ULL * 1000 * 1000)
/* Longest side: libvips and libjpeg handle 65535, but no camera exceeds 32768. */
#define LIMIT_DIMENSION 32768
/* Parts in one multipart request: a browser page sends a few hundred at a time. */
#define LIMIT_PARTS 2000
/* Bytes of one multipart part's header block (Content-Disposition + Type). */
#define LIMIT_PART_HEADER_BYTES 8192
/* Bytes of a client file name kept as display text (longer names are cut). */
#define LIMIT_FILENAME_BYTES 255
/* Bytes of a non-file form field value (csrf token, upload id, expected). */
#define LIMIT_FIELD_BYTES 4096
/* Bytes of a urlencoded form body (login). */
#define LIMIT_FORM_BYTES 16384
/* Files one upload may announce with `expected`. */
#define LIMIT_UPLOAD_FILES 100000
/* Length of a user name. */
#define LIMIT_USERNAME_BYTES 64
/* Bytes of EXIF data read from a file (the APP1 segment caps JPEG at 64 KB;
 * others are bounded here). */
#define LIMIT_EXIF_BYTES (1024 * 1024)
/* Scans in one progressive JPEG: encoders write about 10 (jpegtran's most
 * elaborate scripts stay under 100), and each scan walks every coefficient
 * block again, ~3 ms per scan at 24 Mpx: 10,000 near-empty scans cost 28 s of
 * CPU. 250 scans stay under a second (libjpeg-turbo's libjpeg.txt, "djpeg
 * -maxscans"). */
#define LIMIT_JPEG_SCANS 250

#endif
