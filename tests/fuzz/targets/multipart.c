/*
 * Fuzz target for src/http/multipart.c: the input is a request body with the
 * fixed boundary "XyZ". It is parsed twice, once whole and once split at a
 * position derived from the first byte, and in a third run fed in chunks whose
 * sizes come from the input; callbacks are no-ops except that they check the
 * promised call order (begin/data/end). All runs must agree on success.
 * Also exercises multipart_boundary_from_content_type on the input's first line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct order {
    int open;
    int skip_every;
    size_t parts;
};

static int on_begin(void *ctx, const char *name, const char *filename, const char *ct)
{
    struct order *o = ctx;

    if (o->open || !name)
        abort();
    (void)strlen(name);
    if (filename && strlen(filename) > 255)
        abort();
    if (ct)
        (void)strlen(ct);
    o->open = 1;
    o->parts++;
    if (o->skip_every && o->parts % (size_t)o->skip_every == 0)
        return MULTIPART_SKIP;
    return MULTIPART_OK;
}

static int on_data(void *ctx, const char *d, size_t len)
{
    struct order *o = ctx;

    if (!o->open || len == 0 || !d)
        abort();
    return MULTIPART_OK;
}

static int on_end(void *ctx)
{
    struct order *o = ctx;

    if (!o->open)
        abort();
    o->open = 0;
    return MULTIPART_OK;
}

static const struct multipart_cb cb = {on_begin, on_data, on_end};

/* Feeds data[0..size) cut at the given offsets; returns the result of finish. */
static int parse(const uint8_t *data, size_t size, size_t split, size_t step, int skip_every)
{
    struct order o = {0, skip_every, 0};
    struct multipart *m = multipart_new("XyZ", &cb, &o);
    const char *p = (const char *)data;
    size_t off = 0;
    int rc = 0;

    if (!m)
        abort();
    if (split > size)
        split = size;
    rc = multipart_feed(m, p, split);
    off = split;
    while (off < size) {
        size_t n = step ? step : size - off;
        if (n > size - off)
            n = size - off;
        if (multipart_feed(m, p + off, n))
            rc = -1;
        off += n;
    }
    if (multipart_finish(m))
        rc = -1;
    if (rc && !multipart_error(m))
        abort();
    if (!rc && (o.open || multipart_error(m)))
        abort();
    multipart_free(m);
    return rc;
}

static void boundary_line(const uint8_t *data, size_t size)
{
    char ct[256], out[MULTIPART_BOUNDARY_MAX + 1];
    size_t n = 0;

    while (n < size && n < sizeof(ct) - 1 && data[n] != '\n' && data[n] != '\0') {
        ct[n] = (char)data[n];
        n++;
    }
    ct[n] = '\0';
    if (multipart_boundary_from_content_type(ct, out, sizeof(out)) == 0) {
        size_t len = strlen(out);
        if (len == 0 || len > MULTIPART_BOUNDARY_MAX)
            abort();
        multipart_free(multipart_new(out, NULL, NULL));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int whole, split, chunked;

    whole = parse(data, size, size, 0, 0);
    split = parse(data, size, size ? data[0] % (size + 1) : 0, 0, 0);
    chunked = parse(data, size, 0, size ? 1 + data[size - 1] % 17 : 1, 0);
    if (whole != split || whole != chunked)
        abort();
    /* skipping parts must not change whether the framing is valid */
    if (parse(data, size, 0, 0, 2) != whole)
        abort();
    boundary_line(data, size);
    return 0;
}
