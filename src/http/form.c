/* form: see form.h. */
#include "http/form.h"

#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t form_decode(char *s)
{
    char *o = s;

    for (char *p = s; *p; p++) {
        int hi, lo;
        if (*p == '+') {
            *o++ = ' ';
        } else if (*p == '%' && (hi = hexval(p[1])) >= 0 && (lo = hexval(p[2])) >= 0) {
            *o++ = (char)(hi * 16 + lo);
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return (size_t)(o - s);
}

static void add_pair(struct form *f, const char *s, size_t len)
{
    const char *eq = memchr(s, '=', len);
    size_t nlen = eq ? (size_t)(eq - s) : len;
    struct form_field *fld;

    if (len == 0)
        return;
    f->fields = xrealloc(f->fields, (f->n + 1) * sizeof(*f->fields));
    fld = &f->fields[f->n++];
    fld->name = xstrndup(s, nlen);
    fld->value = eq ? xstrndup(eq + 1, len - nlen - 1) : xstrdup("");
    form_decode(fld->name);
    form_decode(fld->value);
}

void form_parse(struct form *f, const char *data, size_t len)
{
    const char *p = data, *end = data + len;

    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        add_pair(f, p, (size_t)(stop - p));
        p = stop + 1;
    }
}

const char *form_get(const struct form *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->fields[i].name, name) == 0)
            return f->fields[i].value;
    return NULL;
}

void form_release(struct form *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->fields[i].name);
        free(f->fields[i].value);
    }
    free(f->fields);
    f->fields = NULL;
    f->n = 0;
}
