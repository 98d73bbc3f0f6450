/* Unit tests for src/http/html.c and src/http/form.c: escaping by context,
 * the template renderer, urlencoded forms. */
#include "http/html.h"

#include <check.h>
#include <string.h>

#include "http/form.h"

struct esc_case {
    const char *in, *text, *url;
};

static const struct esc_case esc[] = {
    {"", "", ""},
    {"plain", "plain", "plain"},
    {"<script>alert('x')</script>", "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;",
     "%3Cscript%3Ealert%28%27x%27%29%3C%2Fscript%3E"},
    {"a&b \"c\"", "a&amp;b &quot;c&quot;", "a%26b%20%22c%22"},
    {"/photos/?next=//evil", "/photos/?next=//evil", "%2Fphotos%2F%3Fnext%3D%2F%2Fevil"},
    {"\xc3\xa9t\xc3\xa9", "\xc3\xa9t\xc3\xa9", "%C3%A9t%C3%A9"},
    {"~a-b_c.d", "~a-b_c.d", "~a-b_c.d"},
};

START_TEST(escaping)
{
    const struct esc_case *c = &esc[_i];
    struct buf t = BUF_INIT, a = BUF_INIT, u = BUF_INIT;

    html_text(&t, c->in);
    html_attr(&a, c->in);
    html_url_component(&u, c->in, 0);
    ck_assert_str_eq(t.data ? t.data : "", c->text);
    ck_assert_str_eq(a.data ? a.data : "", c->text);
    ck_assert_str_eq(u.data ? u.data : "", c->url);
    buf_release(&t);
    buf_release(&a);
    buf_release(&u);
}
END_TEST

START_TEST(url_keep_slash)
{
    struct buf u = BUF_INIT;

    html_url_component(&u, "/photos/a b", 1);
    ck_assert_str_eq(u.data, "/photos/a%20b");
    buf_release(&u);
}
END_TEST

struct render_case {
    const char *tmpl;
    int rc;
    const char *out;
};

static const struct html_var vars[] = {
    {"name", "<b>&"}, {"frag", "<i>ok</i>"}, {"empty", NULL}, {"n", "1"}};

static const struct render_case renders[] = {
    {"", 0, ""},
    {"no placeholders", 0, "no placeholders"},
    {"Hi {{name}}!", 0, "Hi &lt;b&gt;&amp;!"},
    {"{{{frag}}}", 0, "<i>ok</i>"},
    {"{{frag}}", 0, "&lt;i&gt;ok&lt;/i&gt;"},
    {"[{{empty}}]", 0, "[]"},
    {"{{n}}{{n}}{{{n}}}", 0, "111"},
    {"a { b } c {x}", 0, "a { b } c {x}"},
    {"{{missing}}", -1, NULL},
    {"{{name", -1, NULL},
    {"{{{frag}}", -1, NULL},
    {"{{}}", -1, NULL},
};

START_TEST(render)
{
    const struct render_case *c = &renders[_i];
    struct buf out = BUF_INIT;
    struct err err = {0};
    int rc = html_render(&out, c->tmpl, strlen(c->tmpl), vars, 4, &err);

    ck_assert_msg(rc == c->rc, "'%s' rc %d", c->tmpl, rc);
    if (rc == 0)
        ck_assert_str_eq(out.data ? out.data : "", c->out);
    else
        ck_assert(err.msg[0]);
    buf_release(&out);
}
END_TEST

START_TEST(forms)
{
    struct form f = FORM_INIT;
    const char body[] = "username=al+ice&password=p%40ss%26w%3D&empty=&flag&x=%zz&username=2";

    form_parse(&f, body, strlen(body));
    ck_assert_str_eq(form_get(&f, "username"), "al ice");
    ck_assert_str_eq(form_get(&f, "password"), "p@ss&w=");
    ck_assert_str_eq(form_get(&f, "empty"), "");
    ck_assert_str_eq(form_get(&f, "flag"), "");
    ck_assert_str_eq(form_get(&f, "x"), "%zz");
    ck_assert_ptr_null(form_get(&f, "nope"));
    form_release(&f);
    form_parse(&f, "", 0);
    ck_assert_uint_eq(f.n, 0);
    form_parse(&f, "&&a=1&", 6);
    ck_assert_uint_eq(f.n, 1);
    ck_assert_str_eq(form_get(&f, "a"), "1");
    form_release(&f);
    /* length-bounded: no read past len */
    form_parse(&f, "a=12345", 3);
    ck_assert_str_eq(form_get(&f, "a"), "1");
    form_release(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("html");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, escaping, 0, sizeof(esc) / sizeof(esc[0]));
    tcase_add_test(tc, url_keep_slash);
    tcase_add_loop_test(tc, render, 0, sizeof(renders) / sizeof(renders[0]));
    tcase_add_test(tc, forms);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
