/* Unit tests for src/store/s3.c against a real S3 server: the RADOS Gateway that
 * tests/run.py starts for the run (tests/rgwserver.py), named by SHOEBOX_TEST_S3,
 * SHOEBOX_TEST_S3_ACCESS_KEY, _SECRET_KEY and _DIR. Without them the program exits 77
 * (skipped). Every test works under its own key prefix in the shared bucket. The outage
 * tests stop and start radosgw through `tests/rgwserver.py stop-rgw|start-rgw DIR`. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/config.h"
#include "store/s3.h"

#define SKIP 77
#define MB (1024u * 1024)

static char base_url[1024];
static const char *access_key, *secret_key, *rgw_dir;
static struct s3 *S;
static struct s3_config cfg;

/* A fresh client under a prefix of its own. */
static struct s3 *open_client(const char *access, const char *secret, int retries)
{
    static unsigned serial;
    char url[1400];
    const char *q = strchr(base_url, '?');
    struct err err = {0};
    struct s3 *s3 = NULL;

    snprintf(url, sizeof(url), "%.*s/u%ld-%ld-%u%s", (int)(q - base_url), base_url,
             (long)getpid(), (long)time(NULL), ++serial, q);
    ck_assert_msg(s3_config_parse(&cfg, url, access, secret, &err) == 0, "%s", err.msg);
    cfg.part_size = S3_PART_SIZE_MIN;
    cfg.retries = retries;
    ck_assert_msg(s3_open(&cfg, &s3, &err) == 0, "%s", err.msg);
    return s3;
}

static void setup(void)
{
    S = open_client(access_key, secret_key, S3_RETRIES_DEFAULT);
}

static void teardown(void)
{
    s3_free(S);
    S = NULL;
}

/* --- helpers ---------------------------------------------------------------------- */

static int collect(void *ctx, const void *p, size_t n)
{
    buf_add(ctx, p, n);
    return 0;
}

/* Bytes of key from off, len into b (reset first); returns s3_get's result. */
static int get(const char *key, uint64_t off, uint64_t len, struct buf *b, struct s3_object *o,
               struct err *err)
{
    buf_reset(b);
    return s3_get(S, key, off, len, collect, b, o, err);
}

/* Deterministic bytes: byte i of a stream with seed s. */
static unsigned char pattern(size_t i, unsigned s)
{
    uint32_t x = (uint32_t)(i / 4) * 2654435761u ^ s;

    x ^= x >> 15;
    return (unsigned char)(x >> (8 * (i % 4)));
}

struct gen {
    size_t pos, size;
    unsigned seed;
    size_t chunk;      /* at most this per read (odd sizes cross part edges) */
    size_t fail_at;    /* read fails once pos reaches this (0: never) */
};

static ssize_t gen_read(void *ctx, void *buf, size_t n)
{
    struct gen *g = ctx;
    unsigned char *out = buf;
    size_t k = 0;

    if (g->fail_at && g->pos >= g->fail_at)
        return -1;
    while (k < n && k < g->chunk && g->pos < g->size)
        out[k++] = pattern(g->pos++, g->seed);
    return (ssize_t)k;
}

static void check_pattern(const struct buf *b, size_t from, unsigned seed)
{
    for (size_t i = 0; i < b->len; i++) {
        if ((unsigned char)b->data[i] != pattern(from + i, seed))
            ck_abort_msg("byte %zu differs", from + i);
    }
}

/* Runs tests/rgwserver.py CMD DIR; wait: wait for it (its exit status), else its pid. */
static int rgwctl(const char *cmd, int wait)
{
    const char *root = getenv("SHOEBOX_ROOT");
    char script[1024];
    pid_t pid;
    int status;

    snprintf(script, sizeof(script), "%s/tests/rgwserver.py", root ? root : ".");
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        execlp("python3", "python3", script, cmd, rgw_dir, (char *)NULL);
        _exit(127);
    }
    if (!wait)
        return pid;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* --- configuration ------------------------------------------------------------------ */

struct cfg_row {
    const char *url;
    int rc;
    const char *bucket, *prefix, *endpoint, *region, *msg;
};

static const struct cfg_row cfg_rows[] = {
    {"s3://photos", 0, "photos", "", "https://s3.us-east-1.amazonaws.com", "us-east-1", NULL},
    {"s3://photos/a/b/?region=eu-west-3", 0, "photos", "a/b",
     "https://s3.eu-west-3.amazonaws.com", "eu-west-3", NULL},
    {"s3://b-1.x/p?endpoint=http%3A%2F%2F127.0.0.1%3A9000%2F&region=garage", 0, "b-1.x", "p",
     "http://127.0.0.1:9000", "garage", NULL},
    {"s3://b12/p?endpoint=https://minio.lan:9000", 0, "b12", "p", "https://minio.lan:9000",
     "us-east-1", NULL},
    {"s3://b12/sp%20ace", 0, "b12", "sp ace", "https://s3.us-east-1.amazonaws.com", "us-east-1",
     NULL},
    {"http://photos", -1, NULL, NULL, NULL, NULL, "s3://bucket"},
    {"s3://ab", -1, NULL, NULL, NULL, NULL, "3-63"},
    {"s3://Photos", -1, NULL, NULL, NULL, NULL, "3-63"},
    {"s3://photos?endpoint=ftp://x", -1, NULL, NULL, NULL, NULL, "http://"},
    {"s3://photos?colour=red", -1, NULL, NULL, NULL, NULL, "unknown parameter 'colour'"},
    {"s3://photos?endpoint=http%3", -1, NULL, NULL, NULL, NULL, "bad parameter"},
    {"s3://photos?endpoint", -1, NULL, NULL, NULL, NULL, "bad parameter"},
};

START_TEST(test_config_parse)
{
    const struct cfg_row *row = &cfg_rows[_i];
    struct s3_config c;
    struct err err = {0};
    int rc = s3_config_parse(&c, row->url, "AK", "SK", &err);

    ck_assert_msg(rc == row->rc, "%s: rc %d (%s)", row->url, rc, err.msg);
    if (rc == 0) {
        ck_assert_str_eq(c.bucket, row->bucket);
        ck_assert_str_eq(c.prefix, row->prefix);
        ck_assert_str_eq(c.endpoint, row->endpoint);
        ck_assert_str_eq(c.region, row->region);
        ck_assert_uint_eq(c.part_size, S3_PART_SIZE_DEFAULT);
    } else {
        ck_assert_msg(strstr(err.msg, row->msg), "%s: '%s' lacks '%s'", row->url, err.msg,
                      row->msg);
    }
}
END_TEST

START_TEST(test_config_keys_required)
{
    struct s3_config c;
    struct err err = {0};

    ck_assert_int_eq(s3_config_parse(&c, "s3://photos", "", "SK", &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "SHOEBOX_S3_ACCESS_KEY"));
    ck_assert_int_eq(s3_config_parse(&c, "s3://photos", "AK", NULL, &err), -1);
    ck_assert_int_eq(s3_config_parse(&c, "s3://photos", "AK", "SECRETVALUE", &err), 0);
    c.part_size = S3_PART_SIZE_MIN - 1;
    ck_assert_int_eq(s3_open(&c, &S, &err), -1);
    ck_assert_ptr_null(S);
}
END_TEST

/* --- objects ------------------------------------------------------------------------ */

START_TEST(test_small_round_trip)
{
    struct buf b = BUF_INIT;
    struct s3_object o = {0}, h = {0};
    struct err err = {0};
    const char *text = "hello, object store";

    buf_init(&b);
    ck_assert_msg(s3_put(S, "o/ab/small", text, strlen(text), &err) == 0, "%s", err.msg);
    ck_assert_msg(get("o/ab/small", 0, UINT64_MAX, &b, &o, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(b.data, text);
    ck_assert_uint_eq(o.size, strlen(text));
    ck_assert_int_eq(o.etag[0], '"');
    ck_assert_msg(s3_head(S, "o/ab/small", &h, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(h.size, strlen(text));
    ck_assert_str_eq(h.etag, o.etag);
    ck_assert_msg(h.mtime_ms > (int64_t)(time(NULL) - 600) * 1000 &&
                      h.mtime_ms < (int64_t)(time(NULL) + 600) * 1000,
                  "mtime %lld", (long long)h.mtime_ms);
    /* empty object, and a key that needs escaping */
    ck_assert_msg(s3_put(S, "e/empty file+x", "", 0, &err) == 0, "%s", err.msg);
    ck_assert_msg(get("e/empty file+x", 0, UINT64_MAX, &b, &o, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(o.size, 0);
    buf_release(&b);
}
END_TEST

START_TEST(test_ranges)
{
    struct buf b = BUF_INIT;
    struct s3_object o = {0};
    struct err err = {0};
    struct gen g = {0, 100000, 7, 100000, 0};

    buf_init(&b);
    ck_assert_msg(s3_put_stream(S, "r", gen_read, &g, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(get("r", 10, 20, &b, &o, &err), 0);
    ck_assert_uint_eq(b.len, 20);
    check_pattern(&b, 10, 7);
    ck_assert_uint_eq(o.size, 100000);  /* the whole object's size, from Content-Range */
    ck_assert_int_eq(get("r", 99990, UINT64_MAX, &b, &o, &err), 0);
    ck_assert_uint_eq(b.len, 10);
    check_pattern(&b, 99990, 7);
    ck_assert_int_eq(get("r", 99999, 1000, &b, &o, &err), 0);  /* cut at the end */
    ck_assert_uint_eq(b.len, 1);
    ck_assert_int_eq(get("r", 100000, 10, &b, &o, &err), 0);   /* at the end: nothing */
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(o.size, 100000);
    ck_assert_int_eq(get("r", 5000000, UINT64_MAX, &b, &o, &err), 0);
    ck_assert_uint_eq(b.len, 0);
    buf_release(&b);
}
END_TEST

START_TEST(test_multipart_round_trip)
{
    struct buf b = BUF_INIT;
    struct s3_object o = {0};
    struct err err = {0};
    size_t size = 2 * S3_PART_SIZE_MIN + 12345;  /* three parts, the last one short */
    struct gen g = {0, size, 11, 65537, 0};
    uint64_t edge = S3_PART_SIZE_MIN - 100;

    buf_init(&b);
    ck_assert_msg(s3_put_stream(S, "big", gen_read, &g, &err) == 0, "%s", err.msg);
    ck_assert_msg(s3_head(S, "big", &o, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(o.size, size);
    ck_assert_msg(strstr(o.etag, "-3\""), "multipart etag %s", o.etag);
    ck_assert_msg(get("big", 0, UINT64_MAX, &b, &o, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(b.len, size);
    check_pattern(&b, 0, 11);
    ck_assert_int_eq(get("big", edge, 200, &b, &o, &err), 0);  /* across parts 1 and 2 */
    ck_assert_uint_eq(b.len, 200);
    check_pattern(&b, edge, 11);
    buf_release(&b);
}
END_TEST

START_TEST(test_exactly_one_part_is_one_put)
{
    struct s3_object o = {0};
    struct err err = {0};
    struct gen g = {0, S3_PART_SIZE_MIN - 1, 3, 1 << 20, 0};
    struct gen g2 = {0, S3_PART_SIZE_MIN, 4, 1 << 20, 0};

    ck_assert_msg(s3_put_stream(S, "under", gen_read, &g, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(s3_head(S, "under", &o, &err), 0);
    ck_assert_msg(!strchr(o.etag, '-'), "single put etag %s", o.etag);
    /* one full part: multipart with one part, or one put; either way the bytes are there */
    ck_assert_msg(s3_put_stream(S, "exact", gen_read, &g2, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(s3_head(S, "exact", &o, &err), 0);
    ck_assert_uint_eq(o.size, S3_PART_SIZE_MIN);
}
END_TEST

static int64_t uploads_seen;

static void count_upload(void *ctx, const char *key, const char *upload_id, int64_t initiated)
{
    const char *want = ctx;

    if (!want || strcmp(key, want) == 0)
        uploads_seen++;
    ck_assert_ptr_nonnull(upload_id);
    ck_assert_int_gt(initiated, (int64_t)(time(NULL) - 3600) * 1000);
}

START_TEST(test_stream_read_failure_leaves_nothing)
{
    struct s3_object o;
    struct err err = {0};
    struct gen g = {0, 3 * S3_PART_SIZE_MIN, 5, 1 << 20, S3_PART_SIZE_MIN + 10};

    ck_assert_int_eq(s3_put_stream(S, "cut", gen_read, &g, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "read failed"));
    ck_assert_int_eq(s3_head(S, "cut", &o, &err), 1);
    uploads_seen = 0;
    ck_assert_msg(s3_mpu_list(S, "", count_upload, NULL, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(uploads_seen, 0);  /* the multipart upload was aborted */
}
END_TEST

START_TEST(test_multipart_list_and_abort)
{
    char ids[3][S3_UPLOAD_ID_MAX];
    struct s3_part part = {1, ""};
    struct err err = {0};
    struct s3_object o;
    struct s3 *paged;

    for (int i = 0; i < 3; i++)
        ck_assert_msg(s3_mpu_create(S, i == 2 ? "m/other" : "m/stale", ids[i], &err) == 0, "%s",
                      err.msg);
    ck_assert_msg(s3_mpu_part(S, "m/stale", ids[0], &part, "abc", 3, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(part.etag[0], '"');
    /* pages of one upload each: the key and upload-id markers carry the listing on */
    cfg = *s3_config(S);
    cfg.list_page = 1;
    ck_assert_int_eq(s3_open(&cfg, &paged, &err), 0);
    uploads_seen = 0;
    ck_assert_msg(s3_mpu_list(paged, "m/", count_upload, NULL, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(uploads_seen, 3);
    uploads_seen = 0;
    ck_assert_msg(s3_mpu_list(paged, "m/", count_upload, "m/stale", &err) == 0, "%s", err.msg);
    ck_assert_int_eq(uploads_seen, 2);
    s3_free(paged);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(s3_mpu_abort(S, i == 2 ? "m/other" : "m/stale", ids[i], &err) == 0, "%s",
                      err.msg);
    ck_assert_msg(s3_mpu_abort(S, "m/stale", ids[0], &err) == 0, "again: %s", err.msg);
    uploads_seen = 0;
    ck_assert_msg(s3_mpu_list(S, "m/", count_upload, NULL, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(uploads_seen, 0);
    ck_assert_int_eq(s3_head(S, "m/stale", &o, &err), 1);
}
END_TEST

START_TEST(test_missing_key)
{
    struct buf b = BUF_INIT;
    struct s3_object o;
    struct err err = {0};

    buf_init(&b);
    ck_assert_int_eq(get("no/such/key", 0, UINT64_MAX, &b, &o, &err), 1);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_int_eq(get("no/such/key", 5, 10, &b, &o, &err), 1);
    ck_assert_int_eq(s3_head(S, "no/such/key", &o, &err), 1);
    ck_assert_msg(s3_delete(S, "no/such/key", &err) == 0, "%s", err.msg);
    buf_release(&b);
}
END_TEST

START_TEST(test_delete)
{
    struct s3_object o;
    struct err err = {0};

    ck_assert_int_eq(s3_put(S, "d", "x", 1, &err), 0);
    ck_assert_int_eq(s3_head(S, "d", &o, &err), 0);
    ck_assert_msg(s3_delete(S, "d", &err) == 0, "%s", err.msg);
    ck_assert_int_eq(s3_head(S, "d", &o, &err), 1);
}
END_TEST

struct listing {
    char keys[16][64];
    uint64_t sizes[16];
    int64_t mtimes[16];
    int n;
};

static void on_list(void *ctx, const char *key, const struct s3_object *obj)
{
    struct listing *l = ctx;

    ck_assert_int_lt(l->n, 16);
    snprintf(l->keys[l->n], sizeof(l->keys[0]), "%s", key);
    l->sizes[l->n] = obj->size;
    l->mtimes[l->n] = obj->mtime_ms;
    l->n++;
}

START_TEST(test_list_pages)
{
    static const char *keys[] = {"l/a", "l/b&c", "l/c/d", "l/e", "l/f"};
    struct listing l = {0};
    struct err err = {0};
    struct s3 *paged;

    for (size_t i = 0; i < 5; i++)
        ck_assert_msg(s3_put(S, keys[i], "0123456789", i + 1, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(s3_put(S, "lx", "0", 1, &err), 0);  /* same letters, not under l/ */
    /* two keys a page: three pages, continuation tokens between them */
    cfg = *s3_config(S);
    cfg.list_page = 2;
    ck_assert_int_eq(s3_open(&cfg, &paged, &err), 0);
    ck_assert_msg(s3_list(paged, "l/", on_list, &l, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(l.n, 5);
    for (int i = 0; i < 5; i++) {
        ck_assert_str_eq(l.keys[i], keys[i]);
        ck_assert_uint_eq(l.sizes[i], (uint64_t)i + 1);
        ck_assert_int_gt(l.mtimes[i], (int64_t)(time(NULL) - 600) * 1000);
    }
    memset(&l, 0, sizeof(l));
    ck_assert_int_eq(s3_list(paged, "", on_list, &l, &err), 0);
    ck_assert_int_eq(l.n, 6);
    ck_assert_str_eq(l.keys[5], "lx");
    memset(&l, 0, sizeof(l));
    ck_assert_int_eq(s3_list(paged, "nothing/", on_list, &l, &err), 0);
    ck_assert_int_eq(l.n, 0);
    s3_free(paged);
}
END_TEST

/* --- failures ---------------------------------------------------------------------- */

START_TEST(test_bad_secret)
{
    struct s3 *bad = open_client(access_key, "not-the-secret", 1);
    struct err err = {0};

    ck_assert_int_eq(s3_put(bad, "x", "y", 1, &err), -1);
    ck_assert_msg(strstr(err.msg, "403 SignatureDoesNotMatch"), "%s", err.msg);
    ck_assert_int_eq(err.cls, ERR_PERMANENT);
    ck_assert_msg(!strstr(err.msg, "not-the-secret"), "secret in '%s'", err.msg);
    s3_free(bad);
}
END_TEST

START_TEST(test_bad_access_key)
{
    struct s3 *bad = open_client("NOSUCHACCESSKEY", secret_key, 1);
    struct buf b = BUF_INIT;
    struct err err = {0};

    buf_init(&b);
    ck_assert_int_eq(s3_get(bad, "x", 0, UINT64_MAX, collect, &b, NULL, &err), -1);
    ck_assert_msg(strstr(err.msg, "403 InvalidAccessKeyId"), "%s", err.msg);
    ck_assert_uint_eq(b.len, 0);  /* the error body never reaches the writer */
    s3_free(bad);
    buf_release(&b);
}
END_TEST

static int refuse(void *ctx, const void *p, size_t n)
{
    (void)ctx, (void)p, (void)n;
    return -1;
}

START_TEST(test_writer_stops)
{
    struct err err = {0};

    ck_assert_int_eq(s3_put(S, "w", "abc", 3, &err), 0);
    ck_assert_int_eq(s3_get(S, "w", 0, UINT64_MAX, refuse, NULL, NULL, &err), -1);
    ck_assert_msg(strstr(err.msg, "receiver stopped"), "%s", err.msg);
}
END_TEST

/* radosgw is stopped, then started while the request is already retrying: the request
 * succeeds (the gateway takes ~1 s to start; the retry window is ~10-20 s). */
START_TEST(test_gateway_back_within_retries)
{
    struct s3 *patient = open_client(access_key, secret_key, 8);
    struct buf b = BUF_INIT;
    struct err err = {0};
    int status;
    pid_t starter;

    buf_init(&b);
    ck_assert_int_eq(rgwctl("stop-rgw", 1), 0);
    starter = rgwctl("start-rgw", 0);
    ck_assert_msg(s3_put(patient, "back", "again", 5, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(waitpid(starter, &status, 0), starter);
    ck_assert_int_eq(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
    ck_assert_int_eq(s3_get(patient, "back", 0, UINT64_MAX, collect, &b, NULL, &err), 0);
    ck_assert_str_eq(b.data, "again");
    s3_free(patient);
    buf_release(&b);
}
END_TEST

/* radosgw stays down: after its retries the request fails, saying where it could not
 * connect; the error is transient (worth retrying later). */
START_TEST(test_gateway_down_fails_clearly)
{
    struct s3_config c;
    struct s3 *quick;
    struct err err = {0};
    int rc;

    c = *s3_config(S);
    c.retries = 2;
    c.backoff_ms = 20;
    ck_assert_int_eq(s3_open(&c, &quick, &err), 0);
    ck_assert_int_eq(rgwctl("stop-rgw", 1), 0);
    rc = s3_put(quick, "down", "x", 1, &err);
    ck_assert_int_eq(rgwctl("start-rgw", 1), 0);
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(strstr(err.msg, "Couldn't connect") && strstr(err.msg, c.endpoint) &&
                      strstr(err.msg, "3 tries"),
                  "%s", err.msg);
    ck_assert_int_eq(err.cls, ERR_TRANSIENT);
    s3_free(quick);
}
END_TEST

/* --- a fault proxy in front of the real gateway -------------------------------------- */

/* One connection at a time: reads a request (head + Content-Length body) and either
 * answers 503 SlowDown itself (the first fail_first requests) or forwards it to the
 * gateway with "Connection: close" added (an unsigned header) and relays the answer,
 * cutting it after cut_after bytes the first time (then the rest go through whole). */
struct proxy {
    int lfd, port, upstream;
    pthread_t thr;
    atomic_int fail_first;
    atomic_long cut_after;
    atomic_int requests;
    char heads[4][2048];  /* the first request heads seen */
};

static int read_head(int fd, char *buf, size_t cap, size_t *len)
{
    *len = 0;
    while (*len + 1 < cap) {
        ssize_t n = recv(fd, buf + *len, cap - 1 - *len, 0);

        if (n <= 0)
            return -1;
        *len += (size_t)n;
        buf[*len] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            return 0;
    }
    return -1;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

        if (k <= 0)
            return;
        p += k;
        n -= (size_t)k;
    }
}

/* Forwards one request (head + body already in req, its head ending at hlen) and relays
 * the answer until the gateway closes or cut bytes went by. */
static void forward(struct proxy *px, int cfd, char *req, size_t len, size_t hlen, long cut)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(px->upstream),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ufd = socket(AF_INET, SOCK_STREAM, 0);
    char buf[65536];
    long sent = 0;
    ssize_t n;

    if (connect(ufd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(ufd);
        return;
    }
    send_all(ufd, req, hlen - 2);  /* up to the blank line */
    send_all(ufd, "Connection: close\r\n\r\n", 21);
    send_all(ufd, req + hlen, len - hlen);
    while ((n = recv(ufd, buf, sizeof(buf), 0)) > 0) {
        if (cut >= 0 && sent + n > cut)
            n = cut - sent;
        send_all(cfd, buf, (size_t)n);
        sent += n;
        if (cut >= 0 && sent >= cut)
            break;
    }
    close(ufd);
}

static void serve_one(struct proxy *px, int cfd)
{
    static const char slow[] = "<Error><Code>SlowDown</Code><Message>please slow down"
                               "</Message></Error>";
    char req[1 << 16];
    size_t len, hlen, body = 0;
    const char *cl;
    int nreq;

    if (read_head(cfd, req, sizeof(req), &len))
        return;
    hlen = (size_t)(strstr(req, "\r\n\r\n") - req) + 4;
    cl = strcasestr(req, "\r\nContent-Length:");
    if (cl && cl < req + hlen)
        body = strtoul(cl + 17, NULL, 10);
    if (len < hlen + body && strcasestr(req, "\r\nExpect: 100-continue"))
        send_all(cfd, "HTTP/1.1 100 Continue\r\n\r\n", 25);  /* as RGW and S3 do */
    while (len < hlen + body && len < sizeof(req)) {
        ssize_t n = recv(cfd, req + len, sizeof(req) - len, 0);

        if (n <= 0)
            return;
        len += (size_t)n;
    }
    nreq = atomic_fetch_add(&px->requests, 1);
    if (nreq < 4)
        snprintf(px->heads[nreq], sizeof(px->heads[0]), "%.*s", (int)hlen, req);
    if (atomic_load(&px->fail_first) > 0) {
        char head[256];
        int hn = snprintf(head, sizeof(head),
                          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n"
                          "Content-Length: %zu\r\nConnection: close\r\n\r\n", sizeof(slow) - 1);

        atomic_fetch_sub(&px->fail_first, 1);
        send_all(cfd, head, (size_t)hn);
        send_all(cfd, slow, sizeof(slow) - 1);
        return;
    }
    forward(px, cfd, req, len, hlen, atomic_exchange(&px->cut_after, -1));
}

static void *proxy_main(void *arg)
{
    struct proxy *px = arg;

    for (;;) {
        int cfd = accept(px->lfd, NULL, NULL);

        if (cfd < 0)
            return NULL;
        serve_one(px, cfd);
        close(cfd);
    }
}

static struct proxy *proxy_start(int fail_first, long cut_after)
{
    struct proxy *px = calloc(1, sizeof(*px));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    const char *colon = strrchr(s3_config(S)->endpoint, ':');

    px->upstream = (int)strtol(colon + 1, NULL, 10);
    atomic_store(&px->fail_first, fail_first);
    atomic_store(&px->cut_after, cut_after);
    px->lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(px->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(px->lfd, 16), 0);
    ck_assert_int_eq(getsockname(px->lfd, (struct sockaddr *)&a, &alen), 0);
    px->port = ntohs(a.sin_port);
    ck_assert_int_eq(pthread_create(&px->thr, NULL, proxy_main, px), 0);
    return px;
}

static void proxy_stop(struct proxy *px)
{
    shutdown(px->lfd, SHUT_RDWR);
    close(px->lfd);
    pthread_join(px->thr, NULL);
    free(px);
}

/* A client of the same bucket and prefix as S, through px. */
static struct s3 *via(struct proxy *px, int retries)
{
    struct s3_config c = *s3_config(S);
    struct s3 *s3;
    struct err err = {0};

    snprintf(c.endpoint, sizeof(c.endpoint), "http://127.0.0.1:%d", px->port);
    c.retries = retries;
    c.backoff_ms = 10;
    ck_assert_int_eq(s3_open(&c, &s3, &err), 0);
    return s3;
}

START_TEST(test_retry_on_503)
{
    struct proxy *px = proxy_start(2, -1);
    struct s3 *s3 = via(px, 3);
    struct buf b = BUF_INIT;
    struct err err = {0};

    buf_init(&b);
    ck_assert_msg(s3_put(s3, "slow", "eventually", 10, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(atomic_load(&px->requests), 3);
    ck_assert_int_eq(get("slow", 0, UINT64_MAX, &b, NULL, &err), 0);
    ck_assert_str_eq(b.data, "eventually");
    s3_free(s3);
    proxy_stop(px);
    buf_release(&b);
}
END_TEST

START_TEST(test_503_until_retries_run_out)
{
    struct proxy *px = proxy_start(100, -1);
    struct s3 *s3 = via(px, 2);
    struct err err = {0};

    ck_assert_int_eq(s3_put(s3, "slow", "never", 5, &err), -1);
    ck_assert_int_eq(atomic_load(&px->requests), 3);
    ck_assert_msg(strstr(err.msg, "503 SlowDown: please slow down"), "%s", err.msg);
    ck_assert_int_eq(err.cls, ERR_TRANSIENT);
    s3_free(s3);
    proxy_stop(px);
}
END_TEST

/* The answer is cut 300000 bytes in: the retry asks for the rest only (Range from the
 * next byte, If-Match on the ETag) and the writer sees every byte once, in order. */
START_TEST(test_get_resumes_after_cut)
{
    struct gen g = {0, 1000000, 9, 1 << 20, 0};
    struct proxy *px;
    struct s3 *s3;
    struct s3_object o = {0};
    struct buf b = BUF_INIT;
    struct err err = {0};

    buf_init(&b);
    ck_assert_msg(s3_put_stream(S, "cut", gen_read, &g, &err) == 0, "%s", err.msg);
    px = proxy_start(0, 300000);
    s3 = via(px, 3);
    ck_assert_msg(s3_get(s3, "cut", 0, UINT64_MAX, collect, &b, &o, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(atomic_load(&px->requests), 2);
    ck_assert_uint_eq(b.len, 1000000);
    check_pattern(&b, 0, 9);
    ck_assert_uint_eq(o.size, 1000000);
    ck_assert_ptr_null(strcasestr(px->heads[0], "\r\nRange:"));
    ck_assert_msg(strcasestr(px->heads[1], "\r\nRange: bytes=") &&
                      strcasestr(px->heads[1], "\r\nIf-Match: \""),
                  "%s", px->heads[1]);
    s3_free(s3);
    proxy_stop(px);
    buf_release(&b);
}
END_TEST

/* Many threads on one client: the handle pool gives each request its own handle. */
struct worker_arg {
    int id;
    int failures;
};

static void *worker(void *p)
{
    struct worker_arg *a = p;
    struct buf b = BUF_INIT;
    char key[32], val[32];
    struct err err = {0};

    buf_init(&b);
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "t/%d/%d", a->id, i);
        snprintf(val, sizeof(val), "value %d %d", a->id, i);
        if (s3_put(S, key, val, strlen(val), &err) != 0 ||
            s3_get(S, key, 0, UINT64_MAX, collect, &b, NULL, &err) != 0 ||
            strcmp(b.data, val) != 0)
            a->failures++;
        buf_reset(&b);
    }
    buf_release(&b);
    return NULL;
}

START_TEST(test_threads_share_a_client)
{
    pthread_t t[6];
    struct worker_arg args[6];

    for (int i = 0; i < 6; i++) {
        args[i] = (struct worker_arg){i, 0};
        ck_assert_int_eq(pthread_create(&t[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(args[i].failures, 0);
    }
}
END_TEST

/* The keys come from the environment only: SHOEBOX_S3_* first, else AWS_*. */
START_TEST(test_keys_from_environment)
{
    const char *a, *s;

    unsetenv("SHOEBOX_S3_ACCESS_KEY");
    unsetenv("SHOEBOX_S3_SECRET_KEY");
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    config_s3_keys(&a, &s);
    ck_assert_ptr_null(a);
    ck_assert_ptr_null(s);
    setenv("AWS_ACCESS_KEY_ID", "aws-a", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "aws-s", 1);
    config_s3_keys(&a, &s);
    ck_assert_str_eq(a, "aws-a");
    ck_assert_str_eq(s, "aws-s");
    setenv("SHOEBOX_S3_ACCESS_KEY", "sb-a", 1);
    setenv("SHOEBOX_S3_SECRET_KEY", "sb-s", 1);
    config_s3_keys(&a, &s);
    ck_assert_str_eq(a, "sb-a");
    ck_assert_str_eq(s, "sb-s");
    setenv("SHOEBOX_S3_SECRET_KEY", "", 1);  /* empty counts as unset */
    config_s3_keys(&a, &s);
    ck_assert_str_eq(s, "aws-s");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("s3");
    TCase *tc = tcase_create("config");
    TCase *obj = tcase_create("objects");
    TCase *fail = tcase_create("failures");

    tcase_add_loop_test(tc, test_config_parse, 0, sizeof(cfg_rows) / sizeof(cfg_rows[0]));
    tcase_add_test(tc, test_config_keys_required);
    tcase_add_test(tc, test_keys_from_environment);
    suite_add_tcase(s, tc);
    tcase_add_checked_fixture(obj, setup, teardown);
    tcase_set_timeout(obj, 120);
    tcase_add_test(obj, test_small_round_trip);
    tcase_add_test(obj, test_ranges);
    tcase_add_test(obj, test_multipart_round_trip);
    tcase_add_test(obj, test_exactly_one_part_is_one_put);
    tcase_add_test(obj, test_stream_read_failure_leaves_nothing);
    tcase_add_test(obj, test_multipart_list_and_abort);
    tcase_add_test(obj, test_missing_key);
    tcase_add_test(obj, test_delete);
    tcase_add_test(obj, test_list_pages);
    tcase_add_test(obj, test_writer_stops);
    tcase_add_test(obj, test_threads_share_a_client);
    suite_add_tcase(s, obj);
    tcase_add_checked_fixture(fail, setup, teardown);
    tcase_set_timeout(fail, 120);
    tcase_add_test(fail, test_bad_secret);
    tcase_add_test(fail, test_bad_access_key);
    tcase_add_test(fail, test_retry_on_503);
    tcase_add_test(fail, test_503_until_retries_run_out);
    tcase_add_test(fail, test_get_resumes_after_cut);
    tcase_add_test(fail, test_gateway_back_within_retries);
    tcase_add_test(fail, test_gateway_down_fails_clearly);
    suite_add_tcase(s, fail);
    return s;
}

int main(void)
{
    const char *url = getenv("SHOEBOX_TEST_S3");
    SRunner *sr;
    int failed;

    access_key = getenv("SHOEBOX_TEST_S3_ACCESS_KEY");
    secret_key = getenv("SHOEBOX_TEST_S3_SECRET_KEY");
    rgw_dir = getenv("SHOEBOX_TEST_S3_DIR");
    if (!url || !*url || !access_key || !secret_key || !rgw_dir || !strchr(url, '?')) {
        fprintf(stderr, "SHOEBOX_TEST_S3 is not set (no Ceph here): skipped\n");
        return SKIP;
    }
    snprintf(base_url, sizeof(base_url), "%s", url);
    sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
