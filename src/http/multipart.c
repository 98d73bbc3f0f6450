/*
 * multipart: see multipart.h.
 *
 * The body is one state machine, driven a byte (or, inside part data, a run
 * of bytes) at a time, so chunk boundaries never matter:
 *
 *   PREAMBLE --"--B"--> TAIL --CRLF--> HEADERS --CRLFCRLF--> BODY --"\r\nB"--> TAIL
 *                        |  (on_part_end of the previous part, if any)   (on_part_begin)
 *                        +--"--"--> EPILOGUE (everything after is ignored)
 *   any state --malformed input / limit / callback abort--> ERROR (sticky)
 *
 * The delimiter is "\r\n--" + boundary. In PREAMBLE matching starts at index 2,
 * as if a CRLF preceded the body. While matching inside BODY, the matched
 * bytes are held back; on a mismatch they are emitted as data straight from
 * the delimiter string (they are equal to it), so nothing is buffered. The
 * boundary never contains CR, so CR occurs only at index 0 of the delimiter:
 * after a mismatch no suffix of the held bytes can start a new match, and the
 * current byte is simply examined again from index 0.
 */
#include "http/multipart.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/limits.h"
#include "base/str.h"
#include "base/xalloc.h"

#define DELIM_MAX (4 + MULTIPART_BOUNDARY_MAX)
/* What to do about a body that ended early. */
#define CUT_SHORT ": the upload was cut short, send it again"
/* Bytes of a decoded filename kept before the UTF-8 safe cut. */
#define FNAME_SCRATCH (LIMIT_FILENAME_BYTES + 8)

enum state { ST_PREAMBLE, ST_TAIL, ST_HEADERS, ST_BODY, ST_EPILOGUE, ST_ERROR };
enum tail { TAIL_START, TAIL_DASH, TAIL_LWSP, TAIL_LF };

struct multipart {
    struct multipart_cb cb;
    void *ctx;
    enum state state;
    enum tail tail;
    char delim[DELIM_MAX + 1];
    size_t dlen;
    size_t match;   /* delimiter bytes matched (held back in BODY) */
    bool part_open; /* on_part_begin returned OK/SKIP; on_part_end is owed */
    bool skipping;  /* the consumer asked to drop the rest of this part */
    size_t parts;
    size_t hlen;
    char hdr[LIMIT_PART_HEADER_BYTES + 1];
    char scratch[LIMIT_PART_HEADER_BYTES + 1];
    char name[MULTIPART_NAME_MAX + 1];
    char filename[FNAME_SCRATCH + 1];
    char ctype[MULTIPART_CTYPE_MAX + 1];
    char first[DELIM_MAX + 1]; /* the body's first line (cut), to name a wrong boundary */
    size_t flen;
    bool first_done;
    char error[320];
};

/* ---------------------------------------------------------------- helpers */

__attribute__((format(printf, 2, 3))) static int fail(struct multipart *m, const char *fmt, ...)
{
    va_list ap;

    if (m->state == ST_ERROR)
        return -1;
    va_start(ap, fmt);
    vsnprintf(m->error, sizeof(m->error), fmt, ap);
    va_end(ap);
    m->state = ST_ERROR;
    return -1;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t';
}

static const char *skip_ws(const char *p)
{
    while (is_ws(*p))
        p++;
    return p;
}

/* Cut s to at most max bytes without splitting a UTF-8 sequence. */
static void utf8_cut(char *s, size_t max)
{
    size_t len = strlen(s);

    if (len <= max)
        return;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    s[max] = '\0';
}

/* Copy src[0..len) into out (n > 0), cutting at n - 1 bytes. */
static void copy_cut(char *out, size_t n, const char *src, size_t len)
{
    if (len >= n)
        len = n - 1;
    memcpy(out, src, len);
    out[len] = '\0';
}

/* ------------------------------------------------------ header parameters */

static bool is_tspecial_end(char c)
{
    return c == '\0' || c == ';' || c == '=' || is_ws(c);
}

/* Quoted string at *pp (just after the opening quote) into val. Keeps a
 * backslash that does not escape '"' or '\'. -1 without a closing quote. */
static int read_quoted(const char **pp, char *val, size_t nval)
{
    const char *p = *pp;
    size_t o = 0;

    for (;;) {
        char c = *p++;
        if (c == '\0')
            return -1;
        if (c == '"')
            break;
        if (c == '\\' && (*p == '"' || *p == '\\'))
            c = *p++;
        if (o + 1 < nval)
            val[o++] = c;
    }
    val[o] = '\0';
    *pp = p;
    return 0;
}

/*
 * Next `; name=value` parameter from *pp into name (lower-case kept as sent)
 * and val (cut to nval - 1 bytes). Returns 1 with a parameter, 0 at the end,
 * -1 when malformed (unterminated quote, garbage between parameters).
 */
static int param_next(const char **pp, char *name, size_t nname, char *val, size_t nval)
{
    const char *p = skip_ws(*pp);
    const char *start;

    while (*p == ';')
        p = skip_ws(p + 1);
    if (*p == '\0')
        return 0;
    start = p;
    while (!is_tspecial_end(*p))
        p++;
    copy_cut(name, nname, start, (size_t)(p - start));
    p = skip_ws(p);
    val[0] = '\0';
    if (*p == '=') {
        p = skip_ws(p + 1);
        if (*p == '"') {
            p++;
            if (read_quoted(&p, val, nval))
                return -1;
        } else {
            start = p;
            while (*p != '\0' && *p != ';' && !is_ws(*p))
                p++;
            copy_cut(val, nval, start, (size_t)(p - start));
        }
    }
    p = skip_ws(p);
    if (*p != '\0' && *p != ';')
        return -1;
    *pp = p;
    return 1;
}

static bool is_bchar(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("'()+_,-./:=? ", c));
}

static bool boundary_valid(const char *b)
{
    size_t len = strlen(b);

    if (len == 0 || len > MULTIPART_BOUNDARY_MAX || b[len - 1] == ' ')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_bchar(b[i]))
            return false;
    return true;
}

int multipart_boundary_from_content_type(const char *ct, char *out, size_t n)
{
    static const char type[] = "multipart/form-data";
    char pname[32], val[MULTIPART_BOUNDARY_MAX + 2];
    const char *p;
    int rc;

    if (!out || n == 0)
        return -1;
    out[0] = '\0';
    if (!ct)
        return -1;
    p = skip_ws(ct);
    if (strncasecmp(p, type, sizeof(type) - 1) != 0)
        return -1;
    p = skip_ws(p + sizeof(type) - 1);
    if (*p != ';')
        return -1;
    while ((rc = param_next(&p, pname, sizeof(pname), val, sizeof(val))) == 1) {
        if (strcasecmp(pname, "boundary") != 0)
            continue;
        if (!boundary_valid(val) || strlen(val) >= n)
            return -1;
        memcpy(out, val, strlen(val) + 1);
        return 0;
    }
    return -1;
}

/* ------------------------------------------------------------- filenames */

/* Browsers send '"' in a quoted filename as "%22" (WHATWG HTML); undo that. */
static void undo_quote_escape(char *s)
{
    char *o = s;

    for (const char *p = s; *p; p++) {
        if (p[0] == '%' && p[1] == '2' && p[2] == '2') {
            *o++ = '"';
            p += 2;
            continue;
        }
        *o++ = *p;
    }
    *o = '\0';
}

/*
 * RFC 5987 ext-value "charset'lang'pct-encoded" into out (n > 1), cut at n - 1
 * bytes. UTF-8 is copied, ISO-8859-1 converted to UTF-8. Returns -1 for
 * another charset, bad percent escapes or an encoded NUL.
 */
static int decode_ext_value(const char *v, char *out, size_t n)
{
    const char *q1 = strchr(v, '\'');
    const char *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
    bool latin1;
    size_t o = 0;

    if (!q2)
        return -1;
    if ((size_t)(q1 - v) == 5 && strncasecmp(v, "utf-8", 5) == 0)
        latin1 = false;
    else if ((size_t)(q1 - v) == 10 && strncasecmp(v, "iso-8859-1", 10) == 0)
        latin1 = true;
    else
        return -1;
    for (const char *p = q2 + 1; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '%') {
            int byte = str_unhex2(p + 1);
            if (byte <= 0)  /* not hex, or an encoded NUL */
                return -1;
            c = (unsigned char)byte;
            p += 2;
        }
        if (latin1 && c >= 0x80) {
            if (o + 2 >= n)
                break;
            out[o++] = (char)(0xC0 | (c >> 6));
            c = (unsigned char)(0x80 | (c & 0x3F));
        }
        if (o + 1 >= n)
            break;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* ---------------------------------------------------------- part headers */

struct disposition {
    bool has_name, has_filename, has_ext;
};

static int parse_disposition(struct multipart *m, const char *v, struct disposition *d)
{
    static const char type[] = "form-data";
    char pname[32];
    char ext[FNAME_SCRATCH + 1];
    char *val = m->scratch;
    int rc;

    v = skip_ws(v);
    if (strncasecmp(v, type, sizeof(type) - 1) != 0 || !is_tspecial_end(v[sizeof(type) - 1]))
        return fail(m, "part is not form-data");
    v += sizeof(type) - 1;
    while ((rc = param_next(&v, pname, sizeof(pname), val, sizeof(m->scratch))) == 1) {
        if (!d->has_name && strcasecmp(pname, "name") == 0) {
            if (strlen(val) > MULTIPART_NAME_MAX)
                return fail(m, "part name is longer than %d bytes", MULTIPART_NAME_MAX);
            memcpy(m->name, val, strlen(val) + 1);
            d->has_name = true;
        } else if (!d->has_filename && strcasecmp(pname, "filename") == 0) {
            undo_quote_escape(val);
            copy_cut(m->filename, sizeof(m->filename), val, strlen(val));
            d->has_filename = true;
        } else if (!d->has_ext && strcasecmp(pname, "filename*") == 0) {
            d->has_ext = decode_ext_value(val, ext, sizeof(ext)) == 0;
        }
    }
    if (rc < 0)
        return fail(m, "malformed content-disposition of a part");
    if (d->has_ext) {
        memcpy(m->filename, ext, strlen(ext) + 1);
        d->has_filename = true;
    }
    if (!d->has_name)
        return fail(m, "part without a field name");
    utf8_cut(m->filename, LIMIT_FILENAME_BYTES);
    return 0;
}

/* Join folded lines: CRLF followed by a space or tab becomes spaces. */
static void unfold(char *h, size_t len)
{
    for (size_t i = 0; i + 2 < len; i++) {
        if (h[i] == '\r' && h[i + 1] == '\n' && is_ws(h[i + 2])) {
            h[i] = ' ';
            h[i + 1] = ' ';
        }
    }
}

static void trim_value(const char **v, size_t *len)
{
    while (*len > 0 && is_ws(**v)) {
        (*v)++;
        (*len)--;
    }
    while (*len > 0 && is_ws((*v)[*len - 1]))
        (*len)--;
}

/* One header line h[0..len) (no CRLF). */
static int header_line(struct multipart *m, char *h, size_t len, struct disposition *d,
                       bool *has_disp, bool *has_ctype)
{
    char *colon = memchr(h, ':', len);
    const char *v;
    size_t vlen;

    if (!colon || colon == h)
        return fail(m, "malformed part header");
    v = colon + 1;
    vlen = len - (size_t)(v - h);
    trim_value(&v, &vlen);
    if ((size_t)(colon - h) == 19 && strncasecmp(h, "content-disposition", 19) == 0) {
        if (*has_disp)
            return fail(m, "part with two content-disposition headers");
        *has_disp = true;
        ((char *)v)[vlen] = '\0';
        return parse_disposition(m, v, d);
    }
    if ((size_t)(colon - h) == 12 && strncasecmp(h, "content-type", 12) == 0 && !*has_ctype) {
        *has_ctype = true;
        copy_cut(m->ctype, sizeof(m->ctype), v, vlen);
        utf8_cut(m->ctype, MULTIPART_CTYPE_MAX);
    }
    return 0;
}

/* The complete header block hdr[0..hlen) ends in CRLF (CRLFCRLF unless empty). */
static int parse_headers(struct multipart *m, struct disposition *d, bool *has_ctype)
{
    size_t len = m->hlen - 2; /* drop the final empty line's CRLF */
    bool has_disp = false;
    char *p = m->hdr;

    if (memchr(m->hdr, '\0', m->hlen))
        return fail(m, "NUL byte in part headers");
    m->hdr[len] = '\0';
    m->name[0] = m->filename[0] = m->ctype[0] = '\0';
    unfold(m->hdr, len);
    while (p < m->hdr + len) {
        char *end = strstr(p, "\r\n");
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (header_line(m, p, n, d, &has_disp, has_ctype))
            return -1;
        p += n + (end ? 2 : 0);
    }
    if (!has_disp)
        return fail(m, "part without content-disposition");
    return 0;
}

/* ----------------------------------------------------------- the machine */

static int callback_rc(struct multipart *m, int rc, const char *what)
{
    if (rc == MULTIPART_OK)
        return 0;
    if (rc == MULTIPART_SKIP) {
        m->skipping = true;
        return 0;
    }
    return fail(m, "receiver stopped the upload at %s of part %zu", what, m->parts);
}

static int begin_part(struct multipart *m)
{
    struct disposition d = {0};
    bool has_ctype = false;
    int rc = MULTIPART_OK;

    if (parse_headers(m, &d, &has_ctype))
        return -1;
    m->skipping = false;
    if (m->cb.on_part_begin)
        rc = m->cb.on_part_begin(m->ctx, m->name, d.has_filename ? m->filename : NULL,
                                 has_ctype ? m->ctype : NULL);
    if (callback_rc(m, rc, "the start"))
        return -1;
    m->part_open = true;
    m->state = ST_BODY;
    m->match = 0;
    return 0;
}

static int end_part(struct multipart *m)
{
    int rc = MULTIPART_OK;

    if (!m->part_open)
        return 0;
    m->part_open = false;
    if (m->cb.on_part_end)
        rc = m->cb.on_part_end(m->ctx);
    /* SKIP at the end means nothing more: the part is over either way. */
    if (rc != MULTIPART_OK && rc != MULTIPART_SKIP)
        return fail(m, "receiver stopped the upload at the end of part %zu", m->parts);
    return 0;
}

static int emit(struct multipart *m, const char *data, size_t len)
{
    if (len == 0 || m->skipping || !m->cb.on_part_data)
        return 0;
    return callback_rc(m, m->cb.on_part_data(m->ctx, data, len), "the data");
}

/* Part data: returns bytes consumed; stops after a full delimiter or an error. */
static size_t feed_body(struct multipart *m, const char *data, size_t len)
{
    size_t i = 0;

    while (i < len && m->state == ST_BODY) {
        if (m->match == 0) {
            /* Hand over everything up to the first CR that starts the
             * delimiter (or the part of it this chunk holds): a CR followed
             * by other bytes is data. JPEG data has a CR every ~256 bytes;
             * stopping at each one meant a callback per ~100 bytes. */
            size_t j = i;
            for (;;) {
                const char *cr = memchr(data + j, '\r', len - j);
                if (!cr) {
                    j = len;
                    break;
                }
                j = (size_t)(cr - data);
                size_t n = len - j < m->dlen ? len - j : m->dlen;
                if (memcmp(cr, m->delim, n) == 0)
                    break;
                j++;
            }
            if (emit(m, data + i, j - i))
                return i;
            i = j;
            if (i == len)
                break;
            m->match = 1;
            i++;
            continue;
        }
        if (data[i] == m->delim[m->match]) {
            i++;
            if (++m->match == m->dlen) {
                m->state = ST_TAIL;
                m->tail = TAIL_START;
                m->match = 0;
            }
            continue;
        }
        /* Mismatch: the held-back bytes were data; look at data[i] afresh. */
        if (emit(m, m->delim, m->match))
            return i;
        m->match = 0;
    }
    return i;
}

static void feed_preamble(struct multipart *m, char c)
{
    if (!m->first_done) {
        if (c == '\r' || c == '\n' || m->flen == DELIM_MAX)
            m->first_done = true;
        else
            m->first[m->flen++] = c;
    }
    if (c == m->delim[m->match]) {
        if (++m->match == m->dlen) {
            m->state = ST_TAIL;
            m->tail = TAIL_START;
            m->match = 0;
        }
        return;
    }
    m->match = c == '\r' ? 1 : 0;
}

static int next_part(struct multipart *m)
{
    if (end_part(m))
        return -1;
    if (m->parts == LIMIT_PARTS)
        return fail(m, "more than %d parts", LIMIT_PARTS);
    m->parts++;
    m->state = ST_HEADERS;
    m->hlen = 0;
    return 0;
}

/* The rest of a boundary line: "--" (close), or LWSP* CRLF (next part). */
static int feed_tail(struct multipart *m, char c)
{
    if (m->tail == TAIL_START && c == '-') {
        m->tail = TAIL_DASH;
        return 0;
    }
    if (m->tail == TAIL_DASH && c == '-') {
        if (end_part(m))
            return -1;
        m->state = ST_EPILOGUE;
        return 0;
    }
    if (m->tail == TAIL_LF && c == '\n')
        return next_part(m);
    if ((m->tail == TAIL_START || m->tail == TAIL_LWSP) && (is_ws(c) || c == '\r')) {
        m->tail = c == '\r' ? TAIL_LF : TAIL_LWSP;
        return 0;
    }
    if (m->parts == 0)
        return fail(m, "malformed boundary line at the start of the body");
    return fail(m, "malformed boundary line after part %zu", m->parts);
}

static int feed_header(struct multipart *m, char c)
{
    if (m->hlen == LIMIT_PART_HEADER_BYTES)
        return fail(m, "headers of part %zu are longer than %d bytes", m->parts,
                    LIMIT_PART_HEADER_BYTES);
    m->hdr[m->hlen++] = c;
    if (c != '\n' || m->hlen < 2 || m->hdr[m->hlen - 2] != '\r')
        return 0;
    if (m->hlen == 2 || (m->hlen >= 4 && memcmp(m->hdr + m->hlen - 4, "\r\n\r\n", 4) == 0))
        return begin_part(m);
    return 0;
}

int multipart_feed(struct multipart *m, const char *data, size_t len)
{
    size_t i = 0;

    while (i < len) {
        switch (m->state) {
        case ST_ERROR: return -1;
        case ST_EPILOGUE: return 0;
        case ST_BODY: i += feed_body(m, data + i, len - i); break;
        case ST_PREAMBLE: feed_preamble(m, data[i++]); break;
        case ST_TAIL: feed_tail(m, data[i++]); break;
        case ST_HEADERS: feed_header(m, data[i++]); break;
        }
    }
    return m->state == ST_ERROR ? -1 : 0;
}

/* The body ended before its first boundary line: say why, naming the body's own
 * boundary when its first line looks like one ("--" + bchars), since a client
 * that writes one boundary into the header and another into the body is the
 * usual cause. */
static int preamble_error(struct multipart *m)
{
    char got[DELIM_MAX + 1];
    size_t n = m->flen;

    if (n == 0 && !m->first_done)
        return fail(m, "the body is empty: send at least one part");
    while (n > 2 && (m->first[n - 1] == ' ' || m->first[n - 1] == '\t'))
        n--;
    if (n > 4 && memcmp(m->first + n - 2, "--", 2) == 0)
        n -= 2; /* a closing boundary line: "--B--" */
    copy_cut(got, sizeof(got), m->first + 2, n > 2 ? n - 2 : 0);
    if (n > 2 && memcmp(m->first, "--", 2) == 0 && boundary_valid(got))
        return fail(m,
                    "the body's boundary '%s' differs from the boundary '%s' of the "
                    "Content-Type header: send the same boundary in both",
                    got, m->delim + 4);
    return fail(m,
                "no part starts with the boundary '%s' of the Content-Type header: "
                "each part must begin with a line '--%s'",
                m->delim + 4, m->delim + 4);
}

int multipart_finish(struct multipart *m)
{
    switch (m->state) {
    case ST_EPILOGUE: return 0;
    case ST_ERROR: return -1;
    case ST_PREAMBLE: return preamble_error(m);
    case ST_BODY: return fail(m, "body ended in the data of part %zu" CUT_SHORT, m->parts);
    case ST_HEADERS: return fail(m, "body ended in the headers of part %zu" CUT_SHORT, m->parts);
    case ST_TAIL: break;
    }
    return fail(m, "body ended without the closing boundary" CUT_SHORT);
}

struct multipart *multipart_new(const char *boundary, const struct multipart_cb *cb, void *ctx)
{
    struct multipart *m;
    size_t blen;

    if (!boundary)
        return NULL;
    blen = strlen(boundary);
    if (blen == 0 || blen > MULTIPART_BOUNDARY_MAX || strpbrk(boundary, "\r\n"))
        return NULL;
    m = xcalloc(1, sizeof(*m));
    if (cb)
        m->cb = *cb;
    m->ctx = ctx;
    m->state = ST_PREAMBLE;
    memcpy(m->delim, "\r\n--", 4);
    memcpy(m->delim + 4, boundary, blen);
    m->dlen = 4 + blen;
    m->match = 2; /* the body's start counts as a line start */
    return m;
}

void multipart_free(struct multipart *m)
{
    free(m);
}

const char *multipart_error(const struct multipart *m)
{
    return m->state == ST_ERROR ? m->error : NULL;
}

size_t multipart_parts(const struct multipart *m)
{
    return m->parts;
}
