/*
 * bench_claims: the store's claim path under contention (issue 9's "claims per second
 * with 8 workers and 10,000 queued small files"). Not a test: bench/claims.py prepares
 * the queue (rows made directly in the database) and runs this.
 *
 *   bench_claims LOCATION WORKERS
 *
 * Forks WORKERS processes; each opens the store at LOCATION (a SQLite path or a
 * PostgreSQL URL, one connection, relaxed sync as `shoebox worker` opens it) and, once
 * all are connected, loops file_claim (owner "bench/PID", 10 min lease) then file_finish
 * with a FAILED outcome (the cheapest outcome: no photo row) until no QUEUED file is
 * left. A transient error (PostgreSQL: a deadlock) is retried, as a worker would, and
 * counted. Prints one line: "claims=N finished=N failures=N retries=N seconds=S
 * claims_per_s=R" and exits 1 when a store call failed for good.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/timeutil.h"
#include "store/store.h"

struct tally {
    int64_t claims, finished, failures, retries;
};

/* A transient error (a PostgreSQL deadlock, say) is retried as a worker would, and
 * counted; up to this many per worker. */
#define MAX_RETRIES 1000

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct tally run_worker(const char *location, int ready_fd, int go_fd)
{
    struct tally t = {0};
    struct store *st = NULL;
    struct err err = {0};
    char owner[64], c = 0;

    snprintf(owner, sizeof owner, "bench/%ld", (long)getpid());
    if (store_open_pool(location, STORE_RELAXED_SYNC, 1, &st, &err)) {
        fprintf(stderr, "bench_claims: open: %s\n", err.msg);
        t.failures = 1;
    }
    if (write(ready_fd, "r", 1) != 1 || read(go_fd, &c, 1) != 1 || !st)
        return t.failures = 1, t;
    for (;;) {
        struct store_claim cl;
        struct store_result res = {.outcome = STORE_FAILED};
        struct store_finish fin;
        int64_t now = time_now_ms();
        int r = st->ops->file_claim(st, owner, now, 600000, &cl, &err);

        if (r == STORE_NOT_FOUND)
            break;
        if (r != 0 && err.cls == ERR_TRANSIENT && t.retries < MAX_RETRIES) {
            fprintf(stderr, "bench_claims: claim (retried): %s\n", err.msg);
            t.retries++;
            continue;
        }
        if (r != 0) {
            fprintf(stderr, "bench_claims: claim: %s\n", err.msg);
            t.failures++;
            break;
        }
        t.claims++;
        err_set(&res.error, ERR_PERMANENT, "bench", "claimed by the bench");
        do {
            r = st->ops->file_finish(st, cl.file.id, owner, &res, time_now_ms(), &fin, &err);
            if (r < 0 && err.cls == ERR_TRANSIENT && t.retries < MAX_RETRIES)
                fprintf(stderr, "bench_claims: finish (retried): %s\n", err.msg);
        } while (r < 0 && err.cls == ERR_TRANSIENT && t.retries++ < MAX_RETRIES);
        if (r == 0)
            t.finished++;
        else {
            fprintf(stderr, "bench_claims: finish %" PRId64 ": %s\n", cl.file.id,
                    r == STORE_NOT_FOUND ? "lease lost" : err.msg);
            t.failures++;
        }
    }
    st->ops->close(st);
    return t;
}

int main(int argc, char **argv)
{
    int ready[2], go[2], out[2], workers;
    double start, secs;
    struct tally sum = {0};

    if (argc != 3 || (workers = atoi(argv[2])) < 1 || workers > 256) {
        fprintf(stderr, "usage: bench_claims LOCATION WORKERS\n");
        return 2;
    }
    if (pipe(ready) || pipe(go) || pipe(out)) {
        perror("pipe");
        return 1;
    }
    for (int i = 0; i < workers; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            close(ready[0]);
            close(go[1]);
            close(out[0]);
            struct tally t = run_worker(argv[1], ready[1], go[0]);
            _exit(write(out[1], &t, sizeof t) == (ssize_t)sizeof t ? 0 : 1);
        }
    }
    close(ready[1]);
    close(go[0]);
    close(out[1]);
    for (int i = 0; i < workers; i++) {
        char c;
        if (read(ready[0], &c, 1) != 1) {
            fprintf(stderr, "bench_claims: a worker died before it was ready\n");
            return 1;
        }
    }
    start = mono_s();
    for (int i = 0; i < workers; i++)
        if (write(go[1], "g", 1) != 1)
            return 1;
    for (int i = 0; i < workers; i++) {
        struct tally t;
        if (read(out[0], &t, sizeof t) != (ssize_t)sizeof t) {
            fprintf(stderr, "bench_claims: a worker died\n");
            sum.failures++;
            continue;
        }
        sum.claims += t.claims;
        sum.finished += t.finished;
        sum.failures += t.failures;
        sum.retries += t.retries;
    }
    secs = mono_s() - start;
    while (wait(NULL) > 0 || errno == EINTR)
        ;
    printf("claims=%" PRId64 " finished=%" PRId64 " failures=%" PRId64 " retries=%" PRId64
           " seconds=%.3f claims_per_s=%.0f\n",
           sum.claims, sum.finished, sum.failures, sum.retries, secs, sum.claims / secs);
    return sum.failures ? 1 : 0;
}
