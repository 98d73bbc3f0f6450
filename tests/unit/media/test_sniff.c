/* test_sniff: table-driven checks of sniff_bytes() on byte strings. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "media/sniff.h"

struct row {
    const char *what;
    const char *bytes;
    size_t len;
    enum media_fmt fmt;
    bool supported;
    bool maybe_raw;
    const char *name;
    const char *detected; /* substring; NULL = don't check */
};

#define B(lit) lit, sizeof(lit) - 1

static const struct row rows[] = {
    {"jpeg", B("\xFF\xD8\xFF\xE0\0\x10JFIF\0"), MEDIA_FMT_JPEG, true, false, "jpeg", NULL},
    {"jpeg exif", B("\xFF\xD8\xFF\xE1\x12\x34" "Exif\0\0"), MEDIA_FMT_JPEG, true, false, "jpeg", NULL},
    {"jpeg truncated magic", B("\xFF\xD8"), MEDIA_FMT_UNKNOWN, true, true, "unknown", "unknown data"},
    {"jpeg after junk", B("\x01\x02\x03\x04\x05\xFF\xD8\xFF\xE0"), MEDIA_FMT_UNKNOWN, false, false,
     "jpeg", "junk"},
    {"png", B("\x89PNG\r\n\x1A\n\0\0\0\rIHDR"), MEDIA_FMT_PNG, true, false, "png", NULL},
    {"png truncated magic", B("\x89PNG\r\n"), MEDIA_FMT_UNKNOWN, true, true, NULL, NULL},
    {"gif87a", B("GIF87a\x10\0\x10\0"), MEDIA_FMT_GIF, true, false, "gif", NULL},
    {"gif89a", B("GIF89a\x10\0\x10\0"), MEDIA_FMT_GIF, true, false, "gif", NULL},
    {"gif truncated", B("GIF8"), MEDIA_FMT_UNKNOWN, false, false, NULL, NULL},
    {"webp", B("RIFF\x24\0\0\0WEBPVP8 "), MEDIA_FMT_WEBP, true, false, "webp", NULL},
    {"riff wave", B("RIFF\x24\0\0\0WAVEfmt "), MEDIA_FMT_UNKNOWN, false, false, NULL, NULL},
    {"webp truncated", B("RIFF\x24\0\0\0WE"), MEDIA_FMT_UNKNOWN, true, true, NULL, NULL},
    {"tiff le", B("II*\0\x08\0\0\0\0\0"), MEDIA_FMT_TIFF, true, true, "tiff", NULL},
    {"tiff be", B("MM\0*\0\0\0\x08\0\0"), MEDIA_FMT_TIFF, true, true, "tiff", NULL},
    {"bigtiff", B("II+\0\x08\0\0\0\x10\0\0\0"), MEDIA_FMT_TIFF, true, true, "tiff", "BigTIFF"},
    {"bigtiff be", B("MM\0+\0\x08\0\0"), MEDIA_FMT_TIFF, true, true, "tiff", "BigTIFF"},
    {"cr2", B("II*\0\x10\0\0\0CR\x02\0"), MEDIA_FMT_TIFF, true, true, "cr2", NULL},
    /* IFD0 at 8 with one entry: tag 0xC612 DNGVersion */
    {"dng", B("II*\0\x08\0\0\0\x01\0\x12\xC6\x01\0\x04\0\0\0\x01\x04\0\0\0\0\0\0"),
     MEDIA_FMT_TIFF, true, true, "dng", "DNG"},
    {"tiff bad ifd offset", B("II*\0\xFF\xFF\xFF\xFF"), MEDIA_FMT_TIFF, true, true, "tiff", NULL},
    {"tiff truncated", B("II*"), MEDIA_FMT_UNKNOWN, false, false, NULL, NULL},
    {"orf IIRO", B("IIRO\x08\0\0\0"), MEDIA_FMT_RAW, true, false, "orf", NULL},
    {"orf IIRS", B("IIRS\x08\0\0\0"), MEDIA_FMT_RAW, true, false, "orf", NULL},
    {"rw2", B("IIU\0\x18\0\0\0"), MEDIA_FMT_RAW, true, false, "rw2", NULL},
    {"raf", B("FUJIFILMCCD-RAW 0201"), MEDIA_FMT_RAW, true, false, "raf", NULL},
    {"crw", B("II\x1A\0\0\0HEAPCCDR\x02\0"), MEDIA_FMT_RAW, true, false, "crw", NULL},
    {"x3f", B("FOVb\0\0\x02\0"), MEDIA_FMT_RAW, true, false, "x3f", NULL},
    {"mrw", B("\0MRM\0\0\0\x20"), MEDIA_FMT_RAW, true, false, "mrw", NULL},
    {"qtk", B("qktk\0\0\0\x08"), MEDIA_FMT_RAW, true, false, "qtk", NULL},
    {"heic", B("\0\0\0\x18" "ftypheic\0\0\0\0mif1heic"), MEDIA_FMT_HEIF, true, false, "heic", NULL},
    {"heix", B("\0\0\0\x18" "ftypheix\0\0\0\0mif1heix"), MEDIA_FMT_HEIF, true, false, "heic", NULL},
    {"hevc", B("\0\0\0\x18" "ftyphevc\0\0\0\0msf1hevc"), MEDIA_FMT_HEIF, true, false, "heic", NULL},
    {"heim", B("\0\0\0\x14" "ftypheim\0\0\0\0mif1"), MEDIA_FMT_HEIF, true, false, "heic", NULL},
    {"heis", B("\0\0\0\x14" "ftypheis\0\0\0\0mif1"), MEDIA_FMT_HEIF, true, false, "heic", NULL},
    {"mif1 major, heic compatible", B("\0\0\0\x18" "ftypmif1\0\0\0\0mif1heic"), MEDIA_FMT_HEIF,
     true, false, "heif", NULL},
    {"bad utf-8", B("abc\xC3" "(def"), MEDIA_FMT_UNKNOWN, true, true, "unknown", NULL},
    {"mif1 only", B("\0\0\0\x14" "ftypmif1\0\0\0\0mif1"), MEDIA_FMT_HEIF, true, false, "heif", NULL},
    {"msf1", B("\0\0\0\x14" "ftypmsf1\0\0\0\0msf1"), MEDIA_FMT_HEIF, true, false, "heif", NULL},
    {"avif", B("\0\0\0\x1C" "ftypavif\0\0\0\0avifmif1miaf"), MEDIA_FMT_AVIF, true, false, "avif", NULL},
    {"avis", B("\0\0\0\x18" "ftypavis\0\0\0\0avismsf1"), MEDIA_FMT_AVIF, true, false, "avif", NULL},
    {"cr3", B("\0\0\0\x18" "ftypcrx \0\0\0\x01" "crx isom"), MEDIA_FMT_RAW, true, false, "cr3", NULL},
    {"mov", B("\0\0\0\x14" "ftypqt  \0\0\x02\0qt  "), MEDIA_FMT_UNKNOWN, false, false, "mov",
     "MP4/QuickTime video"},
    {"mp4", B("\0\0\0\x18" "ftypisom\0\0\x02\0isomiso2"), MEDIA_FMT_UNKNOWN, false, false, "mp4",
     "MP4/QuickTime video"},
    {"old mov", B("\0\0\0\x08wide\0\0\0\0mdat"), MEDIA_FMT_UNKNOWN, false, false, NULL,
     "MP4/QuickTime video"},
    {"ftyp unknown brand", B("\0\0\0\x10" "ftypabcd\0\0\0\0"), MEDIA_FMT_UNKNOWN, false, false,
     NULL, NULL},
    {"ftyp box size lies", B("\xFF\xFF\xFF\xFF" "ftypxxxx\0\0\0\0avif"), MEDIA_FMT_AVIF, true,
     false, "avif", NULL},
    {"ftyp truncated", B("\0\0\0\x18" "ftyphe"), MEDIA_FMT_UNKNOWN, true, true, NULL, NULL},
    {"pdf", B("%PDF-1.4\n%\xE2\xE3"), MEDIA_FMT_UNKNOWN, false, false, "pdf", "PDF document"},
    {"ole", B("\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1\0\0"), MEDIA_FMT_UNKNOWN, false, false, "ole",
     "OLE/FlashPix document"},
    {"text", B("# Hello\n\nThis is markdown.\n"), MEDIA_FMT_UNKNOWN, false, false, "text", "text"},
    {"json", B("{\"a\": [1, 2, 3]}\n"), MEDIA_FMT_UNKNOWN, false, false, "text", "text"},
    {"html", B("<!DOCTYPE html><html></html>"), MEDIA_FMT_UNKNOWN, false, false, "text", "text"},
    {"xml", B("<?xml version=\"1.0\"?><a/>"), MEDIA_FMT_UNKNOWN, false, false, "text", "text"},
    {"utf-8 text", B("caf\xC3\xA9 cr\xC3\xA8me\n"), MEDIA_FMT_UNKNOWN, false, false, "text", "text"},
    /* unknown data goes to the worker, which asks LibRaw (RAW known by size) */
    {"binary", B("\x07\x20MM\0\x03\0\x01\0\0"), MEDIA_FMT_UNKNOWN, true, true, "unknown",
     "unknown data"},
    {"one byte", B("\xFF"), MEDIA_FMT_UNKNOWN, true, true, NULL, NULL},
    {"empty", "", 0, MEDIA_FMT_UNKNOWN, false, false, "empty", "empty file"},
};

START_TEST(test_rows)
{
    const struct row *r = &rows[_i];
    struct sniff_result s;

    sniff_bytes((const unsigned char *)r->bytes, r->len, &s);
    ck_assert_msg(s.fmt == r->fmt, "%s: fmt %d, want %d", r->what, s.fmt, r->fmt);
    ck_assert_msg(s.supported == r->supported, "%s: supported %d", r->what, s.supported);
    ck_assert_msg(s.maybe_raw == r->maybe_raw, "%s: maybe_raw %d", r->what, s.maybe_raw);
    if (r->name)
        ck_assert_msg(strcmp(s.name, r->name) == 0, "%s: name '%s', want '%s'", r->what, s.name,
                      r->name);
    if (r->detected)
        ck_assert_msg(strstr(s.detected, r->detected), "%s: detected '%s', want '%s'", r->what,
                      s.detected, r->detected);
    ck_assert(s.name[0] != '\0');
    ck_assert(s.detected[0] != '\0');
}
END_TEST

/* Every prefix of every row must be handled without reading past n
 * (ASan/valgrind catch over-reads: copy to an exact-size heap block). */
START_TEST(test_prefixes)
{
    const struct row *r = &rows[_i];

    for (size_t n = 0; n <= r->len; n++) {
        unsigned char *p = malloc(n ? n : 1);
        struct sniff_result s;
        memcpy(p, r->bytes, n);
        sniff_bytes(p, n, &s);
        ck_assert(s.name[0] != '\0');
        free(p);
    }
}
END_TEST

START_TEST(test_null_head)
{
    struct sniff_result s;

    sniff_bytes(NULL, 0, &s);
    ck_assert_str_eq(s.detected, "empty file");
    ck_assert(!s.supported);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sniff");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;
    int nrows = (int)(sizeof(rows) / sizeof(rows[0]));

    tcase_add_loop_test(tc, test_rows, 0, nrows);
    tcase_add_loop_test(tc, test_prefixes, 0, nrows);
    tcase_add_test(tc, test_null_head);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
