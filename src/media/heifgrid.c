/*
 * heifgrid: HEIC grid decode with libavcodec (see heifgrid.h).
 *
 * Steps: find the top-level 'meta' box (read whole, at most
 * LIMIT_HEIF_META_BYTES), index its items, locations, references and
 * properties; check the primary item is an 8-bit 4:2:0 'hvc1' image or a
 * 'grid' of them with only irot as a transform; decode each tile with one
 * HEVC decoder (hevc.c, flushed between tiles) and box-shrink its three
 * planes into place by the integer part of the scale (a 12 MP plane is never
 * made: the tile is shrunk while it is in the cache); scale the planes the
 * rest of the way, luma to the preview size and chroma to half of it (the
 * preview's JPEG is 4:2:0); convert YCbCr to RGB with fixed-point tables;
 * rotate.
 */
#include "media/heifgrid.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/limits.h"
#include "media/boxshrink.h"
#include "media/hevc.h"
#include "media/internal.h"

#define FOURCC(a, b, c, d) \
    ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))
#define ITEMS_MAX (LIMIT_HEIF_TILES + 64) /* tiles plus thumbnails, EXIF, XMP, ... */
#define PROPS_MAX 256
#define ITEM_PROPS_MAX 16

/* A bounded big-endian reader: reading past the end sets bad and yields 0. */
struct rd {
    const unsigned char *p;
    size_t n, off;
    bool bad;
};

struct item {
    uint32_t id, type;
    int method;        /* iloc construction method: 0 file, 1 idat; -1 not located */
    uint64_t off, len; /* one extent, base offset added */
    int nprops;
    uint8_t props[ITEM_PROPS_MAX]; /* 1-based indices into ipco */
};

struct prop {
    uint32_t type;
    struct rd body;
};

struct heif {
    int fd;
    uint64_t file_size;
    unsigned char *meta;
    struct rd idat;
    uint32_t primary;
    struct item items[ITEMS_MAX];
    int nitems;
    struct prop props[PROPS_MAX];
    int nprops;
    uint32_t tiles[LIMIT_HEIF_TILES];
    int ntiles;
};

/* The decoded picture. Each tile's planes are box-shrunk by k as they are
 * pasted (k = 1 when the tiles do not fall on whole blocks), so what is kept
 * is sw x sh, not the full size; the rest of the scaling is done on that. */
struct planes {
    int w, h, cw, ch; /* full luma and chroma sizes */
    int ow[2], oh[2]; /* the result's size: [0] luma, [1] chroma (half, rounded up) */
    int k[2];         /* box factor per tile: [0] luma, [1] chroma */
    int sw[2], sh[2]; /* kept sizes, ceil(full / k) */
    unsigned char *y, *cb, *cr;
};

static uint64_t rd_u(struct rd *r, int bytes)
{
    uint64_t v = 0;

    if (r->bad || bytes < 0 || bytes > 8 || r->n - r->off < (size_t)bytes) {
        r->bad = true;
        return 0;
    }
    for (int i = 0; i < bytes; i++)
        v = v << 8 | r->p[r->off++];
    return v;
}

static void rd_skip(struct rd *r, size_t n)
{
    if (r->bad || r->n - r->off < n) {
        r->bad = true;
        return;
    }
    r->off += n;
}

/* The next child box of r: its type and body. false at the end or when
 * damaged (then r->bad). */
static bool next_box(struct rd *r, uint32_t *type, struct rd *body)
{
    uint64_t size;
    size_t start = r->off;

    if (r->bad || r->off == r->n)
        return false;
    size = rd_u(r, 4);
    *type = (uint32_t)rd_u(r, 4);
    if (size == 1)
        size = rd_u(r, 8);
    else if (size == 0)
        size = r->n - start;
    if (r->bad || size < r->off - start || size > r->n - start) {
        r->bad = true;
        return false;
    }
    body->p = r->p + r->off;
    body->n = (size_t)(size - (r->off - start));
    body->off = 0;
    body->bad = false;
    r->off = start + (size_t)size;
    return true;
}

static struct item *find_item(struct heif *h, uint32_t id)
{
    for (int i = 0; i < h->nitems; i++)
        if (h->items[i].id == id)
            return &h->items[i];
    return NULL;
}

static const struct item *get_item(const struct heif *h, uint32_t id)
{
    for (int i = 0; i < h->nitems; i++)
        if (h->items[i].id == id)
            return &h->items[i];
    return NULL;
}

static int parse_iinf(struct heif *h, struct rd *r)
{
    int version = (int)rd_u(r, 1);
    uint32_t type;
    struct rd e;

    rd_skip(r, 3);
    rd_skip(r, version == 0 ? 2 : 4); /* entry count: the boxes themselves say it */
    while (next_box(r, &type, &e)) {
        int v;
        struct item *it;
        if (type != FOURCC('i', 'n', 'f', 'e'))
            continue;
        v = (int)rd_u(&e, 1);
        rd_skip(&e, 3);
        if (v < 2 || h->nitems == ITEMS_MAX)
            return -1;
        it = &h->items[h->nitems++];
        memset(it, 0, sizeof(*it));
        it->method = -1;
        it->id = (uint32_t)rd_u(&e, v == 2 ? 2 : 4);
        rd_skip(&e, 2); /* protection index */
        it->type = (uint32_t)rd_u(&e, 4);
        if (e.bad)
            return -1;
    }
    return r->bad ? -1 : 0;
}

static int parse_iloc(struct heif *h, struct rd *r)
{
    int version = (int)rd_u(r, 1);
    int a, b, osz, lsz, bsz, isz;
    uint64_t count;

    rd_skip(r, 3);
    a = (int)rd_u(r, 1);
    b = (int)rd_u(r, 1);
    osz = a >> 4, lsz = a & 15, bsz = b >> 4, isz = version >= 1 ? b & 15 : 0;
    count = rd_u(r, version < 2 ? 2 : 4);
    if (lsz == 0)
        return -1; /* lengths "to the end of the file": not ours (and extents of 0 bytes
                    * would let a small box loop 65,535 times per item) */
    for (uint64_t i = 0; i < count && !r->bad; i++) {
        uint32_t id = (uint32_t)rd_u(r, version < 2 ? 2 : 4);
        int method = version >= 1 ? (int)(rd_u(r, 2) & 15) : 0;
        uint64_t dref = rd_u(r, 2), base = rd_u(r, bsz);
        uint64_t n = rd_u(r, 2), off = 0, len = 0;
        struct item *it = find_item(h, id);
        for (uint64_t k = 0; k < n && !r->bad; k++) {
            rd_skip(r, (size_t)isz);
            off = rd_u(r, osz);
            len = rd_u(r, lsz);
        }
        /* One extent in this file or idat, with a length: else not ours. */
        if (!it || n != 1 || dref != 0 || method > 1 || len == 0 ||
            __builtin_add_overflow(base, off, &it->off))
            continue;
        it->method = method;
        it->len = len;
    }
    return r->bad ? -1 : 0;
}

static int parse_iref(struct heif *h, struct rd *r)
{
    int version = (int)rd_u(r, 1);
    int idsz = version == 0 ? 2 : 4;
    uint32_t type;
    struct rd e;

    rd_skip(r, 3);
    while (next_box(r, &type, &e)) {
        uint32_t from = (uint32_t)rd_u(&e, idsz);
        uint64_t n = rd_u(&e, 2);
        if (type != FOURCC('d', 'i', 'm', 'g') || from != h->primary)
            continue;
        if (n > LIMIT_HEIF_TILES || h->ntiles != 0)
            return -1;
        for (uint64_t i = 0; i < n; i++)
            h->tiles[h->ntiles++] = (uint32_t)rd_u(&e, idsz);
        if (e.bad)
            return -1;
    }
    return r->bad ? -1 : 0;
}

static int parse_ipma(struct heif *h, struct rd *r)
{
    int version = (int)rd_u(r, 1);
    int flags = (int)rd_u(r, 3);
    uint64_t count = rd_u(r, 4);

    for (uint64_t i = 0; i < count && !r->bad; i++) {
        struct item *it = find_item(h, (uint32_t)rd_u(r, version < 1 ? 2 : 4));
        int n = (int)rd_u(r, 1);
        for (int k = 0; k < n && !r->bad; k++) {
            int idx = (int)(flags & 1 ? rd_u(r, 2) & 0x7fff : rd_u(r, 1) & 0x7f);
            if (!it)
                continue;
            if (it->nprops == ITEM_PROPS_MAX)
                return -1;
            it->props[it->nprops++] = (uint8_t)(idx > 255 ? 0 : idx);
        }
    }
    return r->bad ? -1 : 0;
}

static int parse_iprp(struct heif *h, struct rd *r)
{
    uint32_t type;
    struct rd c, p;

    while (next_box(r, &type, &c)) {
        if (type == FOURCC('i', 'p', 'c', 'o')) {
            while (next_box(&c, &type, &p)) {
                if (h->nprops == PROPS_MAX)
                    return -1;
                h->props[h->nprops].type = type;
                h->props[h->nprops++].body = p;
            }
            if (c.bad)
                return -1;
        } else if (type == FOURCC('i', 'p', 'm', 'a') && parse_ipma(h, &c) != 0) {
            return -1;
        }
    }
    return r->bad ? -1 : 0;
}

/* Children of meta, in any order: iref needs pitm, iloc and ipma need iinf,
 * so items and the primary come first. */
static int parse_meta(struct heif *h, struct rd meta)
{
    static const uint32_t order[] = {FOURCC('p', 'i', 't', 'm'), FOURCC('i', 'i', 'n', 'f'),
                                     FOURCC('i', 'l', 'o', 'c'), FOURCC('i', 'r', 'e', 'f'),
                                     FOURCC('i', 'p', 'r', 'p'), FOURCC('i', 'd', 'a', 't')};
    uint32_t type;
    struct rd b;

    rd_skip(&meta, 4);
    for (size_t pass = 0; pass < sizeof(order) / sizeof(order[0]); pass++) {
        struct rd r = meta;
        int rc = 0;
        while (rc == 0 && next_box(&r, &type, &b)) {
            if (type != order[pass])
                continue;
            if (pass == 0) {
                int v = (int)rd_u(&b, 1);
                rd_skip(&b, 3);
                h->primary = (uint32_t)rd_u(&b, v == 0 ? 2 : 4);
                rc = b.bad ? -1 : 0;
            } else if (pass == 1) {
                rc = parse_iinf(h, &b);
            } else if (pass == 2) {
                rc = parse_iloc(h, &b);
            } else if (pass == 3) {
                rc = parse_iref(h, &b);
            } else if (pass == 4) {
                rc = parse_iprp(h, &b);
            } else {
                h->idat = b;
            }
        }
        if (rc != 0 || r.bad)
            return -1;
    }
    return 0;
}

/* The property of type t associated with it, NULL if none. */
static const struct prop *item_prop(const struct heif *h, const struct item *it, uint32_t t)
{
    for (int i = 0; i < it->nprops; i++) {
        int k = it->props[i];
        if (k >= 1 && k <= h->nprops && h->props[k - 1].type == t)
            return &h->props[k - 1];
    }
    return NULL;
}

/* Read item data into *out, a new malloc'd buffer of it->len bytes. 0; -1
 * when it lies outside the file (or idat) or cannot be read; -2 out of
 * memory. */
static int item_data(const struct heif *h, const struct item *it, unsigned char **out)
{
    unsigned char *buf;
    uint64_t end;

    *out = NULL;
    if (it->method < 0 || __builtin_add_overflow(it->off, it->len, &end))
        return -1;
    if (it->method == 1 ? end > h->idat.n : end > h->file_size)
        return -1;
    buf = malloc((size_t)it->len);
    if (!buf)
        return -2;
    if (it->method == 1) {
        memcpy(buf, h->idat.p + it->off, (size_t)it->len);
        *out = buf;
        return 0;
    }
    for (size_t got = 0; got < it->len;) {
        ssize_t n = pread(h->fd, buf + got, (size_t)it->len - got, (off_t)(it->off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(buf);
            return -1;
        }
        got += (size_t)n;
    }
    *out = buf;
    return 0;
}

/* The top-level meta box, read whole. 0; -1 (none, too big, unreadable); -2
 * out of memory. */
static int read_meta(struct heif *h)
{
    uint64_t pos = 0;

    while (pos + 8 <= h->file_size) {
        unsigned char hd[16];
        struct rd r = {hd, sizeof(hd), 0, false};
        uint64_t size, hlen = 8;
        uint32_t type;
        if (pread(h->fd, hd, sizeof(hd), (off_t)pos) < 8)
            return -1;
        size = rd_u(&r, 4);
        type = (uint32_t)rd_u(&r, 4);
        if (size == 1) {
            size = rd_u(&r, 8);
            hlen = 16;
        } else if (size == 0) {
            size = h->file_size - pos;
        }
        if (size < hlen || size > h->file_size - pos)
            return -1;
        if (type == FOURCC('m', 'e', 't', 'a')) {
            struct rd m;
            if (size - hlen > LIMIT_HEIF_META_BYTES)
                return -1;
            h->meta = malloc((size_t)(size - hlen) + 1);
            if (!h->meta)
                return -2;
            if (pread(h->fd, h->meta, (size_t)(size - hlen), (off_t)(pos + hlen)) !=
                (ssize_t)(size - hlen))
                return -1;
            m = (struct rd){h->meta, (size_t)(size - hlen), 0, false};
            return parse_meta(h, m);
        }
        pos += size;
    }
    return -1;
}

/* hvcC of a tile: 8-bit 4:2:0, NAL length size 1-4. Returns that size, or 0. */
static int check_hvcc(const struct prop *p)
{
    const unsigned char *b = p->body.p;

    if (p->body.n < 23 || (b[16] & 3) != 1 || (b[17] & 7) != 0 || (b[18] & 7) != 0)
        return 0;
    return (b[21] & 3) + 1;
}

/* Copy a decoded tile (at least tw x th) into the planes at (x0, y0), cut at
 * the tile's and the planes' edges, box-shrunk by the plane's k. Returns 0,
 * -1 when the picture does not fit, -2 out of memory. */
static int paste(struct planes *pl, const struct hevc_picture *pic, int tw, int th, int x0,
                 int y0)
{
    if (pic->w < tw || pic->h < th)
        return -1; /* a smaller picture would leave part of the tile unwritten */
    for (int c = 0; c < 3; c++) {
        int sub = c ? 2 : 1, k = pl->k[c > 0], sw = pl->sw[c > 0];
        int pw = c ? pl->cw : pl->w, ph = c ? pl->ch : pl->h;
        int iw = (tw + sub - 1) / sub, ih = (th + sub - 1) / sub;
        unsigned char *dst = c == 0 ? pl->y : c == 1 ? pl->cb : pl->cr;
        int cx = x0 / sub, cy = y0 / sub;
        int w = iw < pw - cx ? iw : pw - cx, h = ih < ph - cy ? ih : ph - cy;
        if (cx < 0 || cy < 0 || w <= 0 || h <= 0 || pic->stride[c] < w || cx % k || cy % k)
            return -1;
        dst += (size_t)(cy / k) * (size_t)sw + (size_t)(cx / k);
        if (boxshrink_buf(pic->plane[c], (size_t)pic->stride[c], w, h, 1, k, dst,
                          (size_t)sw) != 0)
            return -2; /* no memory */
    }
    return 0;
}

static enum heifgrid_rc decode_tile(const struct heif *h, struct hevc *dec, const struct item *it,
                                    struct planes *pl, int tw, int th, int x0, int y0, char *why,
                                    size_t cap)
{
    const struct prop *hvcc = item_prop(h, it, FOURCC('h', 'v', 'c', 'C'));
    int ls = hvcc ? check_hvcc(hvcc) : 0;
    struct hevc_picture pic;
    unsigned char *data = NULL;
    enum heifgrid_rc rc = HEIFGRID_DAMAGED;
    enum hevc_rc dr;
    char msg[128];

    if (it->type != FOURCC('h', 'v', 'c', '1') || ls == 0)
        return HEIFGRID_NOT_HANDLED;
    switch (item_data(h, it, &data)) {
    case 0:
        break;
    case -2:
        rc = HEIFGRID_NO_MEMORY;
        snprintf(why, cap, "out of memory reading HEVC tile %u", it->id);
        goto out;
    default:
        snprintf(why, cap, "cannot read HEVC tile %u", it->id);
        goto out;
    }
    dr = hevc_decode(dec, hvcc->body.p, hvcc->body.n, data, (size_t)it->len, ls, &pic, msg,
                     sizeof(msg));
    if (dr != HEVC_OK) {
        rc = dr == HEVC_NO_MEMORY ? HEIFGRID_NO_MEMORY : HEIFGRID_DAMAGED;
        snprintf(why, cap, "tile %u: %s", it->id, msg);
        goto out;
    }
    switch (paste(pl, &pic, tw, th, x0, y0)) {
    case 0:
        break;
    case -2:
        rc = HEIFGRID_NO_MEMORY;
        snprintf(why, cap, "out of memory pasting HEVC tile %u", it->id);
        goto out;
    default:
        snprintf(why, cap, "tile %u decoded to %dx%d pixels, not %dx%d", it->id, pic.w, pic.h,
                 tw, th);
        goto out;
    }
    rc = HEIFGRID_OK;
out:
    free(data);
    return rc;
}

static bool ispe_of(const struct heif *h, const struct item *it, uint32_t *w, uint32_t *hh)
{
    const struct prop *p = item_prop(h, it, FOURCC('i', 's', 'p', 'e'));
    struct rd r;

    if (!p)
        return false;
    r = p->body;
    rd_skip(&r, 4);
    *w = (uint32_t)rd_u(&r, 4);
    *hh = (uint32_t)rd_u(&r, 4);
    return !r.bad && *w > 0 && *hh > 0;
}

/* Grid layout of the primary: rows, columns, output size; or one image.
 * 0; -1 when not one this file decodes; -2 out of memory. */
static int layout(struct heif *h, const struct item *pr, int *rows, int *cols, uint32_t *w,
                  uint32_t *hh)
{
    unsigned char *d;
    struct rd r;
    int got;

    if (pr->type == FOURCC('h', 'v', 'c', '1')) {
        *rows = *cols = 1;
        h->tiles[0] = pr->id;
        h->ntiles = 1;
        return ispe_of(h, pr, w, hh) ? 0 : -1;
    }
    if (pr->type != FOURCC('g', 'r', 'i', 'd') || pr->len > 64)
        return -1;
    got = item_data(h, pr, &d);
    if (got != 0)
        return got; /* item_data's -1 and -2 are layout's */
    r = (struct rd){d, (size_t)pr->len, 0, false};
    rd_skip(&r, 1);
    {
        int big = (int)(rd_u(&r, 1) & 1);
        *rows = (int)rd_u(&r, 1) + 1;
        *cols = (int)rd_u(&r, 1) + 1;
        *w = (uint32_t)rd_u(&r, big ? 4 : 2);
        *hh = (uint32_t)rd_u(&r, big ? 4 : 2);
    }
    free(d);
    return r.bad || *rows * *cols != h->ntiles ? -1 : 0;
}

/* Only irot among the transforms; its angle (anticlockwise, 0-3 quarter
 * turns) in *rot. Alpha (an auxl image of the primary) is not looked for: the
 * caller has asked libheif already. */
static int transforms(const struct heif *h, const struct item *pr, int *rot)
{
    const struct prop *p;

    if (item_prop(h, pr, FOURCC('c', 'l', 'a', 'p')) ||
        item_prop(h, pr, FOURCC('i', 'm', 'i', 'r')))
        return -1;
    *rot = 0;
    p = item_prop(h, pr, FOURCC('i', 'r', 'o', 't'));
    if (p) {
        if (p->body.n < 1)
            return -1;
        *rot = p->body.p[0] & 3;
    }
    return 0;
}

/* The coded size w x hh, turned by rot quarter turns, is what libheif
 * reported (and the limits were checked on). */
static bool size_matches(uint32_t w, uint32_t hh, int rot, int64_t disp_w, int64_t disp_h)
{
    return (rot & 1) ? (hh == disp_w && w == disp_h) : (w == disp_w && hh == disp_h);
}

/* The box factor for a plane of w x h going to ow x oh, whose tiles are
 * bw x bh each (the first cols - 1 and rows - 1 of them whole): the integer
 * part of the scale, when every tile starts on a whole block; else 1. */
static int box_factor(int w, int h, int ow, int oh, int bw, int bh, int cols, int rows)
{
    int k = w / ow < h / oh ? w / ow : h / oh;

    if (k < 2)
        return 1;
    k = k > 255 ? 255 : k;
    return (cols > 1 && bw % k) || (rows > 1 && bh % k) ? 1 : k;
}

/* Sizes: the result's (long side min_long, never upscaled), the box factors,
 * the kept planes'. */
static void plan(struct planes *pl, int tw, int th, int cols, int rows, int min_long)
{
    int lng = pl->w > pl->h ? pl->w : pl->h;
    double s = lng > min_long ? (double)min_long / lng : 1.0;

    pl->ow[0] = (int)ceil(pl->w * s), pl->oh[0] = (int)ceil(pl->h * s);
    pl->ow[1] = (pl->ow[0] + 1) / 2, pl->oh[1] = (pl->oh[0] + 1) / 2;
    pl->k[0] = box_factor(pl->w, pl->h, pl->ow[0], pl->oh[0], tw, th, cols, rows);
    pl->k[1] = box_factor(pl->cw, pl->ch, pl->ow[1], pl->oh[1], tw / 2, th / 2, cols, rows);
    pl->sw[0] = (pl->w + pl->k[0] - 1) / pl->k[0], pl->sh[0] = (pl->h + pl->k[0] - 1) / pl->k[0];
    pl->sw[1] = (pl->cw + pl->k[1] - 1) / pl->k[1], pl->sh[1] = (pl->ch + pl->k[1] - 1) / pl->k[1];
}

static enum heifgrid_rc decode_planes(struct heif *h, const struct item *pr, int rot,
                                      int64_t disp_w, int64_t disp_h, int min_long,
                                      struct planes *pl, char *why, size_t cap)
{
    int rows, cols;
    uint32_t w, hh, tw = 0, th = 0;
    struct hevc *dec = NULL;
    enum heifgrid_rc rc;
    int lrc = layout(h, pr, &rows, &cols, &w, &hh);

    if (lrc == -2) {
        snprintf(why, cap, "out of memory reading the HEIF grid");
        return HEIFGRID_NO_MEMORY;
    }
    if (lrc != 0 || !size_matches(w, hh, rot, disp_w, disp_h))
        return HEIFGRID_NOT_HANDLED; /* libheif sees another image: let it decode */
    pl->w = (int)w, pl->h = (int)hh, pl->cw = (int)((w + 1) / 2), pl->ch = (int)((hh + 1) / 2);
    for (int t = 0; t < h->ntiles; t++) {
        const struct item *it = find_item(h, h->tiles[t]);
        uint32_t w1, h1;
        if (!it || !ispe_of(h, it, &w1, &h1) || (t > 0 && (w1 != tw || h1 != th)))
            return HEIFGRID_NOT_HANDLED; /* tiles of one size only */
        tw = w1, th = h1;
    }
    /* Tiles cover the image, none lies wholly outside it, and chroma starts on
     * whole pixels. w and hh are within the limits, so offsets fit an int. */
    if ((uint64_t)tw * (uint64_t)cols < w || (uint64_t)th * (uint64_t)rows < hh ||
        (uint64_t)tw * (uint64_t)(cols - 1) >= w || (uint64_t)th * (uint64_t)(rows - 1) >= hh ||
        (cols > 1 && (tw & 1)) || (rows > 1 && (th & 1)))
        return HEIFGRID_NOT_HANDLED;
    plan(pl, (int)tw, (int)th, cols, rows, min_long);
    pl->y = malloc((size_t)pl->sw[0] * (size_t)pl->sh[0]);
    pl->cb = malloc((size_t)pl->sw[1] * (size_t)pl->sh[1]);
    pl->cr = malloc((size_t)pl->sw[1] * (size_t)pl->sh[1]);
    if (!pl->y || !pl->cb || !pl->cr) {
        snprintf(why, cap, "out of memory for the %dx%d picture's planes", pl->sw[0], pl->sh[0]);
        return HEIFGRID_NO_MEMORY;
    }
    switch (hevc_new(&dec, why, cap)) {
    case HEVC_OK:
        break;
    case HEVC_NO_MEMORY:
        return HEIFGRID_NO_MEMORY;
    default:
        return HEIFGRID_NOT_HANDLED; /* no decoder here: libheif has its own */
    }
    rc = HEIFGRID_OK;
    for (int t = 0; t < h->ntiles && rc == HEIFGRID_OK; t++)
        rc = decode_tile(h, dec, find_item(h, h->tiles[t]), pl, (int)(tw < w ? tw : w),
                         (int)(th < hh ? th : hh),
                         (int)tw * (t % cols), (int)th * (t / cols), why, cap);
    hevc_free(dec);
    return rc;
}

/* One plane (w x h, in memory) scaled to exactly ow x oh: a box shrink for
 * the integer part, lanczos3 for the rest (as thumb.c's grid thumbnail). */
static VipsImage *scale_plane(unsigned char *buf, int w, int h, int ow, int oh)
{
    VipsImage *in = vips_image_new_from_memory(buf, (size_t)w * (size_t)h, w, h, 1,
                                               VIPS_FORMAT_UCHAR);
    VipsImage *box = NULL, *res = NULL, *mem = NULL;
    int k = w / ow < h / oh ? w / ow : h / oh;

    if (!in)
        return NULL;
    if (k >= 2 && k <= 255) {
        box = boxshrink(in, k);
        g_object_unref(in);
        in = box;
        if (!in)
            return NULL;
    }
    if (in->Xsize == ow && in->Ysize == oh) {
        mem = vips_image_copy_memory(in);
    } else if (vips_resize(in, &res, (double)ow / in->Xsize, "vscale", (double)oh / in->Ysize,
                           "gap", 0.0, NULL) == 0) {
        /* Rounding may leave a pixel more: cut to the luma's size. */
        VipsImage *cut = NULL;
        if (res->Xsize >= ow && res->Ysize >= oh &&
            vips_extract_area(res, &cut, 0, 0, ow, oh, NULL) == 0) {
            mem = vips_image_copy_memory(cut);
            g_object_unref(cut);
        }
        g_object_unref(res);
    }
    g_object_unref(in);
    return mem;
}

/* Kr, Kb of the matrix (ITU-T H.273 matrix_coefficients): BT.709, BT.2020,
 * else BT.601, which libheif also assumes when the file says nothing. */
static void matrix_of(int mc, double *kr, double *kb)
{
    if (mc == 1) {
        *kr = 0.2126, *kb = 0.0722;
    } else if (mc == 9 || mc == 10) {
        *kr = 0.2627, *kb = 0.0593;
    } else {
        *kr = 0.299, *kb = 0.114;
    }
}

/* The conversion as 16.16 fixed-point tables, as libjpeg's: Y's term (with
 * the rounding half) and each chroma term, indexed by the 8-bit sample. */
struct yuv_tab {
    int32_t y[256], rv[256], gu[256], gv[256], bu[256];
};

static void yuv_tab_init(struct yuv_tab *t, int mc, bool full)
{
    double kr, kb, kg, ys = full ? 1.0 : 255.0 / 219, cs = full ? 1.0 : 255.0 / 224;
    double yo = full ? 0 : 16, one = 65536.0;

    matrix_of(mc, &kr, &kb);
    kg = 1 - kr - kb;
    for (int i = 0; i < 256; i++) {
        double c = (i - 128) * cs * one;
        t->y[i] = (int32_t)lround((i - yo) * ys * one) + 32768;
        t->rv[i] = (int32_t)lround(2 * (1 - kr) * c);
        t->gu[i] = (int32_t)lround(-2 * kb * (1 - kb) / kg * c);
        t->gv[i] = (int32_t)lround(-2 * kr * (1 - kr) / kg * c);
        t->bu[i] = (int32_t)lround(2 * (1 - kb) * c);
    }
}

static unsigned char clamp16(int32_t v)
{
    return v <= 0 ? 0 : v >= 255 << 16 ? 255 : (unsigned char)(v >> 16);
}

/* YCbCr planes (in memory; chroma at half the size, rounded up, each of its
 * pixels covering 2 x 2 of luma) to interleaved RGB. The preview's JPEG has
 * 4:2:0 chroma again, so scaling chroma to full size first would only cost. */
static VipsImage *to_rgb(VipsImage *y, VipsImage *cb, VipsImage *cr, int mc, bool full)
{
    int w = y->Xsize, h = y->Ysize;
    size_t sy = VIPS_IMAGE_SIZEOF_LINE(y), sc = VIPS_IMAGE_SIZEOF_LINE(cb);
    unsigned char *rgb = malloc((size_t)w * (size_t)h * 3), *o = rgb;
    struct yuv_tab t;

    if (!rgb)
        return NULL;
    yuv_tab_init(&t, mc, full);
    for (int j = 0; j < h; j++) {
        const unsigned char *py = VIPS_IMAGE_ADDR(y, 0, 0) + (size_t)j * sy;
        const unsigned char *pb = VIPS_IMAGE_ADDR(cb, 0, 0) + (size_t)(j / 2) * sc;
        const unsigned char *pr = VIPS_IMAGE_ADDR(cr, 0, 0) + (size_t)(j / 2) * sc;
        for (int i = 0; i < w; i++) {
            int32_t Y = t.y[py[i]], U = pb[i / 2], V = pr[i / 2];
            *o++ = clamp16(Y + t.rv[V]);
            *o++ = clamp16(Y + t.gu[U] + t.gv[V]);
            *o++ = clamp16(Y + t.bu[U]);
        }
    }
    return media_image_adopt(rgb, w, h, 3, VIPS_INTERPRETATION_sRGB);
}

/* Colour: nclx matrix and range, or an ICC profile; on the primary, else on
 * its first tile (where libheif looks too). */
static const struct prop *colr_of(const struct heif *h, const struct item *pr)
{
    const struct prop *p = item_prop(h, pr, FOURCC('c', 'o', 'l', 'r'));
    const struct item *t = get_item(h, h->tiles[0]);

    return p ? p : t ? item_prop(h, t, FOURCC('c', 'o', 'l', 'r')) : NULL;
}

static VipsImage *convert(const struct heif *h, const struct item *pr, struct planes *pl)
{
    VipsImage *y = NULL, *cb = NULL, *cr = NULL, *rgb = NULL;
    const struct prop *colr = colr_of(h, pr);
    int mc = 6;
    bool full = true;

    if (colr && colr->body.n >= 11 && memcmp(colr->body.p, "nclx", 4) == 0) {
        mc = colr->body.p[8] << 8 | colr->body.p[9];
        full = colr->body.p[10] & 0x80;
    }
    y = scale_plane(pl->y, pl->sw[0], pl->sh[0], pl->ow[0], pl->oh[0]);
    cb = scale_plane(pl->cb, pl->sw[1], pl->sh[1], pl->ow[1], pl->oh[1]);
    cr = scale_plane(pl->cr, pl->sw[1], pl->sh[1], pl->ow[1], pl->oh[1]);
    if (y && cb && cr)
        rgb = to_rgb(y, cb, cr, mc, full);
    if (rgb && colr && colr->body.n > 4 &&
        (memcmp(colr->body.p, "prof", 4) == 0 || memcmp(colr->body.p, "rICC", 4) == 0))
        vips_image_set_blob_copy(rgb, VIPS_META_ICC_NAME, colr->body.p + 4, colr->body.n - 4);
    if (y)
        g_object_unref(y);
    if (cb)
        g_object_unref(cb);
    if (cr)
        g_object_unref(cr);
    return rgb;
}

static VipsImage *rotate(VipsImage *in, int rot)
{
    static const VipsAngle angle[] = {VIPS_ANGLE_D0, VIPS_ANGLE_D270, VIPS_ANGLE_D180,
                                      VIPS_ANGLE_D90}; /* irot turns anticlockwise */
    VipsImage *r = NULL, *mem;

    if (rot == 0)
        return in;
    if (vips_rot(in, &r, angle[rot], NULL) != 0) {
        g_object_unref(in);
        return NULL;
    }
    mem = vips_image_copy_memory(r);
    g_object_unref(r);
    g_object_unref(in);
    return mem;
}

static enum heifgrid_rc run(struct heif *h, int64_t disp_w, int64_t disp_h, int min_long,
                            VipsImage **out, char *why, size_t cap)
{
    struct planes pl = {0};
    const struct item *pr;
    enum heifgrid_rc rc = HEIFGRID_NOT_HANDLED;
    VipsImage *img;
    int rot = 0, mrc = read_meta(h);

    if (mrc == -2) {
        snprintf(why, cap, "out of memory reading the HEIF boxes");
        return HEIFGRID_NO_MEMORY;
    }
    if (mrc != 0)
        return HEIFGRID_NOT_HANDLED;
    pr = find_item(h, h->primary);
    if (!pr || transforms(h, pr, &rot) != 0)
        return HEIFGRID_NOT_HANDLED;
    rc = decode_planes(h, pr, rot, disp_w, disp_h, min_long, &pl, why, cap);
    if (rc == HEIFGRID_OK) {
        img = convert(h, pr, &pl);
        img = img ? rotate(img, rot) : NULL;
        if (!img) {
            /* libvips fails here only for want of memory (or of a thread) */
            snprintf(why, cap, "out of memory scaling the HEIC picture");
            rc = HEIFGRID_NO_MEMORY;
        }
        *out = img;
    }
    free(pl.y);
    free(pl.cb);
    free(pl.cr);
    return rc;
}

enum heifgrid_rc heifgrid_decode(const char *path, int64_t disp_w, int64_t disp_h, int min_long,
                                 VipsImage **out, char *why, size_t why_len)
{
    struct heif *h = calloc(1, sizeof(*h));
    struct stat st;
    enum heifgrid_rc rc = HEIFGRID_NOT_HANDLED;

    *out = NULL;
    if (why_len)
        why[0] = '\0';
    if (!h) {
        snprintf(why, why_len, "out of memory reading the HEIF boxes");
        return HEIFGRID_NO_MEMORY;
    }
    h->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (h->fd >= 0 && fstat(h->fd, &st) == 0) {
        h->file_size = (uint64_t)st.st_size;
        rc = run(h, disp_w, disp_h, min_long, out, why, why_len);
    }
    if (h->fd >= 0)
        (void)close(h->fd); /* read-only: nothing to lose */
    free(h->meta);
    free(h);
    return rc;
}
