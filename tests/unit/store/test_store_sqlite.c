/* Unit tests for the store's rules (src/store/store_*.c) through the store.h
 * contract, on real SQLite files in a fresh directory per test; built again as
 * test_store_pg (-DTESTDIR_PG), on a fresh PostgreSQL database per test on the
 * server SHOEBOX_TEST_PG names (testdir_location). */
#include <check.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fault.h"
#include "store/migrations.h"
#include "store/store.h"
#include "testdir.h"

static char dir[64];
static char dbpath[512];  /* the store's location: testdir_location() */
static struct store *S;

#define T0 INT64_C(1700000000000)
#define SHA_A "aaaa000000000000000000000000000000000000000000000000000000000000"
#define SHA_B "bbbb000000000000000000000000000000000000000000000000000000000000"
#define SHA_C "cccc000000000000000000000000000000000000000000000000000000000000"
#define SHA_D "dddd000000000000000000000000000000000000000000000000000000000000"
#define SHA_E "eeee000000000000000000000000000000000000000000000000000000000000"

static void setup(void)
{
    struct err err = {0};

    fault_arm("");
    testdir_make(dir, sizeof(dir));
    testdir_location(dbpath, sizeof(dbpath), dir, "shoebox.db");
    ck_assert_msg(store_open(dbpath, &S, &err) == 0, "%s", err.msg);
}

static void teardown(void)
{
    fault_arm("");
    if (S)
        S->ops->close(S);
    S = NULL;
    testdir_remove(dir);
}

/* ---- helpers ---- */

static int64_t mkuser(const char *name)
{
    struct err err = {0};
    int64_t id = 0;

    ck_assert_msg(S->ops->user_create(S, name, "hash", T0, &id, &err) == 0, "%s", err.msg);
    ck_assert_int_gt(id, 0);
    return id;
}

static int64_t mkupload(int64_t user, int64_t expected, int64_t batch)
{
    struct err err = {0};
    int64_t id = 0;

    ck_assert_msg(S->ops->upload_create(S, user, expected, batch, T0, &id, &err) == 0, "%s",
                  err.msg);
    return id;
}

static int64_t add_file(int64_t upload, int64_t user, const char *name, const char *sha,
                        const char *spool, const struct err *rejected)
{
    struct store_file_new f = {.upload_id = upload, .user_id = user, .name = name, .sha256 = sha,
                               .format = "jpeg", .spool = spool, .size = 100,
                               .failed = rejected != NULL, .error = rejected};
    struct err err = {0};
    int64_t id = 0;

    ck_assert_msg(S->ops->upload_add_file(S, &f, T0 + 10, &id, &err) == 0, "%s", err.msg);
    return id;
}

static struct store_upload upload(int64_t id)
{
    struct store_upload u;
    struct err err = {0};

    ck_assert_msg(S->ops->upload_get(S, id, 0, &u, &err) == 0, "%s", err.msg);
    return u;
}

static struct store_file file(int64_t id)
{
    struct store_file f;
    struct err err = {0};

    ck_assert_msg(S->ops->file_get(S, id, 0, &f, &err) == 0, "%s", err.msg);
    return f;
}

/* total, processed, uploaded, failed, duplicates, queued_files */
static void counters(int64_t id, int64_t total, int64_t processed, int64_t uploaded,
                     int64_t failed, int64_t dups, int64_t queued)
{
    struct store_upload u = upload(id);

    ck_assert_int_eq(u.total, total);
    ck_assert_int_eq(u.processed, processed);
    ck_assert_int_eq(u.uploaded, uploaded);
    ck_assert_int_eq(u.failed, failed);
    ck_assert_int_eq(u.duplicates, dups);
    ck_assert_int_eq(u.queued_files, queued);
}

/* sched_assign with the batch delay's yield (yield_ms, 0 = none) and the overlap. */
static int64_t assign_o(int64_t upload_id, int64_t batch, int64_t limit, int64_t now,
                        int64_t yield_ms, int64_t overlap)
{
    struct err err = {0};
    int64_t n = -1;

    ck_assert_msg(S->ops->sched_assign(S, upload_id, batch, limit, now, yield_ms, overlap, &n,
                                       &err) == 0,
                  "%s", err.msg);
    return n;
}

static int64_t assign_y(int64_t upload_id, int64_t batch, int64_t limit, int64_t now,
                        int64_t yield_ms)
{
    return assign_o(upload_id, batch, limit, now, yield_ms, 0);
}

static int64_t assign(int64_t upload_id, int64_t batch, int64_t limit, int64_t now)
{
    return assign_y(upload_id, batch, limit, now, 0);
}

static struct store_claim claim(const char *owner, int64_t now)
{
    struct store_claim c;
    struct err err = {0};

    ck_assert_msg(S->ops->file_claim(S, owner, now, 60000, &c, &err) == 0, "%s", err.msg);
    return c;
}

static struct store_result ok_result(const char *name, const char *sha, const char *taken_at)
{
    struct store_result r;

    memset(&r, 0, sizeof(r));
    r.outcome = STORE_OK;
    snprintf(r.photo.name, sizeof(r.photo.name), "%s", name);
    snprintf(r.photo.format, sizeof(r.photo.format), "jpeg");
    snprintf(r.photo.sha256, sizeof(r.photo.sha256), "%s", sha);
    snprintf(r.photo.taken_at, sizeof(r.photo.taken_at), "%s", taken_at);
    snprintf(r.photo.blob_key, sizeof(r.photo.blob_key), "o/%.2s/%s", sha, sha);
    snprintf(r.photo.thumb_key, sizeof(r.photo.thumb_key), "t/%.2s/%s.jpg", sha, sha);
    r.photo.width = 4000;
    r.photo.height = 3000;
    r.photo.exposure_time = NAN;
    r.photo.f_number = 2.8;
    r.photo.focal_length = NAN;
    r.photo.gps_lat = NAN;
    r.photo.gps_lon = NAN;
    r.photo.gps_alt = NAN;
    r.photo.has_thumb = true;
    return r;
}

static struct store_result failed_result(bool keep_spool)
{
    struct store_result r;

    memset(&r, 0, sizeof(r));
    r.outcome = STORE_FAILED;
    err_set(&r.error, ERR_PERMANENT, "decode", "cannot decode 'x.jpg': truncated");
    r.keep_spool = keep_spool;
    return r;
}

static struct store_finish finish(int64_t file_id, const char *owner,
                                  const struct store_result *r, int64_t now)
{
    struct store_finish fin;
    struct err err = {0};

    memset(&fin, 0, sizeof(fin));
    ck_assert_msg(S->ops->file_finish(S, file_id, owner, r, now, &fin, &err) == 0, "%s",
                  err.msg);
    return fin;
}

/* A photo of user through the whole pipeline; returns the finish outcome. */
static struct store_finish pipeline(int64_t user, int64_t up, const char *sha,
                                    const char *taken_at, int64_t now)
{
    struct store_result r = ok_result("p.jpg", sha, taken_at);
    struct store_claim c;

    add_file(up, user, "p.jpg", sha, "spool/p", NULL);
    ck_assert_int_eq(assign(up, upload(up).current_batch + 1, 100, now), 1);
    c = claim("w", now);
    return finish(c.file.id, "w", &r, now);
}

/* ---- schema ---- */

START_TEST(test_schema_version_once)
{
    struct err err = {0};
    struct store *s2 = NULL;
    int64_t v = 0, v2 = 0;

    ck_assert_int_eq(S->ops->schema_version(S, &v, &err), 0);
    ck_assert_int_eq(v, migrations_latest());
    ck_assert_int_ge(v, 1);
    S->ops->close(S);
    S = NULL;
    ck_assert_int_eq(store_open(dbpath, &s2, &err), 0);
    ck_assert_int_eq(s2->ops->schema_version(s2, &v2, &err), 0);
    ck_assert_int_eq(v2, v);
    s2->ops->close(s2);
    /* A worker's relaxed store shares the file and its data. */
    int64_t id = 0, n = 0;
    struct store *full = NULL;
    ck_assert_int_eq(store_open_flags(dbpath, STORE_RELAXED_SYNC, &s2, &err), 0);
    ck_assert_int_eq(store_open(dbpath, &full, &err), 0);
    ck_assert_int_eq(s2->ops->user_create(s2, "relaxed", "h", T0, &id, &err), 0);
    ck_assert_int_eq(full->ops->user_count(full, &n, &err), 0);
    ck_assert_int_eq(n, 1);
    s2->ops->close(s2);
    full->ops->close(full);
}
END_TEST

START_TEST(test_open_bad_path)
{
    struct err err = {0};
    struct store *s2 = (struct store *)1;

    ck_assert_int_eq(store_open("/nonexistent-dir/x/shoebox.db", &s2, &err), -1);
    ck_assert_ptr_null(s2);
    ck_assert_str_eq(err.stage, "store");
    ck_assert_ptr_nonnull(strstr(err.msg, "shoebox.db"));
}
END_TEST

/* ---- users ---- */

struct names {
    char list[8][STORE_NAME_MAX];
    int n;
};

static void collect_user(void *ctx, const struct store_user *u)
{
    struct names *n = ctx;

    if (n->n < 8)
        snprintf(n->list[n->n++], STORE_NAME_MAX, "%s", u->name);
}

START_TEST(test_users)
{
    struct err err = {0};
    struct store_user u;
    struct names names = {0};
    int64_t id = 0, n = 0;

    int64_t bob = mkuser("bob");
    mkuser("alice");
    ck_assert_int_eq(S->ops->user_create(S, "bob", "h", T0, &id, &err), -1);
    ck_assert_int_eq(err.cls, ERR_PERMANENT);
    ck_assert_str_eq(err.stage, "store");
    ck_assert_str_eq(err.msg, "user 'bob' already exists");

    ck_assert_int_eq(S->ops->user_find(S, "bob", &u, &err), 0);
    ck_assert_int_eq(u.id, bob);
    ck_assert_str_eq(u.pw_hash, "hash");
    ck_assert_int_eq(u.created_at, T0);
    ck_assert_int_eq(S->ops->user_find(S, "carol", &u, &err), STORE_NOT_FOUND);

    ck_assert_int_eq(S->ops->user_set_password(S, "bob", "new", &err), 0);
    ck_assert_int_eq(S->ops->user_find(S, "bob", &u, &err), 0);
    ck_assert_str_eq(u.pw_hash, "new");
    ck_assert_int_eq(S->ops->user_set_password(S, "carol", "x", &err), STORE_NOT_FOUND);

    ck_assert_int_eq(S->ops->user_list(S, collect_user, &names, &err), 0);
    ck_assert_int_eq(names.n, 2);
    ck_assert_str_eq(names.list[0], "alice");
    ck_assert_str_eq(names.list[1], "bob");
    ck_assert_int_eq(S->ops->user_count(S, &n, &err), 0);
    ck_assert_int_eq(n, 2);
}
END_TEST

/* The name limit: just under, at, just over. */
static const struct {
    size_t len;
    int rc;
} name_rows[] = {
    {1, 0}, {LIMIT_USERNAME_BYTES - 1, 0}, {LIMIT_USERNAME_BYTES, 0},
    {LIMIT_USERNAME_BYTES + 1, -1}, {0, -1},
};

START_TEST(test_user_name_limit)
{
    char name[LIMIT_USERNAME_BYTES + 8];
    struct err err = {0};
    struct store_user u;
    int64_t id;

    memset(name, 'n', name_rows[_i].len);
    name[name_rows[_i].len] = '\0';
    ck_assert_int_eq(S->ops->user_create(S, name, "h", T0, &id, &err), name_rows[_i].rc);
    if (name_rows[_i].rc == 0) {
        ck_assert_int_eq(S->ops->user_find(S, name, &u, &err), 0);
        ck_assert_str_eq(u.name, name);
    } else {
        ck_assert_int_eq(err.cls, ERR_PERMANENT);
    }
}
END_TEST

/* ---- sessions ---- */

START_TEST(test_sessions)
{
    struct err err = {0};
    struct store_session s;
    int64_t bob = mkuser("bob");

    ck_assert_int_eq(S->ops->session_create(S, "d1", bob, T0, T0 + 1000, &err), 0);
    ck_assert_int_eq(S->ops->session_create(S, "d2", bob, T0, T0 + 5000, &err), 0);
    ck_assert_int_eq(S->ops->session_get(S, "d1", T0 + 999, &s, &err), 0);
    ck_assert_int_eq(s.user_id, bob);
    ck_assert_str_eq(s.user_name, "bob");
    ck_assert_int_eq(s.expires_at, T0 + 1000);
    ck_assert_int_eq(s.current_upload, 0);
    /* expired at exactly expires_at */
    ck_assert_int_eq(S->ops->session_get(S, "d1", T0 + 1000, &s, &err), STORE_NOT_FOUND);
    ck_assert_int_eq(S->ops->session_get(S, "nope", T0, &s, &err), STORE_NOT_FOUND);

    ck_assert_int_eq(S->ops->session_touch(S, "d1", T0 + 3000, &err), 0);
    ck_assert_int_eq(S->ops->session_get(S, "d1", T0 + 2000, &s, &err), 0);
    ck_assert_int_eq(S->ops->session_set_upload(S, "d1", 42, &err), 0);
    ck_assert_int_eq(S->ops->session_get(S, "d1", T0, &s, &err), 0);
    ck_assert_int_eq(s.current_upload, 42);

    /* purge at T0+3000 removes d1 (expired then), keeps d2 */
    ck_assert_int_eq(S->ops->session_purge(S, T0 + 3000, &err), 0);
    ck_assert_int_eq(S->ops->session_get(S, "d1", T0, &s, &err), STORE_NOT_FOUND);
    ck_assert_int_eq(S->ops->session_get(S, "d2", T0, &s, &err), 0);
    ck_assert_int_eq(S->ops->session_delete(S, "d2", &err), 0);
    ck_assert_int_eq(S->ops->session_get(S, "d2", T0, &s, &err), STORE_NOT_FOUND);
}
END_TEST

/* ---- uploads ---- */

struct scheds {
    struct store_sched s[4];
    int n;
};

static void collect_sched(void *ctx, const struct store_sched *s)
{
    struct scheds *x = ctx;

    if (x->n < 4)
        x->s[x->n++] = *s;
}

static struct scheds sched(void)
{
    struct scheds x = {0};
    struct err err = {0};

    ck_assert_int_eq(S->ops->sched_list(S, collect_sched, &x, &err), 0);
    return x;
}

struct files {
    struct store_file f[8];
    int n;
};

static void collect_file(void *ctx, const struct store_file *f)
{
    struct files *x = ctx;

    if (x->n < 8)
        x->f[x->n++] = *f;
}

/* Batch assignment is compare-and-set (several schedulers on one database):
 * batch N opens only right after N - 1 and while nothing is in flight; a
 * scheduler that read the upload before another opened the batch assigns
 * nothing, so no batch is opened twice and none is skipped. */
START_TEST(test_assign_compare_and_set)
{
    struct store_result bad = failed_result(false);
    int64_t bob = mkuser("bob");
    int64_t up = mkupload(bob, 4, 2);
    struct store_claim c;

    add_file(up, bob, "a.jpg", SHA_A, "spool/1", NULL);
    add_file(up, bob, "b.jpg", SHA_B, "spool/2", NULL);
    add_file(up, bob, "c.jpg", SHA_A, "spool/3", NULL);
    add_file(up, bob, "d.jpg", SHA_B, "spool/4", NULL);
    ck_assert_int_eq(assign(up, 2, 2, T0 + 1), 0);  /* skipping batch 1 */
    ck_assert_int_eq(upload(up).current_batch, 0);
    ck_assert_int_eq(assign(up, 1, 2, T0 + 2), 2);
    ck_assert_int_eq(assign(up, 1, 2, T0 + 3), 0);  /* batch 1 again (a stale list) */
    ck_assert_int_eq(assign(up, 2, 2, T0 + 4), 0);  /* batch 1 still in flight */
    counters(up, 4, 0, 0, 0, 0, 2);
    for (int i = 0; i < 2; i++) {
        c = claim("w1", T0 + 10 + i);
        finish(c.file.id, "w1", &bad, T0 + 20 + i);
    }
    ck_assert_int_eq(assign(up, 1, 2, T0 + 30), 0);
    ck_assert_int_eq(assign(up, 3, 2, T0 + 31), 0);
    ck_assert_int_eq(upload(up).current_batch, 1);
    ck_assert_int_eq(assign(up, 2, 2, T0 + 32), 2);
    ck_assert_int_eq(upload(up).current_batch, 2);
    counters(up, 4, 2, 0, 2, 0, 0);
}
END_TEST

/* The batch delay as a yield: within yield_ms of an upload's last batch end its
 * next batch opens only while no other upload has a file waiting for a worker
 * (QUEUED and due); a file deferred to later waits for time, not for a worker;
 * once the delay is over the batch opens whoever waits. */
START_TEST(test_assign_yields)
{
    struct store_result ok;
    struct err err = {0}, why = {0};
    int64_t bob = mkuser("bob");
    int64_t a = mkupload(bob, 6, 2), b = mkupload(bob, 2, 2), c = mkupload(bob, 1, 2);
    struct store_claim cl, b1, b2;
    int64_t end;

    const char *names[] = {"a0.jpg", "a1.jpg", "a2.jpg", "a3.jpg", "a4.jpg", "a5.jpg"};

    for (int i = 0; i < 6; i++)
        add_file(a, bob, names[i], i % 2 ? SHA_A : SHA_B, "spool/a", NULL);
    add_file(b, bob, "b1.jpg", SHA_C, "spool/b1", NULL);
    add_file(b, bob, "b2.jpg", SHA_C, "spool/b2", NULL);
    add_file(c, bob, "c.jpg", SHA_C, "spool/c", NULL);
    ck_assert_int_eq(assign_y(a, 1, 2, T0 + 1, 1000), 2);  /* a first batch never yields */
    for (int i = 0; i < 2; i++) {
        cl = claim("w1", T0 + 10 + i);
        ok = ok_result("a.jpg", i ? SHA_A : SHA_B, "");
        finish(cl.file.id, "w1", &ok, T0 + 20 + i);
    }
    end = upload(a).last_batch_end_at;
    ck_assert_int_eq(end, T0 + 21);
    ck_assert_int_eq(assign(b, 1, 2, T0 + 30), 2);
    /* b's two files wait for a worker: a gives way, nothing moves. */
    ck_assert_int_eq(assign_y(a, 2, 2, T0 + 40, 1000), 0);
    counters(a, 6, 2, 2, 0, 0, 4);
    ck_assert_int_eq(upload(a).current_batch, 1);
    b1 = claim("w2", T0 + 50);
    ck_assert_int_eq(b1.file.upload_id, b);
    ck_assert_int_eq(assign_y(a, 2, 2, T0 + 60, 1000), 0);  /* one still waits */
    /* The other is deferred to later: it waits for its time, not for a worker. */
    b2 = claim("w3", T0 + 65);
    ck_assert_int_eq(b2.file.upload_id, b);
    err_set(&why, ERR_TRANSIENT, "store", "busy");
    ck_assert_msg(S->ops->file_defer(S, b2.file.id, "w3", T0 + 5000, &why, T0 + 66, &err) == 0,
                  "%s", err.msg);
    ck_assert_int_eq(file(b2.file.id).state, FILE_QUEUED);
    /* Nobody waits: batch 2 opens at once, well within the delay. */
    ck_assert_int_eq(assign_y(a, 2, 2, T0 + 80, 1000), 2);
    ck_assert_int_eq(upload(a).current_batch, 2);
    for (int i = 0; i < 2; i++) {
        cl = claim("w1", T0 + 90 + i);
        ck_assert_int_eq(cl.file.upload_id, a);
        ok = ok_result("a.jpg", i ? SHA_D : SHA_E, "");
        finish(cl.file.id, "w1", &ok, T0 + 100 + i);
    }
    end = upload(a).last_batch_end_at;
    ck_assert_int_eq(end, T0 + 101);
    ck_assert_int_eq(assign(c, 1, 2, T0 + 120), 1);
    ck_assert_int_eq(assign_y(a, 3, 2, T0 + 130, 1000), 0);       /* c waits */
    ck_assert_int_eq(assign_y(a, 3, 2, end + 999, 1000), 0);      /* the last ms of the delay */
    ck_assert_int_eq(assign_y(a, 3, 2, end + 1000, 1000), 2);     /* over: a opens, c or not */
    ck_assert_int_eq(upload(a).current_batch, 3);
    counters(a, 6, 4, 4, 0, 0, 0);
}
END_TEST

/* The overlap: with overlap > 0 the next batch opens once the current one has no
 * file left to claim and at most `overlap` of its files are in a worker, never
 * while a file of an older batch is in flight (two batches at most) and never while
 * another upload's file waits for a worker; sched_list counts the older batch's
 * files in flight apart. */
START_TEST(test_assign_overlaps)
{
    struct store_result ok;
    int64_t bob = mkuser("bob");
    int64_t a = mkupload(bob, 9, 3), b = mkupload(bob, 1, 3);
    struct store_claim c1, c2, c3, d1, d2, d3, e1;
    struct scheds x;

    const char *names[] = {"a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"};
    const char *shas[] = {SHA_A, SHA_B, SHA_C, SHA_D, SHA_E, SHA_A, SHA_B, SHA_C, SHA_D};

    for (int i = 0; i < 9; i++)
        add_file(a, bob, names[i], shas[i], "spool/a", NULL);
    add_file(b, bob, "b0", SHA_E, "spool/b", NULL);
    ck_assert_int_eq(assign_o(a, 1, 3, T0 + 1, 0, 1), 3);
    c1 = claim("w1", T0 + 2);
    c2 = claim("w2", T0 + 3);
    ck_assert_int_eq(assign_o(a, 2, 3, T0 + 4, 0, 1), 0);  /* a file left to claim */
    ok = ok_result("a.jpg", SHA_A, "");
    finish(c1.file.id, "w1", &ok, T0 + 5);
    c3 = claim("w1", T0 + 6);
    ck_assert_int_eq(c3.file.batch_no, 1);
    ck_assert_int_eq(assign_o(a, 2, 3, T0 + 7, 0, 1), 0);  /* two in workers: none idle */
    ok = ok_result("a.jpg", SHA_B, "");
    finish(c2.file.id, "w2", &ok, T0 + 8);
    /* All claimed, one in a worker: the literal rule waits, the overlap opens. */
    ck_assert_int_eq(assign_o(a, 2, 3, T0 + 9, 0, 0), 0);
    ck_assert_int_eq(assign_o(a, 2, 3, T0 + 10, 1000, 1), 3);
    ck_assert_int_eq(upload(a).current_batch, 2);
    x = sched();
    ck_assert_int_eq(x.n, 2);
    ck_assert_int_eq(x.s[0].upload_id, a);
    ck_assert_int_eq(x.s[0].in_flight, 4);
    ck_assert_int_eq(x.s[0].in_flight_before, 1);
    d1 = claim("w2", T0 + 11);
    d2 = claim("w2", T0 + 12);
    d3 = claim("w2", T0 + 13);
    ck_assert_int_eq(d3.file.batch_no, 2);
    ok = ok_result("a.jpg", SHA_C, "");
    finish(d1.file.id, "w2", &ok, T0 + 14);
    ok = ok_result("a.jpg", SHA_D, "");
    finish(d2.file.id, "w2", &ok, T0 + 15);
    /* Batch 1's last file is still in a worker: batch 3 waits, whatever the overlap. */
    ck_assert_int_eq(assign_o(a, 3, 3, T0 + 16, 0, 5), 0);
    ok = ok_result("a.jpg", SHA_E, "");
    finish(c3.file.id, "w1", &ok, T0 + 17);
    ck_assert_int_eq(sched().s[0].in_flight_before, 0);
    ck_assert_int_eq(upload(a).last_batch_end_at, 0);  /* batch 2 is still going */
    /* Another upload's file waits for a worker: no worker is idle, batch 3 waits. */
    ck_assert_int_eq(assign(b, 1, 3, T0 + 18), 1);
    ck_assert_int_eq(assign_o(a, 3, 3, T0 + 19, 0, 1), 0);
    e1 = claim("w1", T0 + 20);
    ck_assert_int_eq(e1.file.upload_id, b);
    ck_assert_int_eq(assign_o(a, 3, 3, T0 + 21, 0, 1), 3);
    ck_assert_int_eq(upload(a).current_batch, 3);
    counters(a, 9, 5, 5, 0, 0, 0);
}
END_TEST

START_TEST(test_upload_lifecycle)
{
    struct err err = {0};
    struct store_result ok1 = ok_result("a.jpg", SHA_A, "2024-05-01T10:00:00");
    struct store_result bad = failed_result(false);
    struct store_result dup = ok_result("a-copy.jpg", SHA_A, "");
    struct store_claim c;
    struct store_finish fin;
    struct store_upload u;
    struct scheds x;
    struct files fl = {0};
    int64_t bob = mkuser("bob"), v;
    int64_t up = mkupload(bob, 3, 2);

    ck_assert_int_eq(S->ops->upload_request_begin(S, up, 3, 300, T0, &err), 0);
    ck_assert_int_eq(S->ops->upload_add_bytes(S, up, 120, T0, &err), 0);
    int64_t f1 = add_file(up, bob, "a.jpg", SHA_A, "spool/1", NULL);
    int64_t f2 = add_file(up, bob, "b.jpg", SHA_B, "spool/2", NULL);
    int64_t f3 = add_file(up, bob, "c.jpg", SHA_A, "spool/3", NULL);
    counters(up, 3, 0, 0, 0, 0, 3);
    u = upload(up);
    ck_assert_int_eq(u.open_requests, 1);
    ck_assert_int_eq(u.bytes_total, 300);
    ck_assert_int_eq(u.bytes_received, 120);
    ck_assert_int_eq(file(f1).seq, 1);
    ck_assert_int_eq(file(f3).seq, 3);
    ck_assert_int_eq(file(f1).state, FILE_RECEIVED);

    x = sched();
    ck_assert_int_eq(x.n, 1);
    ck_assert_int_eq(x.s[0].unassigned, 3);
    ck_assert_int_eq(x.s[0].in_flight, 0);
    ck_assert(!x.s[0].arrived);
    ck_assert_int_eq(S->ops->upload_request_end(S, up, T0 + 20, &err), 0);
    ck_assert(sched().s[0].arrived);
    ck_assert_int_eq(upload(up).finished_at, 0);

    /* batch 1: two oldest files */
    ck_assert_int_eq(assign(up, 1, 2, T0 + 30), 2);
    counters(up, 3, 0, 0, 0, 0, 1);
    ck_assert_int_eq(upload(up).current_batch, 1);
    ck_assert_int_eq(file(f2).state, FILE_QUEUED);
    ck_assert_int_eq(file(f3).state, FILE_RECEIVED);
    x = sched();
    ck_assert_int_eq(x.s[0].unassigned, 1);
    ck_assert_int_eq(x.s[0].in_flight, 2);

    v = upload(up).version;
    c = claim("w1", T0 + 40);
    ck_assert_int_eq(c.file.id, f1);
    ck_assert_int_eq(c.file.state, FILE_PROCESSING);
    ck_assert_int_eq(c.file.attempts, 1);
    ck_assert_str_eq(c.file.lease_owner, "w1");
    ck_assert_int_eq(c.lease_until, T0 + 40 + 60000);
    ck_assert_int_gt(upload(up).version, v);

    v = upload(up).version;
    fin = finish(f1, "w1", &ok1, T0 + 50);
    ck_assert_int_eq(fin.state, FILE_DONE);
    ck_assert_int_gt(fin.photo_id, 0);
    ck_assert(!fin.upload_finished);
    counters(up, 3, 1, 1, 0, 0, 1);
    ck_assert_int_gt(upload(up).version, v);
    ck_assert_int_eq(upload(up).updated_at, T0 + 50);
    ck_assert_int_eq(file(f1).photo_id, fin.photo_id);
    ck_assert_str_eq(file(f1).spool, "");
    ck_assert_int_eq(upload(up).last_batch_end_at, 0);  /* f2 still queued */
    int64_t photo1 = fin.photo_id;

    c = claim("w1", T0 + 60);
    ck_assert_int_eq(c.file.id, f2);
    fin = finish(f2, "w1", &bad, T0 + 70);
    ck_assert_int_eq(fin.state, FILE_FAILED);
    counters(up, 3, 2, 1, 1, 0, 1);
    ck_assert_str_eq(file(f2).error_stage, "decode");
    ck_assert_str_eq(file(f2).spool, "");  /* keep_spool false */
    ck_assert_int_eq(upload(up).last_batch_end_at, T0 + 70);

    /* batch 2: the duplicate finishes the upload */
    ck_assert_int_eq(assign(up, 2, 2, T0 + 80), 1);
    ck_assert_int_eq(upload(up).current_batch, 2);
    c = claim("w2", T0 + 90);
    ck_assert_int_eq(c.file.id, f3);
    ck_assert_int_eq(S->ops->file_claim(S, "w2", T0 + 90, 1000, &c, &err), STORE_NOT_FOUND);
    fin = finish(f3, "w2", &dup, T0 + 100);
    ck_assert_int_eq(fin.state, FILE_DUPLICATE);
    ck_assert_int_eq(fin.photo_id, photo1);
    ck_assert(fin.upload_finished);
    counters(up, 3, 3, 1, 1, 1, 0);
    ck_assert_int_eq(file(f3).duplicate_of, photo1);
    ck_assert_int_eq(file(f3).photo_id, 0);
    u = upload(up);
    ck_assert_int_eq(u.finished_at, T0 + 100);
    ck_assert_int_eq(u.last_batch_end_at, T0 + 100);
    ck_assert_int_eq(sched().n, 0);

    ck_assert_int_eq(S->ops->upload_files(S, up, collect_file, &fl, &err), 0);
    ck_assert_int_eq(fl.n, 3);
    ck_assert_int_eq(fl.f[0].state, FILE_DONE);
    ck_assert_int_eq(fl.f[1].state, FILE_FAILED);
    ck_assert_int_eq(fl.f[2].state, FILE_DUPLICATE);
    memset(&fl, 0, sizeof(fl));
    ck_assert_int_eq(S->ops->upload_errors(S, up, collect_file, &fl, &err), 0);
    ck_assert_int_eq(fl.n, 1);
    ck_assert_int_eq(fl.f[0].id, f2);
    ck_assert_str_eq(fl.f[0].error_msg, "cannot decode 'x.jpg': truncated");
}
END_TEST

START_TEST(test_ingest_rejected_file)
{
    struct err why = {0}, err = {0};
    int64_t bob = mkuser("bob");
    int64_t up = mkupload(bob, 0, 10);

    err_set(&why, ERR_PERMANENT, "receive", "'big.jpg' is larger than 100 MB");
    ck_assert_int_eq(S->ops->upload_request_begin(S, up, 0, 0, T0, &err), 0);
    int64_t f = add_file(up, bob, "big.jpg", "", "", &why);
    ck_assert_int_eq(file(f).state, FILE_FAILED);
    ck_assert_str_eq(file(f).error_msg, "'big.jpg' is larger than 100 MB");
    counters(up, 1, 1, 0, 1, 0, 0);
    ck_assert_int_eq(upload(up).finished_at, 0);  /* the request is still open */
    ck_assert_int_eq(S->ops->upload_request_end(S, up, T0 + 5, &err), 0);
    ck_assert_int_eq(upload(up).finished_at, T0 + 5);
}
END_TEST

/* When does an upload finish? expected, files, and whether the request ends
 * before or after the last outcome. */
static const struct {
    int64_t expected, files;
    bool end_first;
    bool at_outcome, after_end;
} finish_rows[] = {
    {0, 1, true, true, true},    /* request ended, last outcome finishes */
    {0, 1, false, false, true},  /* request open: the end finishes */
    {1, 1, true, true, true},
    {2, 1, true, false, false},  /* one announced file never came */
    {2, 1, false, false, false},
    {0, 0, false, false, true},  /* empty upload: the end deletes it */
};

START_TEST(test_finish_conditions)
{
    struct err err = {0};
    int64_t bob = mkuser("bob");
    int64_t up = mkupload(bob, 0, 10);
    bool finished = false;

    ck_assert_int_eq(S->ops->upload_request_begin(S, up, finish_rows[_i].expected, 0, T0, &err),
                     0);
    for (int64_t i = 0; i < finish_rows[_i].files; i++) {
        char sha[65];
        snprintf(sha, sizeof(sha), "%064lld", (long long)i + 1);
        add_file(up, bob, "f.jpg", sha, "spool/f", NULL);
    }
    if (finish_rows[_i].end_first)
        ck_assert_int_eq(S->ops->upload_request_end(S, up, T0 + 1, &err), 0);
    if (finish_rows[_i].files > 0) {
        ck_assert_int_eq(assign(up, 1, 100, T0 + 2), finish_rows[_i].files);
        for (int64_t i = 0; i < finish_rows[_i].files; i++) {
            struct store_claim c = claim("w", T0 + 3);
            struct store_result r = ok_result("f.jpg", c.file.sha256, "");
            finished = finish(c.file.id, "w", &r, T0 + 4).upload_finished;
        }
        ck_assert_int_eq(finished, finish_rows[_i].at_outcome);
        ck_assert_int_eq(upload(up).finished_at != 0, finish_rows[_i].at_outcome);
    }
    if (!finish_rows[_i].end_first)
        ck_assert_int_eq(S->ops->upload_request_end(S, up, T0 + 5, &err), 0);
    if (finish_rows[_i].files == 0) {
        struct store_upload u;
        ck_assert_int_eq(S->ops->upload_get(S, up, 0, &u, &err), STORE_NOT_FOUND);
        return;
    }
    ck_assert_int_eq(upload(up).finished_at != 0, finish_rows[_i].after_end);
    ck_assert_int_eq(upload(up).open_requests, 0);
}
END_TEST

/* An upload that never got a file (opened for tus files that have not
 * completed) is not finished when idle: it would show as "failed" with
 * nothing in it. It keeps waiting until empty_before, then is deleted; one
 * with a request open is kept either way. */
START_TEST(test_empty_upload_idle)
{
    struct err err = {0};
    struct store_upload u;
    int64_t bob = mkuser("bob");
    int64_t empty = mkupload(bob, 3, 10), sending = mkupload(bob, 3, 10);
    int64_t closed = -1, dropped = -1;

    ck_assert_int_eq(S->ops->upload_request_begin(S, sending, 0, 0, T0, &err), 0);
    ck_assert_int_eq(S->ops->upload_close_idle(S, T0 + 10, T0, T0 + 20, &closed, &dropped, &err),
                     0);
    ck_assert_int_eq(closed, 0);
    ck_assert_int_eq(dropped, 0);
    ck_assert_int_eq(upload(empty).finished_at, 0); /* still waiting */
    ck_assert_int_eq(upload(empty).expected, 3);
    ck_assert_int_eq(S->ops->upload_add_bytes(S, empty, 0, T0 + 5, &err), 0); /* a tus creation */
    ck_assert_int_eq(S->ops->upload_close_idle(S, T0 + 10, T0 + 5, T0 + 20, &closed, &dropped,
                                               &err),
                     0);
    ck_assert_int_eq(dropped, 0);
    ck_assert_int_eq(S->ops->upload_close_idle(S, T0 + 10, T0 + 6, T0 + 20, &closed, &dropped,
                                               &err),
                     0);
    ck_assert_int_eq(closed, 0);
    ck_assert_int_eq(dropped, 1);
    ck_assert_int_eq(S->ops->upload_get(S, empty, 0, &u, &err), STORE_NOT_FOUND);
    ck_assert_int_eq(upload(sending).open_requests, 1);
    ck_assert_int_eq(upload(sending).finished_at, 0);
}
END_TEST

/* upload_drop_expected: a file the upload expected will never come. Rows: expected,
 * files recorded (rejected: each has its outcome), files received (no outcome yet),
 * a request open; then what the drop does: lowered, deleted, expected after, finished. */
static const struct {
    int64_t expected, rejected, received;
    bool request;
    bool lowered, deleted;
    int64_t expected_after;
    bool finished;
} drop_rows[] = {
    {3, 2, 0, false, true, false, 2, true},    /* the rest has its outcome: finished */
    {3, 1, 1, false, true, false, 2, false},   /* a file still to process */
    {3, 1, 0, false, true, false, 2, false},   /* another file still to come */
    {1, 0, 0, false, true, true, 0, false},    /* nothing in it, nothing to come: gone */
    {1, 0, 0, true, true, false, 0, false},    /* ... unless a request still sends into it */
    {2, 2, 0, false, false, false, 2, true},   /* every expected file is there: no change */
    {0, 0, 0, false, false, false, 0, false},  /* 0 = unknown: nothing to lower */
};

START_TEST(test_drop_expected)
{
    struct err err = {0};
    struct err why = {.cls = ERR_PERMANENT, .stage = "receive", .msg = "too large"};
    int64_t bob = mkuser("bob");
    int64_t up = mkupload(bob, drop_rows[_i].expected, 10);
    bool lowered = !drop_rows[_i].lowered, deleted = !drop_rows[_i].deleted;
    struct store_upload u;

    if (drop_rows[_i].request)
        ck_assert_int_eq(S->ops->upload_request_begin(S, up, 0, 0, T0, &err), 0);
    for (int64_t i = 0; i < drop_rows[_i].rejected; i++)
        add_file(up, bob, "r.jpg", "", "", &why);
    for (int64_t i = 0; i < drop_rows[_i].received; i++)
        add_file(up, bob, "f.jpg", SHA_A, "spool/f", NULL);
    int64_t version = upload(up).version;
    ck_assert_int_eq(S->ops->upload_drop_expected(S, up, T0 + 50, &lowered, &deleted, &err), 0);
    ck_assert_int_eq(lowered, drop_rows[_i].lowered);
    ck_assert_int_eq(deleted, drop_rows[_i].deleted);
    if (drop_rows[_i].deleted) {
        ck_assert_int_eq(S->ops->upload_get(S, up, 0, &u, &err), STORE_NOT_FOUND);
        return;
    }
    u = upload(up);
    ck_assert_int_eq(u.expected, drop_rows[_i].expected_after);
    ck_assert_int_eq(u.finished_at != 0, drop_rows[_i].finished);
    /* a change is a new version (progress and SSE show it); no change, none */
    ck_assert_int_eq(u.version > version, drop_rows[_i].lowered);
}
END_TEST

/* Every way an upload without files is deleted: no session keeps it as its current
 * upload (a page opened later would ask for it), while a session whose upload stays
 * keeps it. */
enum empty_path { BY_REQUEST_END, BY_RESTART, BY_IDLE, BY_DROP_EXPECTED, BY_GONE_NODE };

static void delete_empty_by(enum empty_path path, int64_t up)
{
    struct err err = {0};
    struct store *s2 = NULL;
    int64_t n1 = 0, n2 = 0;
    bool lowered = false, deleted = false;

    switch (path) {
    case BY_REQUEST_END:
        ck_assert_int_eq(S->ops->upload_request_begin(S, up, 0, 0, T0, &err), 0);
        ck_assert_int_eq(S->ops->upload_request_end(S, up, T0 + 1, &err), 0);
        break;
    case BY_RESTART:
        ck_assert_int_eq(S->ops->upload_reset_requests(S, T0 + 9, T0 + 5, NULL, 0, &err), 0);
        break;
    case BY_IDLE:
        ck_assert_int_eq(S->ops->upload_close_idle(S, T0 + 10, T0 + 5, T0 + 20, &n1, &n2, &err),
                         0);
        ck_assert_int_eq(n2, 1);
        break;
    case BY_DROP_EXPECTED:
        ck_assert_int_eq(S->ops->upload_drop_expected(S, up, T0 + 1, &lowered, &deleted, &err),
                         0);
        ck_assert(lowered && deleted);
        break;
    case BY_GONE_NODE:
        ck_assert_int_eq(store_open(dbpath, &s2, &err), 0);
        ck_assert_int_eq(S->ops->node_register(S, "host:1:100", T0, &err), 0);
        ck_assert_int_eq(s2->ops->node_register(s2, "host:2:200", T0, &err), 0);
        ck_assert_int_eq(S->ops->upload_request_begin(S, up, 0, 0, T0, &err), 0);
        ck_assert_int_eq(s2->ops->node_heartbeat(s2, T0 + 20000, T0 + 10000, &n1, &err), 0);
        ck_assert_int_eq(n1, 1);
        s2->ops->close(s2);
        break;
    }
}

START_TEST(test_deleted_upload_is_no_sessions_current)
{
    struct err err = {0};
    struct store_session ss;
    struct store_upload u;
    int64_t bob = mkuser("bob");
    int64_t gone = mkupload(bob, 1, 10), kept = mkupload(bob, 0, 10);

    add_file(kept, bob, "a.jpg", SHA_A, "spool/a", NULL);
    ck_assert_int_eq(S->ops->session_create(S, "digest1", bob, T0, T0 + 3600000, &err), 0);
    ck_assert_int_eq(S->ops->session_create(S, "digest2", bob, T0, T0 + 3600000, &err), 0);
    ck_assert_int_eq(S->ops->session_set_upload(S, "digest1", gone, &err), 0);
    ck_assert_int_eq(S->ops->session_set_upload(S, "digest2", kept, &err), 0);
    delete_empty_by((enum empty_path)_i, gone);
    ck_assert_int_eq(S->ops->upload_get(S, gone, 0, &u, &err), STORE_NOT_FOUND);
    ck_assert_int_eq(S->ops->session_get(S, "digest1", T0 + 2, &ss, &err), 0);
    ck_assert_int_eq(ss.current_upload, 0);
    ck_assert_int_eq(S->ops->session_get(S, "digest2", T0 + 2, &ss, &err), 0);
    ck_assert_int_eq(ss.current_upload, kept);
}
END_TEST

START_TEST(test_drop_expected_missing)
{
    struct err err = {0};
    bool lowered = true, deleted = true;

    ck_assert_int_eq(S->ops->upload_drop_expected(S, 999, T0, &lowered, &deleted, &err),
                     STORE_NOT_FOUND);
    ck_assert(!lowered && !deleted);
}
END_TEST

START_TEST(test_upload_misc)
{
    struct err err = {0};
    struct store_upload u;
    int64_t bob = mkuser("bob"), eve = mkuser("eve");
    int64_t up = mkupload(bob, 0, 10);
    int64_t up2 = mkupload(bob, 0, 10);

    ck_assert_int_eq(S->ops->upload_get(S, up, eve, &u, &err), STORE_NOT_FOUND);
    ck_assert_int_eq(S->ops->upload_get(S, up, bob, &u, &err), 0);
    ck_assert_int_eq(S->ops->upload_get(S, 999, 0, &u, &err), STORE_NOT_FOUND);
    ck_assert_int_eq(S->ops->upload_request_begin(S, 999, 0, 0, T0, &err), -1);
    ck_assert_str_eq(err.msg, "cannot start a request: upload 999 does not exist");
    ck_assert_int_eq(S->ops->upload_request_end(S, 999, T0, &err), -1);
    ck_assert_int_eq(S->ops->upload_add_bytes(S, 999, 1, T0, &err), -1);
    ck_assert_int_eq(S->ops->upload_set_cleared(S, 999, true, &err), -1);
    ck_assert_int_eq(err.cls, ERR_PERMANENT);

    /* expected only rises; bytes_total adds up */
    ck_assert_int_eq(S->ops->upload_request_begin(S, up, 5, 100, T0, &err), 0);
    ck_assert_int_eq(S->ops->upload_request_begin(S, up, 3, 50, T0, &err), 0);
    u = upload(up);
    ck_assert_int_eq(u.expected, 5);
    ck_assert_int_eq(u.bytes_total, 150);
    ck_assert_int_eq(u.open_requests, 2);

    ck_assert_int_eq(S->ops->upload_set_cleared(S, up, true, &err), 0);
    ck_assert(upload(up).cleared);

    /* one of the 5 announced files came (rejected at once: it has its outcome) */
    struct err why = {0};
    err_set(&why, ERR_PERMANENT, "receive", "too large");
    struct store_file_new big = {.upload_id = up, .user_id = bob, .name = "big.jpg",
                                 .sha256 = "", .format = "", .spool = "", .size = 1,
                                 .failed = true, .error = &why};
    ck_assert_int_eq(S->ops->upload_add_file(S, &big, T0 + 1, NULL, &err), 0);

    /* a restart: no request is open any more; the upload without a file whose
     * request was cut off is gone; of those without requests (POST /api/uploads),
     * one unchanged since before drop_before goes, unless a tus file points to it */
    int64_t young = 0, old = 0, pointed = 0;
    ck_assert_int_eq(S->ops->upload_create(S, bob, 0, 4, T0 + 5, &young, &err), 0);
    ck_assert_int_eq(S->ops->upload_create(S, bob, 0, 4, T0 + 1, &old, &err), 0);
    ck_assert_int_eq(S->ops->upload_create(S, bob, 0, 4, T0 + 1, &pointed, &err), 0);
    ck_assert_int_eq(S->ops->upload_request_begin(S, up2, 0, 0, T0 + 6, &err), 0);
    ck_assert_int_eq(S->ops->upload_reset_requests(S, T0 + 9, T0 + 5, &pointed, 1, &err), 0);
    ck_assert_int_eq(upload(up).open_requests, 0);
    ck_assert_int_eq(upload(up).finished_at, 0);      /* 5 files announced, 1 came */
    ck_assert_int_eq(S->ops->upload_get(S, up2, 0, &u, &err), STORE_NOT_FOUND);
    ck_assert_int_eq(S->ops->upload_get(S, old, 0, &u, &err), STORE_NOT_FOUND);
    ck_assert_int_eq(S->ops->upload_get(S, young, 0, &u, &err), 0);
    ck_assert_int_eq(S->ops->upload_get(S, pointed, 0, &u, &err), 0);

    /* nobody sends the 4 missing files: idle since T0 + 9 */
    int64_t closed = -1, dropped = -1;
    ck_assert_int_eq(S->ops->upload_close_idle(S, T0 + 9, 0, T0 + 20, &closed, &dropped, &err),
                     0);
    ck_assert_int_eq(closed, 0);                       /* not idle long enough */
    ck_assert_int_eq(dropped, 0);
    ck_assert_int_eq(S->ops->upload_close_idle(S, T0 + 10, 0, T0 + 20, &closed, &dropped, &err),
                     0);
    ck_assert_int_eq(closed, 1);
    ck_assert_int_eq(upload(up).expected, 1);          /* goes on with what it has */
    ck_assert_int_eq(upload(up).finished_at, T0 + 20);

    /* a file for another user's upload is refused */
    struct store_file_new f = {.upload_id = up, .user_id = eve, .name = "x", .sha256 = SHA_A,
                               .format = "jpeg", .spool = "s", .size = 1};
    int64_t fid;
    ck_assert_int_eq(S->ops->upload_add_file(S, &f, T0, &fid, &err), -1);
    ck_assert_int_eq(err.cls, ERR_PERMANENT);
}
END_TEST

static void count_upload(void *ctx, const struct store_upload *u)
{
    int64_t *ids = ctx;

    ids[++ids[0]] = u->id;
}

START_TEST(test_upload_list)
{
    struct err err = {0};
    int64_t ids[8] = {0};
    int64_t bob = mkuser("bob"), eve = mkuser("eve");
    int64_t a = mkupload(bob, 0, 1), b = mkupload(bob, 0, 1);

    mkupload(eve, 0, 1);
    ck_assert_int_eq(S->ops->upload_list(S, bob, 0, count_upload, ids, &err), 0);
    ck_assert_int_eq(ids[0], 2);
    ck_assert_int_eq(ids[1], b);
    ck_assert_int_eq(ids[2], a);
    memset(ids, 0, sizeof(ids));
    ck_assert_int_eq(S->ops->upload_list(S, bob, 1, count_upload, ids, &err), 0);
    ck_assert_int_eq(ids[0], 1);
}
END_TEST

/* upload_open is one transaction: a failed commit leaves no upload behind (a multipart
 * request answered 503 is sent again as a new upload; the first must not wait forever
 * for files), and a good one has its first request open with the announced bytes. */
START_TEST(test_upload_open_is_one_transaction)
{
    struct err err = {0};
    int64_t ids[8] = {0};
    int64_t id = 0, bob = mkuser("bob");

    ck_assert_int_eq(fault_arm("commit=1"), 0);
    ck_assert_int_eq(S->ops->upload_open(S, bob, 6, 15, 4096, T0, &id, &err), -1);
    ck_assert_int_eq(err.cls, ERR_TRANSIENT);
    ck_assert_int_eq(fault_arm(""), 0);
    ck_assert_int_eq(S->ops->upload_list(S, bob, 0, count_upload, ids, &err), 0);
    ck_assert_int_eq(ids[0], 0);
    ck_assert_int_eq(S->ops->upload_open(S, bob, 6, 15, 4096, T0, &id, &err), 0);
    ck_assert_int_eq(upload(id).open_requests, 1);
    ck_assert_int_eq(upload(id).expected, 6);
    ck_assert_int_eq(upload(id).bytes_total, 4096);
    ck_assert_int_eq(S->ops->upload_request_end(S, id, T0 + 1, &err), 0);
    ck_assert_int_eq(S->ops->upload_get(S, id, bob, &(struct store_upload){0}, &err),
                     STORE_NOT_FOUND);  /* no file came: an empty upload is dropped */
}
END_TEST

/* ---- workers: crash, retry, lease ---- */

START_TEST(test_release_after_crash)
{
    struct err err = {0}, why = {0};
    int64_t bob = mkuser("bob"), released = -1;
    int64_t up = mkupload(bob, 1, 10);
    int64_t f = add_file(up, bob, "a.jpg", SHA_A, "spool/a", NULL);
    struct store_claim c;

    err_set(&why, ERR_PERMANENT, "decode", "the worker crashed while decoding 'a.jpg'");
    assign(up, 1, 10, T0);
    c = claim("w1", T0);
    ck_assert_int_eq(c.file.attempts, 1);
    /* the dead worker's files go back to the queue */
    ck_assert_int_eq(S->ops->file_release(S, "w1", T0 + 10, 2, &why, &released, &err), 0);
    ck_assert_int_eq(released, 1);
    ck_assert_int_eq(file(f).state, FILE_QUEUED);
    ck_assert_str_eq(file(f).lease_owner, "");
    counters(up, 1, 0, 0, 0, 0, 0);

    c = claim("w2", T0 + 20);
    ck_assert_int_eq(c.file.attempts, 2);
    /* an unexpired lease is left alone */
    ck_assert_int_eq(S->ops->file_release(S, NULL, T0 + 30, 2, &why, &released, &err), 0);
    ck_assert_int_eq(released, 0);
    ck_assert_int_eq(file(f).state, FILE_PROCESSING);
    /* expired, attempts used up: failed with the reason */
    ck_assert_int_eq(S->ops->file_release(S, NULL, c.lease_until + 1, 2, &why, &released, &err),
                     0);
    ck_assert_int_eq(released, 1);
    ck_assert_int_eq(file(f).state, FILE_FAILED);
    ck_assert_str_eq(file(f).error_stage, "decode");
    ck_assert_str_eq(file(f).error_msg, "the worker crashed while decoding 'a.jpg'");
    ck_assert_str_eq(file(f).spool, "spool/a");  /* kept for a retry */
    counters(up, 1, 1, 0, 1, 0, 0);
    ck_assert_int_eq(upload(up).finished_at, c.lease_until + 1);
    ck_assert_int_eq(upload(up).last_batch_end_at, c.lease_until + 1);
}
END_TEST

START_TEST(test_retry)
{
    struct err err = {0};
    struct store_result keep = failed_result(true), drop = failed_result(false);
    struct store_result ok = ok_result("a.jpg", SHA_A, "");
    int64_t bob = mkuser("bob"), eve = mkuser("eve");
    int64_t up = mkupload(bob, 2, 10);
    int64_t fa = add_file(up, bob, "a.jpg", SHA_A, "spool/a", NULL);
    int64_t fb = add_file(up, bob, "b.jpg", SHA_B, "spool/b", NULL);

    assign(up, 1, 10, T0);
    ck_assert_int_eq(finish(claim("w", T0).file.id, "w", &keep, T0 + 1).state, FILE_FAILED);
    ck_assert(finish(claim("w", T0).file.id, "w", &drop, T0 + 2).upload_finished);
    counters(up, 2, 2, 0, 2, 0, 0);

    /* not a failed file of that user and upload */
    ck_assert_int_eq(S->ops->file_retry(S, eve, up, fa, T0 + 3, &err), STORE_NOT_FOUND);
    ck_assert_int_eq(S->ops->file_retry(S, bob, up + 1, fa, T0 + 3, &err), STORE_NOT_FOUND);
    /* bytes gone */
    ck_assert_int_eq(S->ops->file_retry(S, bob, up, fb, T0 + 3, &err), -1);
    ck_assert_int_eq(err.cls, ERR_PERMANENT);
    ck_assert_ptr_nonnull(strstr(err.msg, "no longer held"));

    ck_assert_int_eq(S->ops->file_retry(S, bob, up, fa, T0 + 3, &err), 0);
    ck_assert_int_eq(file(fa).state, FILE_QUEUED);
    ck_assert_int_eq(file(fa).attempts, 0);
    counters(up, 2, 1, 0, 1, 0, 0);
    ck_assert_int_eq(upload(up).finished_at, 0);
    ck_assert_int_eq(S->ops->file_retry(S, bob, up, fa, T0 + 3, &err), STORE_NOT_FOUND);

    struct store_claim c = claim("w", T0 + 4);
    ck_assert_int_eq(c.file.id, fa);
    ck_assert_int_eq(c.file.attempts, 1);
    ck_assert(finish(fa, "w", &ok, T0 + 5).upload_finished);
    counters(up, 2, 2, 1, 1, 0, 0);
    ck_assert_int_eq(upload(up).finished_at, T0 + 5);
}
END_TEST

START_TEST(test_lease_lost)
{
    struct err err = {0}, why = {0};
    struct store_result ok = ok_result("a.jpg", SHA_A, "");
    struct store_finish fin;
    struct store_claim c;
    int64_t bob = mkuser("bob"), released, v;
    int64_t up = mkupload(bob, 1, 10);
    int64_t f = add_file(up, bob, "a.jpg", SHA_A, "spool/a", NULL);

    err_set(&why, ERR_TRANSIENT, "store", "database is locked");
    assign(up, 1, 10, T0);
    c = claim("w1", T0);
    v = upload(up).version;
    ck_assert_int_eq(S->ops->file_finish(S, f, "w2", &ok, T0 + 1, &fin, &err), STORE_NOT_FOUND);
    ck_assert_int_eq(S->ops->file_defer(S, f, "w2", T0 + 1, &why, T0 + 1, &err),
                     STORE_NOT_FOUND);
    ck_assert_int_eq(upload(up).version, v);
    ck_assert_int_eq(file(f).state, FILE_PROCESSING);

    /* transient: deferred until T0 + 500 */
    ck_assert_int_eq(S->ops->file_defer(S, f, "w1", T0 + 500, &why, T0 + 2, &err), 0);
    ck_assert_int_eq(file(f).state, FILE_QUEUED);
    ck_assert_int_eq(S->ops->file_claim(S, "w1", T0 + 499, 1000, &c, &err), STORE_NOT_FOUND);
    c = claim("w1", T0 + 500);
    ck_assert_int_eq(c.file.attempts, 2);

    /* the lease expires, another worker takes it: the first may not finish */
    ck_assert_int_eq(S->ops->file_release(S, NULL, c.lease_until + 1, 5, &why, &released, &err),
                     0);
    c = claim("w2", c.lease_until + 2);
    ck_assert_int_eq(S->ops->file_finish(S, f, "w1", &ok, T0, &fin, &err), STORE_NOT_FOUND);
    ck_assert_int_eq(finish(f, "w2", &ok, c.lease_until).state, FILE_DONE);
    ck_assert_int_eq(S->ops->file_finish(S, f, "w2", &ok, T0, &fin, &err), STORE_NOT_FOUND);
    counters(up, 1, 1, 1, 0, 0, 0);
}
END_TEST

/* A renewed lease is not released as expired; a lost one is not renewed. */
START_TEST(test_lease_renew)
{
    struct err err = {0}, why = {0};
    struct store_result ok = ok_result("a.jpg", SHA_A, "");
    struct store_claim c;
    int64_t carol = mkuser("carol"), released = -1;
    int64_t up = mkupload(carol, 1, 10);
    int64_t f = add_file(up, carol, "a.jpg", SHA_A, "spool/a", NULL);

    err_set(&why, ERR_PERMANENT, "decode", "the worker vanished");
    assign(up, 1, 10, T0);
    c = claim("w1", T0);
    ck_assert_int_eq(S->ops->file_renew(S, f, "w1", c.lease_until + 60000, T0 + 1, &err), 0);
    ck_assert_int_eq(S->ops->file_release(S, NULL, c.lease_until + 1, 5, &why, &released, &err),
                     0);
    ck_assert_int_eq(released, 0);
    ck_assert_int_eq(file(f).state, FILE_PROCESSING);
    /* another owner may not renew it */
    ck_assert_int_eq(S->ops->file_renew(S, f, "w2", T0 + 999999, T0 + 2, &err), STORE_NOT_FOUND);
    /* past the renewed lease it expires as before, and w1 cannot renew it back */
    ck_assert_int_eq(S->ops->file_release(S, NULL, c.lease_until + 60001, 5, &why, &released,
                                          &err), 0);
    ck_assert_int_eq(released, 1);
    ck_assert_int_eq(S->ops->file_renew(S, f, "w1", T0 + 999999, T0 + 3, &err), STORE_NOT_FOUND);
    c = claim("w2", c.lease_until + 60002);
    ck_assert_int_eq(S->ops->file_renew(S, f, "w2", c.lease_until + 1000, T0 + 4, &err), 0);
    ck_assert_int_eq(finish(f, "w2", &ok, c.lease_until).state, FILE_DONE);
    /* finished: nothing to renew */
    ck_assert_int_eq(S->ops->file_renew(S, f, "w2", T0 + 999999, T0 + 5, &err), STORE_NOT_FOUND);
}
END_TEST

/* A live worker between files gives back what is still leased to it (a claim whose
 * answer was lost, an outcome the database lost): queued at once, that claim not
 * counted as an attempt; another owner's files, and other states, are left alone. */
START_TEST(test_unclaim)
{
    struct err err = {0};
    struct store_result ok = ok_result("a.jpg", SHA_A, "");
    struct store_claim c;
    int64_t bob = mkuser("bob"), n = -1;
    int64_t up = mkupload(bob, 3, 10);
    int64_t fa = add_file(up, bob, "a.jpg", SHA_A, "spool/a", NULL);
    int64_t fb = add_file(up, bob, "b.jpg", SHA_B, "spool/b", NULL);
    int64_t fc = add_file(up, bob, "c.jpg", SHA_C, "spool/c", NULL);
    int64_t v;

    assign(up, 1, 10, T0);
    ck_assert_int_eq(claim("w1", T0).file.id, fa);
    ck_assert_int_eq(claim("w2", T0).file.id, fb);
    /* nothing of w3's: no change, not even the upload's version */
    v = upload(up).version;
    ck_assert_int_eq(S->ops->file_unclaim(S, "w3", T0 + 1, &n, &err), 0);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(upload(up).version, v);
    /* w1 lost track of a.jpg: queued now, attempts back to 0; w2's b.jpg untouched */
    ck_assert_int_eq(S->ops->file_unclaim(S, "w1", T0 + 2, &n, &err), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(file(fa).state, FILE_QUEUED);
    ck_assert_int_eq(file(fa).attempts, 0);
    ck_assert_str_eq(file(fa).lease_owner, "");
    ck_assert_int_eq(file(fb).state, FILE_PROCESSING);
    ck_assert_str_eq(file(fb).lease_owner, "w2");
    ck_assert_int_gt(upload(up).version, v);
    counters(up, 3, 0, 0, 0, 0, 0);
    /* the file is claimed again at once, as a first attempt; w1 may not finish it */
    c = claim("w3", T0 + 2);
    ck_assert_int_eq(c.file.id, fa);
    ck_assert_int_eq(c.file.attempts, 1);
    ck_assert_int_eq(finish(fa, "w3", &ok, T0 + 3).state, FILE_DONE);
    /* a finished file is not given back */
    ck_assert_int_eq(S->ops->file_unclaim(S, "w3", T0 + 4, &n, &err), 0);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(file(fa).state, FILE_DONE);
    ck_assert_int_eq(file(fc).state, FILE_QUEUED);
    counters(up, 3, 1, 1, 0, 0, 0);
    /* "*" and "" are not one worker */
    ck_assert_int_eq(S->ops->file_unclaim(S, "*", T0 + 5, &n, &err), -1);
    ck_assert_int_eq(S->ops->file_unclaim(S, "", T0 + 5, &n, &err), -1);
    ck_assert_int_eq(file(fb).state, FILE_PROCESSING);
}
END_TEST

/* The oldest queued file first, across uploads. */
START_TEST(test_claim_order)
{
    int64_t bob = mkuser("bob");
    int64_t u1 = mkupload(bob, 0, 10), u2 = mkupload(bob, 0, 10);
    int64_t a = add_file(u1, bob, "a", SHA_A, "s", NULL);
    int64_t b = add_file(u2, bob, "b", SHA_B, "s", NULL);
    int64_t c = add_file(u1, bob, "c", SHA_C, "s", NULL);

    assign(u2, 1, 10, T0 + 1);  /* b queued first */
    assign(u1, 1, 10, T0 + 2);
    ck_assert_int_eq(claim("w", T0 + 3).file.id, b);
    ck_assert_int_eq(claim("w", T0 + 3).file.id, a);
    ck_assert_int_eq(claim("w", T0 + 3).file.id, c);
}
END_TEST

/* The queue depth (metrics): received, queued and processing files over every
 * unfinished upload; finished files and finished uploads are not in it. */
START_TEST(test_queue_depth)
{
    struct store_result bad = failed_result(false);
    struct store_queue q;
    struct err err = {0};
    int64_t bob = mkuser("bob");
    int64_t u1 = mkupload(bob, 0, 10), u2 = mkupload(bob, 0, 10);

    ck_assert_int_eq(S->ops->queue_depth(S, &q, &err), 0);
    ck_assert(q.received == 0 && q.queued == 0 && q.processing == 0);
    add_file(u1, bob, "a", SHA_A, "s", NULL);
    add_file(u1, bob, "b", SHA_B, "s", NULL);
    add_file(u2, bob, "c", SHA_C, "s", NULL);
    add_file(u2, bob, "d", SHA_A, "s", NULL);
    assign(u2, 1, 10, T0 + 1);
    struct store_claim c = claim("w", T0 + 2);
    ck_assert_int_eq(S->ops->queue_depth(S, &q, &err), 0);
    ck_assert_int_eq(q.received, 2);
    ck_assert_int_eq(q.queued, 1);
    ck_assert_int_eq(q.processing, 1);
    finish(c.file.id, "w", &bad, T0 + 3);
    ck_assert_int_eq(S->ops->queue_depth(S, &q, &err), 0);
    ck_assert(q.received == 2 && q.queued == 1 && q.processing == 0);
}
END_TEST

/* ---- the commit fault point ---- */

START_TEST(test_commit_fault)
{
    struct err err = {0};
    struct store_user u;
    struct store_finish fin;
    struct store_result ok = ok_result("a.jpg", SHA_A, "");
    int64_t id, bob = mkuser("bob");
    int64_t up = mkupload(bob, 1, 10);
    int64_t f = add_file(up, bob, "a.jpg", SHA_A, "spool/a", NULL);
    struct store_upload before;

    ck_assert_int_eq(fault_arm("commit=1"), 0);
    ck_assert_int_eq(S->ops->user_create(S, "carol", "h", T0, &id, &err), -1);
    ck_assert_int_eq(err.cls, ERR_TRANSIENT);
    ck_assert_str_eq(err.stage, "store");
    ck_assert_str_eq(err.msg, "cannot commit: injected fault");
    ck_assert_int_eq(S->ops->user_find(S, "carol", &u, &err), STORE_NOT_FOUND);
    ck_assert_int_eq(S->ops->user_create(S, "carol", "h", T0, &id, &err), 0);  /* once */

    assign(up, 1, 10, T0);
    claim("w", T0);
    before = upload(up);
    ck_assert_int_eq(fault_arm("commit=1"), 0);
    ck_assert_int_eq(S->ops->file_finish(S, f, "w", &ok, T0 + 1, &fin, &err), -1);
    ck_assert_int_eq(err.cls, ERR_TRANSIENT);
    ck_assert_int_eq(fault_arm(""), 0);
    ck_assert_int_eq(file(f).state, FILE_PROCESSING);
    ck_assert_int_eq(upload(up).version, before.version);
    counters(up, 1, 0, 0, 0, 0, 0);
    ck_assert_int_eq(S->ops->photo_find_sha(S, bob, SHA_A, &(struct store_photo){0}, &err),
                     STORE_NOT_FOUND);
    ck_assert_int_eq(finish(f, "w", &ok, T0 + 2).state, FILE_DONE);
}
END_TEST

/* ---- photos ---- */

static void collect_photo(void *ctx, const struct store_photo *p)
{
    int64_t *ids = ctx;

    ids[++ids[0]] = p->id;
}

/* An OFFSET page of photo_page into ids (ids[0] counts them); its total into *total. */
static int list_photos(int64_t user, int64_t upload, int64_t limit, int64_t offset, int64_t *ids,
                       int64_t *total)
{
    struct store_page pg = {.user_id = user, .upload_id = upload, .limit = limit,
                            .from = STORE_PAGE_OFFSET, .offset = offset};
    struct err err = {0};
    int rc = S->ops->photo_page(S, &pg, collect_photo, ids, &err);

    if (total)
        *total = pg.total;
    return rc;
}

START_TEST(test_photos)
{
    struct err err = {0};
    struct store_photo p;
    int64_t ids[8] = {0}, total = 0;
    int64_t bob = mkuser("bob"), eve = mkuser("eve");
    int64_t up = mkupload(bob, 0, 10);
    /* no capture time: sorted by upload time (2023-11-14 UTC), between the others */
    int64_t old = pipeline(bob, up, SHA_A, "2020-01-01T00:00:00", T0).photo_id;
    int64_t none = pipeline(bob, up, SHA_B, "", T0).photo_id;
    int64_t newer = pipeline(bob, up, SHA_C, "2024-06-01T12:00:00", T0).photo_id;

    ck_assert_int_eq(list_photos(bob, 0, 0, 0, ids, &total), 0);
    ck_assert_int_eq(total, 3);
    ck_assert_int_eq(ids[0], 3);
    ck_assert_int_eq(ids[1], newer);
    ck_assert_int_eq(ids[2], none);
    ck_assert_int_eq(ids[3], old);
    memset(ids, 0, sizeof(ids));
    ck_assert_int_eq(list_photos(bob, up, 1, 1, ids, &total), 0);
    ck_assert_int_eq(total, 3);
    ck_assert_int_eq(ids[0], 1);
    ck_assert_int_eq(ids[1], none);
    memset(ids, 0, sizeof(ids));
    ck_assert_int_eq(list_photos(eve, 0, 0, 0, ids, NULL), 0);
    ck_assert_int_eq(ids[0], 0);

    ck_assert_int_eq(S->ops->photo_get(S, old, bob, &p, &err), 0);
    ck_assert_str_eq(p.taken_at, "2020-01-01T00:00:00");
    ck_assert_str_eq(p.sha256, SHA_A);
    ck_assert_int_eq(p.width, 4000);
    ck_assert_double_nan(p.exposure_time);
    ck_assert_double_nan(p.gps_lat);
    ck_assert_double_eq(p.f_number, 2.8);
    ck_assert(p.has_thumb);
    ck_assert_int_eq(p.upload_id, up);
    ck_assert_int_gt(p.file_id, 0);
    ck_assert_int_eq(p.created_at, T0);
    ck_assert_int_eq(S->ops->photo_get(S, old, eve, &p, &err), STORE_NOT_FOUND);
    ck_assert_int_eq(S->ops->photo_find_sha(S, bob, SHA_C, &p, &err), 0);
    ck_assert_int_eq(p.id, newer);
    ck_assert_int_eq(S->ops->photo_find_sha(S, eve, SHA_C, &p, &err), STORE_NOT_FOUND);
}
END_TEST

/* The ids of one photo_page (ids[0] = how many), checked against want (0-terminated). */
static void page_is(struct store_page *pg, const int64_t *want)
{
    struct err err = {0};
    int64_t ids[16] = {0};
    int n = 0;

    ck_assert_int_eq(S->ops->photo_page(S, pg, collect_photo, ids, &err), 0);
    while (want[n])
        n++;
    ck_assert_int_eq(ids[0], n);
    ck_assert_int_eq(pg->n, n);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(ids[i + 1], want[i]);
    if (n) {
        ck_assert_int_eq(pg->first.id, want[0]);
        ck_assert_int_eq(pg->last.id, want[n - 1]);
    }
}

START_TEST(test_photo_page)
{
    static const char *const taken[] = {"2021-01-01T00:00:00", "2019-01-01T00:00:00",
                                        "2022-01-01T00:00:00", "", "2020-01-01T00:00:00",
                                        "2018-01-01T00:00:00"};
    int64_t bob = mkuser("bob"), eve = mkuser("eve"), up = mkupload(bob, 0, 10), t[6];
    char sha[65];
    struct err err = {0};
    bool last = false;

    for (int i = 0; i < 6; i++) {
        snprintf(sha, sizeof(sha), "%064d", i + 1);
        t[i] = pipeline(bob, up, sha, taken[i], T0).photo_id;
    }
    /* the same content again: no photo, not counted */
    snprintf(sha, sizeof(sha), "%064d", 1);
    ck_assert_int_eq(pipeline(bob, mkupload(bob, 0, 10), sha, taken[0], T0).state,
                     FILE_DUPLICATE);
    /* newest first: t3 (no capture time: 2023-11-14), t2, t0, t4, t1, t5 */
    struct store_page pg = {.user_id = bob, .limit = 2, .from = STORE_PAGE_OFFSET};
    page_is(&pg, (int64_t[]){t[3], t[2], 0});
    ck_assert_int_eq(pg.total, 6);
    ck_assert(!pg.newer && pg.older);
    pg.offset = 3;  /* nearer the end: read from the oldest */
    page_is(&pg, (int64_t[]){t[4], t[1], 0});
    ck_assert(pg.newer && pg.older);
    pg.offset = 4;
    page_is(&pg, (int64_t[]){t[1], t[5], 0});
    ck_assert(pg.newer && !pg.older);
    pg.offset = 5;
    pg.limit = 5;
    page_is(&pg, (int64_t[]){t[5], 0});
    pg.offset = 6;
    page_is(&pg, (int64_t[]){0});
    /* cursors: the photos just older / newer than a place */
    pg = (struct store_page){.user_id = bob, .limit = 2, .from = STORE_PAGE_BEFORE};
    pg.key = (struct store_photo_key){"2022-01-01T00:00:00", T0, t[2]};
    page_is(&pg, (int64_t[]){t[0], t[4], 0});
    ck_assert(pg.newer && pg.older);
    pg.from = STORE_PAGE_AFTER;
    pg.key = (struct store_photo_key){"2020-01-01T00:00:00", T0, t[4]};
    page_is(&pg, (int64_t[]){t[2], t[0], 0});
    ck_assert(pg.newer && pg.older);
    pg.limit = 3;
    page_is(&pg, (int64_t[]){t[3], t[2], t[0], 0});
    ck_assert(!pg.newer && pg.older);
    pg.from = STORE_PAGE_BEFORE;
    pg.key = (struct store_photo_key){"2018-01-01T00:00:00", T0, t[5]};
    page_is(&pg, (int64_t[]){0});
    ck_assert(pg.newer && !pg.older);
    /* a tie in sort time and creation time goes by id: the key's id splits the tie */
    pg.key = (struct store_photo_key){"2018-01-01T00:00:00", T0, t[5] + 1};
    page_is(&pg, (int64_t[]){t[5], 0});
    /* the kept count follows a delete, and is per user */
    ck_assert_int_eq(S->ops->photo_delete(S, t[0], bob, NULL, &last, &err), 0);
    pg = (struct store_page){.user_id = bob, .limit = 10, .from = STORE_PAGE_OFFSET};
    page_is(&pg, (int64_t[]){t[3], t[2], t[4], t[1], t[5], 0});
    ck_assert_int_eq(pg.total, 5);
    pg.user_id = eve;
    page_is(&pg, (int64_t[]){0});
    ck_assert_int_eq(pg.total, 0);
}
END_TEST

struct keys {
    char k[8][STORE_PATH_MAX];
    int n;
};

static void collect_key(void *ctx, const char *key)
{
    struct keys *k = ctx;

    if (k->n < 8)
        snprintf(k->k[k->n++], STORE_PATH_MAX, "%s", key);
}

START_TEST(test_photo_delete_refs)
{
    struct err err = {0};
    struct store_photo p;
    struct keys keys = {0};
    bool last = true;
    int64_t bob = mkuser("bob"), eve = mkuser("eve");
    int64_t ub = mkupload(bob, 0, 10), ue = mkupload(eve, 0, 10);
    int64_t pb = pipeline(bob, ub, SHA_A, "", T0).photo_id;
    int64_t pe = pipeline(eve, ue, SHA_A, "", T0).photo_id;  /* same content, other user */

    ck_assert_int_ne(pb, pe);
    ck_assert_int_eq(S->ops->blob_refs(S, collect_key, &keys, &err), 0);
    ck_assert_int_eq(keys.n, 2);  /* the original and the thumbnail, once each */

    ck_assert_int_eq(S->ops->photo_delete(S, pb, eve, &p, &last, &err), STORE_NOT_FOUND);
    ck_assert_int_eq(S->ops->photo_delete(S, pb, bob, &p, &last, &err), 0);
    ck_assert(!last);
    ck_assert_str_eq(p.sha256, SHA_A);
    ck_assert_int_eq(S->ops->photo_get(S, pb, 0, &p, &err), STORE_NOT_FOUND);
    ck_assert_int_eq(S->ops->photo_delete(S, pe, eve, &p, &last, &err), 0);
    ck_assert(last);
    memset(&keys, 0, sizeof(keys));
    ck_assert_int_eq(S->ops->blob_refs(S, collect_key, &keys, &err), 0);
    ck_assert_int_eq(keys.n, 0);
}
END_TEST

/* A file that holds the same original (handed off at intake, not yet processed) is a
 * use of it: deleting the only photo must not make its files removable. */
START_TEST(test_photo_delete_keeps_held_original)
{
    struct err err = {0};
    struct store_photo p;
    bool last = true;
    int64_t bob = mkuser("bob");
    int64_t ub = mkupload(bob, 0, 10), again = mkupload(bob, 0, 10);
    int64_t pb = pipeline(bob, ub, SHA_A, "", T0).photo_id;

    ck_assert_int_eq(S->ops->photo_get(S, pb, bob, &p, &err), 0);
    ck_assert_str_ne(p.blob_key, "");
    add_file(again, bob, "again.jpg", SHA_A, p.blob_key, NULL);
    ck_assert_int_eq(S->ops->photo_delete(S, pb, bob, &p, &last, &err), 0);
    ck_assert(!last);
}
END_TEST

START_TEST(test_spool_refs)
{
    struct err err = {0};
    struct keys keys = {0};
    int64_t bob = mkuser("bob");
    int64_t up = mkupload(bob, 0, 10);
    int64_t a = add_file(up, bob, "a", SHA_A, "spool/a", NULL);

    add_file(up, bob, "b", SHA_B, "spool/b", NULL);
    ck_assert_int_eq(S->ops->spool_refs(S, collect_key, &keys, &err), 0);
    ck_assert_int_eq(keys.n, 2);
    ck_assert_int_eq(S->ops->file_drop_spool(S, a, &err), 0);
    ck_assert_str_eq(file(a).spool, "");
    memset(&keys, 0, sizeof(keys));
    ck_assert_int_eq(S->ops->spool_refs(S, collect_key, &keys, &err), 0);
    ck_assert_int_eq(keys.n, 1);
    ck_assert_str_eq(keys.k[0], "spool/b");
}
END_TEST

/* A client name longer than the limit is cut at a character boundary. */
START_TEST(test_long_file_name)
{
    char name[STORE_FILENAME_MAX + 16];
    int64_t bob = mkuser("bob");
    int64_t up = mkupload(bob, 0, 10);
    size_t len;

    memset(name, 'a', sizeof(name));
    memcpy(name + STORE_FILENAME_MAX - 2, "\xc3\xa9", 2);  /* é across the cut */
    name[sizeof(name) - 1] = '\0';
    struct store_file f = file(add_file(up, bob, name, SHA_A, "s", NULL));
    len = strlen(f.name);
    ck_assert_uint_eq(len, STORE_FILENAME_MAX - 2);
}
END_TEST

/* ---- several connections and processes ---- */

struct claimer {
    struct store *st;
    const char *owner;
    int64_t got[64];
    int n;
};

static void *claim_all(void *arg)
{
    struct claimer *c = arg;
    struct store_claim cl;
    struct err err = {0};

    for (;;) {
        int rc = c->st->ops->file_claim(c->st, c->owner, T0 + 1000, 60000, &cl, &err);
        if (rc == STORE_NOT_FOUND)
            break;
        if (rc != 0 || c->n == 64)
            return (void *)1;
        c->got[c->n++] = cl.file.id;
    }
    return NULL;
}

START_TEST(test_two_stores)
{
    struct err err = {0};
    struct store *s2 = NULL;
    struct store_user u;
    struct claimer a = {0}, b = {0};
    pthread_t ta, tb;
    void *ra, *rb;
    bool seen[64] = {false};
    int64_t bob = mkuser("bob");
    int64_t up = mkupload(bob, 0, 100);

    ck_assert_int_eq(store_open(dbpath, &s2, &err), 0);
    ck_assert_int_eq(s2->ops->user_find(s2, "bob", &u, &err), 0);
    ck_assert_int_eq(u.id, bob);
    for (int i = 0; i < 40; i++) {
        char sha[65];
        snprintf(sha, sizeof(sha), "%064d", i);
        add_file(up, bob, "f", sha, "s", NULL);
    }
    assign(up, 1, 100, T0);
    a = (struct claimer){.st = S, .owner = "a"};
    b = (struct claimer){.st = s2, .owner = "b"};
    ck_assert_int_eq(pthread_create(&ta, NULL, claim_all, &a), 0);
    ck_assert_int_eq(pthread_create(&tb, NULL, claim_all, &b), 0);
    pthread_join(ta, &ra);
    pthread_join(tb, &rb);
    ck_assert_ptr_null(ra);
    ck_assert_ptr_null(rb);
    ck_assert_int_eq(a.n + b.n, 40);
    for (int i = 0; i < a.n; i++) {
        ck_assert(!seen[a.got[i] % 64]);
        seen[a.got[i] % 64] = true;
    }
    for (int i = 0; i < b.n; i++) {
        ck_assert(!seen[b.got[i] % 64]);
        seen[b.got[i] % 64] = true;
    }
    s2->ops->close(s2);
}
END_TEST

struct owners {
    int processing, by_parent, by_child;
};

static void count_owner(void *ctx, const struct store_file *f)
{
    struct owners *o = ctx;

    o->processing += f->state == FILE_PROCESSING;
    o->by_parent += strcmp(f->lease_owner, "parent") == 0;
    o->by_child += strcmp(f->lease_owner, "child") == 0;
}

/* Child process: its own store on the same file, claims until none is left,
 * exits with how many it got (or 255 on error). Never touches the parent's S. */
static void claim_in_child(void)
{
    struct store *st = NULL;
    struct err err = {0};
    struct claimer c = {0};

    if (store_open(dbpath, &st, &err))
        _exit(255);
    c = (struct claimer){.st = st, .owner = "child"};
    if (claim_all(&c))
        _exit(255);
    st->ops->close(st);
    _exit(c.n);
}

START_TEST(test_two_processes)
{
    struct err err = {0};
    struct claimer mine = {.owner = "parent"};
    struct owners o = {0};
    int64_t bob = mkuser("bob");
    int64_t up = mkupload(bob, 0, 100);
    int status = 0;
    pid_t pid;

    for (int i = 0; i < 50; i++) {
        char sha[65];
        snprintf(sha, sizeof(sha), "%064d", i);
        add_file(up, bob, "f", sha, "s", NULL);
    }
    assign(up, 1, 100, T0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        claim_in_child();
    mine.st = S;
    ck_assert_ptr_null(claim_all(&mine));
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_ne(WEXITSTATUS(status), 255);
    ck_assert_int_eq(mine.n + WEXITSTATUS(status), 50);
    ck_assert_int_eq(S->ops->upload_files(S, up, count_owner, &o, &err), 0);
    ck_assert_int_eq(o.processing, 50);
    ck_assert_int_eq(o.by_parent, mine.n);
    ck_assert_int_eq(o.by_child, WEXITSTATUS(status));
}
END_TEST

static void *count_users(void *arg)
{
    struct err err = {0};
    int64_t n;

    for (int i = 0; i < 30; i++) {
        if (S->ops->user_count(S, &n, &err) || n != 1)
            return (void *)1;
        if (S->ops->session_purge(S, T0, &err))
            return (void *)1;
    }
    return NULL;
}

/* More threads than pooled connections: they wait, nobody fails. */
START_TEST(test_pool_threads)
{
    pthread_t t[24];
    void *r;

    mkuser("bob");
    for (int i = 0; i < 24; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, count_users, NULL), 0);
    for (int i = 0; i < 24; i++) {
        pthread_join(t[i], &r);
        ck_assert_ptr_null(r);
    }
}
END_TEST

/* ---- hardening: resent files, sched open_requests, health ---- */

/* A request cut off by a crash and sent again: the same name with the same
 * content in the same upload is the same file; anything else is a new one. */
START_TEST(test_same_file_sent_again)
{
    struct err err = {0};
    int64_t bob = mkuser("bob");
    int64_t up = mkupload(bob, 0, 10), up2 = mkupload(bob, 0, 10);
    int64_t a = add_file(up, bob, "a.jpg", SHA_A, "spool/a", NULL), again = 0;
    struct store_file_new f = {.upload_id = up, .user_id = bob, .name = "a.jpg", .sha256 = SHA_A,
                               .format = "jpeg", .spool = "spool/a2", .size = 100};
    struct store_upload before = upload(up);

    ck_assert_int_eq(S->ops->upload_add_file(S, &f, T0 + 20, &again, &err), STORE_EXISTS);
    ck_assert_int_eq(again, a);
    ck_assert_int_eq(upload(up).total, 1);
    ck_assert_int_eq(upload(up).version, before.version);  /* nothing written */
    ck_assert_str_eq(file(a).spool, "spool/a");
    /* other content, other name, other upload: new files */
    add_file(up, bob, "a.jpg", SHA_B, "spool/b", NULL);
    add_file(up, bob, "copy of a.jpg", SHA_A, "spool/c", NULL);
    add_file(up2, bob, "a.jpg", SHA_A, "spool/d", NULL);
    ck_assert_int_eq(upload(up).total, 3);
    ck_assert_int_eq(upload(up2).total, 1);
    /* a rejected file has no content hash: each is recorded */
    struct err why = {0};
    err_set(&why, ERR_PERMANENT, "receive", "too large");
    add_file(up, bob, "big.jpg", "", "", &why);
    add_file(up, bob, "big.jpg", "", "", &why);
    ck_assert_int_eq(upload(up).total, 5);
}
END_TEST

START_TEST(test_sched_open_requests)
{
    struct err err = {0};
    int64_t bob = mkuser("bob");
    int64_t up = mkupload(bob, 0, 10);

    ck_assert_int_eq(S->ops->upload_request_begin(S, up, 5, 0, T0, &err), 0);
    add_file(up, bob, "a.jpg", SHA_A, "spool/a", NULL);
    ck_assert_int_eq(sched().n, 1);
    ck_assert_int_eq(sched().s[0].open_requests, 1);
    ck_assert(!sched().s[0].arrived);
    ck_assert_int_eq(S->ops->upload_request_end(S, up, T0 + 1, &err), 0);
    ck_assert_int_eq(sched().s[0].open_requests, 0);
    ck_assert(!sched().s[0].arrived);  /* 4 announced files still missing */
}
END_TEST

/* Several nodes: a node's open requests are its own; when its heartbeat stops
 * (another node's heartbeat finds it older than expire_before) they are closed
 * and its upload goes on with the files it got, while the living node's
 * requests stay open. */
START_TEST(test_node_requests_expire_with_the_node)
{
    struct err err = {0};
    struct store *s2 = NULL;
    int64_t bob = mkuser("bob"), expired = -1;
    int64_t up = mkupload(bob, 0, 10), up2 = mkupload(bob, 0, 10), empty = mkupload(bob, 0, 10);
    int64_t up3 = mkupload(bob, 0, 10);
    struct store_upload u;

    ck_assert_int_eq(store_open(dbpath, &s2, &err), 0);
    ck_assert_int_eq(S->ops->node_register(S, "host:1:100", T0, &err), 0);
    ck_assert_int_eq(s2->ops->node_register(s2, "host:2:200", T0, &err), 0);
    /* node 1: two requests into up (one ends), one into empty; node 2: one into up and up2 */
    ck_assert_int_eq(S->ops->upload_request_begin(S, up, 0, 0, T0, &err), 0);
    ck_assert_int_eq(S->ops->upload_request_begin(S, up, 0, 0, T0, &err), 0);
    ck_assert_int_eq(S->ops->upload_request_begin(S, empty, 0, 0, T0, &err), 0);
    ck_assert_int_eq(s2->ops->upload_request_begin(s2, up, 0, 0, T0, &err), 0);
    ck_assert_int_eq(s2->ops->upload_request_begin(s2, up2, 0, 0, T0, &err), 0);
    add_file(up, bob, "a.jpg", SHA_A, "spool/a", NULL);
    add_file(up2, bob, "b.jpg", SHA_B, "spool/b", NULL);
    /* node 1 announced 3 files into up3 and one arrived */
    ck_assert_int_eq(S->ops->upload_request_begin(S, up3, 3, 0, T0, &err), 0);
    add_file(up3, bob, "c.jpg", SHA_C, "spool/c", NULL);
    ck_assert_int_eq(S->ops->upload_request_end(S, up, T0 + 1, &err), 0);
    ck_assert_int_eq(upload(up).open_requests, 2);
    /* both alive: nothing expires */
    ck_assert_int_eq(s2->ops->node_heartbeat(s2, T0 + 5000, T0 - 1, &expired, &err), 0);
    ck_assert_int_eq(expired, 0);
    ck_assert_int_eq(upload(up).open_requests, 2);
    /* node 1 stops beating; node 2 beats on and finds it gone */
    ck_assert_int_eq(s2->ops->node_heartbeat(s2, T0 + 20000, T0 + 10000, &expired, &err), 0);
    ck_assert_int_eq(expired, 1);
    u = upload(up);
    ck_assert_int_eq(u.open_requests, 1);  /* node 2's request is still open */
    ck_assert_int_eq(upload(up2).open_requests, 1);
    ck_assert_int_eq(S->ops->upload_get(S, empty, 0, &u, &err), STORE_NOT_FOUND);  /* no file */
    /* up3 goes on with the file it got, as after a restart */
    u = upload(up3);
    ck_assert_int_eq(u.open_requests, 0);
    ck_assert_int_eq(u.expected, 1);
    /* once only */
    ck_assert_int_eq(s2->ops->node_heartbeat(s2, T0 + 21000, T0 + 11000, &expired, &err), 0);
    ck_assert_int_eq(expired, 0);
    ck_assert_int_eq(upload(up).open_requests, 1);
    ck_assert_int_eq(s2->ops->upload_request_end(s2, up, T0 + 22000, &err), 0);
    ck_assert_int_eq(upload(up).open_requests, 0);
    ck_assert(sched().s[0].arrived);
    s2->ops->close(s2);
}
END_TEST

struct changes {
    int64_t ids[64], versions[64];
    int n;
};

static void on_change(void *ctx, int64_t id, int64_t version)
{
    struct changes *c = ctx;

    if (c->n < 64) {
        c->ids[c->n] = id;
        c->versions[c->n++] = version;
    }
}

/* The change feed: every committed change of an upload arrives as (id, version)
 * on PostgreSQL, whichever store (process, node) made it; SQLite has none. */
START_TEST(test_change_feed)
{
    struct err err = {0};
    struct store_feed *f = NULL;
    struct store *s2 = NULL;
    struct changes got = {0};
    int64_t bob = mkuser("bob"), up;
    int rc = S->ops->feed_open(S, &f, &err);

#ifndef TESTDIR_PG
    ck_assert_int_eq(rc, STORE_NOT_FOUND);
    ck_assert_ptr_null(f);
    return;
#endif
    ck_assert_msg(rc == 0, "%s", err.msg);
    ck_assert_int_eq(store_open(dbpath, &s2, &err), 0);
    up = mkupload(bob, 0, 10);
    ck_assert_int_eq(s2->ops->upload_add_bytes(s2, up, 10, T0, &err), 0);
    add_file(up, bob, "a.jpg", SHA_A, "spool/a", NULL);
    for (int i = 0; i < 100 && got.n < 3; i++) {
        struct pollfd p = {.fd = S->ops->feed_fd(S, f), .events = POLLIN};
        if (poll(&p, 1, 100) == 1)
            ck_assert_int_eq(S->ops->feed_read(S, f, on_change, &got, &err), 0);
    }
    ck_assert_int_eq(got.n, 3);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(got.ids[i], up);
    ck_assert_int_eq(got.versions[2], upload(up).version);
    ck_assert_int_lt(got.versions[0], got.versions[1]);
    ck_assert_int_lt(got.versions[1], got.versions[2]);
    S->ops->feed_close(S, f);
    s2->ops->close(s2);
}
END_TEST

/* A commit by another process, on its own store: the change mark must see it. */
static void add_bytes_in_child(int64_t up)
{
    struct store *st = NULL;
    struct err err = {0};

    if (store_open(dbpath, &st, &err) || st->ops->upload_add_bytes(st, up, 5, T0, &err))
        _exit(1);
    st->ops->close(st);
    _exit(0);
}

/* The change mark (h_progress.c keeps an upload's row while it stays the same):
 * it moves with every commit, this store's, another store's, another
 * process's, and stays put while nothing is committed (reads included). */
START_TEST(test_change_mark)
{
    struct err err = {0};
    struct store *s2 = NULL;
    int64_t bob = mkuser("bob"), up = mkupload(bob, 0, 10);
    uint64_t m0, m1, m2, m3;
    int status = 0;
    pid_t pid;

    m0 = S->ops->change_mark(S);
#ifdef TESTDIR_PG
    ck_assert_uint_eq(m0, 0);  /* PostgreSQL: the change feed tells instead */
    return;
#endif
    ck_assert_uint_ne(m0, 0);
    (void)upload(up);
    ck_assert_uint_eq(S->ops->change_mark(S), m0);
    ck_assert_int_eq(S->ops->upload_add_bytes(S, up, 10, T0, &err), 0);
    m1 = S->ops->change_mark(S);
    ck_assert_uint_ne(m1, m0);
    ck_assert_uint_eq(S->ops->change_mark(S), m1);

    ck_assert_int_eq(store_open(dbpath, &s2, &err), 0);
    ck_assert_int_eq(s2->ops->upload_add_bytes(s2, up, 10, T0, &err), 0);
    m2 = S->ops->change_mark(S);
    ck_assert_uint_ne(m2, m1);
    s2->ops->close(s2);

    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        add_bytes_in_child(up);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    m3 = S->ops->change_mark(S);
    ck_assert_uint_ne(m3, m2);
    ck_assert_int_eq(upload(up).bytes_received, 25);
    ck_assert_uint_eq(S->ops->change_mark(S), m3);
}
END_TEST

START_TEST(test_health_check)
{
    struct err err = {0};

    ck_assert_int_eq(S->ops->health_check(S, T0, &err), 0);
    ck_assert_int_eq(S->ops->health_check(S, T0 + 1, &err), 0);  /* one row, rewritten */
    ck_assert_int_eq(fault_arm("commit=1"), 0);
    ck_assert_int_eq(S->ops->health_check(S, T0 + 2, &err), -1);
    ck_assert_int_eq(err.cls, ERR_TRANSIENT);
    ck_assert_str_eq(err.msg, "cannot commit: injected fault");
    ck_assert_int_eq(S->ops->health_check(S, T0 + 3, &err), 0);  /* commits again */
    ck_assert_int_eq(fault_arm(""), 0);
}
END_TEST

/* ---- hardening: password changes end sessions, refused files are not kept ---- */

START_TEST(test_change_password_ends_sessions)
{
    struct err err = {0};
    struct store_session s;
    int64_t bob = mkuser("bob"), ann = mkuser("ann"), ended = -1;

    ck_assert_int_eq(S->ops->session_create(S, "b1", bob, T0, T0 + 5000, &err), 0);
    ck_assert_int_eq(S->ops->session_create(S, "b2", bob, T0, T0 + 5000, &err), 0);
    ck_assert_int_eq(S->ops->session_create(S, "b3", bob, T0, T0 + 5000, &err), 0);
    ck_assert_int_eq(S->ops->session_create(S, "a1", ann, T0, T0 + 5000, &err), 0);
    /* the session that made the change stays; the others end */
    ck_assert_int_eq(S->ops->user_change_password(S, "bob", "h2", "b2", &ended, &err), 0);
    ck_assert_int_eq(ended, 2);
    ck_assert_int_eq(S->ops->session_get(S, "b1", T0, &s, &err), STORE_NOT_FOUND);
    ck_assert_int_eq(S->ops->session_get(S, "b2", T0, &s, &err), 0);
    ck_assert_int_eq(S->ops->session_get(S, "b3", T0, &s, &err), STORE_NOT_FOUND);
    ck_assert_int_eq(S->ops->session_get(S, "a1", T0, &s, &err), 0);  /* another user's */
    /* the command line's passwd (user_set_password) ends them all */
    ck_assert_int_eq(S->ops->user_set_password(S, "bob", "h3", &err), 0);
    ck_assert_int_eq(S->ops->session_get(S, "b2", T0, &s, &err), STORE_NOT_FOUND);
    ck_assert_int_eq(S->ops->session_get(S, "a1", T0, &s, &err), 0);
    /* an unknown user changes nothing */
    ck_assert_int_eq(S->ops->user_change_password(S, "carol", "x", NULL, NULL, &err),
                     STORE_NOT_FOUND);
    ck_assert_int_eq(S->ops->session_get(S, "a1", T0, &s, &err), 0);
}
END_TEST

static const struct {
    const char *stage;
    enum err_class cls;
    bool kept;  /* the spool copy stays: the file is retryable */
} refusal_rows[] = {
    {"limits", ERR_PERMANENT, false},   /* pixels, sides: the same bytes fail again */
    {"sniff", ERR_PERMANENT, false},    /* a format we do not take */
    {"decode", ERR_PERMANENT, true},    /* unchanged: kept when the worker asks */
    {"limits", ERR_TRANSIENT, true},
};

START_TEST(test_refused_file_not_retryable)
{
    struct store_result r = failed_result(true);
    int64_t bob = mkuser("bob"), up = mkupload(bob, 1, 10);
    int64_t f = add_file(up, bob, "big.jpg", SHA_A, "spool/big", NULL);
    struct store_finish fin;
    struct store_claim c;

    err_set(&r.error, refusal_rows[_i].cls, refusal_rows[_i].stage, "refused 'big.jpg'");
    assign(up, 1, 10, T0);
    c = claim("w", T0);
    fin = finish(c.file.id, "w", &r, T0 + 10);
    ck_assert_int_eq(fin.state, FILE_FAILED);
    ck_assert_int_eq(fin.spool_dropped, !refusal_rows[_i].kept);  /* the worker unlinks it */
    ck_assert_str_eq(file(f).spool, refusal_rows[_i].kept ? "spool/big" : "");
    ck_assert_int_eq(store_err_refuses_input(&r.error), !refusal_rows[_i].kept);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("store_sqlite");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_schema_version_once);
    tcase_add_test(tc, test_open_bad_path);
    tcase_add_test(tc, test_users);
    tcase_add_loop_test(tc, test_user_name_limit, 0, sizeof(name_rows) / sizeof(name_rows[0]));
    tcase_add_test(tc, test_sessions);
    tcase_add_test(tc, test_upload_lifecycle);
    tcase_add_test(tc, test_assign_compare_and_set);
    tcase_add_test(tc, test_assign_yields);
    tcase_add_test(tc, test_assign_overlaps);
    tcase_add_test(tc, test_ingest_rejected_file);
    tcase_add_loop_test(tc, test_finish_conditions, 0,
                        sizeof(finish_rows) / sizeof(finish_rows[0]));
    tcase_add_test(tc, test_upload_misc);
    tcase_add_loop_test(tc, test_drop_expected, 0, sizeof(drop_rows) / sizeof(drop_rows[0]));
    tcase_add_test(tc, test_drop_expected_missing);
    tcase_add_loop_test(tc, test_deleted_upload_is_no_sessions_current, BY_REQUEST_END,
                        BY_GONE_NODE + 1);
    tcase_add_test(tc, test_empty_upload_idle);
    tcase_add_test(tc, test_upload_list);
    tcase_add_test(tc, test_upload_open_is_one_transaction);
    tcase_add_test(tc, test_release_after_crash);
    tcase_add_test(tc, test_retry);
    tcase_add_test(tc, test_lease_lost);
    tcase_add_test(tc, test_lease_renew);
    tcase_add_test(tc, test_unclaim);
    tcase_add_test(tc, test_claim_order);
    tcase_add_test(tc, test_queue_depth);
    tcase_add_test(tc, test_commit_fault);
    tcase_add_test(tc, test_same_file_sent_again);
    tcase_add_test(tc, test_sched_open_requests);
    tcase_add_test(tc, test_health_check);
    tcase_add_test(tc, test_node_requests_expire_with_the_node);
    tcase_add_test(tc, test_change_feed);
    tcase_add_test(tc, test_change_mark);
    tcase_add_test(tc, test_photos);
    tcase_add_test(tc, test_photo_page);
    tcase_add_test(tc, test_photo_delete_refs);
    tcase_add_test(tc, test_photo_delete_keeps_held_original);
    tcase_add_test(tc, test_spool_refs);
    tcase_add_test(tc, test_long_file_name);
    tcase_add_test(tc, test_two_stores);
    tcase_add_test(tc, test_two_processes);
    tcase_add_test(tc, test_pool_threads);
    tcase_add_test(tc, test_change_password_ends_sessions);
    tcase_add_loop_test(tc, test_refused_file_not_retryable, 0,
                        sizeof(refusal_rows) / sizeof(refusal_rows[0]));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr;
    int failed;

#ifdef TESTDIR_PG
    if (!pg_fixture_available())
        return PG_FIXTURE_SKIP;
#endif
    sr = srunner_create(suite());

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
