/* Unit tests for base/secret: Argon2id password hashes, tokens, digests. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "base/secret.h"

static void setup(void)
{
    struct err err = {0};
    ck_assert_int_eq(secret_init(&err), 0);
}

START_TEST(hash_and_verify)
{
    char h[SECRET_HASH_MAX];
    struct err err = {0};

    ck_assert_int_eq(secret_hash_password("correct horse", h, &err), 0);
    ck_assert_msg(strncmp(h, "$argon2id$", 10) == 0, "not an argon2id hash: %s", h);
    ck_assert(secret_verify_password(h, "correct horse"));
    ck_assert(!secret_verify_password(h, "correct horsE"));
    ck_assert(!secret_verify_password(h, ""));
    /* No user: still false, after the same work. */
    ck_assert(!secret_verify_password(NULL, "correct horse"));
}
END_TEST

START_TEST(salted)
{
    char a[SECRET_HASH_MAX], b[SECRET_HASH_MAX];

    ck_assert_int_eq(secret_hash_password("same", a, NULL), 0);
    ck_assert_int_eq(secret_hash_password("same", b, NULL), 0);
    ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(password_limit)
{
    char h[SECRET_HASH_MAX];
    char *pw = malloc(SECRET_PASSWORD_MAX + 2);
    struct err err = {0};

    memset(pw, 'x', SECRET_PASSWORD_MAX);
    pw[SECRET_PASSWORD_MAX] = '\0'; /* exactly the limit */
    ck_assert_int_eq(secret_hash_password(pw, h, &err), 0);
    pw[SECRET_PASSWORD_MAX] = 'x';
    pw[SECRET_PASSWORD_MAX + 1] = '\0'; /* one over */
    ck_assert_int_eq(secret_hash_password(pw, h, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "longer than"));
    free(pw);
}
END_TEST

START_TEST(tokens)
{
    char a[SECRET_TOKEN_HEX + 1], b[SECRET_TOKEN_HEX + 1], da[SECRET_TOKEN_HEX + 1],
        da2[SECRET_TOKEN_HEX + 1], db[SECRET_TOKEN_HEX + 1];

    secret_token(a);
    secret_token(b);
    ck_assert_uint_eq(strlen(a), 64);
    ck_assert_uint_eq(strspn(a, "0123456789abcdef"), 64);
    ck_assert_str_ne(a, b);
    secret_digest(a, da);
    secret_digest(a, da2);
    secret_digest(b, db);
    ck_assert_str_eq(da, da2);  /* deterministic */
    ck_assert_str_ne(da, db);
    ck_assert_str_ne(da, a);    /* never the token itself */
}
END_TEST

START_TEST(random_password)
{
    char p[21], q[21];

    secret_password(p, 20);
    secret_password(q, 20);
    ck_assert_uint_eq(strlen(p), 20);
    ck_assert_str_ne(p, q);
    ck_assert_ptr_null(strpbrk(p, "0O1lI"));  /* unambiguous alphabet */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("secret");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, hash_and_verify);
    tcase_add_test(tc, salted);
    tcase_add_test(tc, password_limit);
    tcase_add_test(tc, tokens);
    tcase_add_test(tc, random_password);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
