/*
 * config: the option table. One row per option: flag, environment variable,
 * type, where it lands in struct config, default, bounds, which commands take
 * it, help. Everything about an option lives on its row.
 */
#include "base/config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/limits.h"
#include "base/str.h"

enum opt_type { OPT_STR, OPT_INT, OPT_DOUBLE, OPT_SIZE, OPT_BOOL };

struct opt {
    const char *flag;
    const char *env;
    enum opt_type type;
    size_t offset;
    const char *def;
    double min, max;
    unsigned cmds;
    const char *help;
};

#define F(field) offsetof(struct config, field)
#define ALL (CMD_SERVE | CMD_WORKER | CMD_USER | CMD_MIGRATE)
#define PROC (CMD_SERVE | CMD_WORKER)

static const struct opt opts[] = {
    {"listen", "SHOEBOX_LISTEN", OPT_STR, F(listen), "127.0.0.1:8080", 0, 0, CMD_SERVE,
     "address and port to listen on (host:port)"},
    {"data", "SHOEBOX_DATA", OPT_STR, F(data_dir), "./data", 0, 0, ALL,
     "data directory: database, spool, originals, thumbnails"},
    {"db", "SHOEBOX_DB", OPT_STR, F(db), "", 0, 0, ALL,
     "database: a SQLite file path (default DATA/shoebox.db) or a postgres:// URL"},
    {"db-pool", "SHOEBOX_DB_POOL", OPT_INT, F(db_pool), "0", 0, 256, ALL,
     "database connections per process (0 = 16 for serve, 4 for a worker, 2 otherwise)"},
    {"blobs", "SHOEBOX_BLOBS", OPT_STR, F(blobs), "", 0, 0, PROC,
     "blob store for originals, thumbnails and previews: a directory (default DATA/blobs) "
     "or s3://bucket/prefix?endpoint=URL&region=R (keys from SHOEBOX_S3_ACCESS_KEY and "
     "SHOEBOX_S3_SECRET_KEY)"},
    {"session-age", "SHOEBOX_SESSION_AGE", OPT_INT, F(session_age), "3600", 1, 31536000,
     CMD_SERVE, "seconds a session lives without a request (sliding expiry)"},
    {"secure-cookies", "SHOEBOX_SECURE_COOKIES", OPT_BOOL, F(secure_cookies), "0", 0, 1,
     CMD_SERVE, "mark cookies Secure (set when served behind TLS)"},
    {"batch-size", "SHOEBOX_BATCH_SIZE", OPT_INT, F(batch_size), "15", 1, 1000, PROC,
     "files per processing batch"},
    {"batch-delay", "SHOEBOX_BATCH_DELAY", OPT_DOUBLE, F(batch_delay), "0.5", 0, 60, PROC,
     "seconds between one upload's batches (0 allowed)"},
    {"batch-pacing", "SHOEBOX_BATCH_PACING", OPT_STR, F(batch_pacing), "yield", 0, 0, CMD_SERVE,
     "what the batch delay does: yield (other uploads waiting for a worker go first; with "
     "none the next batch starts at once) or strict (always wait it out)"},
    {"max-file-size", "SHOEBOX_MAX_FILE_SIZE", OPT_SIZE, F(max_file_size), "100MB", 1,
     (double)(1ULL << 40), PROC, "largest accepted file (bytes; k, MB, G suffixes)"},
    {"max-pixels", "SHOEBOX_MAX_PIXELS", OPT_INT, F(max_pixels), "120000000", 1, 1e10, PROC,
     "largest accepted image in pixels (width x height), checked before decoding"},
    {"workers", "SHOEBOX_WORKERS", OPT_INT, F(workers), "-1", -1, 256, CMD_SERVE,
     "worker processes to start (-1 = one per core; 0 = none: a web-only node)"},
    {"processes", "SHOEBOX_PROCESSES", OPT_INT, F(processes), "-1", -1, 256, CMD_WORKER,
     "decoder processes this worker host supervises (-1 = one per core; 0 = decode in this "
     "process, as serve starts it)"},
    {"worker-memory", "SHOEBOX_WORKER_MEMORY", OPT_SIZE, F(worker_memory), "2G",
     LIMIT_WORKER_MEMORY_MIN, (double)(1ULL << 40), PROC,
     "address-space limit of each worker process"},
    {"http-threads", "SHOEBOX_HTTP_THREADS", OPT_INT, F(http_threads), "0", 0, 256, CMD_SERVE,
     "HTTP thread pool size (0 = one per core, at least 2)"},
    {"lease", "SHOEBOX_LEASE", OPT_INT, F(lease_seconds), "120", 1, 86400, PROC,
     "seconds a worker's claim on a file lasts before another may take it"},
    {"file-cpu", "SHOEBOX_FILE_CPU", OPT_INT, F(file_cpu_seconds), "60", 1, 86400, PROC,
     "seconds of CPU time a worker may spend on one file before it fails the file"},
    {"upload-idle", "SHOEBOX_UPLOAD_IDLE", OPT_INT, F(upload_idle), "900", 1, 31536000,
     CMD_SERVE, "seconds an upload waits for files it announced (expected) before it "
     "goes on with those it has"},
    {"tus-expire", "SHOEBOX_TUS_EXPIRE", OPT_INT, F(tus_expire), "86400", 1, 31536000,
     CMD_SERVE, "seconds an unfinished resumable (tus) upload is kept after its last data"},
    {"log-level", "SHOEBOX_LOG_LEVEL", OPT_STR, F(log_level), "info", 0, 0, ALL,
     "debug, info, warn or error"},
    {"debug", "SHOEBOX_DEBUG", OPT_STR, F(debug), "", 0, 0, ALL,
     "components logging at debug level: jobs,http,store,media or all"},
    {"faults", "SHOEBOX_FAULTS", OPT_STR, F(faults), "", 0, 0, ALL,
     "failure injection for tests, e.g. fsync=3,commit=1 (see src/base/fault.h)"},
    {"assets-dir", "SHOEBOX_ASSETS_DIR", OPT_STR, F(assets_dir), "", 0, 0, CMD_SERVE,
     "serve web assets from this directory instead of the built-in copy (development)"},
    {"metrics-listen", "SHOEBOX_METRICS_LISTEN", OPT_STR, F(metrics_listen), "", 0, 0, PROC,
     "serve GET /metrics (Prometheus) on this host:port, apart from the public port "
     "(no login: bind it where only monitoring reaches; off by default)"},
    {"media-url", "SHOEBOX_MEDIA_URL", OPT_STR, F(media_url), "", 0, 0, CMD_SERVE,
     "http(s) URL where the blob store's objects are public (a CDN, a public bucket): "
     "thumbnails and previews answer 302 to URL/KEY (KEY includes an s3:// store's prefix), "
     "originals of an s3:// store 302 to a presigned URL (off by default)"},
    {"metrics-fd", NULL, OPT_INT, F(metrics_fd), "-1", -1, 65535, CMD_WORKER,
     "descriptor of the metrics page shared with serve (set by serve for its workers)"},
    {"password-stdin", NULL, OPT_BOOL, F(password_stdin), "0", 0, 1, CMD_USER,
     "read the password from standard input instead of prompting"},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static int set_value(struct config *cfg, const struct opt *o, const char *v, struct err *err)
{
    void *p = (char *)cfg + o->offset;
    int64_t i;
    uint64_t u;
    double d = 0;

    switch (o->type) {
    case OPT_STR:
        if (strlen(v) >= CONFIG_STR_MAX)
            return err_set(err, ERR_PERMANENT, "config", "value of --%s is too long", o->flag);
        memcpy(p, v, strlen(v) + 1);
        return 0;
    case OPT_BOOL:
        if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on"))
            *(bool *)p = true;
        else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off"))
            *(bool *)p = false;
        else
            return err_set(err, ERR_PERMANENT, "config", "--%s wants true or false, not '%s'",
                           o->flag, v);
        return 0;
    case OPT_INT:
        if (str_to_int64(v, &i))
            return err_set(err, ERR_PERMANENT, "config", "--%s wants a whole number, not '%s'",
                           o->flag, v);
        d = (double)i;
        *(int64_t *)p = i;
        break;
    case OPT_SIZE:
        if (str_to_size(v, &u) || u > INT64_MAX)
            return err_set(err, ERR_PERMANENT, "config",
                           "--%s wants a size such as 100MB, not '%s'", o->flag, v);
        d = (double)u;
        *(int64_t *)p = (int64_t)u;
        break;
    case OPT_DOUBLE:
        if (str_to_double(v, &d))
            return err_set(err, ERR_PERMANENT, "config", "--%s wants a number, not '%s'",
                           o->flag, v);
        *(double *)p = d;
        break;
    }
    if (d >= o->min && d <= o->max)
        return 0;
    if (o->type == OPT_SIZE) {
        char lo[32], hi[32];
        str_format_size((int64_t)o->min, lo, sizeof(lo));
        str_format_size((int64_t)o->max, hi, sizeof(hi));
        return err_set(err, ERR_PERMANENT, "config", "--%s must be between %s and %s, not '%s'",
                       o->flag, lo, hi, v);
    }
    return err_set(err, ERR_PERMANENT, "config", "--%s must be between %g and %g, not '%s'",
                   o->flag, o->min, o->max, v);
}

void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NOPTS; i++)
        set_value(cfg, &opts[i], opts[i].def, NULL);
}

static const struct opt *find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strlen(opts[i].flag) == len && strncmp(opts[i].flag, name, len) == 0)
            return &opts[i];
    return NULL;
}

static int parse_env(struct config *cfg, enum config_cmd cmd, struct err *err)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const char *v;
        if (!opts[i].env || !(opts[i].cmds & cmd))
            continue;
        v = getenv(opts[i].env);
        if (v && *v && set_value(cfg, &opts[i], v, err))
            return err_set(err, ERR_PERMANENT, "config", "%s: %s", opts[i].env, err->msg);
    }
    return 0;
}

static int parse_flag(struct config *cfg, enum config_cmd cmd, int argc, char **argv, int *i,
                      struct err *err)
{
    const char *arg = argv[*i] + 2;
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    const struct opt *o = find_flag(arg, len);

    if (!o || !(o->cmds & cmd))
        return err_set(err, ERR_PERMANENT, "config", "unknown option '--%.*s'", (int)len, arg);
    if (o->type == OPT_BOOL && !eq)
        return set_value(cfg, o, "1", err);
    if (eq)
        return set_value(cfg, o, eq + 1, err);
    if (*i + 1 >= argc)
        return err_set(err, ERR_PERMANENT, "config", "option '--%s' needs a value", o->flag);
    (*i)++;
    return set_value(cfg, o, argv[*i], err);
}

int config_parse(struct config *cfg, enum config_cmd cmd, int argc, char **argv, int *npos,
                 bool *help, struct err *err)
{
    int pos = 0;

    *help = false;
    if (parse_env(cfg, cmd, err))
        return -1;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            *help = true;
        } else if (!strcmp(argv[i], "--")) {
            while (++i < argc)
                argv[pos++] = argv[i];
        } else if (str_starts_with(argv[i], "--")) {
            if (parse_flag(cfg, cmd, argc, argv, &i, err))
                return -1;
        } else {
            argv[pos++] = argv[i];
        }
    }
    *npos = pos;
    if (strcmp(cfg->log_level, "debug") && strcmp(cfg->log_level, "info") &&
        strcmp(cfg->log_level, "warn") && strcmp(cfg->log_level, "error"))
        return err_set(err, ERR_PERMANENT, "config", "--log-level must be debug, info, warn or error");
    if (strcmp(cfg->batch_pacing, "yield") && strcmp(cfg->batch_pacing, "strict"))
        return err_set(err, ERR_PERMANENT, "config", "--batch-pacing must be yield or strict");
    if (cfg->media_url[0] && !str_starts_with(cfg->media_url, "http://") &&
        !str_starts_with(cfg->media_url, "https://"))
        return err_set(err, ERR_PERMANENT, "config", "--media-url must start with http:// or https://");
    if (cfg->media_url[strcspn(cfg->media_url, " \t\r\n;,'\"")])
        return err_set(err, ERR_PERMANENT, "config", "--media-url: no spaces, quotes, ';' or ','");
    return 0;
}

void config_db_location(const struct config *cfg, char *out, size_t n)
{
    if (cfg->db[0])
        snprintf(out, n, "%s", cfg->db);
    else
        snprintf(out, n, "%s/shoebox.db", cfg->data_dir);
}

static const char *type_hint(enum opt_type t)
{
    static const char *hints[] = {"TEXT", "N", "SECONDS", "SIZE", ""};
    return hints[t];
}

void config_usage(FILE *out, enum config_cmd cmd)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        char left[64];
        if (!(o->cmds & cmd))
            continue;
        snprintf(left, sizeof(left), "--%s %s", o->flag, type_hint(o->type));
        fprintf(out, "  %-28s %s", left, o->help);
        if (o->def[0] && o->type != OPT_BOOL)
            fprintf(out, " [%s]", o->def);
        if (o->env)
            fprintf(out, " (env %s)", o->env);
        fputc('\n', out);
    }
    fprintf(out, "  %-28s %s\n", "--help", "show this help");
}

void config_markdown(FILE *out)
{
    fprintf(out, "| flag | environment | default | meaning |\n| --- | --- | --- | --- |\n");
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        fprintf(out, "| `--%s` | %s%s%s | %s%s%s | %s |\n", o->flag, o->env ? "`" : "",
                o->env ? o->env : "", o->env ? "`" : "", o->def[0] ? "`" : "", o->def,
                o->def[0] ? "`" : "", o->help);
    }
}

/* First non-empty of two variables. */
static const char *env_first(const char *a, const char *b)
{
    const char *v = getenv(a);

    if (v && *v)
        return v;
    v = getenv(b);
    return v && *v ? v : NULL;
}

void config_s3_keys(const char **access_key, const char **secret_key)
{
    *access_key = env_first("SHOEBOX_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID");
    *secret_key = env_first("SHOEBOX_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY");
}
