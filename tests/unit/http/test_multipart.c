/*
 * Unit tests for src/http/multipart.c. Every body is fed whole, byte by byte,
 * in fixed small chunks and in random chunk sizes; each way must give the same
 * events and the same error.
 */
#include "http/multipart.h"

#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/limits.h"

/* ------------------------------------------------------------ recorder */

/* Events as text: "{name|filename|ctype}" per begin ("-" for NULL), the data
 * as is, "{/}" per end. Field name "skipbegin" is skipped at begin, "abort"
 * aborts at begin, "cut" keeps 4 bytes then skips the rest. */
struct rec {
    struct buf log;
    size_t part_bytes;
    const char *part_name;
    int ends;
    size_t data_calls;
};

static int rec_begin(void *ctx, const char *name, const char *filename, const char *ct)
{
    struct rec *r = ctx;

    buf_addf(&r->log, "{%s|%s|%s}", name, filename ? filename : "-", ct ? ct : "-");
    r->part_bytes = 0;
    if (strcmp(name, "skipbegin") == 0)
        return MULTIPART_SKIP;
    if (strcmp(name, "abort") == 0)
        return MULTIPART_ABORT;
    r->part_name = strcmp(name, "cut") == 0 ? "cut" : "";
    return MULTIPART_OK;
}

static int rec_data(void *ctx, const char *data, size_t len)
{
    struct rec *r = ctx;

    ck_assert_uint_gt(len, 0);
    r->data_calls++;
    if (strcmp(r->part_name, "cut") == 0) {
        size_t keep = r->part_bytes >= 4 ? 0 : 4 - r->part_bytes;
        buf_add(&r->log, data, len < keep ? len : keep);
        r->part_bytes += len;
        return r->part_bytes > 4 ? MULTIPART_SKIP : MULTIPART_OK;
    }
    buf_add(&r->log, data, len);
    r->part_bytes += len;
    return MULTIPART_OK;
}

static int rec_end(void *ctx)
{
    struct rec *r = ctx;

    buf_adds(&r->log, "{/}");
    r->ends++;
    return MULTIPART_OK;
}

static const struct multipart_cb rec_cb = {rec_begin, rec_data, rec_end};

/* Result of one run: the event log and the error ("" when none). */
struct run {
    char *log;
    size_t log_len;
    char error[320];
};

enum split { SPLIT_WHOLE, SPLIT_BYTES, SPLIT_FIXED3, SPLIT_FIXED7, SPLIT_RANDOM };

static void run_body(const char *boundary, const char *body, size_t len, enum split how,
                     unsigned seed, struct run *out)
{
    struct rec r = {BUF_INIT, 0, "", 0, 0};
    struct multipart *m;
    size_t off = 0;
    int rc = 0;

    buf_init(&r.log);
    m = multipart_new(boundary, &rec_cb, &r);
    ck_assert_ptr_nonnull(m);
    srand(seed);
    while (off < len && rc == 0) {
        size_t n = len - off;
        if (how == SPLIT_BYTES)
            n = 1;
        else if (how == SPLIT_FIXED3 && n > 3)
            n = 3;
        else if (how == SPLIT_FIXED7 && n > 7)
            n = 7;
        else if (how == SPLIT_RANDOM)
            n = 1 + (size_t)rand() % (n < 300 ? n : 300);
        rc = multipart_feed(m, body + off, n);
        off += n;
    }
    if (rc == 0)
        rc = multipart_finish(m);
    /* sticky: more input changes nothing */
    if (rc != 0) {
        ck_assert_int_eq(multipart_feed(m, "x", 1), -1);
        ck_assert_int_eq(multipart_finish(m), -1);
    }
    snprintf(out->error, sizeof(out->error), "%s", rc ? multipart_error(m) : "");
    ck_assert(rc == 0 || out->error[0] != '\0');
    multipart_free(m);
    out->log = buf_detach(&r.log, &out->log_len);
}

/* Runs body every way; checks all agree, and returns the whole-body run. */
static void run_all(const char *boundary, const char *body, size_t len, struct run *out)
{
    run_body(boundary, body, len, SPLIT_WHOLE, 0, out);
    for (int how = SPLIT_BYTES; how <= SPLIT_RANDOM; how++) {
        int rounds = how == SPLIT_RANDOM ? 8 : 1;
        for (int k = 0; k < rounds; k++) {
            struct run other;
            run_body(boundary, body, len, how, (unsigned)k + 1, &other);
            ck_assert_msg(
                other.log_len == out->log_len && memcmp(other.log, out->log, out->log_len) == 0,
                "split %d/%d log differs:\n%s\nvs whole:\n%s", how, k, other.log, out->log);
            ck_assert_str_eq(other.error, out->error);
            free(other.log);
        }
    }
}

/* ------------------------------------------------------------- the table */

#define CD "Content-Disposition: form-data; "

struct mp_case {
    const char *what;
    const char *body;
    const char *events; /* expected log */
    const char *error;  /* NULL = success, else a substring of the error */
};

static const struct mp_case cases[] = {
    {"single field", "--XyZ\r\n" CD "name=\"a\"\r\n\r\nhello\r\n--XyZ--\r\n", "{a|-|-}hello{/}",
     NULL},
    {"single file",
     "--XyZ\r\n" CD "name=\"photos\"; filename=\"a.jpg\"\r\n"
     "Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff\r\n--XyZ--",
     "{photos|a.jpg|image/jpeg}\xff\xd8\xff{/}", NULL},
    {"field then files",
     "--XyZ\r\n" CD "name=\"csrfmiddlewaretoken\"\r\n\r\ntok\r\n"
     "--XyZ\r\n" CD "name=\"photos\"; filename=\"1.png\"\r\nContent-Type: image/png\r\n\r\nP1\r\n"
     "--XyZ\r\n" CD "name=\"photos\"; filename=\"2.png\"\r\n\r\nP2\r\n--XyZ--\r\n",
     "{csrfmiddlewaretoken|-|-}tok{/}{photos|1.png|image/png}P1{/}{photos|2.png|-}P2{/}", NULL},
    {"preamble and epilogue ignored",
     "junk --XyZ junk\r\n--XyW\r\n--Xy\r\r\n--XyZ\r\n" CD "name=\"a\"\r\n\r\nv\r\n--XyZ--\r\n"
     "epilogue\r\n--XyZ\r\n" CD "name=\"b\"\r\n\r\nno\r\n",
     "{a|-|-}v{/}", NULL},
    {"preamble after CRLF", "\r\n--XyZ\r\n" CD "name=\"a\"\r\n\r\nv\r\n--XyZ--", "{a|-|-}v{/}",
     NULL},
    {"clean preamble", "preamble\r\n--XyZ\r\n" CD "name=\"a\"\r\n\r\nv\r\n--XyZ--", "{a|-|-}v{/}",
     NULL},
    {"boundary-like data",
     "--XyZ\r\n" CD "name=\"a\"\r\n\r\n--XyZ\r\n-XyZ\r\r\n--Xy\r\n--XyW\n--XyZ"
     "\r\n--\r\n\r\r\r\n--XyZ--",
     "{a|-|-}--XyZ\r\n-XyZ\r\r\n--Xy\r\n--XyW\n--XyZ\r\n--\r\n\r\r{/}", NULL},
    {"delimiter followed by garbage", "--XyZ\r\n" CD "name=\"a\"\r\n\r\nab\r\n--XyZW\r\n",
     "{a|-|-}ab", "malformed boundary line after part 1"},
    {"empty body value", "--XyZ\r\n" CD "name=\"a\"\r\n\r\n\r\n--XyZ--", "{a|-|-}{/}", NULL},
    {"body is CRLF", "--XyZ\r\n" CD "name=\"a\"\r\n\r\n\r\n\r\n--XyZ--", "{a|-|-}\r\n{/}", NULL},
    {"no file chosen",
     "--XyZ\r\n" CD "name=\"photos\"; filename=\"\"\r\n"
     "Content-Type: application/octet-stream\r\n\r\n\r\n--XyZ--\r\n",
     "{photos||application/octet-stream}{/}", NULL},
    {"whitespace after boundary",
     "--XyZ \t\r\n" CD "name=\"a\"\r\n\r\nv\r\n--XyZ  \r\n" CD "name=\"b\"\r\n\r\nw\r\n--XyZ--",
     "{a|-|-}v{/}{b|-|-}w{/}", NULL},
    {"zero parts", "--XyZ--\r\n", "", NULL},
    {"missing final boundary", "--XyZ\r\n" CD "name=\"a\"\r\n\r\nhello", "{a|-|-}hello",
     "body ended in the data of part 1"},
    {"missing final boundary, held CR", "--XyZ\r\n" CD "name=\"a\"\r\n\r\nhello\r\n--Xy",
     "{a|-|-}hello", "body ended in the data of part 1"},
    {"ends after delimiter", "--XyZ\r\n" CD "name=\"a\"\r\n\r\nhello\r\n--XyZ", "{a|-|-}hello",
     "without the closing boundary"},
    {"ends in headers", "--XyZ\r\n" CD "name=\"a\"\r\n", "", "body ended in the headers of part 1"},
    {"empty body", "", "", "the body is empty: send at least one part"},
    {"no boundary at all", "hello world", "",
     "no part starts with the boundary 'XyZ' of the Content-Type header"},
    {"another boundary in the body",
     "--Other-42\r\n" CD "name=\"a\"\r\n\r\nv\r\n--Other-42--\r\n", "",
     "the body's boundary 'Other-42' differs from the boundary 'XyZ' of the Content-Type"},
    {"another boundary, closing line only", "--Other--  \r\n", "",
     "the body's boundary 'Other' differs from the boundary 'XyZ'"},
    {"a preamble line that is no boundary", "--<not one>\r\n", "",
     "no part starts with the boundary 'XyZ'"},
    {"bare LF after boundary", "--XyZ\n" CD "name=\"a\"\n\nv\n--XyZ--", "",
     "malformed boundary line"},
    {"bare LF in headers", "--XyZ\r\n" CD "name=\"a\"\n\nv\r\n--XyZ--", "",
     "body ended in the headers"},
    {"quoted name escapes",
     "--XyZ\r\n" CD "name=\"a\\\"b\\\\c\"; filename=\"C:\\dir\\x.jpg\"\r\n"
     "\r\nv\r\n--XyZ--",
     "{a\"b\\c|C:\\dir\\x.jpg|-}v{/}", NULL},
    {"filename with %22 quotes and semicolons",
     "--XyZ\r\n" CD "name=\"p\"; filename=\"say %22hi%22; a=b.jpg\"\r\n\r\nv\r\n--XyZ--",
     "{p|say \"hi\"; a=b.jpg|-}v{/}", NULL},
    {"filename unicode",
     "--XyZ\r\n" CD "name=\"p\"; filename=\"f\xc3\xbcr \xe2\x82\xac.jpg\"\r\n"
     "\r\nv\r\n--XyZ--",
     "{p|f\xc3\xbcr \xe2\x82\xac.jpg|-}v{/}", NULL},
    {"filename control chars passed on",
     "--XyZ\r\n" CD "name=\"p\"; filename=\"a\tb\x01.jpg\"\r\n"
     "\r\nv\r\n--XyZ--",
     "{p|a\tb\x01.jpg|-}v{/}", NULL},
    {"filename* utf-8 wins",
     "--XyZ\r\n" CD "name=\"p\"; filename=\"x.jpg\"; "
     "filename*=UTF-8''%E2%82%AC%20rate.jpg\r\n\r\nv\r\n--XyZ--",
     "{p|\xe2\x82\xac rate.jpg|-}v{/}", NULL},
    {"filename* latin1",
     "--XyZ\r\n" CD "name=\"p\"; filename*=iso-8859-1'de'f%FCr.jpg\r\n"
     "\r\nv\r\n--XyZ--",
     "{p|f\xc3\xbcr.jpg|-}v{/}", NULL},
    {"bad filename* ignored",
     "--XyZ\r\n" CD "name=\"p\"; filename=\"x.jpg\"; "
     "filename*=UTF-8''%00%zz\r\n\r\nv\r\n--XyZ--",
     "{p|x.jpg|-}v{/}", NULL},
    {"unknown charset ignored",
     "--XyZ\r\n" CD "name=\"p\"; filename*=koi8-r''x.jpg\r\n"
     "\r\nv\r\n--XyZ--",
     "{p|-|-}v{/}", NULL},
    {"headers case-insensitive, token values",
     "--XyZ\r\nCONTENT-DISPOSITION: FORM-DATA; NAME=a; FILENAME=b.jpg\r\n"
     "content-TYPE:  image/webp  \r\nX-Other: 1\r\n\r\nv\r\n--XyZ--",
     "{a|b.jpg|image/webp}v{/}", NULL},
    {"folded header",
     "--XyZ\r\nContent-Disposition: form-data;\r\n name=\"a\";\r\n\tfilename=\"f\""
     "\r\n\r\nv\r\n--XyZ--",
     "{a|f|-}v{/}", NULL},
    {"missing content-disposition", "--XyZ\r\nContent-Type: text/plain\r\n\r\nv\r\n--XyZ--", "",
     "part without content-disposition"},
    {"no headers at all", "--XyZ\r\n\r\nv\r\n--XyZ--", "", "part without content-disposition"},
    {"missing name", "--XyZ\r\n" CD "filename=\"a\"\r\n\r\nv\r\n--XyZ--", "",
     "part without a field name"},
    {"not form-data", "--XyZ\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nv\r\n--XyZ--",
     "", "part is not form-data"},
    {"unterminated quote", "--XyZ\r\n" CD "name=\"a\r\n\r\nv\r\n--XyZ--", "",
     "malformed content-disposition"},
    {"header without colon", "--XyZ\r\n" CD "name=a\r\nbogus\r\n\r\nv\r\n--XyZ--", "",
     "malformed part header"},
    {"two dispositions", "--XyZ\r\n" CD "name=a\r\n" CD "name=b\r\n\r\nv\r\n--XyZ--", "",
     "two content-disposition"},
    {"skipped part then normal parts",
     "--XyZ\r\n" CD "name=\"skipbegin\"\r\n\r\nlots of data\r\n"
     "--XyZ\r\n" CD "name=\"cut\"; filename=\"big.jpg\"\r\n\r\n0123456789\r\n--XyZ\r\n" CD
     "name=\"after\"\r\n\r\nok\r\n--XyZ--",
     "{skipbegin|-|-}{/}{cut|big.jpg|-}0123{/}{after|-|-}ok{/}", NULL},
    {"near-miss delimiters are data",
     "--XyZ\r\n" CD "name=\"a\"\r\n\r\n\r\r\n-\r\n--X\r\n--XyQ\rZ\r\n--Xy\r\r\n--XyZ--",
     "{a|-|-}\r\r\n-\r\n--X\r\n--XyQ\rZ\r\n--Xy\r{/}", NULL},
    {"abort",
     "--XyZ\r\n" CD "name=\"a\"\r\n\r\nv\r\n--XyZ\r\n" CD "name=\"abort\"\r\n\r\nv\r\n--XyZ--",
     "{a|-|-}v{/}{abort|-|-}", "receiver stopped the upload at the start of part 2"},
};

START_TEST(test_table)
{
    const struct mp_case *c = &cases[_i];
    struct run r;

    run_all("XyZ", c->body, strlen(c->body), &r);
    ck_assert_msg(r.log_len == strlen(c->events) && memcmp(r.log, c->events, r.log_len) == 0,
                  "%s: events\n%s\nexpected\n%s", c->what, r.log, c->events);
    if (!c->error)
        ck_assert_msg(r.error[0] == '\0', "%s: unexpected error '%s'", c->what, r.error);
    else
        ck_assert_msg(strstr(r.error, c->error), "%s: error '%s', expected '%s'", c->what, r.error,
                      c->error);
    free(r.log);
}
END_TEST

/* ------------------------------------------------------ generated bodies */

START_TEST(test_nul_in_header)
{
    static const char body[] = "--XyZ\r\n" CD "name=\"a\x00\"\r\n\r\nv\r\n--XyZ--";
    struct run r;

    run_all("XyZ", body, sizeof(body) - 1, &r);
    ck_assert_str_eq(r.error, "NUL byte in part headers");
    free(r.log);
}
END_TEST

START_TEST(test_binary_data)
{
    struct buf b = BUF_INIT, want = BUF_INIT;
    struct run r;

    buf_init(&b);
    buf_init(&want);
    buf_adds(&b, "--XyZ\r\n" CD "name=\"f\"; filename=\"bin\"\r\n\r\n");
    buf_adds(&want, "{f|bin|-}");
    for (int i = 0; i < 70000; i++) {
        char c = (char)((i * 7919) % 256);
        if (i % 97 == 0)
            c = '\r';
        buf_addc(&b, c);
        buf_addc(&want, c);
    }
    buf_adds(&b, "\r\n--XyZ--\r\n");
    buf_adds(&want, "{/}");
    run_all("XyZ", b.data, b.len, &r);
    ck_assert_str_eq(r.error, "");
    ck_assert(r.log_len == want.len && memcmp(r.log, want.data, want.len) == 0);
    free(r.log);
    buf_release(&b);
    buf_release(&want);
}
END_TEST

/* A chunk's data goes to the consumer in one piece when no delimiter starts in
 * it: CR bytes that do not begin "\r\n--B" must not split it (JPEG data has a
 * CR every ~256 bytes; a callback for each cost the server ~2 % of its CPU). */
START_TEST(test_data_not_split_at_cr)
{
    struct buf b = BUF_INIT;
    struct rec r = {BUF_INIT, 0, "", 0, 0};
    struct multipart *m;
    size_t head;

    buf_init(&b);
    buf_init(&r.log);
    buf_adds(&b, "--XyZ\r\n" CD "name=\"f\"; filename=\"bin\"\r\n\r\n");
    head = b.len;
    for (int i = 0; i < 70000; i++)
        buf_addc(&b, i % 97 == 0 ? '\r' : (char)('a' + i % 26));
    m = multipart_new("XyZ", &rec_cb, &r);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(multipart_feed(m, b.data, head), 0);
    ck_assert_int_eq(multipart_feed(m, b.data + head, b.len - head), 0);
    ck_assert_uint_eq(r.data_calls, 1);
    /* A CR at the very end may start the delimiter: it is held back, then
     * handed over with what follows when that turns out to be data. */
    ck_assert_int_eq(multipart_feed(m, "zz\r", 3), 0);
    ck_assert_uint_eq(r.data_calls, 2);
    ck_assert_int_eq(multipart_feed(m, "\nyy\r\n--XyZ--\r\n", 15), 0);
    ck_assert_int_eq(multipart_finish(m), 0);
    ck_assert_uint_le(r.data_calls, 4);
    ck_assert_int_eq(r.ends, 1);
    multipart_free(m);
    buf_release(&r.log);
    buf_release(&b);
}
END_TEST

static void many_parts(size_t n, struct buf *b, struct buf *want)
{
    buf_init(b);
    buf_init(want);
    buf_adds(b, "--b");
    for (size_t i = 0; i < n; i++) {
        buf_addf(b, "\r\n" CD "name=\"f%zu\"\r\n\r\n%zu\r\n--b", i, i);
        buf_addf(want, "{f%zu|-|-}%zu{/}", i, i);
    }
    buf_adds(b, "--\r\n");
}

START_TEST(test_parts_limit)
{
    struct buf b, want;
    struct run r;

    many_parts(LIMIT_PARTS, &b, &want);
    run_body("b", b.data, b.len, SPLIT_WHOLE, 0, &r);
    ck_assert_str_eq(r.error, "");
    ck_assert(r.log_len == want.len && memcmp(r.log, want.data, want.len) == 0);
    free(r.log);
    run_body("b", b.data, b.len, SPLIT_RANDOM, 3, &r);
    ck_assert_str_eq(r.error, "");
    free(r.log);
    buf_release(&b);
    buf_release(&want);

    many_parts(LIMIT_PARTS + 1, &b, &want);
    run_body("b", b.data, b.len, SPLIT_WHOLE, 0, &r);
    ck_assert_str_eq(r.error, "more than 2000 parts");
    free(r.log);
    buf_release(&b);
    buf_release(&want);
}
END_TEST

/* A header block of exactly `total` bytes (including the final CRLFCRLF). */
static void header_body(size_t total, struct buf *b)
{
    static const char head[] = CD "name=\"a\"\r\nX-Pad: ";
    size_t pad = total - (sizeof(head) - 1) - 4;

    buf_init(b);
    buf_adds(b, "--XyZ\r\n");
    buf_adds(b, head);
    for (size_t i = 0; i < pad; i++)
        buf_addc(b, 'p');
    buf_adds(b, "\r\n\r\nv\r\n--XyZ--");
}

START_TEST(test_header_limit)
{
    struct buf b;
    struct run r;

    header_body(LIMIT_PART_HEADER_BYTES, &b);
    run_all("XyZ", b.data, b.len, &r);
    ck_assert_str_eq(r.error, "");
    ck_assert_str_eq(r.log, "{a|-|-}v{/}");
    free(r.log);
    buf_release(&b);

    header_body(LIMIT_PART_HEADER_BYTES + 1, &b);
    run_all("XyZ", b.data, b.len, &r);
    ck_assert_str_eq(r.error, "headers of part 1 are longer than 8192 bytes");
    free(r.log);
    buf_release(&b);
}
END_TEST

START_TEST(test_long_filename_cut)
{
    struct buf b, want;
    struct run r;

    /* "ab" + 200 2-byte characters: the cut at 255 bytes would split one */
    buf_init(&b);
    buf_init(&want);
    buf_adds(&b, "--XyZ\r\n" CD "name=\"p\"; filename=\"ab");
    buf_adds(&want, "{p|ab");
    for (int i = 0; i < 200; i++) {
        buf_adds(&b, "\xc3\xa9");
        if (i < 126)
            buf_adds(&want, "\xc3\xa9");
    }
    buf_adds(&b, ".jpg\"\r\n\r\nv\r\n--XyZ--");
    buf_adds(&want, "|-}v{/}");
    run_all("XyZ", b.data, b.len, &r);
    ck_assert_str_eq(r.error, "");
    ck_assert_str_eq(r.log, want.data);
    ck_assert_uint_eq(strlen(r.log) - strlen("{p||-}v{/}"), LIMIT_FILENAME_BYTES - 1);
    free(r.log);
    buf_release(&b);
    buf_release(&want);

    /* ASCII: exactly the limit stays, the limit plus one is cut */
    for (int extra = 0; extra <= 1; extra++) {
        buf_init(&b);
        buf_adds(&b, "--XyZ\r\n" CD "name=\"p\"; filename=\"");
        for (int i = 0; i < LIMIT_FILENAME_BYTES + extra; i++)
            buf_addc(&b, 'n');
        buf_adds(&b, "\"\r\n\r\n\r\n--XyZ--");
        run_all("XyZ", b.data, b.len, &r);
        ck_assert_uint_eq(strlen(r.log) - strlen("{p||-}{/}"), LIMIT_FILENAME_BYTES);
        free(r.log);
        buf_release(&b);
    }
}
END_TEST

START_TEST(test_name_limit)
{
    for (int extra = 0; extra <= 1; extra++) {
        struct buf b;
        struct run r;
        buf_init(&b);
        buf_adds(&b, "--XyZ\r\n" CD "name=\"");
        for (int i = 0; i < MULTIPART_NAME_MAX + extra; i++)
            buf_addc(&b, 'n');
        buf_adds(&b, "\"\r\n\r\n\r\n--XyZ--");
        run_all("XyZ", b.data, b.len, &r);
        if (extra)
            ck_assert_str_eq(r.error, "part name is longer than 255 bytes");
        else
            ck_assert_str_eq(r.error, "");
        free(r.log);
        buf_release(&b);
    }
}
END_TEST

/* Long boundary (70), as browsers and curl generate them; boundary with '-'. */
START_TEST(test_long_boundary)
{
    char bd[MULTIPART_BOUNDARY_MAX + 1];
    struct buf b, want;
    struct run r;

    memset(bd, '-', sizeof(bd) - 1);
    bd[sizeof(bd) - 1] = '\0';
    bd[69] = 'x';
    buf_init(&b);
    buf_addf(&b, "--%s\r\n" CD "name=\"a\"\r\n\r\n--%.69s\r\n--%s--\r\n", bd, bd, bd);
    run_all(bd, b.data, b.len, &r);
    ck_assert_str_eq(r.error, "");
    buf_init(&want);
    buf_adds(&want, "{a|-|-}");
    for (int i = 0; i < 71; i++)
        buf_addc(&want, '-');
    buf_adds(&want, "{/}");
    ck_assert_str_eq(r.log, want.data);
    free(r.log);
    buf_release(&b);
    buf_release(&want);
}
END_TEST

START_TEST(test_new_rejects)
{
    char bd[MULTIPART_BOUNDARY_MAX + 2];

    ck_assert_ptr_null(multipart_new(NULL, &rec_cb, NULL));
    ck_assert_ptr_null(multipart_new("", &rec_cb, NULL));
    ck_assert_ptr_null(multipart_new("a\rb", &rec_cb, NULL));
    ck_assert_ptr_null(multipart_new("a\nb", &rec_cb, NULL));
    memset(bd, 'b', sizeof(bd) - 1);
    bd[sizeof(bd) - 1] = '\0';
    ck_assert_ptr_null(multipart_new(bd, &rec_cb, NULL));
    bd[MULTIPART_BOUNDARY_MAX] = '\0';
    multipart_free(multipart_new(bd, NULL, NULL));
    multipart_free(NULL);
}
END_TEST

/* No callbacks at all: parsing still works. */
START_TEST(test_null_callbacks)
{
    static const char body[] = "--b\r\n" CD "name=a\r\n\r\nv\r\n--b--";
    struct multipart *m = multipart_new("b", NULL, NULL);

    ck_assert_int_eq(multipart_feed(m, body, sizeof(body) - 1), 0);
    ck_assert_int_eq(multipart_finish(m), 0);
    ck_assert_ptr_null(multipart_error(m));
    ck_assert_uint_eq(multipart_parts(m), 1);
    multipart_free(m);
}
END_TEST

/* ------------------------------------------------------------ boundary */

struct ct_case {
    const char *ct;
    const char *boundary; /* NULL = rejected */
};

static const struct ct_case ct_cases[] = {
    {"multipart/form-data; boundary=abc", "abc"},
    {"Multipart/Form-Data; BOUNDARY=\"a b:c\"", "a b:c"},
    {"multipart/form-data; charset=utf-8; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
     "----WebKitFormBoundary7MA4YWxkTrZu0gW"},
    {"multipart/form-data;boundary=abc;foo=bar", "abc"},
    {"  multipart/form-data ; boundary = \"q\" ", "q"},
    {"multipart/form-data; boundary=\"'()+_,-./:=?\"", "'()+_,-./:=?"},
    {"multipart/form-data; boundary=x; boundary=y", "x"},
    {"multipart/form-data; boundary="
     "0123456789012345678901234567890123456789012345678901234567890123456789",
     "0123456789012345678901234567890123456789012345678901234567890123456789"},
    {"multipart/form-data; boundary="
     "01234567890123456789012345678901234567890123456789012345678901234567890",
     NULL},
    {"multipart/mixed; boundary=abc", NULL},
    {"multipart/form-dataX; boundary=abc", NULL},
    {"multipart/form-data", NULL},
    {"multipart/form-data;", NULL},
    {"multipart/form-data; boundary=", NULL},
    {"multipart/form-data; boundary=\"\"", NULL},
    {"multipart/form-data; boundary=\"abc", NULL},
    {"multipart/form-data; boundary=\"abc \"", NULL},
    {"multipart/form-data; boundary=ab\x01"
     "c",
     NULL},
    {"multipart/form-data; boundary=a\"b", NULL},
    {"multipart/form-data; boundary=abc garbage", NULL},
    {"application/x-www-form-urlencoded", NULL},
    {"", NULL},
};

START_TEST(test_boundary_from_ct)
{
    const struct ct_case *c = &ct_cases[_i];
    char out[MULTIPART_BOUNDARY_MAX + 1];
    int rc = multipart_boundary_from_content_type(c->ct, out, sizeof(out));

    if (c->boundary) {
        ck_assert_msg(rc == 0, "'%s' rejected", c->ct);
        ck_assert_str_eq(out, c->boundary);
    } else {
        ck_assert_msg(rc == -1, "'%s' accepted as '%s'", c->ct, out);
        ck_assert_str_eq(out, "");
    }
}
END_TEST

START_TEST(test_boundary_small_out)
{
    char out[3];

    ck_assert_int_eq(multipart_boundary_from_content_type(NULL, out, sizeof(out)), -1);
    ck_assert_int_eq(
        multipart_boundary_from_content_type("multipart/form-data; boundary=ab", out, sizeof(out)),
        0);
    ck_assert_int_eq(
        multipart_boundary_from_content_type("multipart/form-data; boundary=abc", out, sizeof(out)),
        -1);
}
END_TEST

static Suite *multipart_suite(void)
{
    Suite *s = suite_create("multipart");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, test_nul_in_header);
    tcase_add_test(tc, test_binary_data);
    tcase_add_test(tc, test_data_not_split_at_cr);
    tcase_add_test(tc, test_parts_limit);
    tcase_add_test(tc, test_header_limit);
    tcase_add_test(tc, test_long_filename_cut);
    tcase_add_test(tc, test_name_limit);
    tcase_add_test(tc, test_long_boundary);
    tcase_add_test(tc, test_new_rejects);
    tcase_add_test(tc, test_null_callbacks);
    tcase_add_loop_test(tc, test_boundary_from_ct, 0,
                        (int)(sizeof(ct_cases) / sizeof(ct_cases[0])));
    tcase_add_test(tc, test_boundary_small_out);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(multipart_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
