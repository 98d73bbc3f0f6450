/* Unit tests for base/config: the option table, environment and flag parsing. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"

static int parse(struct config *c, enum config_cmd cmd, int argc, const char *const *argv, int *npos,
                 bool *help, struct err *err)
{
    static char *copy[16];
    for (int i = 0; i < argc; i++)
        copy[i] = (char *)argv[i];
    config_defaults(c);
    return config_parse(c, cmd, argc, copy, npos, help, err);
}

START_TEST(defaults)
{
    struct config c;
    char db[2048];

    config_defaults(&c);
    ck_assert_str_eq(c.listen, "127.0.0.1:8080");
    ck_assert_str_eq(c.data_dir, "./data");
    ck_assert_int_eq(c.session_age, 3600);
    ck_assert_int_eq(c.batch_size, 15);
    ck_assert_double_eq_tol(c.batch_delay, 0.5, 1e-9);
    ck_assert_str_eq(c.batch_pacing, "yield"); /* the delay lends the workers out */
    ck_assert_int_eq(c.max_file_size, 100LL * 1024 * 1024);
    ck_assert_int_eq(c.workers, -1); /* one per core; 0 = a web-only node */
    ck_assert_int_eq(c.db_pool, 0);
    config_db_location(&c, db, sizeof(db));
    ck_assert_str_eq(db, "./data/shoebox.db");
}
END_TEST

struct flag_case {
    const char *args[4];
    int argc;
    int ok;
};

static const struct flag_case flag_cases[] = {
    {{"--listen", "0.0.0.0:9000"}, 2, 0},
    {{"--listen=127.0.0.1:1"}, 1, 0},
    {{"--workers=-1"}, 1, 0},            /* one per core */
    {{"--workers", "0"}, 2, 0},          /* a web-only node */
    {{"--workers=-2"}, 1, -1},           /* under the minimum */
    {{"--batch-size", "0"}, 2, -1},      /* under the minimum */
    {{"--batch-size", "1"}, 2, 0},       /* the minimum */
    {{"--batch-size", "1000"}, 2, 0},    /* the maximum */
    {{"--batch-size", "1001"}, 2, -1},   /* over it */
    {{"--batch-size", "15x"}, 2, -1},    /* trailing garbage */
    {{"--batch-delay", "0"}, 2, 0},      /* 0 allowed */
    {{"--batch-delay", "-0.1"}, 2, -1},
    {{"--batch-pacing", "strict"}, 2, 0},  /* the seed's pause */
    {{"--batch-pacing=yield"}, 1, 0},
    {{"--batch-pacing", "fast"}, 2, -1},
    {{"--max-file-size", "100MB"}, 2, 0},
    {{"--max-file-size", "12 MB"}, 2, -1},
    {{"--worker-memory", "256M"}, 2, 0},  /* LIMIT_WORKER_MEMORY_MIN */
    {{"--worker-memory", "255M"}, 2, -1},
    {{"--session-age"}, 1, -1},          /* missing value */
    {{"--no-such-option", "1"}, 2, -1},
    {{"--secure-cookies"}, 1, 0},        /* boolean without value */
    {{"--secure-cookies=maybe"}, 1, -1},
    {{"--password-stdin"}, 1, -1},       /* a user option, not a serve option */
    {{"--log-level", "loud"}, 2, -1},
    {{"--db-pool", "0"}, 2, 0},          /* 0 = by command */
    {{"--db-pool", "256"}, 2, 0},        /* SQL_POOL_MAX */
    {{"--db-pool", "257"}, 2, -1},
    {{"--db-pool", "-1"}, 2, -1},
    {{"--media-url", "https://cdn.example/photos"}, 2, 0},
    {{"--media-url=http://127.0.0.1:9000/b"}, 1, 0},
    {{"--media-url", "cdn.example/photos"}, 2, -1},  /* not a URL a browser follows */
    {{"--media-url", "javascript:alert(1)"}, 2, -1},
};

START_TEST(flags_table)
{
    const struct flag_case *fc = &flag_cases[_i];
    struct config c;
    struct err err = {0};
    int npos;
    bool help;

    int rc = parse(&c, CMD_SERVE, fc->argc, fc->args, &npos, &help, &err);
    ck_assert_msg(rc == fc->ok, "case %d (%s): rc %d, %s", _i, fc->args[0], rc, err.msg);
    if (rc)
        ck_assert_msg(err.msg[0] != '\0', "an error needs a message");
}
END_TEST

/* A size out of range is said in sizes, not in bytes as a float. */
START_TEST(size_range_in_words)
{
    const char *args[] = {"--worker-memory", "128M"};
    struct config c;
    struct err err = {0};
    int npos;
    bool help;

    ck_assert_int_eq(parse(&c, CMD_SERVE, 2, args, &npos, &help, &err), -1);
    ck_assert_str_eq(err.msg, "--worker-memory must be between 256 MB and 1 TB, not '128M'");
}
END_TEST

START_TEST(values_land)
{
    const char *args[] = {"--listen", "127.0.0.1:9", "--batch-delay=0", "--max-file-size",
                          "1k", "user", "add", "--secure-cookies", "bob"};
    struct config c;
    struct err err = {0};
    int npos;
    bool help;
    char *copy[9];

    for (int i = 0; i < 9; i++)
        copy[i] = (char *)args[i];
    config_defaults(&c);
    ck_assert_int_eq(config_parse(&c, CMD_SERVE, 9, copy, &npos, &help, &err), 0);
    ck_assert_str_eq(c.listen, "127.0.0.1:9");
    ck_assert_double_eq(c.batch_delay, 0);
    ck_assert_int_eq(c.max_file_size, 1024);
    ck_assert(c.secure_cookies);
    ck_assert_int_eq(npos, 3);
    ck_assert_str_eq(copy[0], "user");
    ck_assert_str_eq(copy[2], "bob");
}
END_TEST

START_TEST(env_then_flags)
{
    struct config c;
    struct err err = {0};
    int npos;
    bool help;
    const char *args[] = {"--batch-size", "7"};

    setenv("SHOEBOX_BATCH_SIZE", "3", 1);
    setenv("SHOEBOX_LISTEN", "127.0.0.1:7777", 1);
    ck_assert_int_eq(parse(&c, CMD_SERVE, 2, args, &npos, &help, &err), 0);
    ck_assert_int_eq(c.batch_size, 7);  /* the flag wins */
    ck_assert_str_eq(c.listen, "127.0.0.1:7777");
    setenv("SHOEBOX_BATCH_SIZE", "nope", 1);
    ck_assert_int_eq(parse(&c, CMD_SERVE, 0, args, &npos, &help, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "SHOEBOX_BATCH_SIZE"));
    unsetenv("SHOEBOX_BATCH_SIZE");
    unsetenv("SHOEBOX_LISTEN");
}
END_TEST

START_TEST(help_flag)
{
    struct config c;
    struct err err = {0};
    int npos;
    bool help;
    const char *args[] = {"--help"};

    ck_assert_int_eq(parse(&c, CMD_SERVE, 1, args, &npos, &help, &err), 0);
    ck_assert(help);
}
END_TEST

/* A long text value lands in its own field only: a 120-byte --log-level once ran past its
 * 16-byte field into --debug's (inside one struct, where ASan does not look). */
START_TEST(long_text_values)
{
    struct config c;
    struct err err = {0};
    int npos;
    bool help;
    char level[120], flag[140];

    memset(level, 'x', sizeof(level) - 1);
    level[sizeof(level) - 1] = '\0';
    snprintf(flag, sizeof(flag), "--log-level=%s", level);
    const char *args[] = {"--debug=jobs", flag};

    ck_assert_int_ne(parse(&c, CMD_SERVE, 2, args, &npos, &help, &err), 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "--log-level must be"));
    ck_assert_str_eq(c.debug, "jobs");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, defaults);
    tcase_add_loop_test(tc, flags_table, 0, sizeof(flag_cases) / sizeof(flag_cases[0]));
    tcase_add_test(tc, size_range_in_words);
    tcase_add_test(tc, values_land);
    tcase_add_test(tc, env_then_flags);
    tcase_add_test(tc, help_flag);
    tcase_add_test(tc, long_text_values);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
