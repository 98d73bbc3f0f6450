/* html: see html.h. */
#include "http/html.h"

#include <stdbool.h>
#include <string.h>

static void escape(struct buf *b, const char *s)
{
    const char *start = s;

    if (!s)
        return;
    for (; *s; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: break;
        }
        if (!rep)
            continue;
        buf_add(b, start, (size_t)(s - start));
        buf_adds(b, rep);
        start = s + 1;
    }
    buf_add(b, start, (size_t)(s - start));
}

void html_text(struct buf *b, const char *s)
{
    escape(b, s);
}

void html_attr(struct buf *b, const char *s)
{
    escape(b, s);
}

void html_url_component(struct buf *b, const char *s, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";

    if (!s)
        return;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/');
        if (plain) {
            buf_addc(b, (char)c);
            continue;
        }
        buf_addc(b, '%');
        buf_addc(b, hex[c >> 4]);
        buf_addc(b, hex[c & 15]);
    }
}

static const struct html_var *find_var(const struct html_var *vars, size_t n, const char *name,
                                       size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(vars[i].name) == len && memcmp(vars[i].name, name, len) == 0)
            return &vars[i];
    return NULL;
}

int html_render(struct buf *out, const char *tmpl, size_t len, const struct html_var *vars,
                size_t nvars, struct err *err)
{
    const char *p = tmpl, *end = tmpl + len;

    while (p < end) {
        const char *open = memmem(p, (size_t)(end - p), "{{", 2);
        if (!open) {
            buf_add(out, p, (size_t)(end - p));
            break;
        }
        buf_add(out, p, (size_t)(open - p));
        bool raw = open + 2 < end && open[2] == '{';
        const char *name = open + (raw ? 3 : 2);
        const char *close = memmem(name, (size_t)(end - name), raw ? "}}}" : "}}", raw ? 3 : 2);
        if (!close)
            return err_set(err, ERR_PERMANENT, "template", "unclosed placeholder at offset %zu",
                           (size_t)(open - tmpl));
        const struct html_var *v = find_var(vars, nvars, name, (size_t)(close - name));
        if (!v)
            return err_set(err, ERR_PERMANENT, "template", "unknown placeholder '%.*s'",
                           (int)(close - name), name);
        if (raw)
            buf_adds(out, v->value ? v->value : "");
        else
            escape(out, v->value);
        p = close + (raw ? 3 : 2);
    }
    return 0;
}
