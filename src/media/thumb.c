/*
 * thumb: libvips header, limits and thumbnails (see thumb.h).
 *
 * One decode per file: JPEG is reopened with the largest shrink-on-load
 * (2/4/8) that keeps the long side >= preview_size, vips_thumbnail_image()
 * makes the preview (orientation applied, sRGB), the preview is materialised
 * in memory once, and the grid thumbnail is made from that memory image.
 * Every load uses fail_on=VIPS_FAIL_ON_ERROR, so truncated files fail instead
 * of producing grey-filled thumbnails.
 */
#include "media/thumb.h"

#include "media/boxshrink.h"
#include "media/gifcheck.h"
#include "media/heifgrid.h"
#include "media/jpegenc.h"
#include "media/jpegscale.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/limits.h"
#include "base/log.h"
#include "media/exif.h"
#include "media/internal.h"

/* JPEG quality of preview and thumbnail: visually clean, ~150 KB at 1440 px. */
#define THUMB_JPEG_Q 82

/* Append line to dst (j bytes used) unless dst already holds it; the
 * spool path in libvips messages becomes "file". */
static size_t add_line(char *dst, size_t cap, size_t j, const char *line, size_t n,
                       const char *path)
{
    char tmp[512];
    size_t k = 0, plen = path ? strlen(path) : 0;

    for (size_t i = 0; i < n && k + 1 < sizeof(tmp);) {
        if (plen && n - i >= plen && memcmp(line + i, path, plen) == 0 && k + 5 < sizeof(tmp)) {
            memcpy(tmp + k, "file", 4);
            k += 4;
            i += plen;
            continue;
        }
        tmp[k++] = (line[i] > 0 && line[i] < 0x20) ? ' ' : line[i];
        i++;
    }
    tmp[k] = '\0';
    if (k == 0 || strstr(dst, tmp))
        return j;
    if (j > 0 && j + 2 < cap) {
        memcpy(dst + j, "; ", 2);
        j += 2;
    }
    for (size_t i = 0; i < k && j + 1 < cap; i++)
        dst[j++] = tmp[i];
    dst[j] = '\0';
    return j;
}

const char *thumb_vips_error(char *dst, size_t cap, const char *path)
{
    char *t = vips_error_buffer_copy();
    size_t j = 0;

    if (cap == 0) {
        g_free(t);
        return dst;
    }
    dst[0] = '\0';
    /* One line per distinct message, "; "-separated. */
    for (const char *p = t; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        j = add_line(dst, cap, j, p, n, path);
        p = nl ? nl + 1 : p + n;
    }
    if (j == 0)
        media_last_warning(dst, cap); /* some loaders only warn, then fail */
    if (!dst[0])
        snprintf(dst, cap, "unknown libvips error");
    g_free(t);
    return dst;
}

static enum err_class classify(const char *msg)
{
    if (strstr(msg, "out of memory") || strstr(msg, "Cannot allocate memory") ||
        strstr(msg, "unable to allocate"))
        return ERR_TRANSIENT;
    return ERR_PERMANENT;
}

int thumb_check_limits(int64_t w, int64_t h, const struct media_opts *opts, struct err *err)
{
    int64_t px;

    if (w <= 0 || h <= 0)
        return err_set(err, ERR_PERMANENT, "limits", "the image has no pixels (%lldx%lld)",
                       (long long)w, (long long)h);
    if (w > opts->max_dimension || h > opts->max_dimension)
        return err_set(err, ERR_PERMANENT, "limits",
                       "%lldx%lld pixels: a side is over the limit of %lld", (long long)w,
                       (long long)h, (long long)opts->max_dimension);
    if (__builtin_mul_overflow(w, h, &px) || px > opts->max_pixels) {
        double mpx = (double)w * (double)h / 1e6;
        double lim = (double)opts->max_pixels / 1e6;
        return err_set(err, ERR_PERMANENT, "limits",
                       "%lldx%lld pixels (%.*f Mpx) is over the limit of %.*f Mpx", (long long)w,
                       (long long)h, mpx < 10 ? 1 : 0, mpx, lim == floor(lim) ? 0 : 2, lim);
    }
    return 0;
}

/* Open with the loader for fmt; shrink and fail only matter for JPEG (the
 * others always use VIPS_FAIL_ON_ERROR). NULL on error. */
static VipsImage *load(const char *path, enum media_fmt fmt, int shrink, VipsFailOn fail)
{
    VipsImage *img = NULL;
    int rc = -1;

    switch (fmt) {
    case MEDIA_FMT_JPEG:
        rc = vips_jpegload(path, &img, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on", fail,
                           "shrink", shrink, NULL);
        break;
    case MEDIA_FMT_PNG:
        rc = vips_pngload(path, &img, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                          VIPS_FAIL_ON_ERROR, NULL);
        break;
    case MEDIA_FMT_WEBP:
        rc = vips_webpload(path, &img, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                           VIPS_FAIL_ON_ERROR, NULL);
        break;
    case MEDIA_FMT_GIF:
        rc = vips_gifload(path, &img, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                          VIPS_FAIL_ON_ERROR, NULL);
        break;
    case MEDIA_FMT_TIFF:
        rc = vips_tiffload(path, &img, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                           VIPS_FAIL_ON_ERROR, NULL);
        break;
    case MEDIA_FMT_HEIF:
    case MEDIA_FMT_AVIF:
        rc = vips_heifload(path, &img, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                           VIPS_FAIL_ON_ERROR, NULL);
        break;
    default:
        vips_error("shoebox", "no loader for this format");
        return NULL;
    }
    return rc == 0 ? img : NULL;
}

static void read_exif_blob(VipsImage *img, struct media_output *out)
{
    const void *data = NULL;
    size_t len = 0;
    struct err e = {0};

    if (vips_image_get_typeof(img, VIPS_META_EXIF_NAME) == 0)
        return; /* no EXIF: nothing to report */
    if (vips_image_get_blob(img, VIPS_META_EXIF_NAME, &data, &len) != 0) {
        char msg[256];
        media_warn(out, "EXIF unreadable: %s", thumb_vips_error(msg, sizeof(msg), NULL));
        return;
    }
    if (exifmeta_parse(data, len, &out->meta, &e) != 0)
        media_warn(out, "EXIF unreadable: %s", e.msg);
}

static void read_tiff_exif(const char *path, struct media_output *out)
{
    struct err e = {0};

    if (exifmeta_parse_tiff_file(path, &out->meta, &e) != 0 &&
        strcmp(e.msg, "EXIF block holds no readable tags") != 0)
        media_warn(out, "EXIF unreadable: %s", e.msg);
}

static void *add_text_len(VipsImage *img, const char *name, GValue *v, void *a)
{
    size_t *total = a;
    size_t len = 0;

    (void)img;
    (void)name;
    if (G_VALUE_HOLDS_STRING(v)) {
        const char *s = g_value_get_string(v);
        len = s ? strlen(s) : 0;
    } else if (G_VALUE_HOLDS(v, VIPS_TYPE_REF_STRING)) {
        vips_value_get_ref_string(v, &len);
    }
    *total += len;
    return NULL;
}

/* Bytes of text metadata (PNG tEXt/zTXt/iTXt comments and the like). */
static size_t meta_text_bytes(VipsImage *img)
{
    size_t total = 0;

    vips_image_map(img, add_text_len, &total);
    return total;
}

int thumb_probe(const char *path, const struct sniff_result *sn, const struct media_opts *opts,
                struct media_output *out, VipsImage **hdr, struct err *err)
{
    VipsImage *img = NULL;
    char msg[ERR_MSG_MAX];
    int64_t w, h;
    int rc = -1;

    vips_error_clear(); /* drop stale text another file's warnings left */
    img = load(path, sn->fmt, 1, VIPS_FAIL_ON_ERROR);
    if (!img) {
        thumb_vips_error(msg, sizeof(msg), path);
        err_set(err, classify(msg), "header", "cannot read the image header: %s", msg);
        goto out;
    }
    snprintf(out->meta.format, sizeof(out->meta.format), "%s", sn->name);
    w = vips_image_get_width(img);
    h = vips_image_get_height(img);
    if (thumb_check_limits(w, h, opts, err) != 0)
        goto out;
    if (meta_text_bytes(img) > THUMB_META_TEXT_MAX) {
        err_set(err, ERR_PERMANENT, "limits",
                "text metadata of %zu KB is over the limit of %d KB (decompression bomb?)",
                meta_text_bytes(img) / 1024, THUMB_META_TEXT_MAX / 1024);
        goto out;
    }
    if (sn->fmt == MEDIA_FMT_TIFF && vips_image_get_typeof(img, VIPS_META_EXIF_NAME) == 0)
        read_tiff_exif(path, out); /* tiffload keeps TIFF tags to itself */
    else
        read_exif_blob(img, out);
    /* libheif has applied irot/imir already; for the others vips reports the
     * EXIF orientation, and 5-8 swap the displayed sides. */
    if (sn->fmt != MEDIA_FMT_HEIF && sn->fmt != MEDIA_FMT_AVIF) {
        int o = vips_image_get_orientation(img);
        if (o >= 1 && o <= 8 && out->meta.orientation == 0)
            out->meta.orientation = o;
        if (vips_image_get_orientation_swap(img)) {
            int64_t t = w;
            w = h;
            h = t;
        }
    }
    out->meta.width = w;
    out->meta.height = h;
    if (hdr) {
        *hdr = img;
        img = NULL;
    }
    rc = 0;
out:
    if (img)
        g_object_unref(img);
    return rc;
}

static int save_jpeg(VipsImage *img, unsigned char **dst, size_t *dst_len, struct err *err)
{
    void *buf = NULL;
    size_t len = 0;
    char msg[ERR_MSG_MAX];

    /* Pixels already in memory (the preview): libjpeg-turbo directly. */
    switch (jpegenc_encode(img, THUMB_JPEG_Q, dst, dst_len, msg, sizeof(msg))) {
    case JPEGENC_OK:
        return 0;
    case JPEGENC_NO_MEMORY:
        return err_set(err, ERR_TRANSIENT, "thumbnail", "cannot encode the thumbnail: %s", msg);
    case JPEGENC_FAILED:
        return err_set(err, ERR_PERMANENT, "thumbnail", "cannot encode the thumbnail: %s", msg);
    case JPEGENC_NOT_HANDLED:
        break;
    }
    if (vips_jpegsave_buffer(img, &buf, &len, "Q", THUMB_JPEG_Q, "strip", TRUE, NULL) != 0) {
        thumb_vips_error(msg, sizeof(msg), NULL);
        return err_set(err, classify(msg), "thumbnail", "cannot encode the thumbnail: %s", msg);
    }
    *dst = media_dup_bytes(buf, len);
    g_free(buf);
    if (!*dst)
        return err_set(err, ERR_TRANSIENT, "thumbnail", "out of memory for the thumbnail");
    *dst_len = len;
    return 0;
}

/* thumbnail to size, then 8-bit sRGB, alpha flattened on white. */
static int shrink_to(VipsImage *in, int size, bool export_srgb, VipsImage **outp)
{
    VipsImage *t[3] = {NULL, NULL, NULL};
    int rc = -1;

    /* Colour management only when the image carries a profile: for the common
     * untagged (sRGB) photo, an sRGB-to-sRGB transform through lcms2 cost about a
     * fifth of all the CPU time per photo (perf, bench corpus). */
    if (export_srgb && vips_image_get_typeof(in, VIPS_META_ICC_NAME)) {
        if (vips_thumbnail_image(in, &t[0], size, "size", VIPS_SIZE_DOWN, "export_profile",
                                 "srgb", NULL) != 0)
            goto out;
    } else if (vips_thumbnail_image(in, &t[0], size, "size", VIPS_SIZE_DOWN, NULL) != 0) {
        goto out;
    }
    if (vips_colourspace(t[0], &t[1], VIPS_INTERPRETATION_sRGB, NULL) != 0)
        goto out;
    if (vips_image_hasalpha(t[1])) {
        double white[3] = {255, 255, 255};
        VipsArrayDouble *bg = vips_array_double_new(white, 3);
        int r = vips_flatten(t[1], &t[2], "background", bg, NULL);
        vips_area_unref(VIPS_AREA(bg));
        if (r != 0)
            goto out;
    } else {
        t[2] = t[1];
        t[1] = NULL;
    }
    *outp = t[2];
    t[2] = NULL;
    rc = 0;
out:
    for (int i = 0; i < 3; i++)
        if (t[i])
            g_object_unref(t[i]);
    return rc;
}

/* The grid thumbnail from the finished preview (upright, 8-bit sRGB, flat, in
 * memory): a box shrink for the integer part of the factor (boxshrink.c, what
 * vips_shrink does at a sixth of the cost), lanczos3 for the rest. That is
 * vips_resize with "gap" 0; its 8.14 default reducing gap runs lanczos over
 * the whole factor and cost 10x as much (76 vs 7 ms for 1500 -> 256 px). */
static int grid_from_preview(VipsImage *prev, int size, VipsImage **outp)
{
    int lng = prev->Xsize > prev->Ysize ? prev->Xsize : prev->Ysize;
    int k = lng / size;
    VipsImage *box;
    int rc;

    if (lng <= size) {
        g_object_ref(prev);
        *outp = prev;
        return 0;
    }
    if (k < 2)
        return vips_resize(prev, outp, (double)size / lng, "gap", 0.0, NULL);
    box = boxshrink(prev, k);
    if (!box) {
        vips_error("shoebox", "out of memory for the thumbnail");
        return -1;
    }
    lng = box->Xsize > box->Ysize ? box->Xsize : box->Ysize;
    if (lng <= size) {
        *outp = box;
        return 0;
    }
    rc = vips_resize(box, outp, (double)size / lng, "gap", 0.0, NULL);
    g_object_unref(box);
    return rc;
}

/* An upright 8-bit image already about the preview size (at most 10 % over, as
 * a DCT-scaled decode gives): used as the preview as it is. */
static bool preview_ready(VipsImage *in, const struct media_opts *opts)
{
    int lng = in->Xsize > in->Ysize ? in->Xsize : in->Ysize;

    return lng <= opts->preview_size + opts->preview_size / 10 && /* MEDIA_PREVIEW_MAX */
           in->BandFmt == VIPS_FORMAT_UCHAR && (in->Bands == 3 || in->Bands == 1) &&
           !vips_image_get_typeof(in, VIPS_META_ICC_NAME);
}

static int make_outputs(VipsImage *in, bool upright, const struct media_opts *opts,
                        struct media_output *out, struct err *err)
{
    VipsImage *prev = NULL, *mem = NULL, *grid = NULL;
    char msg[ERR_MSG_MAX];
    int rc = -1;
    bool ready = upright && preview_ready(in, opts);

    if (ready && in->Bands == 3 && in->Type == VIPS_INTERPRETATION_sRGB) {
        g_object_ref(in);
        prev = in; /* vips_image_copy_memory below is free when in is in memory */
    } else if (ready ? vips_colourspace(in, &prev, VIPS_INTERPRETATION_sRGB, NULL) != 0
                   : shrink_to(in, opts->preview_size, true, &prev) != 0) {
        thumb_vips_error(msg, sizeof(msg), NULL);
        err_set(err, classify(msg), "thumbnail", "%s", msg);
        goto out;
    }
    /* The only decode happens here; errors in the pixels surface now. */
    mem = vips_image_copy_memory(prev);
    if (!mem) {
        thumb_vips_error(msg, sizeof(msg), NULL);
        err_set(err, classify(msg), "decode", "%s", msg);
        goto out;
    }
    if (grid_from_preview(mem, opts->thumb_size, &grid) != 0) {
        thumb_vips_error(msg, sizeof(msg), NULL);
        err_set(err, classify(msg), "thumbnail", "%s", msg);
        goto out;
    }
    if (save_jpeg(mem, &out->preview, &out->preview_len, err) != 0 ||
        save_jpeg(grid, &out->thumb, &out->thumb_len, err) != 0)
        goto out;
    out->has_thumb = true;
    rc = 0;
out:
    if (rc != 0) {
        free(out->preview);
        free(out->thumb);
        out->preview = out->thumb = NULL;
        out->preview_len = out->thumb_len = 0;
        out->has_thumb = false;
    }
    if (prev)
        g_object_unref(prev);
    if (mem)
        g_object_unref(mem);
    if (grid)
        g_object_unref(grid);
    return rc;
}

int thumb_from_image(VipsImage *in, const struct media_opts *opts, struct media_output *out,
                     struct err *err)
{
    return make_outputs(in, false, opts, out, err);
}

/* The common JPEG: decoded once at the smallest DCT scale that still reaches
 * the preview size (jpegscale.c), then rotated upright. 0: outputs made (or a
 * failure in e); 1: not handled here, use the libvips path. */
static int render_scaled_jpeg(const char *path, VipsImage *hdr, const struct media_opts *opts,
                              struct media_output *out, struct err *e)
{
    VipsImage *dec = NULL, *up = NULL;
    char why[ERR_MSG_MAX];
    int o = vips_image_get_orientation(hdr);

    switch (jpegscale_decode(path, opts->preview_size, &dec, why, sizeof(why))) {
    case JPEGSCALE_OK:
        break;
    case JPEGSCALE_NOT_HANDLED:
        return 1;
    case JPEGSCALE_NO_MEMORY:
        err_set(e, ERR_TRANSIENT, "decode", "%s", why[0] ? why : "out of memory");
        return 0;
    case JPEGSCALE_TOO_MANY_SCANS:
        err_set(e, ERR_PERMANENT, "limits", "%s", why);
        return 0;
    case JPEGSCALE_DAMAGED:
    default:
        err_set(e, ERR_PERMANENT, "decode", "%s", why);
        return 0;
    }
    if (o < 2 || o > 8) {
        /* Upright already: dec itself, whose pixels are in memory, so that
         * make_outputs does not copy them (vips_autorot would add a copy). */
        up = dec;
        g_object_ref(up);
    } else {
        vips_image_set_int(dec, VIPS_META_ORIENTATION, o);
        if (vips_autorot(dec, &up, NULL) != 0) {
            thumb_vips_error(why, sizeof(why), NULL);
            err_set(e, classify(why), "thumbnail", "%s", why);
            up = NULL;
        }
    }
    if (up) {
        make_outputs(up, true, opts, out, e); /* a failure is in e */
        g_object_unref(up);
    }
    g_object_unref(dec);
    return 0;
}

/* A phone HEIC (HEVC, one image or a grid of tiles): decoded with libavcodec
 * at the preview size (heifgrid.c), upright already. Same contract as
 * render_scaled_jpeg. Images with alpha stay on the libvips path (it
 * flattens them). */
static int render_heif(const char *path, VipsImage *hdr, const struct media_opts *opts,
                       struct media_output *out, struct err *e)
{
    VipsImage *dec = NULL;
    char why[ERR_MSG_MAX];

    if (vips_image_hasalpha(hdr))
        return 1;
    switch (heifgrid_decode(path, vips_image_get_width(hdr), vips_image_get_height(hdr),
                            opts->preview_size, &dec, why, sizeof(why))) {
    case HEIFGRID_OK:
        break;
    case HEIFGRID_NOT_HANDLED:
        return 1;
    case HEIFGRID_NO_MEMORY:
        err_set(e, ERR_TRANSIENT, "decode", "%s", why[0] ? why : "out of memory");
        return 0;
    case HEIFGRID_DAMAGED:
    default:
        err_set(e, ERR_PERMANENT, "decode", "%s", why);
        return 0;
    }
    make_outputs(dec, true, opts, out, e); /* a failure is in e */
    g_object_unref(dec);
    return 0;
}

/* Largest of 8/4/2 keeping the long side >= preview size, else 1. */
static int jpeg_shrink(VipsImage *hdr, int preview)
{
    int64_t w = vips_image_get_width(hdr), h = vips_image_get_height(hdr);
    int64_t lng = w > h ? w : h;

    for (int s = 8; s >= 2; s /= 2)
        if ((lng + s - 1) / s >= preview)
            return s;
    return 1;
}

/* A GIF's frames after the first, which the thumbnails do not show: damage
 * there becomes a warning (the file is kept: its first frame is whole). */
static int check_gif(const char *path, VipsImage *hdr, const struct media_opts *opts,
                     struct media_output *out, struct err *err)
{
    char why[ERR_MSG_MAX];
    int frames = 0, checked = 0;
    int pages = vips_image_get_n_pages(hdr);
    int rc = gifcheck_structure(path, &frames, why, sizeof(why), err);

    if (rc < 0)
        return -1;
    if (rc == 0 && gifcheck_frames(path, vips_image_get_width(hdr),
                                   vips_image_get_page_height(hdr), pages, opts->max_pixels,
                                   &checked, why, sizeof(why)) == 0) {
        if (checked < pages)
            media_warn(out, "frames %d to %d not checked: over the pixel limit", checked + 1,
                       pages);
        return 0;
    }
    media_warn(out, "later frames damaged: %s", why);
    log_debug("media", "media.gif_damaged", "msg=%s", LOG_Q(why));
    return 0;
}

int thumb_render(const char *path, const struct sniff_result *sn, VipsImage *hdr,
                 const struct media_opts *opts, struct media_output *out, struct err *err)
{
    VipsImage *img = NULL;
    struct err e = {0};
    char msg[ERR_MSG_MAX];
    int shrink = 1;
    int rc = -1;

    if (sn->fmt == MEDIA_FMT_HEIF) {
        e.cls = ERR_NONE;
        if (render_heif(path, hdr, opts, out, &e) == 0) {
            if (e.cls == ERR_NONE)
                return 0;
            goto fail;
        }
    }
    if (sn->fmt == MEDIA_FMT_JPEG) {
        e.cls = ERR_NONE;
        if (render_scaled_jpeg(path, hdr, opts, out, &e) == 0) {
            if (e.cls == ERR_NONE)
                return 0;
            goto fail;
        }
        /* libvips' JPEG loader has no scan limit: count them first. */
        if (jpegscale_count_scans(path, LIMIT_JPEG_SCANS) > LIMIT_JPEG_SCANS)
            return err_set(err, ERR_PERMANENT, "limits",
                           "progressive JPEG with more than %d scans: over the limit",
                           LIMIT_JPEG_SCANS);
        shrink = jpeg_shrink(hdr, opts->preview_size);
    }
    /* JPEG pixels are decoded with fail_on=warning: libjpeg's warnings all
     * mean corrupt data ("Corrupt JPEG data: ...", "Premature end ..."), and
     * the result must not be stored as if fine. Reopening is header-only. */
    if (sn->fmt == MEDIA_FMT_JPEG) {
        img = load(path, sn->fmt, shrink, VIPS_FAIL_ON_WARNING);
        if (!img) {
            thumb_vips_error(msg, sizeof(msg), path);
            e.cls = classify(msg);
            snprintf(e.msg, sizeof(e.msg), "%s", msg);
            goto fail;
        }
    } else {
        img = hdr;
        g_object_ref(img);
    }
    if (thumb_from_image(img, opts, out, &e) == 0) {
        rc = sn->fmt == MEDIA_FMT_GIF ? check_gif(path, hdr, opts, out, err) : 0;
        goto out;
    }
fail:
    /* Transient: retried. Over a limit: the file is refused, not kept damaged. */
    if (e.cls == ERR_TRANSIENT || strcmp(e.stage, "limits") == 0) {
        err_set(err, e.cls, e.stage[0] ? e.stage : "decode", "%s", e.msg);
        goto out;
    }
    media_warn(out, "pixels damaged: %s", e.msg);
    log_debug("media", "media.damaged", "msg=%s", LOG_Q(e.msg));
    rc = 0;
out:
    if (img)
        g_object_unref(img);
    return rc;
}
