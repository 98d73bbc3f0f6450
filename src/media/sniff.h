/*
 * sniff: decide the format from the first bytes, never from a name.
 * Pure and allocation-free; fuzzed (tests/fuzz/sniff.c).
 * TIFF magic may be a camera RAW (DNG, NEF, CR2, ARW, ...): it reports
 * MEDIA_FMT_TIFF with maybe_raw set, and the decoder asks LibRaw first.
 * Binary data without any known magic ("unknown data") is MEDIA_FMT_UNKNOWN,
 * supported and maybe_raw: only LibRaw can tell (it knows some RAW formats by
 * their file size alone), so intake keeps it and the worker decides.
 */
#ifndef SHOEBOX_MEDIA_SNIFF_H
#define SHOEBOX_MEDIA_SNIFF_H

#include <stdbool.h>
#include <stddef.h>

/* Bytes sniff wants to see (fewer is fine for short files). */
#define SNIFF_HEAD_BYTES 4096

enum media_fmt {
    MEDIA_FMT_UNKNOWN = 0,
    MEDIA_FMT_JPEG,
    MEDIA_FMT_PNG,
    MEDIA_FMT_WEBP,
    MEDIA_FMT_GIF,
    MEDIA_FMT_TIFF,
    MEDIA_FMT_HEIF,  /* HEIC/HEIF */
    MEDIA_FMT_AVIF,
    MEDIA_FMT_RAW,   /* non-TIFF RAW containers: CR3, RAF, RW2, ORF, CRW, X3F, ... */
};

struct sniff_result {
    enum media_fmt fmt;
    bool supported;
    bool maybe_raw;     /* TIFF-based: try LibRaw before libvips */
    char name[16];      /* short format name: "jpeg", "png", "heic", "cr3", "tiff", ... */
    char detected[64];  /* for unsupported input, what it looks like: "PDF document",
                           "empty file", "text", "MP4/QuickTime video", "unknown data" */
};

/* Sniff head[0..n). Never fails: unknown input gets supported=false. */
void sniff_bytes(const unsigned char *head, size_t n, struct sniff_result *out);

#endif
