/* Unit tests for base/log: client data is quoted, escaped and cut; buffered
 * lines wait, keep their order and are not lost at exit. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"

START_TEST(quote_plain)
{
    ck_assert_str_eq(LOG_Q("IMG_0001.JPG"), "\"IMG_0001.JPG\"");
    ck_assert_str_eq(LOG_Q(""), "\"\"");
    ck_assert_str_eq(LOG_Q(NULL), "\"\"");
}
END_TEST

START_TEST(quote_escapes)
{
    /* A forged log line must stay inside one value. */
    ck_assert_str_eq(LOG_Q("a\nlevel=error x=\"y\""), "\"a\\x0alevel=error x=\\\"y\\\"\"");
    ck_assert_str_eq(LOG_Q("back\\slash\t"), "\"back\\\\slash\\x09\"");
}
END_TEST

START_TEST(quote_cut)
{
    char longer[LOG_VALUE_MAX + 50];
    const char *q;

    memset(longer, 'a', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    q = LOG_Q(longer);
    ck_assert_uint_eq(strlen(q), LOG_VALUE_MAX + 2 + 3);  /* quotes and "..." */
    ck_assert(strstr(q, "...\"") != NULL);
}
END_TEST

START_TEST(levels)
{
    log_init(LOG_WARN, "jobs,http");
    ck_assert(!log_enabled(LOG_INFO, "store"));
    ck_assert(log_enabled(LOG_ERROR, "store"));
    ck_assert(log_enabled(LOG_DEBUG, "http"));
    ck_assert(!log_enabled(LOG_DEBUG, "htt"));
    log_init(LOG_INFO, "all");
    ck_assert(log_enabled(LOG_DEBUG, "anything"));
    log_init(LOG_INFO, NULL);
    ck_assert(!log_enabled(LOG_DEBUG, "jobs"));
}
END_TEST

/* stderr into a fresh temporary file (the test runs in its own process). */
static FILE *capture(void)
{
    FILE *f = tmpfile();

    ck_assert_ptr_nonnull(f);
    ck_assert_int_ne(dup2(fileno(f), STDERR_FILENO), -1);
    return f;
}

/* What the file holds now (static buffer). */
static const char *captured(FILE *f)
{
    static char text[65536];
    size_t n;

    rewind(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    return text;
}

START_TEST(buffered_waits_and_keeps_order)
{
    FILE *f = capture();
    const char *t, *a, *b, *w;

    log_init(LOG_INFO, NULL);
    log_info_buffered("http", "request", "n=%d", 1);
    log_info_buffered("http", "request", "n=%d", 2);
    ck_assert_str_eq(captured(f), "");  /* nothing written yet */
    log_warn("http", "other", "n=%d", 3);
    t = captured(f);
    a = strstr(t, "event=request n=1\n");
    b = strstr(t, "event=request n=2\n");
    w = strstr(t, "level=warn comp=http event=other n=3\n");
    ck_assert(a && b && w);
    ck_assert(a < b && b < w);
    log_info_buffered("http", "request", "n=%d", 4);
    log_flush();
    ck_assert_ptr_nonnull(strstr(captured(f), "event=request n=4\n"));
    fclose(f);
}
END_TEST

START_TEST(buffered_full_writes_whole_lines)
{
    FILE *f = capture();
    const char *t;
    int lines = 0;

    log_init(LOG_INFO, NULL);
    /* more than LOG_BUFFER_BYTES of lines: the first ones go out, whole */
    for (int i = 0; i < 400; i++)
        log_info_buffered("http", "request", "n=%d pad=%s", i, "xxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    t = captured(f);
    ck_assert_ptr_nonnull(strstr(t, "n=0 pad="));
    for (const char *p = t; *p; p++)
        lines += *p == '\n';
    ck_assert_int_gt(lines, 0);
    ck_assert_int_lt(lines, 400);
    ck_assert(t[strlen(t) - 1] == '\n');
    fclose(f);
}
END_TEST

START_TEST(buffered_written_at_exit_once)
{
    FILE *f = capture();
    const char *t;
    pid_t pid;
    int status;

    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        log_init(LOG_INFO, NULL);
        log_info_buffered("http", "request", "n=%d", 7);
        /* a forked child (a worker before exec) does not write the line again */
        pid_t child = fork();
        if (child == 0)
            exit(0);
        waitpid(child, NULL, 0);
        exit(0);  /* atexit writes the pending line */
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    t = captured(f);
    ck_assert_ptr_nonnull(strstr(t, "event=request n=7\n"));
    ck_assert_ptr_null(strstr(strstr(t, "n=7\n") + 1, "n=7\n"));
    fclose(f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, quote_plain);
    tcase_add_test(tc, quote_escapes);
    tcase_add_test(tc, quote_cut);
    tcase_add_test(tc, levels);
    tcase_add_test(tc, buffered_waits_and_keeps_order);
    tcase_add_test(tc, buffered_full_writes_whole_lines);
    tcase_add_test(tc, buffered_written_at_exit_once);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
