/* Unit tests for src/store/s3xml.c: S3's XML answers through libxml2. The answers here
 * are shaped like RADOS Gateway's and AWS's (a default namespace, pretty-printed or not);
 * tests/unit/store/test_s3.c reads real ones from a RADOS Gateway. */
#include <check.h>
#include <string.h>

#include "store/s3xml.h"

#define NS "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""

static const char *LIST =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult " NS ">\n"
    "  <Name>photos</Name><IsTruncated>true</IsTruncated>\n"
    "  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>\n"
    "  <Contents><Key>o/ab/a&amp;b &lt;1&gt; caf&#xE9;</Key><Size>42</Size>"
    "<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag></Contents>\n"
    "  <CommonPrefixes><Prefix>x/</Prefix></CommonPrefixes>\n"
    "  <Contents><Key>o/cd/second</Key><Size>7</Size></Contents>\n"
    "</ListBucketResult>";

START_TEST(test_list_page)
{
    struct s3xml *doc = s3xml_parse(LIST, strlen(LIST));
    const struct s3xml_node *c;
    struct buf v = BUF_INIT;

    buf_init(&v);
    ck_assert_ptr_nonnull(doc);
    c = s3xml_each(doc, "Contents", NULL);
    ck_assert_ptr_nonnull(c);
    ck_assert(s3xml_text(doc, c, "Key", &v));
    ck_assert_str_eq(v.data, "o/ab/a&b <1> caf\xc3\xa9");  /* entities, UTF-8 from &#xE9; */
    ck_assert(s3xml_text(doc, c, "ETag", &v));
    ck_assert_str_eq(v.data, "\"9b2cf535f27731c974343645a3985328\"");
    c = s3xml_each(doc, "Contents", c);  /* skips CommonPrefixes */
    ck_assert_ptr_nonnull(c);
    ck_assert(s3xml_text(doc, c, "Key", &v));
    ck_assert_str_eq(v.data, "o/cd/second");
    ck_assert(!s3xml_text(doc, c, "ETag", &v));  /* only inside this Contents */
    ck_assert_str_eq(v.data, "o/cd/second");      /* untouched when absent */
    ck_assert_ptr_null(s3xml_each(doc, "Contents", c));
    ck_assert(s3xml_text(doc, NULL, "NextContinuationToken", &v));
    ck_assert_str_eq(v.data, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
    ck_assert(s3xml_text(doc, NULL, "Prefix", &v));  /* anywhere, depth first */
    ck_assert_str_eq(v.data, "x/");
    s3xml_free(doc);
    buf_release(&v);
}
END_TEST

START_TEST(test_error_answer)
{
    static const char *err = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey"
                             "</Code><Message>The specified key does not exist.</Message>"
                             "<Key>a</Key></Error>";
    struct s3xml *doc = s3xml_parse(err, strlen(err));
    struct buf v = BUF_INIT;

    buf_init(&v);
    ck_assert(s3xml_text(doc, NULL, "Code", &v));
    ck_assert_str_eq(v.data, "NoSuchKey");
    ck_assert(s3xml_text(doc, NULL, "Message", &v));
    ck_assert_str_eq(v.data, "The specified key does not exist.");
    s3xml_free(doc);
    buf_release(&v);
}
END_TEST

/* What is not a usable answer is NULL, and NULL reads as "no element". */
START_TEST(test_refused)
{
    static const char *cases[] = {
        "",
        "not xml at all",
        "<Error><Code>unclosed</Error>",
        "<html><body>502 Bad Gateway</body>",
        /* a DTD: no entity of ours is ever expanded (billion laughs, external files) */
        "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;\">]>"
        "<Error><Code>&b;</Code></Error>",
        "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
        "<Error><Code>&x;</Code></Error>",
    };
    struct buf v = BUF_INIT;

    buf_init(&v);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct s3xml *doc = s3xml_parse(cases[i], strlen(cases[i]));

        ck_assert_msg(doc == NULL, "case %zu parsed", i);
        ck_assert(!s3xml_text(doc, NULL, "Code", &v));
        ck_assert_ptr_null(s3xml_each(doc, "Contents", NULL));
    }
    ck_assert_ptr_null(s3xml_parse(NULL, 0));
    buf_release(&v);
}
END_TEST

/* Deep nesting past libxml2's limit is refused, not recursed into. */
START_TEST(test_deep)
{
    struct buf x = BUF_INIT;
    struct s3xml *doc;

    buf_init(&x);
    for (int i = 0; i < 5000; i++)
        buf_adds(&x, "<a>");
    doc = s3xml_parse(x.data, x.len);
    ck_assert_ptr_null(doc);
    buf_release(&x);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("s3xml");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_list_page);
    tcase_add_test(tc, test_error_answer);
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_deep);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
