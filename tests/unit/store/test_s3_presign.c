/* Unit tests for the presigner of src/store/s3.c (s3_presign_query, s3_presign_get):
 * pure functions, no server. The first case is AWS's own published example of query
 * string signing ("Authenticating Requests: Using Query Parameters", GET /test.txt);
 * the second, with response-* parameters, was computed by an independent Python
 * implementation (hmac, hashlib, urllib.parse.quote) that also reproduces AWS's example.
 * The presigned URLs are checked against a real RADOS Gateway by
 * tests/integration/test_media_url.py. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/s3.h"

#define AWS_ACCESS "AKIAIOSFODNN7EXAMPLE"
#define AWS_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define T_20130524 1369353600 /* 2013-05-24T00:00:00Z */

START_TEST(test_aws_example)
{
    char out[1024];
    struct err err = {0};

    ck_assert_int_eq(s3_presign_query("GET", "examplebucket.s3.amazonaws.com", "/test.txt",
                                      "us-east-1", AWS_ACCESS, AWS_SECRET, T_20130524, 86400,
                                      NULL, 0, out, sizeof(out), &err),
                     0);
    ck_assert_str_eq(out, "X-Amz-Algorithm=AWS4-HMAC-SHA256"
                          "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3"
                          "%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400"
                          "&X-Amz-SignedHeaders=host&X-Amz-Signature="
                          "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}
END_TEST

static const char *DISPOSITION = "attachment; filename=\"IMG 1.jpg\"; filename*=UTF-8''IMG%201.jpg";
static const char *EXPECTED_EXTRA =
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2F"
    "eu-west-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T010203Z&X-Amz-Expires=300"
    "&X-Amz-SignedHeaders=host&response-content-disposition=attachment%3B%20filename%3D%22"
    "IMG%201.jpg%22%3B%20filename%2A%3DUTF-8%27%27IMG%25201.jpg"
    "&response-content-type=image%2Fjpeg"
    "&X-Amz-Signature=412292c753967754f5dee86c177e405d4e66ce0529c3e36bcc8e6adfd8eceb99";

/* Extra parameters are encoded and sorted among the X-Amz-* ones (byte order: 'X' < 'r'),
 * whatever order they come in. */
START_TEST(test_extra_params_sorted_and_encoded)
{
    struct s3_param extra[] = {
        {"response-content-type", "image/jpeg"},
        {"response-content-disposition", DISPOSITION},
    };
    char out[1024];
    struct err err = {0};

    ck_assert_int_eq(s3_presign_query("GET", "127.0.0.1:7480", "/photos/pre%20fix/o/ab/abcd",
                                      "eu-west-1", AWS_ACCESS, AWS_SECRET, T_20130524 + 3723,
                                      300, extra, 2, out, sizeof(out), &err),
                     0);
    ck_assert_str_eq(out, EXPECTED_EXTRA);
}
END_TEST

START_TEST(test_expiry_bounds)
{
    char out[1024];
    struct err err = {0};

    ck_assert_int_eq(s3_presign_query("GET", "h", "/b/k", "us-east-1", AWS_ACCESS, AWS_SECRET,
                                      T_20130524, 0, NULL, 0, out, sizeof(out), &err),
                     -1);
    ck_assert_int_eq(err.cls, ERR_PERMANENT);
    ck_assert_int_eq(s3_presign_query("GET", "h", "/b/k", "us-east-1", AWS_ACCESS, AWS_SECRET,
                                      T_20130524, S3_PRESIGN_MAX_SECONDS + 1, NULL, 0, out,
                                      sizeof(out), &err),
                     -1);
    ck_assert_int_eq(s3_presign_query("GET", "h", "/b/k", "us-east-1", AWS_ACCESS, AWS_SECRET,
                                      T_20130524, S3_PRESIGN_MAX_SECONDS, NULL, 0, out,
                                      sizeof(out), &err),
                     0);
}
END_TEST

START_TEST(test_too_small_buffer)
{
    char out[64];
    struct err err = {0};

    ck_assert_int_eq(s3_presign_query("GET", "h", "/b/k", "us-east-1", AWS_ACCESS, AWS_SECRET,
                                      T_20130524, 60, NULL, 0, out, sizeof(out), &err),
                     -1);
    ck_assert(strstr(err.msg, "longer") != NULL);
}
END_TEST

static struct s3 *client(const char *url)
{
    struct s3_config cfg;
    struct err err = {0};
    struct s3 *s3 = NULL;

    ck_assert_msg(s3_config_parse(&cfg, url, AWS_ACCESS, AWS_SECRET, &err) == 0, "%s", err.msg);
    ck_assert_msg(s3_open(&cfg, &s3, &err) == 0, "%s", err.msg);
    return s3;
}

/* The whole URL: endpoint, path-style bucket, the prefix (encoded once, '/' kept) before
 * the key, then the same query s3_presign_query gives for that host and path. */
START_TEST(test_get_url_path_style_with_prefix)
{
    struct s3 *s3 = client("s3://photos/pre%20fix?endpoint=http://127.0.0.1:7480&region=eu-west-1");
    char out[2048];
    struct err err = {0};
    const char *want = "http://127.0.0.1:7480/photos/pre%20fix/o/ab/abcd?";

    ck_assert_int_eq(s3_presign_get(s3, "o/ab/abcd", T_20130524 + 3723, 300, "image/jpeg",
                                    DISPOSITION, out, sizeof(out), &err),
                     0);
    ck_assert_int_eq(strncmp(out, want, strlen(want)), 0);
    ck_assert_str_eq(out + strlen(want), EXPECTED_EXTRA);
    s3_free(s3);
}
END_TEST

/* The Host a client sends for a default port has no port: the signature is over that. */
START_TEST(test_get_default_port_not_signed)
{
    struct s3 *a = client("s3://bkt?endpoint=http://h.example:80");
    struct s3 *b = client("s3://bkt?endpoint=http://h.example");
    char ua[1024], ub[1024];
    struct err err = {0};

    ck_assert_int_eq(s3_presign_get(a, "k", T_20130524, 60, NULL, NULL, ua, sizeof(ua), &err), 0);
    ck_assert_int_eq(s3_presign_get(b, "k", T_20130524, 60, NULL, NULL, ub, sizeof(ub), &err), 0);
    ck_assert_str_eq(strstr(ua, "X-Amz-Signature="), strstr(ub, "X-Amz-Signature="));
    s3_free(a);
    s3_free(b);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("s3_presign");
    TCase *tc = tcase_create("presign");

    tcase_add_test(tc, test_aws_example);
    tcase_add_test(tc, test_extra_params_sorted_and_encoded);
    tcase_add_test(tc, test_expiry_bounds);
    tcase_add_test(tc, test_too_small_buffer);
    tcase_add_test(tc, test_get_url_path_style_with_prefix);
    tcase_add_test(tc, test_get_default_port_not_signed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
