/*
 * shoebox: the command line. Parses options (base/config.c), builds the objects
 * each command needs, runs it, tears down. No logic of its own beyond that.
 *
 *   shoebox serve              HTTP server + batch scheduler + worker supervisor
 *   shoebox worker             a worker host: supervises --processes decoder processes
 *                              (--processes 0: one worker process, as serve starts it)
 *   shoebox user add NAME      create a user (password from --password-stdin or a prompt)
 *   shoebox user list          list users
 *   shoebox user passwd NAME   change a password
 *   shoebox migrate            apply database migrations and exit
 */
#include <ctype.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "base/config.h"
#include "base/err.h"
#include "base/fault.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/sanitizer.h"
#include "base/secret.h"
#include "base/timeutil.h"
#include "base/xalloc.h"
#include "http/h_progress.h"
#include "http/metrics_http.h"
#include "http/server.h"
#include "intake/tus.h"
#include "jobs/jobs.h"
#include "media/media.h"
#include "store/blob.h"
#include "store/s3.h"
#include "store/store.h"

struct command {
    const char *name;
    enum config_cmd cmd;
    int (*run)(struct config *cfg, int argc, char **argv);
    const char *usage;
    const char *help;
};

static int cmd_serve(struct config *cfg, int argc, char **argv);
static int cmd_worker(struct config *cfg, int argc, char **argv);
static int cmd_user(struct config *cfg, int argc, char **argv);
static int cmd_migrate(struct config *cfg, int argc, char **argv);

static const struct command commands[] = {
    {"serve", CMD_SERVE, cmd_serve, "shoebox serve [OPTIONS]",
     "run the web server, the batch scheduler and the worker processes"},
    {"worker", CMD_WORKER, cmd_worker, "shoebox worker --db URL --blobs DIR [OPTIONS]",
     "process uploaded files on a machine without a data directory (a worker host; "
     "serve starts its own with --processes 0)"},
    {"user", CMD_USER, cmd_user, "shoebox user add NAME | list | passwd NAME [OPTIONS]",
     "manage accounts"},
    {"migrate", CMD_MIGRATE, cmd_migrate, "shoebox migrate [OPTIONS]",
     "apply database migrations and exit"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
    fprintf(out, "Shoebox: a self-hosted photo upload server.\n\nUsage: shoebox COMMAND [OPTIONS]\n\n"
                 "Commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\nEvery option can also be set with its environment variable.\n"
                 "Run 'shoebox COMMAND --help' for a command's options.\n");
}

static void command_usage(FILE *out, const struct command *c)
{
    fprintf(out, "Usage: %s\n\n%s.\n\nOptions:\n", c->usage, c->help);
    config_usage(out, c->cmd);
}

static enum log_level level_from(const char *s)
{
    if (!strcmp(s, "debug"))
        return LOG_DEBUG;
    if (!strcmp(s, "warn"))
        return LOG_WARN;
    if (!strcmp(s, "error"))
        return LOG_ERROR;
    return LOG_INFO;
}

/* Database connections for a command: --db-pool, else serve's request threads
 * and scheduler want many; a worker (its loop and its lease watch, each of
 * which may borrow a second inside a callback) four; the other commands two. */
static int db_pool_size(const struct config *cfg, enum config_cmd cmd)
{
    if (cfg->db_pool > 0)
        return (int)cfg->db_pool;
    return cmd == CMD_SERVE ? 0 : cmd == CMD_WORKER ? 4 : 2;
}

/* The blob store spec: --blobs, or DATA/blobs. */
static void blobs_location(const struct config *cfg, char *out, size_t n)
{
    if (cfg->blobs[0])
        snprintf(out, n, "%s", cfg->blobs);
    else
        snprintf(out, n, "%s/blobs", cfg->data_dir);
}

/* --media-url as the base of redirects: no trailing '/', and an s3:// store's prefix
 * appended, so that base + "/" + KEY names the object's place in the bucket (the
 * public base is the bucket's root; a local store's is its directory). "" when off. */
static void media_base(const struct config *cfg, char *out, size_t n)
{
    size_t len = strlen(cfg->media_url);
    const char *ak = NULL, *sk = NULL;
    struct s3_config s3 = {0};
    struct err err = {0};

    while (len > 0 && cfg->media_url[len - 1] == '/')
        len--;
    snprintf(out, n, "%.*s", (int)len, cfg->media_url);
    if (!len || strncmp(cfg->blobs, "s3://", 5))
        return;
    config_s3_keys(&ak, &sk);
    /* blob_open parsed the same spec with the same keys: this cannot fail here. */
    if (s3_config_parse(&s3, cfg->blobs, ak ? ak : "", sk ? sk : "", &err) == 0 && s3.prefix[0]) {
        out[len++] = '/';
        for (const unsigned char *p = (const unsigned char *)s3.prefix; *p && len + 4 < n; p++)
            len += (size_t)snprintf(out + len, n - len, isalnum(*p) || strchr("/-_.~", *p)
                                                            ? "%c" : "%%%02X", *p);
        out[len] = '\0';
    }
    explicit_bzero(&s3, sizeof(s3));
}

static int open_stores(const struct config *cfg, enum config_cmd cmd, unsigned flags,
                       struct store **st, struct blob_store **bs, struct err *err)
{
    char db[CONFIG_STR_MAX + 32], blobs[CONFIG_STR_MAX + 16];

    *st = NULL;
    *bs = NULL;
    if (fs_private_dir(cfg->data_dir, err))
        return -1;
    config_db_location(cfg, db, sizeof(db));
    if (store_open_pool(db, flags, db_pool_size(cfg, cmd), st, err))
        return -1;
    if (!(cmd & (CMD_SERVE | CMD_WORKER)))
        return 0; /* user and migrate touch no blob */
    blobs_location(cfg, blobs, sizeof(blobs));
    if (blob_open(blobs, bs, err)) {
        (*st)->ops->close(*st);
        *st = NULL;
        return -1;
    }
    return 0;
}

static void close_stores(struct store *st, struct blob_store *bs)
{
    if (bs)
        bs->ops->close(bs);
    if (st)
        st->ops->close(st);
}

/* ---- user ---- */

static int read_password(const char *prompt, bool from_stdin, char *out, size_t n)
{
    struct termios old, quiet;
    bool tty = !from_stdin && isatty(STDIN_FILENO);
    size_t len;

    if (tty) {
        fprintf(stderr, "%s", prompt);
        tcgetattr(STDIN_FILENO, &old);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    if (!fgets(out, (int)n, stdin))
        out[0] = '\0';
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    len = strlen(out);
    while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r'))
        out[--len] = '\0';
    return len > 0 ? 0 : -1;
}

static bool valid_username(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > LIMIT_USERNAME_BYTES)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '@' || c == '+'))
            return false;
    }
    return true;
}

static void print_user(void *ctx, const struct store_user *u)
{
    char when[40];

    (void)ctx;
    time_iso8601(u->created_at, when, sizeof(when));
    printf("%s\t%s\n", u->name, when);
}

static int user_set(struct store *st, const struct config *cfg, const char *name, bool create,
                    struct err *err)
{
    char pw[SECRET_PASSWORD_MAX + 2], hash[SECRET_HASH_MAX];
    int64_t id;
    int rc;

    if (!valid_username(name))
        return err_set(err, ERR_PERMANENT, "user",
                       "invalid user name '%s': use 1-%d letters, digits or . _ - @ +", name,
                       LIMIT_USERNAME_BYTES);
    if (read_password("Password: ", cfg->password_stdin, pw, sizeof(pw)))
        return err_set(err, ERR_PERMANENT, "user", "no password given");
    rc = secret_hash_password(pw, hash, err);
    memset(pw, 0, sizeof(pw));
    if (rc)
        return -1;
    if (create)
        return st->ops->user_create(st, name, hash, time_now_ms(), &id, err);
    rc = st->ops->user_set_password(st, name, hash, err);
    if (rc == STORE_NOT_FOUND)
        return err_set(err, ERR_PERMANENT, "user", "no user '%s'", name);
    return rc;
}

static int cmd_user(struct config *cfg, int argc, char **argv)
{
    struct store *st = NULL;
    struct blob_store *bs = NULL;
    struct err err = {0};
    int rc = -1;

    if (argc < 1 || (strcmp(argv[0], "list") && argc < 2)) {
        fprintf(stderr, "usage: shoebox user add NAME | list | passwd NAME\n");
        return 2;
    }
    if (open_stores(cfg, CMD_USER, 0, &st, &bs, &err))
        goto out;
    if (!strcmp(argv[0], "add")) {
        rc = user_set(st, cfg, argv[1], true, &err);
        if (!rc)
            printf("created user '%s'\n", argv[1]);
    } else if (!strcmp(argv[0], "passwd")) {
        rc = user_set(st, cfg, argv[1], false, &err);
        if (!rc)
            printf("changed the password of '%s'\n", argv[1]);
    } else if (!strcmp(argv[0], "list")) {
        rc = st->ops->user_list(st, print_user, NULL, &err);
    } else {
        fprintf(stderr, "shoebox user: unknown action '%s' (add, list, passwd)\n", argv[0]);
        rc = 2;
    }
out:
    if (rc == -1)
        fprintf(stderr, "shoebox user: %s\n", err.msg);
    close_stores(st, bs);
    return rc == 0 ? 0 : rc == 2 ? 2 : 1;
}

static int cmd_migrate(struct config *cfg, int argc, char **argv)
{
    struct store *st = NULL;
    struct blob_store *bs = NULL;
    struct err err = {0};
    int64_t version = 0;

    (void)argc;
    (void)argv;
    if (open_stores(cfg, CMD_MIGRATE, 0, &st, &bs, &err) || st->ops->schema_version(st, &version, &err)) {
        fprintf(stderr, "shoebox migrate: %s\n", err.msg);
        close_stores(st, bs);
        return 1;
    }
    printf("database schema at version %lld\n", (long long)version);
    close_stores(st, bs);
    return 0;
}

/* ---- serve ---- */

static int ensure_first_user(struct store *st, const char *listen, struct err *err)
{
    char pw[21], hash[SECRET_HASH_MAX];
    int64_t n = 0, id;

    if (st->ops->user_count(st, &n, err))
        return -1;
    if (n > 0)
        return 0;
    secret_password(pw, 20);
    if (secret_hash_password(pw, hash, err) ||
        st->ops->user_create(st, "admin", hash, time_now_ms(), &id, err))
        return -1;
    printf("\nNo user existed, so Shoebox created one:\n\n"
           "    user:     admin\n    password: %s\n\n"
           "This is shown only once. Change it with: shoebox user passwd admin\n"
           "Open http://%s/ and log in.\n\n",
           pw, listen);
    fflush(stdout);
    memset(pw, 0, sizeof(pw));
    return 0;
}

/* The change feed (several nodes) wakes the progress streams of this node. */
static void hub_changed(void *ctx, int64_t upload_id, int64_t version)
{
    (void)ctx;
    sse_hub_changed(upload_id, version);
}

static void hub_feed(void *ctx, bool live)
{
    (void)ctx;
    sse_hub_feed(live);
}

static int default_workers(const struct config *cfg)
{
    long n;

    /* 0 is a node without workers (web only); -1 (the default) one per core. */
    if (cfg->workers >= 0)
        return (int)cfg->workers;
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* A database URL for the worker processes (see worker_argv). */
static int export_db_url(const struct config *cfg, struct err *err)
{
    char db[CONFIG_STR_MAX + 32];

    config_db_location(cfg, db, sizeof(db));
    if (store_location_is_url(db) && setenv("SHOEBOX_DB", db, 1) != 0)
        return err_sys(err, errno, "serve", "cannot pass the database URL to the workers");
    return 0;
}

/* argv for worker processes: the options a worker needs, passed explicitly.
 * metrics_fd >= 0: the shared metrics page they count into (metrics.h). */
static char **worker_argv(const char *exe, const struct config *cfg, int metrics_fd)
{
    char db[CONFIG_STR_MAX + 32];
    char **v = xcalloc(32, sizeof(char *));
    int i = 0;

    config_db_location(cfg, db, sizeof(db));
    v[i++] = xstrdup(exe);
    v[i++] = xstrdup("worker");
    v[i++] = xstrdup("--processes=0");
    v[i++] = xasprintf("--data=%s", cfg->data_dir);
    if (cfg->blobs[0])
        v[i++] = xasprintf("--blobs=%s", cfg->blobs);
    /* A postgres:// URL may hold a password: it goes to the workers through
     * SHOEBOX_DB (set by cmd_serve), never on a command line others can read. */
    if (!store_location_is_url(db))
        v[i++] = xasprintf("--db=%s", db);
    if (cfg->db_pool)
        v[i++] = xasprintf("--db-pool=%lld", (long long)cfg->db_pool);
    v[i++] = xasprintf("--max-pixels=%lld", (long long)cfg->max_pixels);
    v[i++] = xasprintf("--max-file-size=%lld", (long long)cfg->max_file_size);
    v[i++] = xasprintf("--worker-memory=%lld", (long long)cfg->worker_memory);
    v[i++] = xasprintf("--lease=%lld", (long long)cfg->lease_seconds);
    v[i++] = xasprintf("--file-cpu=%lld", (long long)cfg->file_cpu_seconds);
    v[i++] = xasprintf("--log-level=%s", cfg->log_level);
    if (cfg->debug[0])
        v[i++] = xasprintf("--debug=%s", cfg->debug);
    if (cfg->faults[0])
        v[i++] = xasprintf("--faults=%s", cfg->faults);
    if (metrics_fd >= 0)
        v[i++] = xasprintf("--metrics-fd=%d", metrics_fd);
    v[i] = NULL;
    return v;
}

static void free_argv(char **v)
{
    for (int i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static int self_exe(char *out, size_t n)
{
    ssize_t len = readlink("/proc/self/exe", out, n - 1);

    if (len <= 0)
        return -1;
    out[len] = '\0';
    return 0;
}

static int http_thread_count(const struct config *cfg)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    if (cfg->http_threads > 0)
        return (int)cfg->http_threads;
    return n > 2 ? (int)n : 2;
}

/* Connections are descriptors: take every one the hard limit allows (up to
 * FD_LIMIT_WANTED); http/server.c sizes its connection caps from the result. */
#define FD_LIMIT_WANTED 65536

static void raise_fd_limit(void)
{
    struct rlimit rl;
    rlim_t want = FD_LIMIT_WANTED;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
        want = rl.rlim_max;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            log_warn("main", "rlimit", "msg=\"cannot raise the descriptor limit\" errno=%d",
                     errno);
        else
            log_info("main", "rlimit", "fds=%llu was=%llu", (unsigned long long)want,
                     (unsigned long long)was);
    }
}

/* --metrics-listen: GET /metrics on a listener of its own (off when ""). */
static int start_metrics(const struct config *cfg, struct store *st, struct metrics_server **out,
                         struct err *err)
{
    *out = NULL;
    if (!cfg->metrics_listen[0])
        return 0;
    if (metrics_serve_start(cfg->metrics_listen, st, out, err))
        return -1;
    log_info("main", "metrics", "url=http://%s/metrics port=%d", cfg->metrics_listen,
             metrics_serve_port(*out));
    return 0;
}

static int cmd_serve(struct config *cfg, int argc, char **argv)
{
    struct store *st = NULL;
    struct blob_store *bs = NULL;
    struct jobs *jobs = NULL;
    struct http_server *srv = NULL;
    struct tus *tus = NULL;
    int64_t *keep = NULL;
    size_t n_keep = 0;
    struct metrics_server *msrv = NULL;
    struct err err = {0};
    int metrics_fd = -1;
    char exe[4096];
    char **wargv = NULL;
    char db[CONFIG_STR_MAX + 32], dbshown[CONFIG_STR_MAX + 32];
    char media[CONFIG_STR_MAX + S3_PREFIX_MAX + 2];
    sigset_t sigs;
    int sig = 0, rc = 1;

    (void)argv;
    media_base(cfg, media, sizeof(media));
    if (argc > 0) {
        fprintf(stderr, "shoebox serve: unexpected argument '%s'\n", argv[0]);
        return 2;
    }
    /* Block the stop signals in every thread; main waits for them with sigwait. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    if (self_exe(exe, sizeof(exe))) {
        err_set(&err, ERR_PERMANENT, "serve", "cannot find the shoebox binary");
        goto out;
    }
    if (open_stores(cfg, CMD_SERVE, 0, &st, &bs, &err) || ensure_first_user(st, cfg->listen, &err))
        goto out;
    /* Before the workers start: they count into the same page. */
    if (cfg->metrics_listen[0] && (metrics_fd = metrics_share(&err)) < 0)
        goto out;
    wargv = worker_argv(exe, cfg, metrics_fd);
    if (export_db_url(cfg, &err))
        goto out;
    /* Read before the start-up sweep: it keeps the uploads these point to. */
    if (tus_upload_refs(cfg->data_dir, time_now_ms(), &keep, &n_keep, &err))
        goto out;
    struct jobs_opts jo = {
        .batch_size = cfg->batch_size,
        .batch_delay_ms = (int64_t)(cfg->batch_delay * 1000.0),
        .batch_pacing = strcmp(cfg->batch_pacing, "strict") ? JOBS_PACE_YIELD : JOBS_PACE_STRICT,
        .upload_idle_ms = cfg->upload_idle * 1000,
        .tus_expire_ms = cfg->tus_expire * 1000,
        .keep_uploads = keep,
        .n_keep_uploads = n_keep,
        .workers = default_workers(cfg),
        .worker_memory = cfg->worker_memory,
        .data_dir = cfg->data_dir,
        .exe = exe,
        .worker_argv = wargv,
        .on_change = hub_changed,
        .on_feed = hub_feed,
    };
    if (jobs_start(&jo, st, bs, &jobs, &err))
        goto out;
    free(keep);
    keep = NULL;
    struct http_opts ho = {
        .listen = cfg->listen,
        .threads = http_thread_count(cfg),
        .session_age = cfg->session_age,
        .secure_cookies = cfg->secure_cookies,
        .assets_dir = cfg->assets_dir,
        .data_dir = cfg->data_dir,
        .max_file_size = cfg->max_file_size,
        .batch_size = cfg->batch_size,
        .media_url = media,
    };
    struct tus_opts to = {
        .store = st,
        .blobs = bs,
        .jobs = jobs,
        .data_dir = cfg->data_dir,
        .max_file_size = cfg->max_file_size,
        .batch_size = cfg->batch_size,
        .expire_ms = cfg->tus_expire * 1000,
    };
    tus = tus_new(&to, &err);
    if (!tus)
        goto out;
    struct http_deps hd = {.store = st, .blob = bs, .jobs = jobs, .tus = tus};
    /* Before the public port: once /healthz answers, /metrics does too. */
    if (start_metrics(cfg, st, &msrv, &err))
        goto out;
    if (http_server_start(&ho, &hd, &srv, &err))
        goto out;
    config_db_location(cfg, db, sizeof(db));
    store_location_masked(db, dbshown, sizeof(dbshown));
    log_info("main", "listening", "url=http://%s workers=%d pid=%ld db=%s", cfg->listen,
             jo.workers, (long)getpid(), LOG_Q(dbshown));
    printf("Shoebox is running at http://%s/ (Ctrl-C stops it)\n", cfg->listen);
    fflush(stdout);
    while (sigwait(&sigs, &sig) != 0)
        ;
    log_info("main", "stopping", "signal=%d", sig);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "shoebox serve: %s\n", err.msg);
    metrics_serve_stop(msrv);
    http_server_stop(srv);
    tus_free(tus);
    jobs_stop(jobs);
    close_stores(st, bs);
    free_argv(wargv);
    free(keep);
    return rc;
}

/* ---- worker ---- */

static void limit_memory(int64_t bytes)
{
#if !UNDER_ASAN
    struct rlimit rl = {.rlim_cur = (rlim_t)bytes, .rlim_max = (rlim_t)bytes};

    if (setrlimit(RLIMIT_AS, &rl) < 0)
        log_warn("worker", "rlimit", "msg=\"cannot limit memory\" errno=%d", errno);
#else
    (void)bytes; /* ASan reserves terabytes of address space: no RLIMIT_AS under it */
#endif
}

/* A worker started by serve counts into serve's page (--metrics-fd); one
 * started by hand may serve its own /metrics (--metrics-listen). */
static int worker_metrics(const struct config *cfg, struct store *st, struct metrics_server **out,
                          struct err *err)
{
    *out = NULL;
    if (cfg->metrics_fd >= 0) {
        /* Not worth a worker: without the page it counts only for itself. */
        if (metrics_attach((int)cfg->metrics_fd, err))
            log_warn("worker", "metrics.attach_failed", "msg=%s", LOG_Q(err->msg));
        close((int)cfg->metrics_fd);
        return 0;
    }
    return start_metrics(cfg, st, out, err);
}

/* One worker process (--processes 0): claims, decodes, records. */
static int run_worker(struct config *cfg)
{
    struct store *st = NULL;
    struct blob_store *bs = NULL;
    struct metrics_server *msrv = NULL;
    struct err err = {0};
    struct media_opts mo;
    struct stat sb;
    char temp[CONFIG_STR_MAX + 8];
    int rc = 1;

    /* LibRaw turns EXIF wall-clock time into a timestamp with mktime(): keep it in UTC. */
    setenv("TZ", "UTC", 1);
    tzset();
    mallopt(M_ARENA_MAX, 2);
    /* A worker whose server died gets SIGTERM: it finishes the file it holds, if it
     * can within JOBS_ORPHAN_GRACE_MS (jobs_worker_run), and exits; a file it cannot
     * finish by then is taken back when its lease, no longer renewed, expires. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    signal(SIGPIPE, SIG_IGN);
    /* Before the limit (this allocates): a GLib allocation that fails under it ends the
     * worker with a status serve reads as "out of memory", not as a crash. */
    media_exit_on_no_memory(JOBS_EXIT_NO_MEMORY);
    limit_memory(cfg->worker_memory);
    /* A worker's commits may be lost to a power cut without losing a photo: the
     * file is then processed again from its durable original. */
    snprintf(temp, sizeof(temp), "%s/tmp", cfg->data_dir);
    if (media_init("shoebox", 1, &err) ||
        open_stores(cfg, CMD_WORKER, STORE_RELAXED_SYNC, &st, &bs, &err) ||
        fs_private_dir(temp, &err))
        goto out;
    if (worker_metrics(cfg, st, &msrv, &err))
        goto out;
    media_opts_default(&mo);
    mo.max_pixels = cfg->max_pixels;
    struct jobs_worker_opts wo = {
        .data_dir = cfg->data_dir,
        .temp_dir = temp,
        .media = &mo,
        .lease_ms = cfg->lease_seconds * 1000,
        .cpu_limit_ms = cfg->file_cpu_seconds * 1000,
        /* Started by serve, stdin is a pipe from it: readable = work, EOF = serve is gone. */
        .wake_fd = fstat(STDIN_FILENO, &sb) == 0 && S_ISFIFO(sb.st_mode) ? STDIN_FILENO : -1,
    };
    rc = jobs_worker_run(&wo, st, bs, &err) ? 1 : 0;
out:
    if (rc)
        fprintf(stderr, "shoebox worker: %s\n", err.msg);
    metrics_serve_stop(msrv);
    close_stores(st, bs);
    return rc;
}

/* A worker host's only directory: its decoder processes' temporary files. */
#define HOST_TEMP_TEMPLATE "/tmp/shoebox-worker-XXXXXX"

static int host_check(const struct config *cfg, struct err *err)
{
    if (!cfg->db[0])
        return err_set(err, ERR_PERMANENT, "worker",
                       "a worker host needs --db (the database of the web nodes)");
    if (!cfg->blobs[0])
        return err_set(err, ERR_PERMANENT, "worker",
                       "a worker host needs --blobs (the blob store of the web nodes)");
    return 0;
}

/* A worker host (--processes N or -1): no data directory, a temporary one for
 * its decoder processes (removed at exit), supervision as under serve. */
static int run_host(struct config *cfg)
{
    struct store *st = NULL;
    struct blob_store *bs = NULL;
    struct metrics_server *msrv = NULL;
    struct err err = {0};
    char exe[4096], temp[] = HOST_TEMP_TEMPLATE;
    char **wargv = NULL;
    bool made = false;
    int metrics_fd = -1;
    sigset_t sigs;
    int rc = 1;

    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (host_check(cfg, &err))
        goto out;
    if (self_exe(exe, sizeof(exe))) {
        err_set(&err, ERR_PERMANENT, "worker", "cannot find the shoebox binary");
        goto out;
    }
    if (!mkdtemp(temp)) {
        err_sys(&err, errno, "worker", "cannot create a temporary directory");
        goto out;
    }
    made = true;
    snprintf(cfg->data_dir, sizeof(cfg->data_dir), "%s", temp);
    if (open_stores(cfg, CMD_WORKER, 0, &st, &bs, &err) || export_db_url(cfg, &err))
        goto out;
    /* Before the processes start: they count into the same page. */
    if (cfg->metrics_listen[0] && (metrics_fd = metrics_share(&err)) < 0)
        goto out;
    if (start_metrics(cfg, st, &msrv, &err))
        goto out;
    wargv = worker_argv(exe, cfg, metrics_fd);
    struct jobs_opts jo = {
        .workers = cfg->processes > 0 ? (int)cfg->processes : default_workers(cfg),
        .worker_memory = cfg->worker_memory,
        .data_dir = temp,
        .exe = exe,
        .worker_argv = wargv,
    };
    rc = jobs_host_run(&jo, st, bs, &sigs, &err) ? 1 : 0;
out:
    if (rc)
        fprintf(stderr, "shoebox worker: %s\n", err.msg);
    metrics_serve_stop(msrv);
    close_stores(st, bs);
    free_argv(wargv);
    if (made && fs_remove_tree(temp, &err))
        fprintf(stderr, "shoebox worker: %s\n", err.msg);
    return rc;
}

static int cmd_worker(struct config *cfg, int argc, char **argv)
{
    if (argc > 0) {
        fprintf(stderr, "shoebox worker: unexpected argument '%s'\n", argv[0]);
        return 2;
    }
    return cfg->processes == 0 ? run_worker(cfg) : run_host(cfg);
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct err err = {0};
    const struct command *c = NULL;
    bool help = false;
    int npos = 0;

    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name))
            c = &commands[i];
    if (!c) {
        fprintf(stderr, "shoebox: unknown command '%s'\n\n", argv[1]);
        usage(stderr);
        return 2;
    }
    /* Everything Shoebox creates (database, photos, thumbnails, spool) is
     * private to its user, whatever umask it was started with. */
    umask(077);
    config_defaults(&cfg);
    if (config_parse(&cfg, c->cmd, argc - 2, argv + 2, &npos, &help, &err)) {
        fprintf(stderr, "shoebox %s: %s\n", c->name, err.msg);
        return 2;
    }
    if (help) {
        command_usage(stdout, c);
        return 0;
    }
    log_init(level_from(cfg.log_level), cfg.debug);
    if (fault_arm_role(cfg.faults, c->cmd == CMD_WORKER ? "worker" : "serve")) {
        fprintf(stderr, "shoebox %s: malformed --faults '%s'\n", c->name, cfg.faults);
        return 2;
    }
    /* Password hashing is set up where passwords are handled, not in workers. */
    if ((c->cmd & (CMD_SERVE | CMD_USER)) && secret_init(&err)) {
        fprintf(stderr, "shoebox: %s\n", err.msg);
        return 1;
    }
    return c->run(&cfg, npos, argv + 2);
}
