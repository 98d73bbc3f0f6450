/*
 * Unit tests for the savable SHA-256 state (base/sha256.c) that tus keeps in
 * its info file, and for the tus id check (intake/tus.c).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "base/sha256.h"
#include "intake/tus.h"

/* Hashing in pieces with the state saved to text and read back between each
 * piece gives the same digest as hashing the whole at once. */
START_TEST(test_saved_state_resumes)
{
    size_t n = 300000;
    unsigned char *data = malloc(n);
    char want[SHA256_HEX_LEN + 1], got[SHA256_HEX_LEN + 1];
    char text[2 * SHA256_STATE_BYTES + 1];
    struct sha256_saved s, back;
    size_t cuts[] = {0, 1, 63, 64, 65, 4096, 100001, 299999, 300000};

    for (size_t i = 0; i < n; i++)
        data[i] = (unsigned char)(i * 7 + (i >> 9));
    sha256_hex(data, n, want);
    sha256s_init(&s);
    for (size_t c = 1; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
        sha256s_update(&s, data + cuts[c - 1], cuts[c] - cuts[c - 1]);
        sha256s_to_hex(&s, text);
        memset(&back, 0xAB, sizeof(back));
        ck_assert_int_eq(sha256s_from_hex(&back, text), 0);
        s = back;
    }
    sha256s_peek_hex(&s, got);
    ck_assert_str_eq(got, want);
    /* peek does not change the state */
    sha256s_peek_hex(&s, got);
    ck_assert_str_eq(got, want);
    free(data);
}
END_TEST

START_TEST(test_saved_state_rejects_bad_text)
{
    struct sha256_saved s;
    char text[2 * SHA256_STATE_BYTES + 1];

    sha256s_init(&s);
    sha256s_to_hex(&s, text);
    ck_assert_int_eq(sha256s_from_hex(&s, text), 0);
    ck_assert_int_eq(sha256s_from_hex(&s, "abc"), -1);
    text[5] = 'x';
    ck_assert_int_eq(sha256s_from_hex(&s, text), -1);
    ck_assert_int_eq(sha256s_from_hex(&s, NULL), -1);
}
END_TEST

START_TEST(test_digests)
{
    unsigned char out[DIGEST_MAX];
    struct digest *d = digest_new("sha1");

    ck_assert_ptr_nonnull(d);
    digest_update(d, "abc", 3);
    ck_assert_uint_eq(digest_final(d, out), 20);
    ck_assert_uint_eq(out[0], 0xa9);
    ck_assert_uint_eq(out[1], 0x99);
    digest_free(d);
    d = digest_new("md5");
    digest_update(d, "abc", 3);
    ck_assert_uint_eq(digest_final(d, out), 16);
    ck_assert_uint_eq(out[0], 0x90);
    digest_free(d);
    ck_assert_ptr_null(digest_new("crc32"));
    ck_assert_ptr_null(digest_new("SHA1"));
}
END_TEST

START_TEST(test_id_ok)
{
    ck_assert(tus_id_ok("0123456789abcdef0123456789abcdef"));
    ck_assert(!tus_id_ok("0123456789abcdef0123456789abcde"));
    ck_assert(!tus_id_ok("0123456789ABCDEF0123456789abcdef"));
    ck_assert(!tus_id_ok("../3456789abcdef0123456789abcdef"));
    ck_assert(!tus_id_ok(""));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tus");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_saved_state_resumes);
    tcase_add_test(tc, test_saved_state_rejects_bad_text);
    tcase_add_test(tc, test_digests);
    tcase_add_test(tc, test_id_ok);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
