/*
 * heicgen: phone-style grid HEIC writer for tests and benchmarks (heicgen.h).
 */
#include "heicgen.h"

#include <libheif/heif.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growable byte buffer. */
struct bb {
    unsigned char *p;
    size_t n, cap;
};

/* One encoded picture: its hvcC box (whole) and its coded data. */
struct coded {
    struct bb hvcc, data;
    int w, h;
};

static void put(struct bb *b, const void *d, size_t n)
{
    if (n == 0)
        return;
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void put_u(struct bb *b, uint64_t v, int bytes)
{
    unsigned char t[8];

    for (int i = 0; i < bytes; i++)
        t[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    put(b, t, (size_t)bytes);
}

static void put_4cc(struct bb *b, const char *s)
{
    put(b, s, 4);
}

/* Start a box; close_box() writes its size. Returns the start offset. */
static size_t open_box(struct bb *b, const char *type, int full, int version, int flags)
{
    size_t at = b->n;

    put_u(b, 0, 4);
    put_4cc(b, type);
    if (full)
        put_u(b, (uint64_t)version << 24 | (uint64_t)flags, 4);
    return at;
}

static void close_box(struct bb *b, size_t at)
{
    size_t n = b->n - at;

    for (int i = 0; i < 4; i++)
        b->p[at + (size_t)i] = (unsigned char)(n >> (24 - 8 * i));
}

static struct heif_error collect(struct heif_context *ctx, const void *d, size_t n, void *u)
{
    struct heif_error ok = {heif_error_Ok, heif_suberror_Unspecified, "ok"};

    (void)ctx;
    put(u, d, n);
    return ok;
}

/* Find box type among the children in [p, p + n): its whole bytes. */
static bool find_box(const unsigned char *p, size_t n, const char *type, size_t skip,
                     const unsigned char **bp, size_t *bn)
{
    for (size_t off = skip; off + 8 <= n;) {
        size_t sz = (size_t)p[off] << 24 | (size_t)p[off + 1] << 16 | (size_t)p[off + 2] << 8 |
                    p[off + 3];
        if (sz < 8 || sz > n - off)
            return false;
        if (memcmp(p + off + 4, type, 4) == 0) {
            *bp = p + off;
            *bn = sz;
            return true;
        }
        off += sz;
    }
    return false;
}

/* Pull hvcC and mdat out of a one-image HEIC that libheif wrote. */
static int split(const struct bb *file, struct coded *c)
{
    const unsigned char *meta, *iprp, *ipco, *hvcc, *mdat;
    size_t nm, ni, nc, nh, nd;

    if (!find_box(file->p, file->n, "meta", 0, &meta, &nm) ||
        !find_box(meta, nm, "iprp", 12, &iprp, &ni) ||
        !find_box(iprp, ni, "ipco", 8, &ipco, &nc) ||
        !find_box(ipco, nc, "hvcC", 8, &hvcc, &nh) ||
        !find_box(file->p, file->n, "mdat", 0, &mdat, &nd))
        return -1;
    put(&c->hvcc, hvcc, nh);
    put(&c->data, mdat + 8, nd - 8);
    return 0;
}

/* Encode the w x h area at (x, y) of rgb (pixels past its edge repeat the
 * edge) as one HEVC picture. */
static int encode(VipsImage *rgb, int x, int y, int w, int h, int quality, struct coded *c,
                  char *why, size_t cap)
{
    struct heif_context *ctx = heif_context_alloc();
    struct heif_encoder *enc = NULL;
    struct heif_image *img = NULL;
    struct heif_writer wr = {1, collect};
    struct bb file = {0};
    struct heif_error e;
    int stride, rc = -1;
    uint8_t *px;

    e = heif_context_get_encoder_for_format(ctx, heif_compression_HEVC, &enc);
    if (e.code == 0)
        e = heif_image_create(w, h, heif_colorspace_RGB, heif_chroma_interleaved_RGB, &img);
    if (e.code == 0)
        e = heif_image_add_plane(img, heif_channel_interleaved, w, h, 8);
    if (e.code != 0)
        goto out;
    px = heif_image_get_plane(img, heif_channel_interleaved, &stride);
    for (int j = 0; j < h; j++) {
        int sy = y + j < rgb->Ysize ? y + j : rgb->Ysize - 1;
        for (int i = 0; i < w; i++) {
            int sx = x + i < rgb->Xsize ? x + i : rgb->Xsize - 1;
            memcpy(px + (size_t)j * (size_t)stride + (size_t)i * 3, VIPS_IMAGE_ADDR(rgb, sx, sy),
                   3);
        }
    }
    heif_encoder_set_lossy_quality(enc, quality);
    /* x265's default preset ("slow") takes seconds per 12 MP: fast is enough */
    heif_encoder_set_parameter_string(enc, "preset", "ultrafast");
    e = heif_context_encode_image(ctx, img, enc, NULL, NULL);
    if (e.code == 0)
        e = heif_context_write(ctx, &wr, &file);
    if (e.code == 0 && split(&file, c) == 0) {
        c->w = w;
        c->h = h;
        rc = 0;
    }
out:
    if (rc != 0)
        snprintf(why, cap, "cannot encode a tile: %s", e.code ? e.message : "no hvcC/mdat");
    free(file.p);
    if (img)
        heif_image_release(img);
    if (enc)
        heif_encoder_release(enc);
    heif_context_free(ctx);
    return rc;
}

static void put_infe(struct bb *b, int id, const char *type, bool hidden)
{
    size_t at = open_box(b, "infe", 1, 2, hidden ? 1 : 0);

    put_u(b, (uint64_t)id, 2);
    put_u(b, 0, 2);
    put_4cc(b, type);
    put_u(b, 0, 1); /* empty name */
    close_box(b, at);
}

static void put_ispe(struct bb *b, int w, int h)
{
    size_t at = open_box(b, "ispe", 1, 0, 0);

    put_u(b, (uint64_t)w, 4);
    put_u(b, (uint64_t)h, 4);
    close_box(b, at);
}

/* The layout of the file's items. IDs: 1 the primary (grid or the single
 * image), 2.. tiles, then the thumbnail, then EXIF. */
struct layout {
    int ntiles, cols, rows, w, h;
    struct coded *tiles; /* ntiles; for no grid, tiles[0] is the image */
    struct coded thumb;  /* thumb.w == 0: none */
    struct bb grid;      /* the grid item's data (empty: no grid) */
    const unsigned char *exif;
    size_t exif_len;
    int irot;
};

static int thumb_id(const struct layout *l)
{
    return l->grid.n ? 2 + l->ntiles : 2;
}

static void put_iinf(struct bb *b, const struct layout *l)
{
    size_t at = open_box(b, "iinf", 1, 0, 0);
    int n = 1 + (l->grid.n ? l->ntiles : 0) + (l->thumb.w ? 1 : 0) + (l->exif ? 1 : 0);

    put_u(b, (uint64_t)n, 2);
    put_infe(b, 1, l->grid.n ? "grid" : "hvc1", false);
    for (int i = 0; l->grid.n && i < l->ntiles; i++)
        put_infe(b, 2 + i, "hvc1", true);
    if (l->thumb.w)
        put_infe(b, thumb_id(l), "hvc1", false);
    if (l->exif)
        put_infe(b, thumb_id(l) + (l->thumb.w ? 1 : 0), "Exif", true);
    close_box(b, at);
}

static void put_ref(struct bb *b, const char *type, int from, int first, int n)
{
    size_t at = open_box(b, type, 0, 0, 0);

    put_u(b, (uint64_t)from, 2);
    put_u(b, (uint64_t)n, 2);
    for (int i = 0; i < n; i++)
        put_u(b, (uint64_t)(first + i), 2);
    close_box(b, at);
}

static void put_iref(struct bb *b, const struct layout *l)
{
    size_t at;

    if (!l->grid.n && !l->thumb.w && !l->exif)
        return;
    at = open_box(b, "iref", 1, 0, 0);
    if (l->grid.n)
        put_ref(b, "dimg", 1, 2, l->ntiles);
    if (l->thumb.w) {
        size_t t = open_box(b, "thmb", 0, 0, 0);
        put_u(b, (uint64_t)thumb_id(l), 2);
        put_u(b, 1, 2);
        put_u(b, 1, 2);
        close_box(b, t);
    }
    if (l->exif) {
        size_t t = open_box(b, "cdsc", 0, 0, 0);
        put_u(b, (uint64_t)(thumb_id(l) + (l->thumb.w ? 1 : 0)), 2);
        put_u(b, 1, 2);
        put_u(b, 1, 2);
        close_box(b, t);
    }
    close_box(b, at);
}

/* ipco: 1 tile hvcC, 2 tile ispe, 3 primary ispe, 4 irot, 5 thumb hvcC,
 * 6 thumb ispe. ipma ties them to the items (0x80: essential). */
static void put_iprp(struct bb *b, const struct layout *l)
{
    size_t at = open_box(b, "iprp", 0, 0, 0), co = open_box(b, "ipco", 0, 0, 0), ma;
    const struct coded *t0 = &l->tiles[0];

    put(b, t0->hvcc.p, t0->hvcc.n);
    put_ispe(b, t0->w, t0->h);
    put_ispe(b, l->w, l->h);
    put(b, "\0\0\0\x09irot", 8);
    put_u(b, (uint64_t)l->irot, 1);
    if (l->thumb.w) {
        put(b, l->thumb.hvcc.p, l->thumb.hvcc.n);
        put_ispe(b, l->thumb.w, l->thumb.h);
    }
    close_box(b, co);
    ma = open_box(b, "ipma", 1, 0, 0);
    put_u(b, (uint64_t)(1 + (l->grid.n ? l->ntiles : 0) + (l->thumb.w ? 1 : 0)), 4);
    put_u(b, 1, 2);
    if (l->grid.n) {
        put_u(b, 2, 1);
        put_u(b, 3, 1);
        put_u(b, 0x84, 1);
        for (int i = 0; i < l->ntiles; i++) {
            put_u(b, (uint64_t)(2 + i), 2);
            put_u(b, 2, 1);
            put_u(b, 0x81, 1);
            put_u(b, 2, 1);
        }
    } else {
        put_u(b, 3, 1);
        put_u(b, 0x81, 1);
        put_u(b, 3, 1);
        put_u(b, 0x84, 1);
    }
    if (l->thumb.w) {
        put_u(b, (uint64_t)thumb_id(l), 2);
        put_u(b, 2, 1);
        put_u(b, 0x85, 1);
        put_u(b, 6, 1);
    }
    close_box(b, ma);
    close_box(b, at);
}

static void put_loc(struct bb *b, int id, size_t *off, size_t len)
{
    put_u(b, (uint64_t)id, 2);
    put_u(b, 0, 2); /* this file */
    put_u(b, 1, 2); /* one extent */
    put_u(b, *off, 4);
    put_u(b, len, 4);
    *off += len;
}

/* iloc v0 (4-byte offsets and lengths) pointing into the mdat that starts
 * at data_at, in the order write_mdat writes. */
static void put_iloc(struct bb *b, const struct layout *l, size_t data_at)
{
    size_t at = open_box(b, "iloc", 1, 0, 0), off = data_at;
    int n = 1 + (l->grid.n ? l->ntiles : 0) + (l->thumb.w ? 1 : 0) + (l->exif ? 1 : 0);

    put_u(b, 0x44, 1);
    put_u(b, 0, 1);
    put_u(b, (uint64_t)n, 2);
    if (l->grid.n) {
        put_loc(b, 1, &off, l->grid.n);
        for (int i = 0; i < l->ntiles; i++)
            put_loc(b, 2 + i, &off, l->tiles[i].data.n);
    } else {
        put_loc(b, 1, &off, l->tiles[0].data.n);
    }
    if (l->thumb.w)
        put_loc(b, thumb_id(l), &off, l->thumb.data.n);
    if (l->exif)
        put_loc(b, thumb_id(l) + (l->thumb.w ? 1 : 0), &off, 4 + l->exif_len);
    close_box(b, at);
}

static void write_meta(struct bb *b, const struct layout *l, size_t data_at)
{
    size_t at = open_box(b, "meta", 1, 0, 0), h = open_box(b, "hdlr", 1, 0, 0);

    put_u(b, 0, 4);
    put_4cc(b, "pict");
    put_u(b, 0, 4); /* reserved[3] */
    put_u(b, 0, 4);
    put_u(b, 0, 4);
    put_u(b, 0, 1);
    close_box(b, h);
    h = open_box(b, "pitm", 1, 0, 0);
    put_u(b, 1, 2);
    close_box(b, h);
    put_iinf(b, l);
    put_iloc(b, l, data_at);
    put_iref(b, l);
    put_iprp(b, l);
    close_box(b, at);
}

static void write_mdat(struct bb *b, const struct layout *l)
{
    size_t at = open_box(b, "mdat", 0, 0, 0);

    put(b, l->grid.p, l->grid.n);
    for (int i = 0; i < l->ntiles; i++)
        put(b, l->tiles[i].data.p, l->tiles[i].data.n);
    put(b, l->thumb.data.p, l->thumb.data.n);
    if (l->exif) {
        put_u(b, 6, 4); /* the TIFF header follows "Exif\0\0" */
        put(b, l->exif, l->exif_len);
    }
    close_box(b, at);
}

static int save(const char *path, const struct layout *l, char *why, size_t cap)
{
    struct bb f = {0}, m = {0};
    FILE *fp;
    size_t data_at;
    int rc = -1;

    put(&f, "\0\0\0\x18" "ftypheic\0\0\0\0mif1heic", 24);
    write_meta(&m, l, 0); /* its size does not depend on the offsets */
    data_at = f.n + m.n + 8;
    m.n = 0;
    write_meta(&f, l, data_at);
    write_mdat(&f, l);
    fp = fopen(path, "wb");
    if (fp && fwrite(f.p, 1, f.n, fp) == f.n && fclose(fp) == 0)
        rc = 0;
    else
        snprintf(why, cap, "cannot write '%s'", path);
    free(f.p);
    free(m.p);
    return rc;
}

static int encode_all(VipsImage *rgb, const struct heicgen_opts *o, struct layout *l, char *why,
                      size_t cap)
{
    int ts = o->tile;

    l->cols = ts ? (rgb->Xsize + ts - 1) / ts : 1;
    l->rows = ts ? (rgb->Ysize + ts - 1) / ts : 1;
    l->ntiles = l->cols * l->rows;
    l->tiles = calloc((size_t)l->ntiles, sizeof(*l->tiles));
    for (int i = 0; i < l->ntiles; i++) {
        int x = ts ? (i % l->cols) * ts : 0, y = ts ? (i / l->cols) * ts : 0;
        if (encode(rgb, x, y, ts ? ts : rgb->Xsize, ts ? ts : rgb->Ysize, o->quality,
                   &l->tiles[i], why, cap) != 0)
            return -1;
        if (l->tiles[i].hvcc.n != l->tiles[0].hvcc.n ||
            memcmp(l->tiles[i].hvcc.p, l->tiles[0].hvcc.p, l->tiles[0].hvcc.n) != 0) {
            snprintf(why, cap, "tiles came out with different hvcC");
            return -1;
        }
    }
    if (ts) {
        put_u(&l->grid, 0, 1);
        put_u(&l->grid, 0, 1);
        put_u(&l->grid, (uint64_t)(l->rows - 1), 1);
        put_u(&l->grid, (uint64_t)(l->cols - 1), 1);
        put_u(&l->grid, (uint64_t)rgb->Xsize, 2);
        put_u(&l->grid, (uint64_t)rgb->Ysize, 2);
    }
    return 0;
}

static int encode_thumb(VipsImage *rgb, int size, int quality, struct coded *c, char *why,
                        size_t cap)
{
    VipsImage *t = NULL, *m = NULL;
    int rc = -1;

    if (vips_thumbnail_image(rgb, &t, size, NULL) == 0)
        m = vips_image_copy_memory(t);
    /* x265 wants sides in multiples of 8: cut the rest off */
    if (m && m->Xsize >= 8 && m->Ysize >= 8)
        rc = encode(m, 0, 0, m->Xsize / 8 * 8, m->Ysize / 8 * 8, quality, c, why, cap);
    if (t)
        g_object_unref(t);
    if (m)
        g_object_unref(m);
    return rc;
}

int heicgen_write(const char *path, VipsImage *rgb, const struct heicgen_opts *o, char *why,
                  size_t why_len)
{
    struct layout l = {0};
    int rc = -1;

    if (rgb->Bands != 3 || rgb->BandFmt != VIPS_FORMAT_UCHAR || !rgb->data ||
        (o->tile && o->tile % 8) || rgb->Xsize > 65535 || rgb->Ysize > 65535) {
        snprintf(why, why_len, "heicgen wants a uchar RGB memory image and tiles of 8k px");
        return -1;
    }
    l.w = rgb->Xsize;
    l.h = rgb->Ysize;
    l.irot = o->irot & 3;
    l.exif = o->exif;
    l.exif_len = o->exif_len;
    if (encode_all(rgb, o, &l, why, why_len) == 0 &&
        (!o->thumb || encode_thumb(rgb, o->thumb, o->quality, &l.thumb, why, why_len) == 0))
        rc = save(path, &l, why, why_len);
    for (int i = 0; l.tiles && i < l.ntiles; i++) {
        free(l.tiles[i].hvcc.p);
        free(l.tiles[i].data.p);
    }
    free(l.tiles);
    free(l.thumb.hvcc.p);
    free(l.thumb.data.p);
    free(l.grid.p);
    return rc;
}
