/*
 * media: everything that touches image bytes. Pure: a path in, results out;
 * knows nothing of HTTP or the database. Runs inside worker processes.
 *
 * media_process() does, for one file:
 *   sniff (media/sniff.h) -> RAW? LibRaw (raw.c) : libvips header (thumb.c)
 *   -> limits (pixels, dimensions) BEFORE any pixel is decoded
 *   -> metadata: libexif on the EXIF block (exif.c), LibRaw fields for RAW
 *   -> thumbnails: one decode at the largest shrink the outputs allow, a grid
 *      size (MEDIA_THUMB_SIZE) and a preview (MEDIA_PREVIEW_SIZE), EXIF rotation
 *      applied (not for HEIF: libheif already did), sRGB, metadata stripped.
 * Outcomes (as the seed defines them):
 *   - unsupported, unreadable header, over a limit: -1, err (ERR_PERMANENT)
 *   - data without known magic ("unknown data"): LibRaw is asked first (it knows
 *     some RAW formats by their file size alone); if it does not know it either:
 *     -1, stage "sniff", "unsupported format: unknown data"
 *   - a progressive JPEG with more than LIMIT_JPEG_SCANS scans: -1, stage "limits"
 *   - a GIF whose later frames are damaged (cut short, invalid LZW data): 0, the
 *     thumbnails of its whole first frame, a warning "later frames damaged: ..."
 *   - EXIF unreadable: 0, basic metadata only, a warning
 *   - thumbnail failed or pixels damaged (truncated): 0, has_thumb false, a warning
 *     "pixels damaged: <reason>". JPEG pixels are decoded with fail_on=warning,
 *     so libjpeg's "Corrupt JPEG data" warnings count as damage too.
 *   - RAW whose sensor data is missing or corrupt (and whose embedded preview is
 *     too small to use): -1, stage "decode" (there is no image to keep)
 *   - DNG/CR2 that LibRaw cannot open: -1, stage "header" (libvips would only
 *     show the small IFD0 preview)
 *   - junk before the JPEG SOI marker: -1, stage "sniff" ("JPEG data after N
 *     junk bytes"); libjpeg refuses such files anyway
 *   - text metadata over THUMB_META_TEXT_MAX (PNG zTXt bombs): -1, stage "limits"
 *   - out of memory / I/O: -1, err ERR_TRANSIENT (the job layer retries)
 * Stages: "sniff", "header", "limits", "decode", "exif" (warnings only),
 * "thumbnail". Messages never contain the spool path (it becomes "file").
 */
#ifndef SHOEBOX_MEDIA_MEDIA_H
#define SHOEBOX_MEDIA_MEDIA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define MEDIA_THUMB_SIZE 256
#define MEDIA_PREVIEW_SIZE 1440
/* A JPEG decoded at a DCT scale (M/8) that lands within 10 % above the preview
 * size is kept at that size rather than resampled again: previews are
 * MEDIA_PREVIEW_SIZE to MEDIA_PREVIEW_MAX on their long side ("about 1440"). */
#define MEDIA_PREVIEW_MAX (MEDIA_PREVIEW_SIZE + MEDIA_PREVIEW_SIZE / 10)
#define MEDIA_TEXT_MAX 128
#define MEDIA_WARNINGS_MAX 512

struct media_opts {
    int64_t max_pixels;   /* width * height limit (config --max-pixels) */
    int64_t max_dimension;/* longest side limit (LIMIT_DIMENSION) */
    int thumb_size;       /* MEDIA_THUMB_SIZE */
    int preview_size;     /* MEDIA_PREVIEW_SIZE */
};

/* Absent values: NaN for doubles, 0 for ints, "" for text. */
struct media_meta {
    char format[16];      /* "jpeg", "png", "webp", "gif", "tiff", "heic", "avif", or the
                             RAW kind ("dng", "nef", "cr2", "raw" when unknown) */
    int64_t width, height; /* display size, after orientation */
    int64_t orientation;  /* EXIF 1-8, 0 when absent. Informational: width/height
                             and thumbnails already account for it. For HEIF/AVIF
                             it is the EXIF value, which libheif has applied
                             through irot/imir: never apply it again. RAW: from
                             LibRaw's flip (1, 3, 6, 8). */
    char make[MEDIA_TEXT_MAX], model[MEDIA_TEXT_MAX], lens[MEDIA_TEXT_MAX];
    char taken_at[32];    /* "YYYY-MM-DDTHH:MM:SS" wall-clock, "" if absent or invalid */
    char taken_offset[8]; /* "+02:00", "" if unknown */
    double exposure_time, f_number, focal_length;
    int64_t iso;
    double gps_lat, gps_lon, gps_alt;
};

struct media_output {
    struct media_meta meta;
    unsigned char *thumb;   /* JPEG, malloc'd, NULL without thumbnail */
    size_t thumb_len;
    unsigned char *preview; /* JPEG, malloc'd, NULL without preview */
    size_t preview_len;
    bool has_thumb;
    char warnings[MEDIA_WARNINGS_MAX]; /* "; "-separated, "" when none */
};

/* Once per process, in main, before threads: VIPS_INIT, loader allow-list,
 * cache off, concurrency (<= 0 keeps libvips' default), warnings routed to our
 * log. A second call does nothing and returns 0. */
int media_init(const char *argv0, int vips_concurrency, struct err *err);
/* Each thread that used libvips calls this before it exits. */
void media_thread_shutdown(void);
/* A worker process, once, before media_init() (and before its memory limit, as
 * this allocates GLib's handler): from now on a GLib allocation that fails,
 * which GLib answers with abort() by design (g_malloc: "failed to allocate N
 * bytes", libvips' and libnsgif's pixel buffers among them), writes one line
 * to stderr and ends the process with _exit(status) instead, so its parent can
 * tell an image too large for the memory limit from a crash. Other fatal GLib
 * messages keep GLib's default. With no memory left even to format GLib's
 * message, GLib recurses in its own logging and the process dies of a signal:
 * that stays a crash. */
void media_exit_on_no_memory(int status);
void media_opts_default(struct media_opts *o);

/* Process the file at path. out is filled on success; release it with
 * media_output_release() either way. */
int media_process(const char *path, const struct media_opts *opts, struct media_output *out,
                  struct err *err);
void media_output_release(struct media_output *out);

/* The header path of media_process without decoding pixels: sniff, LibRaw
 * open (RAW) or libvips header, limits, EXIF. Fills meta (and warnings, when
 * not NULL, "; "-separated, cut to warnings_cap). Same errors as
 * media_process. Used by the header fuzzer and by callers that only need
 * metadata. Thread-safe after media_init(). */
int media_probe(const char *path, const struct media_opts *opts, struct media_meta *meta,
                char *warnings, size_t warnings_cap, struct err *err);

#endif
