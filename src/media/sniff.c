/*
 * sniff: format from the first bytes (see sniff.h). Table-driven: a row per
 * fixed magic, then the ISO-BMFF brands, TIFF flavours and the text heuristic.
 *
 * Policy decisions:
 * - JPEG needs FF D8 FF at offset 0. A JPEG start marker found later in the
 *   first SNIFF_JUNK_SCAN bytes is reported as unsupported ("JPEG data after
 *   N junk bytes"): libjpeg (and so libvips) refuses such files, and a person
 *   reading the reason learns what is wrong. Junk after the SOI marker is the
 *   decoder's business (libvips warns and decodes).
 * - TIFF magic is supported with maybe_raw set; IFD0 is scanned (inside the
 *   head only) for DNGVersion, so a DNG reports name "dng", and "CR" at offset
 *   8 reports "cr2". The decoder asks LibRaw first either way.
 */
#include "media/sniff.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* How far to look for a JPEG SOI preceded by junk. */
#define SNIFF_JUNK_SCAN 512
/* Bytes checked by the text heuristic. */
#define SNIFF_TEXT_SCAN 512

struct magic {
    size_t off;
    const char *bytes;
    size_t len;
    enum media_fmt fmt;
    bool supported;
    const char *name;
    const char *detected;
};

#define M(off, lit, fmt, sup, name, det) {off, lit, sizeof(lit) - 1, fmt, sup, name, det}

static const struct magic magics[] = {
    M(0, "\xFF\xD8\xFF", MEDIA_FMT_JPEG, true, "jpeg", "JPEG image"),
    M(0, "\x89PNG\r\n\x1A\n", MEDIA_FMT_PNG, true, "png", "PNG image"),
    M(0, "GIF87a", MEDIA_FMT_GIF, true, "gif", "GIF image"),
    M(0, "GIF89a", MEDIA_FMT_GIF, true, "gif", "GIF image"),
    M(0, "IIRO", MEDIA_FMT_RAW, true, "orf", "Olympus ORF raw"),
    M(0, "IIRS", MEDIA_FMT_RAW, true, "orf", "Olympus ORF raw"),
    M(0, "MMOR", MEDIA_FMT_RAW, true, "orf", "Olympus ORF raw"),
    M(0, "IIU\0", MEDIA_FMT_RAW, true, "rw2", "Panasonic RW2 raw"),
    M(0, "FUJIFILMCCD-RAW", MEDIA_FMT_RAW, true, "raf", "Fujifilm RAF raw"),
    M(6, "HEAPCCDR", MEDIA_FMT_RAW, true, "crw", "Canon CRW raw"),
    M(0, "FOVb", MEDIA_FMT_RAW, true, "x3f", "Sigma X3F raw"),
    M(0, "\0MRM", MEDIA_FMT_RAW, true, "mrw", "Minolta MRW raw"),
    M(0, "qktk", MEDIA_FMT_RAW, true, "qtk", "Apple QuickTake raw"),
    M(0, "NOKIARAW", MEDIA_FMT_RAW, true, "raw", "Nokia raw"),
    M(0, "ARRI\x12\x34\x56\x78", MEDIA_FMT_RAW, true, "ari", "ARRI raw"),
    M(0, "DSC-Image", MEDIA_FMT_RAW, true, "raw", "Kodak/Casio raw"),
    M(0, "%PDF-", MEDIA_FMT_UNKNOWN, false, "pdf", "PDF document"),
    M(0, "\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", MEDIA_FMT_UNKNOWN, false, "ole",
      "OLE/FlashPix document"),
    M(0, "gimp xcf", MEDIA_FMT_UNKNOWN, false, "xcf", "GIMP XCF image"),
    M(0, "8BPS", MEDIA_FMT_UNKNOWN, false, "psd", "Photoshop document"),
    M(0, "BM", MEDIA_FMT_UNKNOWN, false, "bmp", "BMP image"),
    M(0, "\0\0\0\x0CjP  \r\n\x87\n", MEDIA_FMT_UNKNOWN, false, "jp2", "JPEG 2000 image"),
    M(0, "\xFF\x0A", MEDIA_FMT_UNKNOWN, false, "jxl", "JPEG XL image"),
    M(0, "\0\0\0\x0CJXL \r\n\x87\n", MEDIA_FMT_UNKNOWN, false, "jxl", "JPEG XL image"),
    M(0, "PK\x03\x04", MEDIA_FMT_UNKNOWN, false, "zip", "ZIP archive"),
};

struct brand {
    const char *cc; /* four characters */
    enum media_fmt fmt;
    bool supported;
    const char *name;
    const char *detected;
};

/* Checked in order against the major brand, then against each compatible
 * brand: the first row that matches any of them wins. */
static const struct brand brands[] = {
    {"avif", MEDIA_FMT_AVIF, true, "avif", "AVIF image"},
    {"avis", MEDIA_FMT_AVIF, true, "avif", "AVIF image sequence"},
    {"heic", MEDIA_FMT_HEIF, true, "heic", "HEIC image"},
    {"heix", MEDIA_FMT_HEIF, true, "heic", "HEIC image"},
    {"hevc", MEDIA_FMT_HEIF, true, "heic", "HEIC image sequence"},
    {"hevx", MEDIA_FMT_HEIF, true, "heic", "HEIC image sequence"},
    {"heim", MEDIA_FMT_HEIF, true, "heic", "HEIC image"},
    {"heis", MEDIA_FMT_HEIF, true, "heic", "HEIC image"},
    {"mif1", MEDIA_FMT_HEIF, true, "heif", "HEIF image"},
    {"msf1", MEDIA_FMT_HEIF, true, "heif", "HEIF image sequence"},
    {"crx ", MEDIA_FMT_RAW, true, "cr3", "Canon CR3 raw"},
    {"qt  ", MEDIA_FMT_UNKNOWN, false, "mov", "MP4/QuickTime video"},
    {"isom", MEDIA_FMT_UNKNOWN, false, "mp4", "MP4/QuickTime video"},
    {"iso2", MEDIA_FMT_UNKNOWN, false, "mp4", "MP4/QuickTime video"},
    {"mp41", MEDIA_FMT_UNKNOWN, false, "mp4", "MP4/QuickTime video"},
    {"mp42", MEDIA_FMT_UNKNOWN, false, "mp4", "MP4/QuickTime video"},
    {"M4V ", MEDIA_FMT_UNKNOWN, false, "mp4", "MP4/QuickTime video"},
    {"3gp4", MEDIA_FMT_UNKNOWN, false, "mp4", "MP4/QuickTime video"},
    {"3gp5", MEDIA_FMT_UNKNOWN, false, "mp4", "MP4/QuickTime video"},
};

static void set(struct sniff_result *out, enum media_fmt fmt, bool supported, const char *name,
                const char *detected)
{
    out->fmt = fmt;
    out->supported = supported;
    snprintf(out->name, sizeof(out->name), "%s", name);
    snprintf(out->detected, sizeof(out->detected), "%s", detected);
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t rd32(const unsigned char *p, bool le)
{
    return le ? (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0]
              : be32(p);
}

static uint16_t rd16(const unsigned char *p, bool le)
{
    return le ? (uint16_t)(p[1] << 8 | p[0]) : (uint16_t)(p[0] << 8 | p[1]);
}

static bool match_magic(const unsigned char *head, size_t n, struct sniff_result *out)
{
    for (size_t i = 0; i < sizeof(magics) / sizeof(magics[0]); i++) {
        const struct magic *m = &magics[i];
        if (n < m->off + m->len || memcmp(head + m->off, m->bytes, m->len) != 0)
            continue;
        set(out, m->fmt, m->supported, m->name, m->detected);
        return true;
    }
    return false;
}

static const struct brand *find_brand(const unsigned char *cc)
{
    for (size_t i = 0; i < sizeof(brands) / sizeof(brands[0]); i++)
        if (memcmp(cc, brands[i].cc, 4) == 0)
            return &brands[i];
    return NULL;
}

/* ISO-BMFF: size(4) "ftyp" major(4) minor(4) compatible(4)*. */
static bool match_ftyp(const unsigned char *head, size_t n, struct sniff_result *out)
{
    static const char *const boxes[] = {"moov", "mdat", "wide", "free", "skip", "pnot"};
    const struct brand *best = NULL;
    size_t end, best_rank = SIZE_MAX;

    if (n < 12)
        return false;
    if (memcmp(head + 4, "ftyp", 4) != 0) {
        /* Old QuickTime files start with a movie box and no ftyp. */
        for (size_t i = 0; i < sizeof(boxes) / sizeof(boxes[0]); i++) {
            if (memcmp(head + 4, boxes[i], 4) == 0) {
                set(out, MEDIA_FMT_UNKNOWN, false, "mov", "MP4/QuickTime video");
                return true;
            }
        }
        return false;
    }
    best = find_brand(head + 8);
    if (best && best->fmt != MEDIA_FMT_UNKNOWN) {
        set(out, best->fmt, best->supported, best->name, best->detected);
        return true; /* a known image major brand decides */
    }
    if (best)
        best_rank = (size_t)(best - brands);
    end = be32(head);
    if (end > n)
        end = n;
    for (size_t off = 16; off + 4 <= end; off += 4) {
        const struct brand *b = find_brand(head + off);
        if (b && (size_t)(b - brands) < best_rank) {
            best = b;
            best_rank = (size_t)(b - brands);
        }
    }
    if (!best) {
        set(out, MEDIA_FMT_UNKNOWN, false, "isobmff", "unknown ISO-BMFF file");
        return true;
    }
    set(out, best->fmt, best->supported, best->name, best->detected);
    return true;
}

/* Look through IFD0 (only what lies in head) for DNGVersion (0xC612). */
static bool tiff_is_dng(const unsigned char *head, size_t n, bool le)
{
    uint32_t ifd;
    uint16_t count;

    if (n < 8)
        return false;
    ifd = rd32(head + 4, le);
    if (ifd < 8 || (size_t)ifd + 2 > n)
        return false;
    count = rd16(head + ifd, le);
    for (uint32_t i = 0; i < count; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)i * 12;
        if (e + 12 > n)
            break;
        if (rd16(head + e, le) == 0xC612)
            return true;
    }
    return false;
}

static bool match_tiff(const unsigned char *head, size_t n, struct sniff_result *out)
{
    bool le;

    if (n < 4)
        return false;
    if (memcmp(head, "II", 2) == 0)
        le = true;
    else if (memcmp(head, "MM", 2) == 0)
        le = false;
    else
        return false;
    if (rd16(head + 2, le) == 43) {
        set(out, MEDIA_FMT_TIFF, true, "tiff", "BigTIFF image");
        out->maybe_raw = true;
        return true;
    }
    if (rd16(head + 2, le) != 42)
        return false;
    if (n >= 10 && memcmp(head + 8, "CR", 2) == 0)
        set(out, MEDIA_FMT_TIFF, true, "cr2", "Canon CR2 raw");
    else if (tiff_is_dng(head, n, le))
        set(out, MEDIA_FMT_TIFF, true, "dng", "DNG raw");
    else
        set(out, MEDIA_FMT_TIFF, true, "tiff", "TIFF image");
    out->maybe_raw = true;
    return true;
}

static bool match_webp(const unsigned char *head, size_t n, struct sniff_result *out)
{
    if (n < 12 || memcmp(head, "RIFF", 4) != 0)
        return false;
    if (memcmp(head + 8, "WEBP", 4) == 0)
        set(out, MEDIA_FMT_WEBP, true, "webp", "WebP image");
    else if (memcmp(head + 8, "AVI ", 4) == 0)
        set(out, MEDIA_FMT_UNKNOWN, false, "avi", "AVI video");
    else
        set(out, MEDIA_FMT_UNKNOWN, false, "riff", "RIFF data");
    return true;
}

/* Length of the UTF-8 sequence starting at p (n bytes left), 0 if invalid.
 * A sequence cut by the end of the scan window counts as valid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len;

    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        len = 2;
    else if (p[0] >= 0xE0 && p[0] <= 0xEF)
        len = 3;
    else if (p[0] >= 0xF0 && p[0] <= 0xF4)
        len = 4;
    else
        return 0;
    for (size_t i = 1; i < len; i++) {
        if (i >= n)
            return i;
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    }
    return len;
}

/* Printable ASCII, whitespace and valid UTF-8 only; a UTF-16 byte-order
 * mark also counts (UTF-16 text is not scanned further). */
static bool looks_like_text(const unsigned char *head, size_t n)
{
    size_t lim = n < SNIFF_TEXT_SCAN ? n : SNIFF_TEXT_SCAN;

    if (n >= 2 && ((head[0] == 0xFF && head[1] == 0xFE) || (head[0] == 0xFE && head[1] == 0xFF)))
        return true;
    for (size_t i = 0; i < lim;) {
        unsigned char c = head[i];
        size_t k;
        if (c == '\t' || c == '\n' || c == '\r' || c == '\f' || (c >= 0x20 && c < 0x7F)) {
            i++;
            continue;
        }
        k = utf8_len(head + i, lim - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

static bool match_junk_jpeg(const unsigned char *head, size_t n, struct sniff_result *out)
{
    size_t lim = n < SNIFF_JUNK_SCAN ? n : SNIFF_JUNK_SCAN;

    for (size_t i = 1; i + 3 <= lim; i++) {
        if (head[i] == 0xFF && head[i + 1] == 0xD8 && head[i + 2] == 0xFF) {
            char det[64];
            snprintf(det, sizeof(det), "JPEG data after %zu junk bytes", i);
            set(out, MEDIA_FMT_UNKNOWN, false, "jpeg", det);
            return true;
        }
    }
    return false;
}

void sniff_bytes(const unsigned char *head, size_t n, struct sniff_result *out)
{
    memset(out, 0, sizeof(*out));
    if (n == 0 || !head) {
        set(out, MEDIA_FMT_UNKNOWN, false, "empty", "empty file");
        return;
    }
    if (match_magic(head, n, out) || match_tiff(head, n, out) || match_ftyp(head, n, out) ||
        match_webp(head, n, out))
        return;
    if (looks_like_text(head, n)) {
        set(out, MEDIA_FMT_UNKNOWN, false, "text", "text");
        return;
    }
    if (match_junk_jpeg(head, n, out))
        return;
    /* Binary data without magic may still be a RAW LibRaw knows by its file
     * size (raw dumps, some old cameras): the worker asks LibRaw. */
    set(out, MEDIA_FMT_UNKNOWN, true, "unknown", "unknown data");
    out->maybe_raw = true;
}
