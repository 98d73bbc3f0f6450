/*
 * test_media_nomem: media_exit_on_no_memory. A GLib allocation that fails
 * (g_malloc's "failed to allocate N bytes", which GLib answers with abort())
 * ends the process with the status given, after one line on stderr; other
 * fatal GLib messages still abort; without the handler the same allocation
 * dies of a signal (GLib's default, what a worker did before). Each case runs
 * in a child forked from a process without threads (libvips not started).
 * Under AddressSanitizer its allocator is told to return NULL for an
 * impossible size (as malloc does) rather than report it.
 */
#include <check.h>
#include <fcntl.h>
#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/sanitizer.h"
#include "media/media.h"

#define STATUS 86
/* More than any machine has: malloc fails at once, whatever the limits. */
#define HUGE_BYTES ((gsize)1 << 60)

enum act { ALLOC, OTHER_ERROR };

#if UNDER_ASAN
/* ASan reads this at start; ASAN_OPTIONS from the environment still wins. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}
#endif

/* The child's end: its exit status (or signal) and up to cap bytes of its stderr. */
static int run_child(bool handler, enum act act, char *out, size_t cap)
{
    int fds[2], status = 0;
    size_t got = 0;
    ssize_t n;
    pid_t pid;

    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        if (handler)
            media_exit_on_no_memory(STATUS);
        if (act == ALLOC)
            g_free(g_malloc(HUGE_BYTES));
        else
            g_error("something else went wrong");
        _exit(0);
    }
    close(fds[1]);
    while (got + 1 < cap && (n = read(fds[0], out + got, cap - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    close(fds[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return status;
}

START_TEST(test_failed_allocation_exits_with_status)
{
    char err[1024];
    int status = run_child(true, ALLOC, err, sizeof(err));

    ck_assert_msg(WIFEXITED(status), "status %d: %s", status, err);
    ck_assert_int_eq(WEXITSTATUS(status), STATUS);
    ck_assert_ptr_nonnull(strstr(err, "level=fatal comp=media event=no_memory msg=\"GLib: "));
    ck_assert_ptr_nonnull(strstr(err, "failed to allocate 1152921504606846976 bytes\"\n"));
}
END_TEST

START_TEST(test_other_fatal_message_still_aborts)
{
    char err[1024];
    int status = run_child(true, OTHER_ERROR, err, sizeof(err));

    ck_assert_msg(WIFSIGNALED(status), "status %d: %s", status, err);
    ck_assert_ptr_nonnull(strstr(err, "something else went wrong"));
}
END_TEST

START_TEST(test_without_handler_glib_aborts)
{
    char err[1024];
    int status = run_child(false, ALLOC, err, sizeof(err));

    ck_assert_msg(WIFSIGNALED(status), "status %d: %s", status, err);
    ck_assert_ptr_nonnull(strstr(err, "failed to allocate"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("media_nomem");
    TCase *tc = tcase_create("glib");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_failed_allocation_exits_with_status);
    tcase_add_test(tc, test_other_fatal_message_still_aborts);
    tcase_add_test(tc, test_without_handler_glib_aborts);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
