/* Unit tests for src/http/session.c (and its cache) against the in-memory fake store. */
#include "http/session.h"

#include <check.h>
#include <string.h>

#include "base/secret.h"
#include "fake_store.h"

static struct store *st;

static void setup(void)
{
    st = fake_store_new();
    fake_store_add_user(st, "alice", "pw");
    session_cache_clear();
}

static void teardown(void)
{
    fake_store_free(st);
}

START_TEST(create_load_delete)
{
    char token[SESSION_TOKEN_LEN + 1], digest[SESSION_TOKEN_LEN + 1];
    struct session_info si;
    int64_t now = 1000000;

    ck_assert_int_eq(session_create(st, 1, now, 3600, token, NULL), 0);
    ck_assert(session_token_valid(token));
    ck_assert_int_eq(session_load(st, token, now + 10, 3600, &si, NULL), 0);
    ck_assert(si.valid);
    ck_assert_int_eq(si.user_id, 1);
    ck_assert_str_eq(si.user_name, "alice");
    secret_digest(token, digest);
    ck_assert_str_eq(si.digest, digest);
    ck_assert_str_ne(si.digest, token);  /* only the digest is the key */
    ck_assert_int_eq(session_delete(st, token, NULL), 0);
    ck_assert_int_eq(session_load(st, token, now + 20, 3600, &si, NULL), 0);
    ck_assert(!si.valid);
}
END_TEST

START_TEST(expiry_slides)
{
    char token[SESSION_TOKEN_LEN + 1];
    struct session_info si;
    int64_t now = 1000000;

    ck_assert_int_eq(session_create(st, 1, now, 2, token, NULL), 0);
    /* age 2 s: touched once a quarter of the age (500 ms) has passed */
    ck_assert_int_eq(session_load(st, token, now + 499, 2, &si, NULL), 0);
    ck_assert(si.valid);
    ck_assert_int_eq(fake_store_touches(st), 0);
    ck_assert_int_eq(session_load(st, token, now + 1000, 2, &si, NULL), 0);
    ck_assert(si.valid);
    ck_assert_int_eq(fake_store_touches(st), 1);
    ck_assert_int_eq(si.expires_at, now + 3000);
    /* the limit: valid just under the new expiry, gone at it */
    ck_assert_int_eq(session_load(st, token, now + 2999, 2, &si, NULL), 0);
    ck_assert(si.valid);
    ck_assert_int_eq(session_load(st, token, now + 2999 + 3000, 2, &si, NULL), 0);
    ck_assert(!si.valid);
}
END_TEST

START_TEST(touch_throttled)
{
    char token[SESSION_TOKEN_LEN + 1];
    struct session_info si;
    int64_t now = 1000000;

    ck_assert_int_eq(session_create(st, 1, now, 3600, token, NULL), 0);
    ck_assert_int_eq(session_load(st, token, now + SESSION_TOUCH_MS - 1, 3600, &si, NULL), 0);
    ck_assert_int_eq(fake_store_touches(st), 0);
    ck_assert_int_eq(session_load(st, token, now + SESSION_TOUCH_MS, 3600, &si, NULL), 0);
    ck_assert_int_eq(fake_store_touches(st), 1);
    ck_assert_int_eq(si.expires_at, now + SESSION_TOUCH_MS + 3600 * 1000);
    /* the touched session outlives its first expiry */
    ck_assert_int_eq(session_load(st, token, now + 3600 * 1000 + 1, 3600, &si, NULL), 0);
    ck_assert(si.valid);
}
END_TEST

START_TEST(bad_tokens)
{
    struct session_info si;

    ck_assert_int_eq(session_load(st, NULL, 1, 3600, &si, NULL), 0);
    ck_assert(!si.valid);
    ck_assert_int_eq(session_load(st, "abc", 1, 3600, &si, NULL), 0);
    ck_assert(!si.valid);
    ck_assert_int_eq(session_load(st,
                                  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
                                  1, 3600, &si, NULL), 0);
    ck_assert(!si.valid);
    ck_assert_int_eq(session_delete(st, "abc", NULL), 0);
    ck_assert_int_eq(session_delete(st, NULL, NULL), 0);
}
END_TEST

/* A row deleted behind the module's back (another node, `shoebox user passwd`)
 * is still used from the cache, but never longer than SESSION_CACHE_MS. */
START_TEST(cache_bound)
{
    char token[SESSION_TOKEN_LEN + 1], digest[SESSION_TOKEN_LEN + 1];
    struct session_info si;
    int64_t now = 1000000;

    ck_assert_int_eq(session_create(st, 1, now, 3600, token, NULL), 0);
    ck_assert_int_eq(session_load(st, token, now, 3600, &si, NULL), 0);
    ck_assert(si.valid);
    secret_digest(token, digest);
    ck_assert_int_eq(st->ops->session_delete(st, digest, NULL), 0);
    ck_assert_int_eq(session_load(st, token, now + SESSION_CACHE_MS - 1, 3600, &si, NULL), 0);
    ck_assert(si.valid);  /* the cache spared this read */
    ck_assert_int_eq(session_load(st, token, now + SESSION_CACHE_MS, 3600, &si, NULL), 0);
    ck_assert(!si.valid);
    /* a clock that went back does not stretch an entry's life either */
    ck_assert_int_eq(session_create(st, 1, now, 3600, token, NULL), 0);
    ck_assert_int_eq(session_load(st, token, now, 3600, &si, NULL), 0);
    secret_digest(token, digest);
    ck_assert_int_eq(st->ops->session_delete(st, digest, NULL), 0);
    ck_assert_int_eq(session_load(st, token, now - 1, 3600, &si, NULL), 0);
    ck_assert(!si.valid);
}
END_TEST

/* A logout through the module ends the session at once, cached or not. */
START_TEST(cache_logout_at_once)
{
    char token[SESSION_TOKEN_LEN + 1];
    struct session_info si;
    int64_t now = 1000000;

    ck_assert_int_eq(session_create(st, 1, now, 3600, token, NULL), 0);
    ck_assert_int_eq(session_load(st, token, now, 3600, &si, NULL), 0);
    ck_assert(si.valid);
    ck_assert_int_eq(session_delete(st, token, NULL), 0);
    ck_assert_int_eq(session_load(st, token, now + 1, 3600, &si, NULL), 0);
    ck_assert(!si.valid);
}
END_TEST

/* A cached row is never used at or past its expiry. */
START_TEST(cache_never_past_expiry)
{
    char token[SESSION_TOKEN_LEN + 1];
    struct session_info si;
    int64_t now = 1000000;

    /* age 1 s: a load 100 ms in is cached without a touch (the touch waits 250 ms) */
    ck_assert_int_eq(session_create(st, 1, now, 1, token, NULL), 0);
    ck_assert_int_eq(session_load(st, token, now + 100, 1, &si, NULL), 0);
    ck_assert(si.valid);
    ck_assert_int_eq(fake_store_touches(st), 0);
    /* the row is gone from the store (another node): the cached copy, still
     * within SESSION_CACHE_MS of its read, is not used at its expiry */
    char digest[SESSION_TOKEN_LEN + 1];
    secret_digest(token, digest);
    ck_assert_int_eq(st->ops->session_delete(st, digest, NULL), 0);
    ck_assert_int_eq(session_load(st, token, now + 1000, 1, &si, NULL), 0);
    ck_assert(!si.valid);
}
END_TEST

/* Entries belong to one store: another store's session of the same digest is
 * not answered from the cache. */
START_TEST(cache_per_store)
{
    char token[SESSION_TOKEN_LEN + 1];
    struct session_info si;
    struct store *other = fake_store_new();
    int64_t now = 1000000;

    fake_store_add_user(other, "bob", "pw");
    ck_assert_int_eq(session_create(st, 1, now, 3600, token, NULL), 0);
    ck_assert_int_eq(session_load(st, token, now, 3600, &si, NULL), 0);
    ck_assert(si.valid);
    ck_assert_int_eq(session_load(other, token, now, 3600, &si, NULL), 0);
    ck_assert(!si.valid);
    fake_store_free(other);
}
END_TEST

START_TEST(cookies)
{
    char line[256];
    const char *tok = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    session_cookie(line, sizeof(line), tok, 3600, false);
    ck_assert_str_eq(line, "sessionid=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                           "; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax");
    session_cookie(line, sizeof(line), tok, 3600, true);
    ck_assert_ptr_nonnull(strstr(line, "; Secure"));
    session_cookie(line, sizeof(line), NULL, 3600, false);
    ck_assert_str_eq(line, "sessionid=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("session");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    secret_init(NULL);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, create_load_delete);
    tcase_add_test(tc, expiry_slides);
    tcase_add_test(tc, touch_throttled);
    tcase_add_test(tc, bad_tokens);
    tcase_add_test(tc, cookies);
    tcase_add_test(tc, cache_bound);
    tcase_add_test(tc, cache_logout_at_once);
    tcase_add_test(tc, cache_never_past_expiry);
    tcase_add_test(tc, cache_per_store);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
