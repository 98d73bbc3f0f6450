/*
 * config: every option of every command, in one table (config.c), parsed once
 * from the environment (SHOEBOX_*) and then from flags (flags win), validated
 * against bounds, then read-only. --help and the README's option list come
 * from the same table. No getenv() anywhere else in the program.
 */
#ifndef SHOEBOX_BASE_CONFIG_H
#define SHOEBOX_BASE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/err.h"

#define CONFIG_STR_MAX 1024

/* Which command an option belongs to. */
enum config_cmd {
    CMD_SERVE = 1 << 0,
    CMD_WORKER = 1 << 1,
    CMD_USER = 1 << 2,
    CMD_MIGRATE = 1 << 3,
};

struct config {
    char listen[CONFIG_STR_MAX];      /* host:port */
    char data_dir[CONFIG_STR_MAX];
    char db[CONFIG_STR_MAX];          /* path or postgres:// URL; "" = data_dir/shoebox.db */
    int64_t db_pool;                  /* connections per process; 0 = by command */
    int64_t session_age;              /* seconds, sliding */
    bool secure_cookies;              /* behind TLS: mark cookies Secure */
    int64_t batch_size;
    double batch_delay;               /* seconds between one upload's batches */
    char batch_pacing[CONFIG_STR_MAX];  /* "yield" or "strict": what the delay does */
    int64_t max_file_size;            /* bytes */
    int64_t max_pixels;
    int64_t workers;                  /* -1 = one per core, 0 = none (web-only node) */
    int64_t worker_memory;            /* bytes of address space per worker */
    int64_t processes;                /* worker: -1 = a host, one per core; 0 = decode here */
    char blobs[CONFIG_STR_MAX];       /* blob store spec; "" = DATA/blobs */
    int64_t http_threads;             /* 0 = one per core, at least 2 */
    int64_t lease_seconds;            /* how long a worker's claim on a file lasts */
    int64_t file_cpu_seconds;         /* CPU time a worker may spend on one file */
    int64_t upload_idle;              /* seconds an upload waits for announced files */
    int64_t tus_expire;               /* seconds a partial tus upload is kept */
    char log_level[CONFIG_STR_MAX];  /* every OPT_STR field is CONFIG_STR_MAX: set_value copies that much */
    char debug[CONFIG_STR_MAX];       /* SHOEBOX_DEBUG=jobs,http */
    char faults[CONFIG_STR_MAX];      /* fault.h spec, for tests */
    char assets_dir[CONFIG_STR_MAX];  /* serve web/ from disk instead of the binary */
    bool password_stdin;              /* user add/passwd: read the password from stdin */
    char metrics_listen[CONFIG_STR_MAX]; /* GET /metrics on this host:port; "" = off */
    char media_url[CONFIG_STR_MAX];   /* thumbnails/previews redirect there; "" = off */
    int64_t metrics_fd;               /* worker: serve's shared metrics page; -1 = none */
};

/* Defaults into cfg. */
void config_defaults(struct config *cfg);
/*
 * Parse the environment, then argv[0..argc) for command cmd. Non-option
 * arguments are moved, in order, to the front of argv and counted in *npos.
 * Returns 0, or -1 with a message in err for an unknown option, a missing
 * value or a value out of bounds. "--help" sets *help.
 */
int config_parse(struct config *cfg, enum config_cmd cmd, int argc, char **argv, int *npos,
                 bool *help, struct err *err);
/* The database location: cfg->db or "<data_dir>/shoebox.db" into out. */
void config_db_location(const struct config *cfg, char *out, size_t n);
/* Option help for cmd, one option per line, from the table. */
void config_usage(FILE *out, enum config_cmd cmd);
/* Options as a Markdown table (for README). */
void config_markdown(FILE *out);

/* The object store's keys, from the environment only (a flag would show them in ps):
 * SHOEBOX_S3_ACCESS_KEY / SHOEBOX_S3_SECRET_KEY, each else AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY. NULL when unset or empty; otherwise borrowed from the
 * environment (valid while it is not changed). Never log them. */
void config_s3_keys(const char **access_key, const char **secret_key);

#endif
