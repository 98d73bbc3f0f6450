/*
 * exif: standard EXIF tags with libexif (see exif.h). Follows
 * LIBRARY-NOTES: exif_data_new() with FOLLOW_SPECIFICATION unset (otherwise
 * libexif invents tags), GPS tags looked up in the GPS IFD only, numbers from
 * the rationals (never from exif_entry_get_value() text), denominators checked.
 * Note: exif_data_load_data() still interprets a MakerNote if present; there
 * is no option to skip it in 0.6.24. We never read MakerNote values.
 */
#include "media/exif.h"

#include <errno.h>
#include <libexif/exif-data.h>
#include <math.h>
#include <stdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/limits.h"
#include "media/internal.h"

/* Tags newer than some libexif headers: use the numbers. */
#define TAG_OFFSET_TIME_ORIGINAL ((ExifTag)0x9011)
#define TAG_LENS_MODEL ((ExifTag)0xa434)

static const unsigned char exif_header[6] = {'E', 'x', 'i', 'f', 0, 0};

static ExifEntry *entry(ExifData *ed, ExifIfd ifd, ExifTag tag)
{
    return exif_content_get_entry(ed->ifd[ifd], tag);
}

/* The first of IFD0 / EXIF IFD holding tag. */
static ExifEntry *entry_any(ExifData *ed, ExifTag tag)
{
    ExifEntry *e = entry(ed, EXIF_IFD_0, tag);
    return e ? e : entry(ed, EXIF_IFD_EXIF, tag);
}

static bool get_text(ExifEntry *e, char *dst, size_t cap)
{
    if (!e || !e->data || e->size == 0)
        return false;
    if (e->format != EXIF_FORMAT_ASCII && e->format != EXIF_FORMAT_UNDEFINED)
        return false;
    media_text_copy(dst, cap, (const char *)e->data, e->size);
    return dst[0] != '\0';
}

/* The i-th rational of e as a double; NAN when absent or the denominator is 0. */
static double get_rational(ExifData *ed, ExifEntry *e, unsigned long i)
{
    ExifByteOrder bo = exif_data_get_byte_order(ed);
    size_t sz = exif_format_get_size(e ? e->format : EXIF_FORMAT_RATIONAL);

    if (!e || !e->data || i >= e->components || (i + 1) * sz > e->size)
        return NAN;
    if (e->format == EXIF_FORMAT_RATIONAL) {
        ExifRational r = exif_get_rational(e->data + i * sz, bo);
        return r.denominator ? (double)r.numerator / r.denominator : NAN;
    }
    if (e->format == EXIF_FORMAT_SRATIONAL) {
        ExifSRational r = exif_get_srational(e->data + i * sz, bo);
        return r.denominator ? (double)r.numerator / r.denominator : NAN;
    }
    return NAN;
}

static int64_t get_int(ExifData *ed, ExifEntry *e)
{
    ExifByteOrder bo = exif_data_get_byte_order(ed);

    if (!e || !e->data || e->components < 1)
        return 0;
    switch (e->format) {
    case EXIF_FORMAT_SHORT:
        return e->size >= 2 ? exif_get_short(e->data, bo) : 0;
    case EXIF_FORMAT_LONG:
        return e->size >= 4 ? (int64_t)exif_get_long(e->data, bo) : 0;
    case EXIF_FORMAT_SLONG:
        return e->size >= 4 ? exif_get_slong(e->data, bo) : 0;
    case EXIF_FORMAT_BYTE:
        return e->size >= 1 ? e->data[0] : 0;
    default:
        return 0;
    }
}

int exifmeta_date(const char *in, char *out, size_t cap)
{
    /* "YYYY:MM:DD HH:MM:SS": digits everywhere but positions 4, 7, 10, 13, 16. */
    int v[6] = {0};
    static const int pos[6] = {0, 5, 8, 11, 14, 17};
    static const int len[6] = {4, 2, 2, 2, 2, 2};

    if (strlen(in) < 19 || in[4] != ':' || in[7] != ':' || (in[10] != ' ' && in[10] != 'T') ||
        in[13] != ':' || in[16] != ':')
        return -1;
    for (int i = 0; i < 6; i++) {
        for (int k = 0; k < len[i]; k++) {
            char c = in[pos[i] + k];
            if (c < '0' || c > '9')
                return -1;
            v[i] = v[i] * 10 + (c - '0');
        }
    }
    if (v[0] < 1 || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 ||
        v[5] > 60)
        return -1;
    if (cap < 20)
        return -1;
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d", v[0], v[1], v[2], v[3], v[4], v[5]);
    return 0;
}

/* "+HH:MM" / "-HH:MM" only. */
static void read_offset(ExifData *ed, struct media_meta *meta)
{
    char s[16];

    if (!get_text(entry(ed, EXIF_IFD_EXIF, TAG_OFFSET_TIME_ORIGINAL), s, sizeof(s)))
        return;
    if (strlen(s) != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':')
        return;
    for (int i = 1; i < 6; i++)
        if (i != 3 && (s[i] < '0' || s[i] > '9'))
            return;
    memcpy(meta->taken_offset, s, 7); /* checked above: exactly "+HH:MM" and its NUL */
}

static void read_date(ExifData *ed, struct media_meta *meta)
{
    char s[32];

    if (get_text(entry_any(ed, EXIF_TAG_DATE_TIME_ORIGINAL), s, sizeof(s)) &&
        exifmeta_date(s, meta->taken_at, sizeof(meta->taken_at)) == 0) {
        read_offset(ed, meta);
        return;
    }
    /* The fallback DateTime is the last-modified time; no offset is known for it. */
    if (get_text(entry_any(ed, EXIF_TAG_DATE_TIME), s, sizeof(s)) &&
        exifmeta_date(s, meta->taken_at, sizeof(meta->taken_at)) == 0)
        return;
    meta->taken_at[0] = '\0';
}

/* Degrees from three rationals d, m, s, negated for refs S/W. */
static double gps_coord(ExifData *ed, ExifTag tag, ExifTag ref_tag, char neg, double max)
{
    ExifEntry *e = entry(ed, EXIF_IFD_GPS, tag);
    char ref[4] = "";
    double d, m, s, v;

    if (!e || e->format != EXIF_FORMAT_RATIONAL || e->components < 3)
        return NAN;
    d = get_rational(ed, e, 0);
    m = get_rational(ed, e, 1);
    s = get_rational(ed, e, 2);
    if (isnan(d) || isnan(m) || isnan(s))
        return NAN;
    v = d + m / 60.0 + s / 3600.0;
    if (v > max)
        return NAN;
    get_text(entry(ed, EXIF_IFD_GPS, ref_tag), ref, sizeof(ref));
    return ref[0] == neg ? -v : v;
}

static void read_gps(ExifData *ed, struct media_meta *meta)
{
    double lat = gps_coord(ed, (ExifTag)EXIF_TAG_GPS_LATITUDE, (ExifTag)EXIF_TAG_GPS_LATITUDE_REF,
                           'S', 90.0);
    double lon = gps_coord(ed, (ExifTag)EXIF_TAG_GPS_LONGITUDE,
                           (ExifTag)EXIF_TAG_GPS_LONGITUDE_REF, 'W', 180.0);
    ExifEntry *alt = entry(ed, EXIF_IFD_GPS, (ExifTag)EXIF_TAG_GPS_ALTITUDE);

    if (isnan(lat) || isnan(lon))
        return; /* half a position is no position */
    meta->gps_lat = lat;
    meta->gps_lon = lon;
    if (alt) {
        double a = get_rational(ed, alt, 0);
        ExifEntry *ref = entry(ed, EXIF_IFD_GPS, (ExifTag)EXIF_TAG_GPS_ALTITUDE_REF);
        if (!isnan(a))
            meta->gps_alt = (ref && get_int(ed, ref) == 1) ? -a : a;
    }
}

static void read_camera(ExifData *ed, struct media_meta *meta)
{
    double v;
    int64_t n;

    get_text(entry_any(ed, EXIF_TAG_MAKE), meta->make, sizeof(meta->make));
    get_text(entry_any(ed, EXIF_TAG_MODEL), meta->model, sizeof(meta->model));
    get_text(entry(ed, EXIF_IFD_EXIF, TAG_LENS_MODEL), meta->lens, sizeof(meta->lens));
    v = get_rational(ed, entry_any(ed, EXIF_TAG_EXPOSURE_TIME), 0);
    if (!isnan(v) && v > 0)
        meta->exposure_time = v;
    v = get_rational(ed, entry_any(ed, EXIF_TAG_FNUMBER), 0);
    if (!isnan(v) && v > 0)
        meta->f_number = v;
    v = get_rational(ed, entry_any(ed, EXIF_TAG_FOCAL_LENGTH), 0);
    if (!isnan(v) && v > 0)
        meta->focal_length = v;
    n = get_int(ed, entry_any(ed, EXIF_TAG_ISO_SPEED_RATINGS));
    if (n > 0)
        meta->iso = n;
    n = get_int(ed, entry(ed, EXIF_IFD_0, EXIF_TAG_ORIENTATION));
    if (n >= 1 && n <= 8)
        meta->orientation = n;
}

static bool has_entries(ExifData *ed)
{
    for (int i = 0; i < EXIF_IFD_COUNT; i++)
        if (ed->ifd[i] && ed->ifd[i]->count > 0)
            return true;
    return false;
}

int exifmeta_parse(const void *data, size_t len, struct media_meta *meta, struct err *err)
{
    ExifData *ed = NULL;
    unsigned char *tmp = NULL;
    const unsigned char *p = data;
    int rc = -1;

    if (!data || len < 8)
        return err_set(err, ERR_PERMANENT, "exif", "EXIF block too short (%zu bytes)", len);
    if (len > LIMIT_EXIF_BYTES)
        return err_set(err, ERR_PERMANENT, "exif", "EXIF block of %zu bytes is over the limit",
                       len);
    /* libexif wants the "Exif\0\0" prefix; PNG eXIf and TIFF blobs lack it. */
    if (memcmp(p, "II*\0", 4) == 0 || memcmp(p, "MM\0*", 4) == 0) {
        tmp = malloc(len + sizeof(exif_header));
        if (!tmp)
            return err_set(err, ERR_TRANSIENT, "exif", "out of memory for the EXIF block");
        memcpy(tmp, exif_header, sizeof(exif_header));
        memcpy(tmp + sizeof(exif_header), p, len);
        p = tmp;
        len += sizeof(exif_header);
    }
    ed = exif_data_new();
    if (!ed) {
        err_set(err, ERR_TRANSIENT, "exif", "out of memory for EXIF parsing");
        goto out;
    }
    exif_data_unset_option(ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
    /* Keep tags found in the "wrong" IFD (some cameras put Make/Model in the
     * EXIF IFD); with this option libexif silently drops them. */
    exif_data_unset_option(ed, EXIF_DATA_OPTION_IGNORE_UNKNOWN_TAGS);
    exif_data_load_data(ed, p, (unsigned int)len);
    if (!has_entries(ed)) {
        err_set(err, ERR_PERMANENT, "exif", "EXIF block holds no readable tags");
        goto out;
    }
    read_camera(ed, meta);
    read_date(ed, meta);
    read_gps(ed, meta);
    rc = 0;
out:
    if (ed)
        exif_data_unref(ed);
    free(tmp);
    return rc;
}

int exifmeta_parse_tiff_file(const char *path, struct media_meta *meta, struct err *err)
{
    FILE *f = NULL;
    unsigned char *head = NULL;
    size_t n;
    int rc = -1;

    head = malloc(LIMIT_EXIF_BYTES);
    if (!head)
        return err_set(err, ERR_TRANSIENT, "exif", "out of memory for the EXIF block");
    f = fopen(path, "rb");
    if (!f) {
        err_sys(err, errno, "exif", "cannot open the file");
        goto out;
    }
    n = fread(head, 1, LIMIT_EXIF_BYTES, f);
    if (n < 8) {
        err_set(err, ERR_PERMANENT, "exif", "file too short for TIFF tags");
        goto out;
    }
    /* RW2 ("IIU\0") and ORF ("IIRO"/"IIRS"/"MMOR") are TIFF with another magic. */
    if (memcmp(head, "II", 2) == 0) {
        head[2] = '*';
        head[3] = 0;
    } else if (memcmp(head, "MM", 2) == 0) {
        head[2] = 0;
        head[3] = '*';
    } else {
        err_set(err, ERR_PERMANENT, "exif", "not a TIFF-structured file");
        goto out;
    }
    rc = exifmeta_parse(head, n, meta, err);
out:
    if (f)
        fclose(f);
    free(head);
    return rc;
}
