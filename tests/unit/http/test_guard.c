/* Unit tests for src/http/guard.c with real sockets (socketpair): deadlines
 * per phase, the waiting cap, and that a cut connection's peer sees the end. */
#include "http/guard.h"

#include <check.h>
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/timeutil.h"

static const struct guard_opts opts = {
    .wait_cap = 3, .header_ms = 10000, .body_ms = 30000, .body_rate = 1000, .no_thread = true};

struct pair {
    int ours, peer;
};

static struct pair pair_new(void)
{
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    return (struct pair){sv[0], sv[1]};
}

static void pair_close(struct pair p)
{
    close(p.ours);
    close(p.peer);
}

/* Did our end get shut down? The peer then reads end of file. */
static bool was_cut(struct pair p)
{
    char c;

    return recv(p.peer, &c, 1, MSG_DONTWAIT) == 0;
}

START_TEST(test_header_deadline_cuts_a_waiting_connection)
{
    struct guard *g;
    struct pair p = pair_new();
    int64_t t0 = time_mono_ms();

    ck_assert_int_eq(guard_new(&opts, &g, NULL), 0);
    struct guard_conn *c = guard_open(g, p.ours);
    ck_assert_uint_eq(guard_sweep(g, t0 + opts.header_ms - 1000), 0);
    ck_assert(!was_cut(p));
    ck_assert_uint_eq(guard_sweep(g, time_mono_ms() + opts.header_ms), 1);
    ck_assert(was_cut(p));
    ck_assert_uint_eq(guard_sweep(g, time_mono_ms() + opts.header_ms), 0);  /* once */
    guard_close(g, c);
    ck_assert_uint_eq(guard_open_count(g), 0);
    guard_free(g);
    pair_close(p);
}
END_TEST

START_TEST(test_handled_has_no_deadline_and_done_restarts_waiting)
{
    struct guard *g;
    struct pair p = pair_new();

    ck_assert_int_eq(guard_new(&opts, &g, NULL), 0);
    struct guard_conn *c = guard_open(g, p.ours);
    guard_request_begin(g, c, false);
    ck_assert_uint_eq(guard_waiting(g), 0);
    ck_assert_uint_eq(guard_sweep(g, time_mono_ms() + 1000000), 0);
    ck_assert(!was_cut(p));
    guard_request_done(g, c);
    ck_assert_uint_eq(guard_waiting(g), 1);
    ck_assert_uint_eq(guard_sweep(g, time_mono_ms() + opts.header_ms - 1000), 0);
    ck_assert_uint_eq(guard_sweep(g, time_mono_ms() + opts.header_ms), 1);
    ck_assert(was_cut(p));
    guard_close(g, c);
    guard_free(g);
    pair_close(p);
}
END_TEST

START_TEST(test_body_deadline_moves_with_bytes)
{
    struct guard *g;
    struct pair p = pair_new();

    ck_assert_int_eq(guard_new(&opts, &g, NULL), 0);
    struct guard_conn *c = guard_open(g, p.ours);
    guard_request_begin(g, c, true);
    int64_t t0 = time_mono_ms();
    /* 5000 bytes at 1000 B/s buy 5 s more than the 30 s grace */
    guard_body_progress(g, c, 5000);
    ck_assert_uint_eq(guard_sweep(g, t0 + opts.body_ms + 4000), 0);
    ck_assert(!was_cut(p));
    ck_assert_uint_eq(guard_sweep(g, time_mono_ms() + opts.body_ms + 5000), 1);
    ck_assert(was_cut(p));
    guard_close(g, c);
    guard_free(g);
    pair_close(p);
}
END_TEST

START_TEST(test_waiting_cap_pushes_out_the_oldest)
{
    struct guard *g;
    struct pair p[5];
    struct guard_conn *c[5];

    ck_assert_int_eq(guard_new(&opts, &g, NULL), 0);
    for (int i = 0; i < 5; i++) {
        p[i] = pair_new();
        c[i] = guard_open(g, p[i].ours);
        if (i == 1)
            guard_request_begin(g, c[i], false);  /* busy: not a waiter */
    }
    /* cap 3: waiters 0, 2, 3 filled it; opening 4 pushed out 0, the oldest */
    ck_assert(was_cut(p[0]));
    for (int i = 1; i < 5; i++)
        ck_assert_msg(!was_cut(p[i]), "connection %d cut", i);
    ck_assert_uint_eq(guard_waiting(g), 3);
    ck_assert_uint_eq(guard_open_count(g), 4);
    /* a pushed-out connection stays out: its later calls change nothing */
    guard_request_done(g, c[0]);
    ck_assert_uint_eq(guard_waiting(g), 3);
    for (int i = 0; i < 5; i++) {
        guard_close(g, c[i]);
        pair_close(p[i]);
    }
    ck_assert_uint_eq(guard_open_count(g), 0);
    guard_free(g);
}
END_TEST

START_TEST(test_sweeper_thread_starts_and_stops)
{
    struct guard *g;
    struct guard_opts o = opts;

    o.no_thread = false;
    ck_assert_int_eq(guard_new(&o, &g, NULL), 0);
    guard_free(g);
    guard_free(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("guard");
    TCase *tc = tcase_create("guard");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_header_deadline_cuts_a_waiting_connection);
    tcase_add_test(tc, test_handled_has_no_deadline_and_done_restarts_waiting);
    tcase_add_test(tc, test_body_deadline_moves_with_bytes);
    tcase_add_test(tc, test_waiting_cap_pushes_out_the_oldest);
    tcase_add_test(tc, test_sweeper_thread_starts_and_stops);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
