/*
 * Unit tests for src/http/metrics_http.c: requests counted by route row and
 * status, the route table fitting its slots, and the listener answering
 * GET /metrics (and nothing else) on a loopback port.
 */
#include "http/metrics_http.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "fake_store.h"

static const struct route *row(unsigned method, const char *pattern)
{
    size_t n;
    const struct route *t = route_table(&n);

    for (size_t i = 0; i < n; i++)
        if ((t[i].methods & method) && !strcmp(t[i].pattern, pattern))
            return &t[i];
    ck_abort_msg("no route %s", pattern);
    return NULL;
}

static char *render(void)
{
    struct buf b = BUF_INIT;

    buf_init(&b);
    metrics_http_render(NULL, &b);
    return buf_detach(&b, NULL);
}

START_TEST(table_fits)
{
    size_t n;

    route_table(&n);
    ck_assert_uint_lt(n, METRICS_HTTP_ROUTE_SLOTS); /* one slot stays for "unmatched" */
}
END_TEST

START_TEST(counted_by_route_and_status)
{
    char *text;

    metrics_http_request(row(HTTP_GET, "/healthz"), 200, 0.0001);
    metrics_http_request(row(HTTP_GET, "/healthz"), 200, 0.2);
    metrics_http_request(row(HTTP_GET, "/healthz"), 503, 0.01);
    metrics_http_request(row(HTTP_POST, "/photos/upload/"), 202, 1.0);
    metrics_http_request(NULL, 404, 0.001);
    metrics_http_request(NULL, 700, 0.001); /* out of range: code 0 */
    text = render();
    ck_assert_ptr_nonnull(strstr(
        text, "shoebox_http_requests_total{method=\"GET\",route=\"/healthz\",code=\"200\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(
        text, "shoebox_http_requests_total{method=\"GET\",route=\"/healthz\",code=\"503\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "shoebox_http_requests_total{method=\"POST\","
                                       "route=\"/photos/upload/\",code=\"202\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "shoebox_http_requests_total{method=\"other\","
                                       "route=\"unmatched\",code=\"404\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "shoebox_http_requests_total{method=\"other\","
                                       "route=\"unmatched\",code=\"0\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "shoebox_http_request_duration_seconds_bucket{method="
                                       "\"GET\",route=\"/healthz\",le=\"0.0005\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "shoebox_http_request_duration_seconds_count{method="
                                       "\"GET\",route=\"/healthz\"} 3\n"));
    /* A route never asked for has no series. */
    ck_assert_ptr_null(strstr(text, "route=\"/logout\""));
    /* No store: no queue family. */
    ck_assert_ptr_null(strstr(text, "shoebox_queue_files"));
    free(text);
}
END_TEST

/* One request over a fresh connection; the whole answer into out. */
static void fetch(int port, const char *method, const char *path, struct buf *out)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    char req[256], chunk[4096];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ssize_t n;

    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", method,
             path);
    ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        buf_add(out, chunk, (size_t)n);
    close(fd);
}

START_TEST(listener)
{
    struct store *st = fake_store_new();
    struct metrics_server *s = NULL;
    struct err err = {0};
    struct buf b = BUF_INIT;

    ck_assert_msg(metrics_serve_start("127.0.0.1:0", st, &s, &err) == 0, "%s", err.msg);
    ck_assert_int_gt(metrics_serve_port(s), 0);
    buf_init(&b);
    fetch(metrics_serve_port(s), "GET", "/metrics", &b);
    ck_assert_msg(!strncmp(b.data, "HTTP/1.1 200", 12), "%s", b.data);
    ck_assert_ptr_nonnull(strstr(b.data, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
    ck_assert_ptr_nonnull(strstr(b.data, "# TYPE shoebox_files_total counter\n"));
    buf_reset(&b);
    fetch(metrics_serve_port(s), "GET", "/", &b);
    ck_assert_msg(!strncmp(b.data, "HTTP/1.1 404", 12), "%s", b.data);
    buf_reset(&b);
    fetch(metrics_serve_port(s), "DELETE", "/metrics", &b);
    ck_assert_msg(!strncmp(b.data, "HTTP/1.1 405", 12), "%s", b.data);
    ck_assert_ptr_nonnull(strstr(b.data, "Allow: GET, HEAD"));
    buf_release(&b);
    metrics_serve_stop(s);
    metrics_serve_stop(NULL);
    fake_store_free(st);
}
END_TEST

START_TEST(listener_bad_address)
{
    struct metrics_server *s = (struct metrics_server *)1;
    struct err err = {0};

    ck_assert_int_eq(metrics_serve_start("nowhere", NULL, &s, &err), -1);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(err.msg, "nowhere"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics_http");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    log_init(LOG_ERROR, NULL);
    tcase_add_test(tc, table_fits);
    tcase_add_test(tc, counted_by_route_and_status);
    tcase_add_test(tc, listener);
    tcase_add_test(tc, listener_bad_address);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
