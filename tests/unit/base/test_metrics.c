/* Unit tests for base/metrics: the text format (escaping, values, histograms
 * cumulative with +Inf equal to _count), counting from threads, the page shared
 * with a child process. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/metrics.h"

struct escape_case {
    const char *in, *out;
};

static const struct escape_case escape_cases[] = {
    {"", ""},
    {"plain", "plain"},
    {"/photos/{id}/", "/photos/{id}/"},
    {"a\"b", "a\\\"b"},
    {"back\\slash", "back\\\\slash"},
    {"two\nlines", "two\\nlines"},
    {"\\\"\n", "\\\\\\\"\\n"},
    {"tab\tstays", "tab\tstays"},
    {"caf\xc3\xa9", "caf\xc3\xa9"}, /* UTF-8 passes through */
};

START_TEST(escape)
{
    const struct escape_case *c = &escape_cases[_i];
    struct buf b = BUF_INIT;

    buf_init(&b);
    metrics_escape(&b, c->in);
    ck_assert_str_eq(b.data, c->out);
    buf_release(&b);
}
END_TEST

struct sample_case {
    double value;
    const char *out;
};

static const struct sample_case sample_cases[] = {
    {0, "m{a=\"x\\\"y\",b=\"\"} 0\n"},
    {1, "m{a=\"x\\\"y\",b=\"\"} 1\n"},
    {18446744073709551615.0, "m{a=\"x\\\"y\",b=\"\"} 1.84467441e+19\n"},
    {9007199254740991.0, "m{a=\"x\\\"y\",b=\"\"} 9007199254740991\n"}, /* 2^53 - 1 */
    {0.25, "m{a=\"x\\\"y\",b=\"\"} 0.25\n"},
    {-3, "m{a=\"x\\\"y\",b=\"\"} -3\n"},
    {NAN, "m{a=\"x\\\"y\",b=\"\"} NaN\n"},
    {INFINITY, "m{a=\"x\\\"y\",b=\"\"} +Inf\n"},
    {-INFINITY, "m{a=\"x\\\"y\",b=\"\"} -Inf\n"},
};

START_TEST(sample)
{
    const struct sample_case *c = &sample_cases[_i];
    struct metrics_label l[] = {{"a", "x\"y"}, {"b", ""}};
    struct buf b = BUF_INIT;

    buf_init(&b);
    metrics_sample(&b, "m", l, 2, c->value);
    ck_assert_str_eq(b.data, c->out);
    buf_release(&b);
}
END_TEST

START_TEST(sample_without_labels)
{
    struct buf b = BUF_INIT;

    buf_init(&b);
    metrics_sample(&b, "shoebox_x_total", NULL, 0, 42);
    ck_assert_str_eq(b.data, "shoebox_x_total 42\n");
    buf_release(&b);
}
END_TEST

START_TEST(family_help_escaped)
{
    struct buf b = BUF_INIT;

    buf_init(&b);
    metrics_family(&b, "m", "counter", "a \\ and a\nnewline, \"quotes\" kept");
    ck_assert_str_eq(b.data,
                     "# HELP m a \\\\ and a\\nnewline, \"quotes\" kept\n# TYPE m counter\n");
    buf_release(&b);
}
END_TEST

/* The value of line `prefix... N` in text, or -1. */
static long long value_of(const char *text, const char *prefix)
{
    const char *p = strstr(text, prefix);

    if (!p)
        return -1;
    p = strchr(p, ' ');
    return p ? strtoll(p + 1, NULL, 10) : -1;
}

START_TEST(histogram_cumulative)
{
    static struct metrics_hist h; /* zeroed: empty */
    struct metrics_label l = {"stage", "media"};
    struct buf b = BUF_INIT;
    char line[128];
    long long prev = 0;

    /* One just under, one at and one just over each bound: a value equal to a
     * bound belongs to it (le is "less or equal"). */
    for (size_t i = 0; i < METRICS_BUCKETS; i++) {
        metrics_hist_observe(&h, metrics_bounds[i] * 0.99);
        metrics_hist_observe(&h, metrics_bounds[i]);
        metrics_hist_observe(&h, metrics_bounds[i] * 1.01);
    }
    metrics_hist_observe(&h, 0);
    metrics_hist_observe(&h, -1);  /* clock went back: counted as 0 */
    metrics_hist_observe(&h, NAN); /* counted as 0 */
    metrics_hist_observe(&h, 1e9); /* past every bound: only +Inf */
    buf_init(&b);
    metrics_hist_write(&b, "h", &l, 1, &h);
    for (size_t i = 0; i < METRICS_BUCKETS; i++) {
        snprintf(line, sizeof(line), "h_bucket{stage=\"media\",le=\"%g\"}", metrics_bounds[i]);
        long long v = value_of(b.data, line);
        /* 3 zero-ish values, then per bound: its under and at values, plus every
         * lower bound's three. */
        ck_assert_int_eq(v, 3 + 3 * (long long)i + 2);
        ck_assert_int_ge(v, prev);
        prev = v;
    }
    ck_assert_int_eq(value_of(b.data, "h_bucket{stage=\"media\",le=\"+Inf\"}"),
                     3 * METRICS_BUCKETS + 4);
    ck_assert_int_eq(value_of(b.data, "h_count{stage=\"media\"}"), 3 * METRICS_BUCKETS + 4);
    ck_assert_ptr_nonnull(strstr(b.data, "h_sum{stage=\"media\"} "));
    /* +Inf is the last bucket line, followed by _sum and _count. */
    ck_assert_ptr_nonnull(strstr(b.data, "le=\"+Inf\"} 52\nh_sum{stage=\"media\"} "));
    buf_release(&b);
}
END_TEST

START_TEST(histogram_empty_and_sum)
{
    static struct metrics_hist h;
    struct buf b = BUF_INIT;

    buf_init(&b);
    metrics_hist_write(&b, "h", NULL, 0, &h);
    ck_assert_ptr_nonnull(strstr(b.data, "h_bucket{le=\"0.0005\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "h_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n"));
    buf_reset(&b);
    metrics_hist_observe(&h, 0.25);
    metrics_hist_observe(&h, 1.5);
    metrics_hist_write(&b, "h", NULL, 0, &h);
    ck_assert_ptr_nonnull(strstr(b.data, "h_bucket{le=\"0.25\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "h_bucket{le=\"2.5\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "h_sum 1.75\nh_count 2\n"));
    buf_release(&b);
}
END_TEST

START_TEST(render_has_every_family_once)
{
    struct buf b = BUF_INIT;
    uint64_t was = metrics_get(METRICS_UPLOADS);

    metrics_add(METRICS_UPLOADS, 3);
    metrics_object_store(METRICS_OS_PUT, true, 0.2);
    metrics_object_store(METRICS_OS_PUT, false, 0.3);
    buf_init(&b);
    metrics_render(&b);
    const char *p = strstr(b.data, "# TYPE shoebox_files_total counter\n");
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_null(strstr(p + 1, "# TYPE shoebox_files_total "));
    ck_assert_int_eq(value_of(b.data, "\nshoebox_uploads_total "), (long long)was + 3);
    ck_assert_int_eq(value_of(b.data, "shoebox_object_store_requests_total{op=\"put\"}"), 2);
    ck_assert_int_eq(value_of(b.data, "shoebox_object_store_errors_total{op=\"put\"}"), 1);
    ck_assert_int_eq(
        value_of(b.data, "shoebox_object_store_request_duration_seconds_count{op=\"put\"}"), 2);
    ck_assert_ptr_nonnull(strstr(b.data,
                                 "# TYPE shoebox_file_processing_seconds histogram\n"
                                 "shoebox_file_processing_seconds_bucket{stage=\"media\","));
    metrics_object_store(METRICS_OS_NOPS, true, 1); /* out of range: ignored */
    buf_release(&b);
}
END_TEST

START_TEST(file_outcome_and_stages)
{
    struct buf b = BUF_INIT;
    uint64_t done = metrics_get(METRICS_FILES_DONE);

    metrics_file(METRICS_FILES_DONE, 120, 30, 5);
    ck_assert_uint_eq(metrics_get(METRICS_FILES_DONE), done + 1);
    buf_init(&b);
    metrics_render(&b);
    ck_assert_ptr_nonnull(
        strstr(b.data, "shoebox_file_processing_seconds_sum{stage=\"total\"} 0.155\n"));
    ck_assert_ptr_nonnull(
        strstr(b.data, "shoebox_file_processing_seconds_bucket{stage=\"media\",le=\"0.1\"} 0\n"));
    ck_assert_ptr_nonnull(
        strstr(b.data, "shoebox_file_processing_seconds_bucket{stage=\"media\",le=\"0.25\"} 1\n"));
    buf_release(&b);
}
END_TEST

#define THREADS 4
#define ADDS 100000

static void *adder(void *arg)
{
    (void)arg;
    for (int i = 0; i < ADDS; i++)
        metrics_add(METRICS_BYTES_RECEIVED, 1);
    return NULL;
}

START_TEST(threads_lose_nothing)
{
    pthread_t t[THREADS];
    uint64_t was = metrics_get(METRICS_BYTES_RECEIVED);

    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, adder, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    ck_assert_uint_eq(metrics_get(METRICS_BYTES_RECEIVED), was + THREADS * ADDS);
}
END_TEST

/* The child execs nothing here, but maps the page again from the descriptor,
 * exactly as an exec'd worker does, and counts into it. */
START_TEST(shared_with_a_child)
{
    struct err err = {0};
    uint64_t before = 0;
    int fd, status;
    pid_t pid;

    metrics_add(METRICS_LEASES_EXPIRED, 7);
    before = metrics_get(METRICS_LEASES_EXPIRED);
    fd = metrics_share(&err);
    ck_assert_msg(fd >= 0, "%s", err.msg);
    ck_assert_uint_eq(metrics_get(METRICS_LEASES_EXPIRED), before); /* counts came along */
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct err cerr = {0};
        if (metrics_attach(fd, &cerr))
            _exit(2);
        close(fd);
        metrics_add(METRICS_LEASES_EXPIRED, 5);
        metrics_file(METRICS_FILES_FAILED, 1, 2, 3);
        _exit(0);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_uint_eq(metrics_get(METRICS_LEASES_EXPIRED), before + 5);
    ck_assert_uint_ge(metrics_get(METRICS_FILES_FAILED), 1);
    close(fd);
}
END_TEST

START_TEST(attach_refuses_other_descriptors)
{
    struct err err = {0};
    int fd = memfd_create("not-metrics", 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(metrics_attach(fd, &err), -1); /* empty */
    ck_assert_ptr_nonnull(strstr(err.msg, "not a metrics page"));
    close(fd);
    ck_assert_int_eq(metrics_attach(fd, &err), -1); /* closed */
    ck_assert_ptr_nonnull(strstr(err.msg, "cannot use metrics descriptor"));
    metrics_add(METRICS_UPLOADS, 1); /* still counting, privately */
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, escape, 0, sizeof(escape_cases) / sizeof(escape_cases[0]));
    tcase_add_loop_test(tc, sample, 0, sizeof(sample_cases) / sizeof(sample_cases[0]));
    tcase_add_test(tc, sample_without_labels);
    tcase_add_test(tc, family_help_escaped);
    tcase_add_test(tc, histogram_cumulative);
    tcase_add_test(tc, histogram_empty_and_sum);
    tcase_add_test(tc, render_has_every_family_once);
    tcase_add_test(tc, file_outcome_and_stages);
    tcase_add_test(tc, threads_lose_nothing);
    tcase_add_test(tc, shared_with_a_child);
    tcase_add_test(tc, attach_refuses_other_descriptors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(suite());
    int failed;

    srunner_run_all(r, CK_NORMAL);
    failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
