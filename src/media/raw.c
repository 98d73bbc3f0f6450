/*
 * raw: camera RAW with LibRaw 0.20 (see raw.h).
 *
 * Metadata: LibRaw's fields first (make, model, ISO, shutter, aperture, focal
 * length, lens, timestamp, GPS). LibRaw normalises make/model ("Kodak",
 * "DC120"), so for TIFF-structured RAW (DNG, NEF, KDC, RW2, ORF, ...) the
 * standard EXIF tags are read with libexif from the file head as well and
 * win where present; CIFF (CRW) models get Canon's "Canon " prefix back.
 * imgother.timestamp is mktime() of the EXIF wall clock, so localtime_r()
 * recovers that wall clock whatever TZ the server runs with (the only
 * exception: the skipped hour of a DST change).
 *
 * Size: LibRaw's full decode size (what dcraw_emu -T writes): sizes.width x
 * sizes.height stretched by pixel_aspect, sides swapped when flip has bit 4.
 *
 * Thumbnails: the embedded preview when it is a JPEG whose long side is at
 * least preview_size (flip applied by us via the orientation tag), otherwise
 * a half-size demosaic (dcraw_make_mem_image applies the flip itself). A RAW
 * whose pixel data is unreadable or reported corrupt fails with stage
 * "decode": there is no image to keep.
 */
#include "media/raw.h"

#include <libraw/libraw.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <vips/vips.h>

#include "media/exif.h"
#include "media/internal.h"
#include "media/thumb.h"

struct raw_state {
    bool data_error; /* LibRaw's data callback fired: pixels corrupt */
};

static void on_data_error(void *data, const char *file, const int offset)
{
    struct raw_state *st = data;
    (void)file;
    (void)offset;
    st->data_error = true;
}

static void on_mem_error(void *data, const char *file, const char *where)
{
    (void)data;
    (void)file;
    (void)where;
}

static enum err_class lr_class(int code)
{
    return code == LIBRAW_UNSUFFICIENT_MEMORY || code == LIBRAW_MEMPOOL_OVERFLOW ? ERR_TRANSIENT
                                                                                 : ERR_PERMANENT;
}

struct make_ext {
    const char *make; /* LibRaw's normalised make, lower-case compare */
    const char *ext;
};

static const struct make_ext make_exts[] = {
    {"nikon", "nef"}, {"sony", "arw"},    {"kodak", "kdc"},   {"pentax", "pef"},
    {"canon", "cr2"}, {"olympus", "orf"}, {"samsung", "srw"}, {"leica", "rwl"},
    {"panasonic", "rw2"}, {"fujifilm", "raf"}, {"hasselblad", "3fr"}, {"mamiya", "mef"},
};

static void set_format(libraw_data_t *lr, const struct sniff_result *sn, struct media_meta *m)
{
    const char *name = "raw";

    if (lr->idata.dng_version)
        name = "dng";
    else if (sn->fmt != MEDIA_FMT_UNKNOWN && strcmp(sn->name, "tiff") != 0)
        name = sn->name;
    else
        for (size_t i = 0; i < sizeof(make_exts) / sizeof(make_exts[0]); i++)
            if (strcasecmp(lr->idata.make, make_exts[i].make) == 0)
                name = make_exts[i].ext;
    snprintf(m->format, sizeof(m->format), "%s", name);
}

static void flip_to_orientation(int flip, struct media_meta *m)
{
    switch (flip) {
    case 3: m->orientation = 3; break;
    case 5: m->orientation = 8; break;
    case 6: m->orientation = 6; break;
    default: m->orientation = 1; break;
    }
}

static void full_size(libraw_data_t *lr, int64_t *w, int64_t *h)
{
    double a = lr->sizes.pixel_aspect;
    int64_t ww = lr->sizes.width, hh = lr->sizes.height;

    if (a > 0 && a < 1)
        hh = (int64_t)(hh / a + 0.5);
    else if (a > 1)
        ww = (int64_t)(ww * a + 0.5);
    if (lr->sizes.flip & 4) {
        int64_t t = ww;
        ww = hh;
        hh = t;
    }
    *w = ww;
    *h = hh;
}

static void read_libraw_meta(libraw_data_t *lr, struct media_meta *m)
{
    libraw_gps_info_t *g = &lr->other.parsed_gps;

    media_text_copy(m->make, sizeof(m->make), lr->idata.make, sizeof(lr->idata.make));
    media_text_copy(m->model, sizeof(m->model), lr->idata.model, sizeof(lr->idata.model));
    media_text_copy(m->lens, sizeof(m->lens), lr->lens.Lens, sizeof(lr->lens.Lens));
    if (lr->other.iso_speed > 0)
        m->iso = (int64_t)(lr->other.iso_speed + 0.5f);
    if (lr->other.shutter > 0)
        m->exposure_time = lr->other.shutter;
    if (lr->other.aperture > 0)
        m->f_number = lr->other.aperture;
    if (lr->other.focal_len > 0)
        m->focal_length = lr->other.focal_len;
    if (lr->other.timestamp > 0) {
        struct tm tm;
        time_t t = lr->other.timestamp;
        if (localtime_r(&t, &tm) && tm.tm_year + 1900 > 0 && tm.tm_year + 1900 <= 9999)
            strftime(m->taken_at, sizeof(m->taken_at), "%Y-%m-%dT%H:%M:%S", &tm);
    }
    if (g->gpsparsed) {
        double lat = g->latitude[0] + g->latitude[1] / 60.0 + g->latitude[2] / 3600.0;
        double lon = g->longitude[0] + g->longitude[1] / 60.0 + g->longitude[2] / 3600.0;
        if (isfinite(lat) && isfinite(lon) && lat <= 90 && lon <= 180 && (lat != 0 || lon != 0)) {
            m->gps_lat = g->latref == 'S' ? -lat : lat;
            m->gps_lon = g->longref == 'W' ? -lon : lon;
            if (isfinite(g->altitude))
                m->gps_alt = g->altref == 1 ? -g->altitude : g->altitude;
        }
    }
}

/* Standard EXIF tags of TIFF-structured RAW, read from the file head. */
static void read_tiff_exif(const char *path, struct media_meta *m)
{
    struct media_meta e;

    media_meta_clear(&e);
    if (exifmeta_parse_tiff_file(path, &e, NULL) != 0)
        return;
    if (e.make[0])
        memcpy(m->make, e.make, sizeof(m->make));
    if (e.model[0])
        memcpy(m->model, e.model, sizeof(m->model));
    if (e.lens[0])
        memcpy(m->lens, e.lens, sizeof(m->lens));
    if (e.taken_at[0] && !m->taken_at[0])
        memcpy(m->taken_at, e.taken_at, sizeof(m->taken_at));
    if (e.taken_offset[0])
        memcpy(m->taken_offset, e.taken_offset, sizeof(m->taken_offset));
    if (!isnan(e.gps_lat) && isnan(m->gps_lat)) {
        m->gps_lat = e.gps_lat;
        m->gps_lon = e.gps_lon;
        m->gps_alt = e.gps_alt;
    }
}

/* Canon's EXIF Model always starts with "Canon "; LibRaw strips it. */
static void canon_model(struct media_meta *m)
{
    size_t n = strlen(m->model);

    if (strcmp(m->make, "Canon") != 0 || strncmp(m->model, "Canon", 5) == 0 || n == 0)
        return;
    if (n + 6 >= sizeof(m->model))
        n = sizeof(m->model) - 7;
    memmove(m->model + 6, m->model, n);
    memcpy(m->model, "Canon ", 6);
    m->model[n + 6] = '\0';
}

/* Thumbnails from the embedded JPEG preview; 1 when it is missing or small. */
static int from_preview(libraw_data_t *lr, const struct media_opts *opts,
                        struct media_output *out, struct err *err)
{
    libraw_processed_image_t *p = NULL;
    VipsImage *img = NULL, *cp = NULL;
    int code = 0, rc = 1;
    char msg[ERR_MSG_MAX];

    if (libraw_unpack_thumb(lr) != LIBRAW_SUCCESS || lr->thumbnail.tformat != LIBRAW_THUMBNAIL_JPEG)
        return 1;
    p = libraw_dcraw_make_mem_thumb(lr, &code);
    if (!p || p->type != LIBRAW_IMAGE_JPEG)
        goto out;
    if (vips_jpegload_buffer(p->data, p->data_size, &img, "fail_on", VIPS_FAIL_ON_ERROR, NULL) != 0) {
        thumb_vips_error(msg, sizeof(msg), NULL);
        goto out; /* broken preview: try the sensor data */
    }
    if (vips_image_get_width(img) < opts->preview_size &&
        vips_image_get_height(img) < opts->preview_size)
        goto out;
    if (vips_copy(img, &cp, NULL) != 0) {
        thumb_vips_error(msg, sizeof(msg), NULL);
        goto out;
    }
    vips_image_set_int(cp, VIPS_META_ORIENTATION, (int)out->meta.orientation);
    /* a preview that fails to decode: try the sensor data instead */
    rc = thumb_from_image(cp, opts, out, err) == 0 ? 0 : 1;
out:
    if (cp)
        g_object_unref(cp);
    if (img)
        g_object_unref(img);
    if (p)
        libraw_dcraw_clear_mem(p);
    return rc;
}

static int from_sensor(libraw_data_t *lr, struct raw_state *st, const struct media_opts *opts,
                       struct media_output *out, struct err *err)
{
    libraw_processed_image_t *p = NULL;
    VipsImage *img = NULL;
    int code, rc = -1;

    lr->params.half_size = 1;
    lr->params.use_camera_wb = 1;
    lr->params.output_bps = 8;
    code = libraw_unpack(lr);
    if (code != LIBRAW_SUCCESS) {
        err_set(err, lr_class(code), "decode", "cannot read the RAW pixel data: %s",
                libraw_strerror(code));
        goto out;
    }
    if (st->data_error) {
        err_set(err, ERR_PERMANENT, "decode", "the RAW pixel data is corrupt");
        goto out;
    }
    code = libraw_dcraw_process(lr);
    if (code != LIBRAW_SUCCESS) {
        err_set(err, lr_class(code), "decode", "cannot process the RAW pixel data: %s",
                libraw_strerror(code));
        goto out;
    }
    p = libraw_dcraw_make_mem_image(lr, &code);
    if (!p || p->type != LIBRAW_IMAGE_BITMAP || p->bits != 8 || (p->colors != 3 && p->colors != 1)) {
        err_set(err, p ? ERR_PERMANENT : lr_class(code), "decode",
                "cannot render the RAW image: %s", p ? "unexpected layout" : libraw_strerror(code));
        goto out;
    }
    img = vips_image_new_from_memory(p->data, p->data_size, p->width, p->height, p->colors,
                                     VIPS_FORMAT_UCHAR);
    if (!img) {
        char msg[ERR_MSG_MAX];
        err_set(err, ERR_TRANSIENT, "decode", "%s", thumb_vips_error(msg, sizeof(msg), NULL));
        goto out;
    }
    rc = thumb_from_image(img, opts, out, err);
out:
    if (img)
        g_object_unref(img); /* before p: img borrows p->data */
    if (p)
        libraw_dcraw_clear_mem(p);
    return rc;
}

/* libraw_init() with the LibRaw object's memory zeroed. LibRaw 0.20's
 * constructor leaves part of the object unset (the Panasonic bit reader's
 * buffer, valgrind: "uninitialised value created by LibRaw::LibRaw"), and
 * panasonic_load_raw() reads it: an RW2 whose data is short then decoded in a
 * worker's first file (fresh, zeroed pages) and failed with "Input/output
 * error" in any later one (reused heap). M_PERTURB 0xff makes malloc fill new
 * blocks with its complement, 0, for this one allocation (mallopt(3)): every
 * file now gets what the first one got. */
static libraw_data_t *new_libraw(void)
{
    libraw_data_t *lr;

    mallopt(M_PERTURB, 0xff);
    lr = libraw_init(0);
    mallopt(M_PERTURB, 0);
    return lr;
}

int raw_process(const char *path, const struct sniff_result *sn, const struct media_opts *opts,
                bool probe_only, struct media_output *out, bool *is_raw, struct err *err)
{
    libraw_data_t *lr = NULL;
    struct raw_state st = {false};
    int64_t w, h;
    int code, rc = -1;

    *is_raw = false;
    lr = new_libraw();
    if (!lr)
        return err_set(err, ERR_TRANSIENT, "header", "out of memory for LibRaw");
    libraw_set_dataerror_handler(lr, on_data_error, &st);
    libraw_set_memerror_handler(lr, on_mem_error, NULL);
    lr->params.max_raw_memory_mb = RAW_MAX_MEMORY_MB;
    code = libraw_open_file(lr, path);
    if (code != LIBRAW_SUCCESS) {
        if ((sn->fmt == MEDIA_FMT_TIFF || sn->fmt == MEDIA_FMT_UNKNOWN) &&
            code != LIBRAW_UNSUFFICIENT_MEMORY) {
            rc = 0; /* not a RAW LibRaw knows: libvips may read it, or nobody */
            goto out;
        }
        *is_raw = true;
        err_set(err, lr_class(code), "header", "cannot read the RAW file (%s): %s", sn->detected,
                libraw_strerror(code));
        goto out;
    }
    *is_raw = true;
    set_format(lr, sn, &out->meta);
    full_size(lr, &w, &h);
    if (thumb_check_limits(w, h, opts, err) != 0)
        goto out;
    out->meta.width = w;
    out->meta.height = h;
    flip_to_orientation(lr->sizes.flip, &out->meta);
    read_libraw_meta(lr, &out->meta);
    if (sn->fmt == MEDIA_FMT_TIFF || strcmp(sn->name, "rw2") == 0 || strcmp(sn->name, "orf") == 0)
        read_tiff_exif(path, &out->meta);
    canon_model(&out->meta);
    if (probe_only) {
        rc = 0;
        goto out;
    }
    code = from_preview(lr, opts, out, err);
    if (code == 1) {
        /* LibRaw 0.20 refuses unpack() after a failed unpack_thumb() ("out of
         * order call") and may have moved the stream: start again. */
        libraw_recycle(lr);
        lr->params.max_raw_memory_mb = RAW_MAX_MEMORY_MB;
        code = libraw_open_file(lr, path);
        if (code != LIBRAW_SUCCESS) {
            err_set(err, lr_class(code), "decode", "cannot reopen the RAW file: %s",
                    libraw_strerror(code));
            goto out;
        }
        code = from_sensor(lr, &st, opts, out, err);
    }
    if (code != 0)
        goto out;
    rc = 0;
out:
    libraw_close(lr);
    return rc;
}
