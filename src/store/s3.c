/*
 * s3: the S3 client of s3.h over libcurl. One request is one struct req run by
 * perform() with retries; the operations only fill a req and read its results.
 * XML answers (bounded by LIMIT_S3_RESPONSE_BYTES) are read with libxml2 (s3xml.h).
 *
 * DESIGN (threads): any thread may call any function on a shared struct s3.
 *   - cfg is immutable after s3_open.
 *   - idle[] holds curl easy handles not in use (each keeps its keep-alive connection
 *     cache); guarded by mu. A request takes one (or makes one) and gives it back, so no
 *     handle is ever used by two threads. No other lock; nothing else is called under mu.
 *   - curl_global_init runs once (pthread_once) before the first handle exists.
 */
#include "store/s3.h"
#include "store/s3xml.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/limits.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/sha256.h"
#include "base/str.h"
#include "base/timeutil.h"
#include "base/xalloc.h"

/* Idle handles kept for reuse: more threads than this at once just make and drop
 * handles (and their connections) beyond it. */
#define IDLE_MAX 32

struct s3 {
    struct s3_config cfg;        /* immutable after s3_open */
    pthread_mutex_t mu;
    CURL *idle[IDLE_MAX];        /* guarded by mu */
    size_t nidle;                /* guarded by mu */
};

/* One request. The caller sets the inputs; perform() fills the outputs. */
struct req {
    const char *op;              /* for messages: "put", "get", ... */
    const char *method;          /* GET PUT POST DELETE HEAD */
    const char *key;             /* relative object key, NULL for the bucket */
    const char *query;           /* sorted, encoded "k=v&k=v" or "" */
    const void *body;            /* request body in memory (PUT/POST), may be NULL */
    size_t body_len;
    bool range;                  /* GET bytes range_off .. range_off+range_len-1 */
    uint64_t range_off, range_len;
    const char *if_match;        /* ETag the object must still have, or NULL */
    bool ok_404, ok_416;         /* statuses the caller handles itself */
    s3_write_fn write;           /* GET: a 2xx body goes here (else into resp) */
    void *write_ctx;
    /* outputs */
    long status;
    struct buf resp;             /* a body not given to write, bounded */
    uint64_t delivered;          /* bytes given to write, over all attempts */
    char first_etag[S3_ETAG_MAX]; /* ETag of the first bytes given to write */
    bool write_failed, resp_too_big;
    char etag[S3_ETAG_MAX];
    uint64_t size;               /* Content-Length, or the total of a Content-Range */
    int64_t mtime_ms;
    /* per attempt */
    size_t body_pos;
    CURL *h;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* --- small text helpers --------------------------------------------------------- */

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '~';
}

/* Percent-encodes s onto b the way SigV4 wants (RFC 3986 unreserved kept; '/' kept
 * when keep_slash, for paths). */
static void add_encoded(struct buf *b, const char *s, bool keep_slash)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (unreserved(*p) || (keep_slash && *p == '/'))
            buf_addc(b, (char)*p);
        else
            buf_addf(b, "%%%02X", *p);
    }
}

/* Decodes %XX (and only that: '+' stays '+') from s[0..n) into out; -1 when bad. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];

        if (c == '%') {
            c = i + 2 < n ? str_unhex2(s + i + 1) : -1;
            if (c <= 0)
                return -1;
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* The full object key: PREFIX/key, or key when there is no prefix. */
static void full_key(const struct s3 *s3, const char *key, struct buf *out)
{
    if (s3->cfg.prefix[0]) {
        buf_adds(out, s3->cfg.prefix);
        buf_addc(out, '/');
    }
    buf_adds(out, key);
}

/* ISO 8601 "2026-12-01T13:20:00.123Z" to ms since the epoch; 0 when unparsable. */
static int64_t parse_iso8601(const char *s)
{
    struct tm tm = {0};
    int ms = 0;
    char frac[16] = "";
    int n = 0;

    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
        return 0;
    if (s[n] == '.' && sscanf(s + n + 1, "%15[0-9]", frac) == 1) {
        for (int i = 0; i < 3; i++)
            ms = ms * 10 + (frac[i] && i < (int)strlen(frac) ? frac[i] - '0' : 0);
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* The text of the first <tag> of an answer's body into out; false when the body is not
 * XML or has no such element. For one element; a caller reading several parses once. */
static bool xml_find(const struct buf *body, const char *tag, struct buf *out)
{
    struct s3xml *doc = s3xml_parse(body->data, body->len);
    bool found = s3xml_text(doc, NULL, tag, out);

    s3xml_free(doc);
    return found;
}

/* --- curl callbacks ----------------------------------------------------------------- */

static size_t on_read(char *dst, size_t size, size_t nmemb, void *ud)
{
    struct req *r = ud;
    size_t want = size * nmemb, left = r->body_len - r->body_pos;
    size_t n = want < left ? want : left;

    if (n)
        memcpy(dst, (const char *)r->body + r->body_pos, n);
    r->body_pos += n;
    return n;
}

static int on_seek(void *ud, curl_off_t off, int origin)
{
    struct req *r = ud;

    if (origin != SEEK_SET || off < 0 || (uint64_t)off > r->body_len)
        return CURL_SEEKFUNC_CANTSEEK;
    r->body_pos = (size_t)off;
    return CURL_SEEKFUNC_OK;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    struct req *r = ud;
    size_t n = size * nmemb;
    long code = 0;

    curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &code);
    if (r->write && code >= 200 && code < 300) {
        struct curl_header *hh;

        if (r->delivered == 0 &&
            curl_easy_header(r->h, "ETag", 0, CURLH_HEADER, -1, &hh) == CURLHE_OK)
            snprintf(r->first_etag, sizeof(r->first_etag), "%s", hh->value);
        if (r->write(r->write_ctx, p, n) != 0) {
            r->write_failed = true;
            return CURL_WRITEFUNC_ERROR;
        }
        r->delivered += n;
        return n;
    }
    if (r->resp.len + n > LIMIT_S3_RESPONSE_BYTES) {
        r->resp_too_big = true;
        return CURL_WRITEFUNC_ERROR;
    }
    buf_add(&r->resp, p, n);
    return n;
}

/* --- handles ------------------------------------------------------------------------ */

static CURL *take_handle(struct s3 *s3)
{
    CURL *h = NULL;

    pthread_mutex_lock(&s3->mu);
    if (s3->nidle > 0)
        h = s3->idle[--s3->nidle];
    pthread_mutex_unlock(&s3->mu);
    if (h) {
        curl_easy_reset(h);  /* keeps the connection cache */
        return h;
    }
    return curl_easy_init();
}

static void give_handle(struct s3 *s3, CURL *h)
{
    bool kept = false;

    if (!h)
        return;
    pthread_mutex_lock(&s3->mu);
    if (s3->nidle < IDLE_MAX) {
        s3->idle[s3->nidle++] = h;
        kept = true;
    }
    pthread_mutex_unlock(&s3->mu);
    if (!kept)
        curl_easy_cleanup(h);
}

/* --- one attempt ---------------------------------------------------------------------- */

static void build_url(const struct s3 *s3, const struct req *r, struct buf *url)
{
    buf_adds(url, s3->cfg.endpoint);
    buf_addc(url, '/');
    buf_adds(url, s3->cfg.bucket);
    if (r->key) {
        struct buf k = BUF_INIT;

        buf_init(&k);
        full_key(s3, r->key, &k);
        buf_addc(url, '/');
        add_encoded(url, k.data, true);
        buf_release(&k);
    }
    if (r->query && r->query[0]) {
        buf_addc(url, '?');
        buf_adds(url, r->query);
    }
}

/* Request headers: the payload hash (curl 7.88 signs it but does not add it), the range
 * and If-Match. Expect: 100-continue stays (curl 7.88 sends it with every PUT; S3 and
 * RGW answer it at once): 7.88 signs every header it is given, the empty "Expect:" that
 * would switch it off included, and servers then answer SignatureDoesNotMatch. */
static struct curl_slist *build_headers(const struct req *r)
{
    struct curl_slist *hs = NULL;
    char line[160];
    char hex[SHA256_HEX_LEN + 1];

    if (r->body) {
        sha256_hex(r->body, r->body_len, hex);
        snprintf(line, sizeof(line), "x-amz-content-sha256: %s", hex);
    } else {
        sha256_hex("", 0, hex);
        snprintf(line, sizeof(line), "x-amz-content-sha256: %s", hex);
    }
    hs = curl_slist_append(hs, line);
    if (r->range) {
        uint64_t from = r->range_off + r->delivered;

        if (r->range_len == UINT64_MAX)
            snprintf(line, sizeof(line), "Range: bytes=%" PRIu64 "-", from);
        else
            snprintf(line, sizeof(line), "Range: bytes=%" PRIu64 "-%" PRIu64, from,
                     r->range_off + r->range_len - 1);
        hs = curl_slist_append(hs, line);
    }
    if (r->if_match) {
        snprintf(line, sizeof(line), "If-Match: %s", r->if_match);
        hs = curl_slist_append(hs, line);
    }
    return hs;
}

static void set_method(CURL *h, struct req *r)
{
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, r);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, r);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
    } else if (strcmp(r->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body ? (const char *)r->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    } else if (strcmp(r->method, "DELETE") == 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
    }
}

static void set_options(const struct s3 *s3, CURL *h, struct req *r, const char *url,
                        struct curl_slist *hs, char *sigv4)
{
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4);
    curl_easy_setopt(h, CURLOPT_USERNAME, s3->cfg.access_key);
    curl_easy_setopt(h, CURLOPT_PASSWORD, s3->cfg.secret_key);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)s3->cfg.connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)s3->cfg.stall_seconds);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    /* curl 7.88 sends Expect: 100-continue with every PUT; a proxy that never answers it
     * would cost curl's default second per request. */
    curl_easy_setopt(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 200L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    set_method(h, r);
}

/* Size, ETag and Last-Modified of the answer into r. */
static void read_headers(struct req *r)
{
    struct curl_header *hh;
    curl_off_t cl = -1;

    r->etag[0] = '\0';
    if (curl_easy_header(r->h, "ETag", 0, CURLH_HEADER, -1, &hh) == CURLHE_OK)
        snprintf(r->etag, sizeof(r->etag), "%s", hh->value);
    if (curl_easy_header(r->h, "Last-Modified", 0, CURLH_HEADER, -1, &hh) == CURLHE_OK) {
        time_t t = curl_getdate(hh->value, NULL);

        r->mtime_ms = t > 0 ? (int64_t)t * 1000 : 0;
    }
    if (curl_easy_header(r->h, "Content-Range", 0, CURLH_HEADER, -1, &hh) == CURLHE_OK) {
        const char *slash = strrchr(hh->value, '/');
        uint64_t total;

        if (slash && str_to_uint64(slash + 1, &total) == 0) {
            r->size = total;
            return;
        }
    }
    if (curl_easy_getinfo(r->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK && cl >= 0)
        r->size = (uint64_t)cl;
}

/* One attempt; returns curl's result (r->status has the HTTP status when it is OK). */
static CURLcode attempt(struct s3 *s3, struct req *r)
{
    struct buf url = BUF_INIT;
    struct curl_slist *hs;
    char sigv4[S3_REGION_MAX + 16];
    CURLcode rc;

    if (r->delivered > 0) {
        /* A retry after part of the body arrived: the rest, of the same object only
         * (412 PreconditionFailed, not retried, when it changed meanwhile). */
        r->range = true;
        r->if_match = r->first_etag[0] ? r->first_etag : NULL;
    }
    buf_init(&url);
    build_url(s3, r, &url);
    hs = build_headers(r);
    snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:s3", s3->cfg.region);
    r->body_pos = 0;
    r->status = 0;
    buf_reset(&r->resp);
    r->h = take_handle(s3);
    if (!r->h) {
        curl_slist_free_all(hs);
        buf_release(&url);
        return CURLE_OUT_OF_MEMORY;
    }
    set_options(s3, r->h, r, url.data, hs, sigv4);
    rc = curl_easy_perform(r->h);
    curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->status);
    if (rc == CURLE_OK)
        read_headers(r);
    give_handle(s3, r->h);
    r->h = NULL;
    curl_slist_free_all(hs);
    buf_release(&url);
    return rc;
}

/* --- retries and errors ----------------------------------------------------------- */

static bool retryable_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return true;
    default:
        return false;
    }
}

/* A 200 that carries <Error> (CompleteMultipartUpload may) is a failure too. */
static bool http_failed(const struct req *r)
{
    if (r->status >= 200 && r->status < 300)
        return r->resp.len > 0 && strstr(r->resp.data, "<Error>") != NULL;
    return true;
}

static bool retryable_http(const struct req *r)
{
    return r->status >= 500 || r->status == 429 ||
           (r->status == 200 && http_failed(r));
}

/* Wait before retry n (0-based): drawn from [d/2, d], d = min(max, base << n). */
static void backoff(const struct s3 *s3, int n, unsigned *seed)
{
    int64_t d = s3->cfg.backoff_ms;

    for (int i = 0; i < n && d < s3->cfg.backoff_max_ms; i++)
        d *= 2;
    if (d > s3->cfg.backoff_max_ms)
        d = s3->cfg.backoff_max_ms;
    time_sleep_ms(d / 2 + (d > 1 ? rand_r(seed) % (d / 2 + 1) : 0));
}

/* "s3://bucket/prefix/key" of r into out, for messages. */
static const char *subject(const struct s3 *s3, const struct req *r, char *out, size_t n)
{
    snprintf(out, n, "s3://%s/%s%s%s", s3->cfg.bucket, s3->cfg.prefix,
             s3->cfg.prefix[0] && r->key ? "/" : "", r->key ? r->key : "");
    return out;
}

/* err for an HTTP failure: status, the S3 Code and Message from the body. */
static int http_error(const struct s3 *s3, const struct req *r, struct err *err)
{
    struct buf code = BUF_INIT, msg = BUF_INIT;
    enum err_class cls = retryable_http(r) ? ERR_TRANSIENT : ERR_PERMANENT;
    char what[S3_KEY_MAX + S3_BUCKET_MAX + 8];
    struct s3xml *doc = s3xml_parse(r->resp.data, r->resp.len);

    buf_init(&code);
    buf_init(&msg);
    if (!s3xml_text(doc, NULL, "Code", &code)) {
        buf_adds(&code, r->status == 404 ? "NotFound" : r->status == 403 ? "Forbidden"
                                                                           : "no S3 error code");
    }
    s3xml_text(doc, NULL, "Message", &msg);
    s3xml_free(doc);
    err_set(err, cls, "store", "s3 %s '%s': %ld %s%s%.120s", r->op,
            subject(s3, r, what, sizeof(what)), r->status, code.data, msg.len ? ": " : "",
            msg.data);
    buf_release(&code);
    buf_release(&msg);
    return -1;
}

static int curl_error(const struct s3 *s3, const struct req *r, CURLcode rc, int tries,
                      struct err *err)
{
    char what[S3_KEY_MAX + S3_BUCKET_MAX + 8];

    subject(s3, r, what, sizeof(what));
    if (r->write_failed)
        return err_set(err, ERR_TRANSIENT, "store", "s3 %s '%s': the receiver stopped", r->op,
                       what);
    if (r->resp_too_big)
        return err_set(err, ERR_PERMANENT, "store",
                       "s3 %s '%s': answer over %d bytes, not an S3 server?", r->op, what,
                       LIMIT_S3_RESPONSE_BYTES);
    return err_set(err, retryable_curl(rc) ? ERR_TRANSIENT : ERR_PERMANENT, "store",
                   "s3 %s '%s' at %s: %s (%d %s)", r->op, what, s3->cfg.endpoint,
                   curl_easy_strerror(rc), tries, tries == 1 ? "try" : "tries");
}

/* The metrics operation of r->op (the names req_init gets). */
static enum metrics_os_op metrics_op(const char *op)
{
    if (!strcmp(op, "get"))
        return METRICS_OS_GET;
    if (!strcmp(op, "put"))
        return METRICS_OS_PUT;
    if (!strcmp(op, "head"))
        return METRICS_OS_HEAD;
    if (!strcmp(op, "delete"))
        return METRICS_OS_DELETE;
    if (!strcmp(op, "list"))
        return METRICS_OS_LIST;
    return METRICS_OS_MULTIPART;
}

/* One attempt, counted for /metrics: failed unless it got the answer it asked for (a
 * 404 or 416 the caller expects is an answer). */
static CURLcode counted_attempt(struct s3 *s3, struct req *r)
{
    int64_t t0 = time_mono_ms();
    CURLcode rc = attempt(s3, r);
    bool expected = (r->ok_404 && r->status == 404) || (r->ok_416 && r->status == 416);

    metrics_object_store(metrics_op(r->op), rc != CURLE_OK || (http_failed(r) && !expected),
                         (double)(time_mono_ms() - t0) / 1000.0);
    return rc;
}

/* Runs r with retries. 0 when the server answered 2xx (or an expected status: the
 * caller checks r->status for 404/416), -1 + err otherwise. */
static int perform(struct s3 *s3, struct req *r, struct err *err)
{
    unsigned seed = (unsigned)time_mono_ms() ^ (unsigned)(uintptr_t)r;
    int64_t began = time_mono_ms();
    CURLcode rc = CURLE_OK;
    int n;

    for (n = 0; n <= s3->cfg.retries; n++) {
        if (n > 0)
            backoff(s3, n - 1, &seed);
        rc = counted_attempt(s3, r);
        if (rc == CURLE_OK && !retryable_http(r))
            break;
        if (rc != CURLE_OK && (!retryable_curl(rc) || r->write_failed || r->resp_too_big))
            break;
        log_debug("store", "s3.retry", "op=%s status=%ld curl=%d try=%d", r->op, r->status,
                  (int)rc, n + 1);
    }
    log_debug("store", "s3.request", "op=%s method=%s status=%ld tries=%d ms=%" PRId64, r->op,
              r->method, r->status, n > s3->cfg.retries ? n : n + 1, time_mono_ms() - began);
    if (rc != CURLE_OK)
        return curl_error(s3, r, rc, n > s3->cfg.retries ? n : n + 1, err);
    if (http_failed(r) && !(r->ok_404 && r->status == 404) && !(r->ok_416 && r->status == 416))
        return http_error(s3, r, err);
    return 0;
}

static void req_init(struct req *r, const char *op, const char *method, const char *key)
{
    memset(r, 0, sizeof(*r));
    r->op = op;
    r->method = method;
    r->key = key;
    r->query = "";
    buf_init(&r->resp);
}

static void req_release(struct req *r)
{
    buf_release(&r->resp);
}

/* --- configuration -------------------------------------------------------------------- */

static int copy_field(char *dst, size_t cap, const char *s, size_t n, const char *what,
                      struct err *err)
{
    if (n >= cap)
        return err_set(err, ERR_PERMANENT, "config", "s3 %s is longer than %zu bytes", what,
                       cap - 1);
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

static bool bucket_ok(const char *b)
{
    size_t n = strlen(b);

    if (n < 3 || n > 63)
        return false;
    for (const char *p = b; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
            return false;
    }
    return true;
}

/* One "name=value" of the query into cfg. */
static int query_param(struct s3_config *cfg, const char *s, size_t n, struct err *err)
{
    const char *eq = memchr(s, '=', n);
    size_t klen = eq ? (size_t)(eq - s) : n;
    char val[S3_URL_MAX];

    if (!eq || pct_decode(eq + 1, n - klen - 1, val, sizeof(val)) != 0)
        return err_set(err, ERR_PERMANENT, "config", "s3 url: bad parameter '%.*s'", (int)n, s);
    if (klen == 8 && memcmp(s, "endpoint", 8) == 0) {
        size_t len = strlen(val);

        while (len > 0 && val[len - 1] == '/')
            val[--len] = '\0';
        if (!str_starts_with(val, "http://") && !str_starts_with(val, "https://"))
            return err_set(err, ERR_PERMANENT, "config",
                           "s3 endpoint '%s' must start with http:// or https://", val);
        return copy_field(cfg->endpoint, sizeof(cfg->endpoint), val, len, "endpoint", err);
    }
    if (klen == 6 && memcmp(s, "region", 6) == 0)
        return copy_field(cfg->region, sizeof(cfg->region), val, strlen(val), "region", err);
    return err_set(err, ERR_PERMANENT, "config",
                   "s3 url: unknown parameter '%.*s' (endpoint, region)", (int)klen, s);
}

static void config_defaults(struct s3_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->region, sizeof(cfg->region), "us-east-1");
    cfg->part_size = S3_PART_SIZE_DEFAULT;
    cfg->retries = S3_RETRIES_DEFAULT;
    cfg->backoff_ms = S3_BACKOFF_MS_DEFAULT;
    cfg->backoff_max_ms = S3_BACKOFF_MAX_MS_DEFAULT;
    cfg->connect_timeout_ms = 5000;
    cfg->stall_seconds = 30;
}

/* "bucket/prefix" (up to '?') into cfg. */
static int parse_path(struct s3_config *cfg, const char *s, size_t n, struct err *err)
{
    const char *slash = memchr(s, '/', n);
    size_t blen = slash ? (size_t)(slash - s) : n;
    char pfx[S3_PREFIX_MAX];
    size_t plen;

    if (copy_field(cfg->bucket, sizeof(cfg->bucket), s, blen, "bucket", err))
        return -1;
    if (!bucket_ok(cfg->bucket))
        return err_set(err, ERR_PERMANENT, "config",
                       "s3 bucket '%s': 3-63 of a-z 0-9 . - expected", cfg->bucket);
    if (!slash)
        return 0;
    if (pct_decode(slash + 1, n - blen - 1, pfx, sizeof(pfx)) != 0)
        return err_set(err, ERR_PERMANENT, "config", "s3 url: bad prefix");
    plen = strlen(pfx);
    while (plen > 0 && pfx[plen - 1] == '/')
        pfx[--plen] = '\0';
    return copy_field(cfg->prefix, sizeof(cfg->prefix), pfx, plen, "prefix", err);
}

int s3_config_parse(struct s3_config *cfg, const char *url, const char *access_key,
                    const char *secret_key, struct err *err)
{
    const char *rest, *q;

    config_defaults(cfg);
    if (!url || !str_starts_with(url, "s3://"))
        return err_set(err, ERR_PERMANENT, "config",
                       "blob store url must look like s3://bucket/prefix?endpoint=URL&region=R");
    rest = url + 5;
    q = strchr(rest, '?');
    if (parse_path(cfg, rest, q ? (size_t)(q - rest) : strlen(rest), err))
        return -1;
    for (const char *p = q ? q + 1 : NULL; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);

        if (n && query_param(cfg, p, n, err))
            return -1;
        p = amp ? amp + 1 : NULL;
    }
    if (!cfg->endpoint[0])
        snprintf(cfg->endpoint, sizeof(cfg->endpoint), "https://s3.%s.amazonaws.com",
                 cfg->region);
    if (!access_key || !*access_key || !secret_key || !*secret_key)
        return err_set(err, ERR_PERMANENT, "config",
                       "s3 needs keys: set SHOEBOX_S3_ACCESS_KEY and SHOEBOX_S3_SECRET_KEY "
                       "(or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
    if (copy_field(cfg->access_key, sizeof(cfg->access_key), access_key, strlen(access_key),
                   "access key", err) ||
        copy_field(cfg->secret_key, sizeof(cfg->secret_key), secret_key, strlen(secret_key),
                   "secret key", err))
        return -1;
    return 0;
}

/* --- life cycle ------------------------------------------------------------------------ */

int s3_open(const struct s3_config *cfg, struct s3 **out, struct err *err)
{
    struct s3 *s3;

    *out = NULL;
    if (cfg->part_size < S3_PART_SIZE_MIN)
        return err_set(err, ERR_PERMANENT, "config", "s3 part size %zu is under S3's %u bytes",
                       cfg->part_size, S3_PART_SIZE_MIN);
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        return err_set(err, ERR_PERMANENT, "store", "cannot start libcurl: %s",
                       curl_easy_strerror(global_rc));
    s3 = xcalloc(1, sizeof(*s3));
    s3->cfg = *cfg;
    pthread_mutex_init(&s3->mu, NULL);
    *out = s3;
    return 0;
}

void s3_free(struct s3 *s3)
{
    if (!s3)
        return;
    for (size_t i = 0; i < s3->nidle; i++)
        curl_easy_cleanup(s3->idle[i]);
    pthread_mutex_destroy(&s3->mu);
    explicit_bzero(s3->cfg.secret_key, sizeof(s3->cfg.secret_key));
    free(s3);
}

const struct s3_config *s3_config(const struct s3 *s3)
{
    return &s3->cfg;
}

/* --- objects ----------------------------------------------------------------------------- */

static void fill_object(const struct req *r, struct s3_object *info)
{
    if (!info)
        return;
    info->size = r->size;
    snprintf(info->etag, sizeof(info->etag), "%s", r->etag);
    info->mtime_ms = r->mtime_ms;
}

int s3_put(struct s3 *s3, const char *key, const void *p, size_t n, struct err *err)
{
    struct req r;
    int rc;

    req_init(&r, "put", "PUT", key);
    r.body = p ? p : "";
    r.body_len = n;
    rc = perform(s3, &r, err);
    req_release(&r);
    return rc;
}

int s3_head(struct s3 *s3, const char *key, struct s3_object *info, struct err *err)
{
    struct req r;
    int rc;

    req_init(&r, "head", "HEAD", key);
    r.ok_404 = true;
    rc = perform(s3, &r, err);
    if (rc == 0 && r.status == 404)
        rc = 1;
    else if (rc == 0)
        fill_object(&r, info);
    req_release(&r);
    return rc;
}

int s3_get(struct s3 *s3, const char *key, uint64_t off, uint64_t len, s3_write_fn write,
           void *ctx, struct s3_object *info, struct err *err)
{
    struct req r;
    int rc;

    if (len == 0)
        return s3_head(s3, key, info, err);
    req_init(&r, "get", "GET", key);
    if (len > UINT64_MAX - off)
        len = UINT64_MAX;  /* past any object's end: to the end */
    r.range = off > 0 || len != UINT64_MAX;
    r.range_off = off;
    r.range_len = len;
    r.write = write;
    r.write_ctx = ctx;
    r.ok_404 = r.ok_416 = true;
    rc = perform(s3, &r, err);
    if (rc == 0 && r.status == 404) {
        struct buf code = BUF_INIT;

        /* NoSuchKey (or no body at all) is "missing"; NoSuchBucket is an error */
        buf_init(&code);
        rc = !xml_find(&r.resp, "Code", &code) || strcmp(code.data, "NoSuchKey") == 0
                 ? 1 : http_error(s3, &r, err);
        buf_release(&code);
    } else if (rc == 0 && r.status == 416) {
        rc = s3_head(s3, key, info, err);  /* past the end: no bytes, the object's info */
    } else if (rc == 0) {
        fill_object(&r, info);
    }
    req_release(&r);
    return rc;
}

int s3_delete(struct s3 *s3, const char *key, struct err *err)
{
    struct req r;
    int rc;

    req_init(&r, "delete", "DELETE", key);
    rc = perform(s3, &r, err);
    req_release(&r);
    return rc;
}

/* --- listing ------------------------------------------------------------------------------ */

/* "k=v" pairs must reach curl sorted by name (7.88 signs the query as given). */
static void add_param(struct buf *q, const char *name, const char *value)
{
    if (q->len)
        buf_addc(q, '&');
    buf_adds(q, name);
    buf_addc(q, '=');
    add_encoded(q, value, false);
}

/* The relative key of a full key, or NULL when it is not under our prefix. */
static const char *relative(const struct s3 *s3, const char *full)
{
    size_t n = strlen(s3->cfg.prefix);

    if (n == 0)
        return full;
    if (strncmp(full, s3->cfg.prefix, n) != 0 || full[n] != '/')
        return NULL;
    return full + n + 1;
}

/* One page of ListObjectsV2: cb for each <Contents>; *token gets the next page's
 * continuation token (empty at the end). */
static int list_page(struct s3 *s3, const char *prefix, struct buf *token, s3_list_fn cb,
                     void *ctx, struct err *err)
{
    struct buf q = BUF_INIT, full = BUF_INIT, v = BUF_INIT, key = BUF_INIT;
    struct req r;
    const struct s3xml_node *c = NULL;
    struct s3xml *doc = NULL;
    char num[24];
    int rc;

    buf_init(&q);
    buf_init(&full);
    buf_init(&v);
    buf_init(&key);
    full_key(s3, prefix, &full);
    if (token->len)
        add_param(&q, "continuation-token", token->data);
    add_param(&q, "list-type", "2");
    if (s3->cfg.list_page > 0) {
        snprintf(num, sizeof(num), "%d", s3->cfg.list_page);
        add_param(&q, "max-keys", num);
    }
    add_param(&q, "prefix", full.data);
    req_init(&r, "list", "GET", NULL);
    r.query = q.data;
    rc = perform(s3, &r, err);
    buf_reset(token);
    if (rc == 0 && !(doc = s3xml_parse(r.resp.data, r.resp.len)))
        rc = err_set(err, ERR_TRANSIENT, "store", "s3 list: the answer is not XML");
    while (rc == 0 && (c = s3xml_each(doc, "Contents", c))) {
        struct s3_object obj = {0};
        const char *rel;

        if (!s3xml_text(doc, c, "Key", &key))
            continue;
        if (s3xml_text(doc, c, "Size", &v))
            str_to_uint64(v.data, &obj.size);
        if (s3xml_text(doc, c, "ETag", &v))
            snprintf(obj.etag, sizeof(obj.etag), "%s", v.data);
        if (s3xml_text(doc, c, "LastModified", &v))
            obj.mtime_ms = parse_iso8601(v.data);
        rel = relative(s3, key.data);
        if (rel)
            cb(ctx, rel, &obj);
    }
    if (rc == 0 && s3xml_text(doc, NULL, "IsTruncated", &v) && strcmp(v.data, "true") == 0 &&
        !s3xml_text(doc, NULL, "NextContinuationToken", token))
        rc = err_set(err, ERR_PERMANENT, "store", "s3 list: truncated page without a token");
    s3xml_free(doc);
    req_release(&r);
    buf_release(&q);
    buf_release(&full);
    buf_release(&v);
    buf_release(&key);
    return rc;
}

int s3_list(struct s3 *s3, const char *prefix, s3_list_fn cb, void *ctx, struct err *err)
{
    struct buf token = BUF_INIT;
    int rc;

    buf_init(&token);
    do {
        rc = list_page(s3, prefix ? prefix : "", &token, cb, ctx, err);
    } while (rc == 0 && token.len);
    buf_release(&token);
    return rc;
}

/* --- multipart uploads ------------------------------------------------------------------- */

int s3_mpu_create(struct s3 *s3, const char *key, char upload_id[S3_UPLOAD_ID_MAX],
                  struct err *err)
{
    struct buf id = BUF_INIT;
    struct req r;
    int rc;

    buf_init(&id);
    req_init(&r, "create multipart upload", "POST", key);
    r.query = "uploads=";
    rc = perform(s3, &r, err);
    if (rc == 0 && (!xml_find(&r.resp, "UploadId", &id) || id.len == 0 ||
                    id.len >= S3_UPLOAD_ID_MAX))
        rc = err_set(err, ERR_PERMANENT, "store", "s3 create multipart upload '%s': no usable "
                     "UploadId in the answer", key);
    if (rc == 0)
        memcpy(upload_id, id.data, id.len + 1);
    req_release(&r);
    buf_release(&id);
    return rc;
}

int s3_mpu_part(struct s3 *s3, const char *key, const char *upload_id, struct s3_part *part,
                const void *p, size_t n, struct err *err)
{
    struct buf q = BUF_INIT;
    struct req r;
    char num[16];
    int rc;

    buf_init(&q);
    snprintf(num, sizeof(num), "%d", part->number);
    add_param(&q, "partNumber", num);
    add_param(&q, "uploadId", upload_id);
    req_init(&r, "upload part", "PUT", key);
    r.query = q.data;
    r.body = p ? p : "";
    r.body_len = n;
    rc = perform(s3, &r, err);
    if (rc == 0 && !r.etag[0])
        rc = err_set(err, ERR_PERMANENT, "store", "s3 upload part %d of '%s': no ETag",
                     part->number, key);
    if (rc == 0)
        snprintf(part->etag, sizeof(part->etag), "%s", r.etag);
    req_release(&r);
    buf_release(&q);
    return rc;
}

int s3_mpu_complete(struct s3 *s3, const char *key, const char *upload_id,
                    const struct s3_part *parts, size_t nparts, struct err *err)
{
    struct buf q = BUF_INIT, body = BUF_INIT;
    struct req r;
    int rc;

    buf_init(&q);
    buf_init(&body);
    add_param(&q, "uploadId", upload_id);
    buf_adds(&body, "<CompleteMultipartUpload>");
    for (size_t i = 0; i < nparts; i++)
        buf_addf(&body, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>",
                 parts[i].number, parts[i].etag);
    buf_adds(&body, "</CompleteMultipartUpload>");
    req_init(&r, "complete multipart upload", "POST", key);
    r.query = q.data;
    r.body = body.data;
    r.body_len = body.len;
    rc = perform(s3, &r, err);
    req_release(&r);
    buf_release(&q);
    buf_release(&body);
    return rc;
}

int s3_mpu_abort(struct s3 *s3, const char *key, const char *upload_id, struct err *err)
{
    struct buf q = BUF_INIT;
    struct req r;
    int rc;

    buf_init(&q);
    add_param(&q, "uploadId", upload_id);
    req_init(&r, "abort multipart upload", "DELETE", key);
    r.query = q.data;
    r.ok_404 = true;  /* NoSuchUpload: already gone */
    rc = perform(s3, &r, err);
    req_release(&r);
    buf_release(&q);
    return rc;
}

/* One page of ListMultipartUploads; *km / *im get the next markers (empty at the end). */
static int mpu_list_page(struct s3 *s3, const char *prefix, struct buf *km, struct buf *im,
                         s3_mpu_list_fn cb, void *ctx, struct err *err)
{
    struct buf q = BUF_INIT, full = BUF_INIT, key = BUF_INIT, id = BUF_INIT, v = BUF_INIT;
    struct req r;
    const struct s3xml_node *u = NULL;
    struct s3xml *doc = NULL;
    char num[24];
    int rc;

    buf_init(&q);
    buf_init(&full);
    buf_init(&key);
    buf_init(&id);
    buf_init(&v);
    full_key(s3, prefix, &full);
    if (km->len)
        add_param(&q, "key-marker", km->data);
    if (s3->cfg.list_page > 0) {
        snprintf(num, sizeof(num), "%d", s3->cfg.list_page);
        add_param(&q, "max-uploads", num);
    }
    add_param(&q, "prefix", full.data);
    if (im->len)
        add_param(&q, "upload-id-marker", im->data);
    add_param(&q, "uploads", "");
    req_init(&r, "list multipart uploads", "GET", NULL);
    r.query = q.data;
    rc = perform(s3, &r, err);
    if (rc == 0 && !(doc = s3xml_parse(r.resp.data, r.resp.len)))
        rc = err_set(err, ERR_TRANSIENT, "store", "s3 list multipart uploads: the answer is "
                     "not XML");
    while (rc == 0 && (u = s3xml_each(doc, "Upload", u))) {
        const char *rel;

        if (!s3xml_text(doc, u, "Key", &key) || !s3xml_text(doc, u, "UploadId", &id))
            continue;
        rel = relative(s3, key.data);
        if (rel)
            cb(ctx, rel, id.data,
               s3xml_text(doc, u, "Initiated", &v) ? parse_iso8601(v.data) : 0);
    }
    buf_reset(km);
    buf_reset(im);
    if (rc == 0 && s3xml_text(doc, NULL, "IsTruncated", &v) && strcmp(v.data, "true") == 0) {
        s3xml_text(doc, NULL, "NextKeyMarker", km);
        s3xml_text(doc, NULL, "NextUploadIdMarker", im);
        if (!km->len)
            rc = err_set(err, ERR_PERMANENT, "store",
                         "s3 list multipart uploads: truncated page without a marker");
    }
    s3xml_free(doc);
    req_release(&r);
    buf_release(&q);
    buf_release(&full);
    buf_release(&key);
    buf_release(&id);
    buf_release(&v);
    return rc;
}

int s3_mpu_list(struct s3 *s3, const char *prefix, s3_mpu_list_fn cb, void *ctx,
                struct err *err)
{
    struct buf km = BUF_INIT, im = BUF_INIT;
    int rc;

    buf_init(&km);
    buf_init(&im);
    do {
        rc = mpu_list_page(s3, prefix ? prefix : "", &km, &im, cb, ctx, err);
    } while (rc == 0 && km.len);
    buf_release(&km);
    buf_release(&im);
    return rc;
}

/* --- streaming put -------------------------------------------------------------------- */

/* Fills buf (cap bytes) from read: bytes read (cap unless the stream ended), -1 on a
 * read failure. */
static ssize_t fill(s3_read_fn read, void *ctx, char *buf, size_t cap)
{
    size_t have = 0;

    while (have < cap) {
        ssize_t n = read(ctx, buf + have, cap - have);

        if (n < 0)
            return -1;
        if (n == 0)
            break;
        have += (size_t)n;
    }
    return (ssize_t)have;
}

/* The multipart path of s3_put_stream: buf holds the first part (full). */
static int put_multipart(struct s3 *s3, const char *key, s3_read_fn read, void *ctx, char *buf,
                         size_t first, struct err *err)
{
    char upload_id[S3_UPLOAD_ID_MAX];
    struct s3_part *parts = NULL;
    size_t nparts = 0, len = first;
    int rc = -1;

    if (s3_mpu_create(s3, key, upload_id, err))
        return -1;
    parts = xcalloc(S3_PARTS_MAX, sizeof(*parts));
    while (len > 0) {
        ssize_t got;

        if (nparts == S3_PARTS_MAX) {
            err_set(err, ERR_PERMANENT, "store", "s3 put '%s': over %d parts of %zu bytes", key,
                    S3_PARTS_MAX, s3->cfg.part_size);
            goto out;
        }
        parts[nparts].number = (int)nparts + 1;
        if (s3_mpu_part(s3, key, upload_id, &parts[nparts], buf, len, err))
            goto out;
        nparts++;
        got = fill(read, ctx, buf, s3->cfg.part_size);
        if (got < 0) {
            err_set(err, ERR_TRANSIENT, "store", "s3 put '%s': read failed", key);
            goto out;
        }
        len = (size_t)got;
    }
    if (s3_mpu_complete(s3, key, upload_id, parts, nparts, err))
        goto out;
    rc = 0;
out:
    if (rc != 0)
        s3_mpu_abort(s3, key, upload_id, NULL);
    free(parts);
    return rc;
}

int s3_put_stream(struct s3 *s3, const char *key, s3_read_fn read, void *ctx,
                  struct err *err)
{
    char *buf = xmalloc(s3->cfg.part_size);
    ssize_t got = fill(read, ctx, buf, s3->cfg.part_size);
    int rc;

    if (got < 0)
        rc = err_set(err, ERR_TRANSIENT, "store", "s3 put '%s': read failed", key);
    else if ((size_t)got < s3->cfg.part_size)
        rc = s3_put(s3, key, buf, (size_t)got, err);
    else
        rc = put_multipart(s3, key, read, ctx, buf, (size_t)got, err);
    free(buf);
    return rc;
}

/* --- presigned URLs ---------------------------------------------------------------------- */

struct qparam {
    struct buf name, value;  /* percent-encoded */
};

static int qparam_cmp(const void *a, const void *b)
{
    const struct qparam *x = a, *y = b;
    int c = strcmp(x->name.data, y->name.data);

    return c ? c : strcmp(x->value.data, y->value.data);
}

static void hmac_str(const unsigned char *key, size_t klen, const char *msg,
                     unsigned char out[HMAC_SHA256_LEN])
{
    hmac_sha256(key, klen, msg, strlen(msg), out);
}

/* The SigV4 signature (hex) of string_to_sign under the secret, date and region. */
static void sign_v4(const char *secret, const char *date, const char *region, const char *sts,
                    char hex[SHA256_HEX_LEN + 1])
{
    unsigned char a[HMAC_SHA256_LEN], b[HMAC_SHA256_LEN];
    struct buf first = BUF_INIT;

    buf_init(&first);
    buf_addf(&first, "AWS4%s", secret);
    hmac_str((const unsigned char *)first.data, first.len, date, a);
    explicit_bzero(first.data, first.len);
    buf_release(&first);
    hmac_str(a, sizeof(a), region, b);
    hmac_str(b, sizeof(b), "s3", a);
    hmac_str(a, sizeof(a), "aws4_request", b);
    hmac_str(b, sizeof(b), sts, a);
    str_hex(a, sizeof(a), hex);
    explicit_bzero(a, sizeof(a));
    explicit_bzero(b, sizeof(b));
}

/* The canonical query: every parameter encoded, sorted by name, joined with '&'. */
static void canonical_query(const struct s3_param *ps, size_t np, struct buf *out)
{
    struct qparam *q = xcalloc(np, sizeof(*q));

    for (size_t i = 0; i < np; i++) {
        buf_init(&q[i].name);
        buf_init(&q[i].value);
        add_encoded(&q[i].name, ps[i].name, false);
        add_encoded(&q[i].value, ps[i].value, false);
    }
    qsort(q, np, sizeof(*q), qparam_cmp);
    for (size_t i = 0; i < np; i++) {
        buf_addf(out, "%s%s=%s", i ? "&" : "", q[i].name.data, q[i].value.data);
        buf_release(&q[i].name);
        buf_release(&q[i].value);
    }
    free(q);
}

int s3_presign_query(const char *method, const char *host, const char *path, const char *region,
                     const char *access_key, const char *secret_key, int64_t time_s,
                     int expires_s, const struct s3_param *extra, size_t nextra, char *out,
                     size_t n, struct err *err)
{
    char amz_date[32], date[16], cred[S3_KEYID_MAX + 128], expires[24], hash[SHA256_HEX_LEN + 1];
    char sig[SHA256_HEX_LEN + 1];
    struct buf query = BUF_INIT, creq = BUF_INIT, sts = BUF_INIT;
    struct s3_param *ps;
    time_t t = (time_t)time_s;
    struct tm tm;
    int rc = 0;

    if (expires_s < 1 || expires_s > S3_PRESIGN_MAX_SECONDS)
        return err_set(err, ERR_PERMANENT, "s3", "presign: %d seconds is outside 1..%d",
                       expires_s, S3_PRESIGN_MAX_SECONDS);
    gmtime_r(&t, &tm);
    strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm);
    strftime(date, sizeof(date), "%Y%m%d", &tm);
    snprintf(cred, sizeof(cred), "%s/%s/%s/s3/aws4_request", access_key, date, region);
    snprintf(expires, sizeof(expires), "%d", expires_s);
    ps = xcalloc(nextra + 5, sizeof(*ps));
    ps[0] = (struct s3_param){"X-Amz-Algorithm", "AWS4-HMAC-SHA256"};
    ps[1] = (struct s3_param){"X-Amz-Credential", cred};
    ps[2] = (struct s3_param){"X-Amz-Date", amz_date};
    ps[3] = (struct s3_param){"X-Amz-Expires", expires};
    ps[4] = (struct s3_param){"X-Amz-SignedHeaders", "host"};
    for (size_t i = 0; i < nextra; i++)
        ps[5 + i] = extra[i];
    buf_init(&query);
    canonical_query(ps, nextra + 5, &query);
    free(ps);
    buf_init(&creq);
    buf_addf(&creq, "%s\n%s\n%s\nhost:%s\n\nhost\nUNSIGNED-PAYLOAD", method, path, query.data,
             host);
    sha256_hex(creq.data, creq.len, hash);
    buf_init(&sts);
    buf_addf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/s3/aws4_request\n%s", amz_date, date, region,
             hash);
    sign_v4(secret_key, date, region, sts.data, sig);
    if ((size_t)snprintf(out, n, "%s&X-Amz-Signature=%s", query.data, sig) >= n)
        rc = err_set(err, ERR_PERMANENT, "s3", "presign: the URL is longer than %zu bytes", n);
    buf_release(&query);
    buf_release(&creq);
    buf_release(&sts);
    return rc;
}

/* The Host header a client sends to endpoint: scheme dropped, default port dropped. */
static void endpoint_host(const char *endpoint, struct buf *out)
{
    bool tls = !strncmp(endpoint, "https://", 8);
    const char *h = strstr(endpoint, "://");
    size_t len;

    h = h ? h + 3 : endpoint;
    len = strcspn(h, "/");
    if (tls && len > 4 && !strncmp(h + len - 4, ":443", 4))
        len -= 4;
    else if (!tls && len > 3 && !strncmp(h + len - 3, ":80", 3))
        len -= 3;
    buf_add(out, h, len);
}

int s3_presign_get(const struct s3 *s3, const char *key, int64_t time_s, int expires_s,
                   const char *content_type, const char *disposition, char *out, size_t n,
                   struct err *err)
{
    struct buf host = BUF_INIT, path = BUF_INIT, k = BUF_INIT;
    struct s3_param extra[2];
    size_t nextra = 0, used;
    int rc;

    if (content_type)
        extra[nextra++] = (struct s3_param){"response-content-type", content_type};
    if (disposition)
        extra[nextra++] = (struct s3_param){"response-content-disposition", disposition};
    buf_init(&host);
    buf_init(&path);
    buf_init(&k);
    endpoint_host(s3->cfg.endpoint, &host);
    full_key(s3, key, &k);
    buf_addf(&path, "/%s/", s3->cfg.bucket);
    add_encoded(&path, k.data, true);
    used = (size_t)snprintf(out, n, "%s%s?", s3->cfg.endpoint, path.data);
    if (used >= n)
        rc = err_set(err, ERR_PERMANENT, "s3", "presign: the URL is longer than %zu bytes", n);
    else
        rc = s3_presign_query("GET", host.data, path.data, s3->cfg.region, s3->cfg.access_key,
                              s3->cfg.secret_key, time_s, expires_s, extra, nextra, out + used,
                              n - used, err);
    buf_release(&host);
    buf_release(&path);
    buf_release(&k);
    return rc;
}
