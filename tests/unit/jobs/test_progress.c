/* Unit tests for jobs/progress: status, phase, percent and batch counts from counters. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/progress.h"

struct row {
    const char *what;
    struct store_upload u;
    const char *status, *phase;
    int64_t total_batches;
    double percent;
};

#define T0 1000000
static const struct row rows[] = {
    {"receiving, nothing yet", {.open_requests = 1, .batch_size = 15}, "processing", "receiving", 0, 0},
    {"announced 31, 10 received",
     {.open_requests = 0, .expected = 31, .total = 10, .queued_files = 10, .batch_size = 15},
     "processing", "receiving", 3, 0},
    {"arrived, waiting for first batch", {.total = 16, .queued_files = 16, .batch_size = 15},
     "processing", "queued", 2, 0},
    {"batch 1 of 2 running",
     {.total = 16, .queued_files = 1, .current_batch = 1, .processed = 5, .uploaded = 5,
      .batch_size = 15},
     "processing", "processing", 2, 100.0 * 5 / 16},
    {"between batches (delay)",
     {.total = 16, .queued_files = 1, .current_batch = 1, .processed = 15, .uploaded = 15,
      .batch_size = 15},
     "processing", "queued", 2, 100.0 * 15 / 16},
    {"done with one failure",
     {.total = 16, .current_batch = 2, .processed = 16, .uploaded = 14, .failed = 1,
      .duplicates = 1, .batch_size = 15, .finished_at = T0 + 5},
     "completed", "done", 2, 100},
    {"every file failed",
     {.total = 3, .current_batch = 1, .processed = 3, .failed = 3, .batch_size = 15,
      .finished_at = T0 + 5},
     "failed", "done", 1, 100},
    {"whole upload failed", {.total = 3, .queued_files = 3, .batch_size = 15, .fatal = "disk full"}, "failed", "done",
     1, 0},
    {"finished with no files", {.batch_size = 15, .finished_at = T0 + 1}, "failed", "done", 0, 100},
};

START_TEST(table)
{
    const struct row *r = &rows[_i];
    struct store_upload u = r->u;
    struct progress p;

    u.created_at = T0;
    progress_from_upload(&u, T0 + 1000, &p);
    ck_assert_msg(!strcmp(p.status, r->status), "%s: status %s", r->what, p.status);
    ck_assert_msg(!strcmp(p.phase, r->phase), "%s: phase %s", r->what, p.phase);
    ck_assert_msg(p.total_batches == r->total_batches, "%s: total_batches %lld", r->what,
                  (long long)p.total_batches);
    ck_assert_msg(p.percent > r->percent - 1e-9 && p.percent < r->percent + 1e-9,
                  "%s: percent %f", r->what, p.percent);
}
END_TEST

START_TEST(eta)
{
    struct store_upload u = {.created_at = T0, .total = 10, .processed = 5, .current_batch = 1,
                             .batch_size = 15};
    struct progress p;

    progress_from_upload(&u, T0 + 10000, &p);  /* 5 files in 10 s: 5 more take 10 s */
    ck_assert_int_eq(p.eta_seconds, 10);
    u.processed = 0;
    progress_from_upload(&u, T0 + 10000, &p);
    ck_assert_int_eq(p.eta_seconds, -1);
}
END_TEST

START_TEST(idle)
{
    struct progress p;

    progress_idle(&p);
    ck_assert_str_eq(p.status, "idle");
    ck_assert_int_eq(p.total, 0);
    ck_assert_int_eq(p.current_batch, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("progress");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, table, 0, sizeof(rows) / sizeof(rows[0]));
    tcase_add_test(tc, eta);
    tcase_add_test(tc, idle);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
