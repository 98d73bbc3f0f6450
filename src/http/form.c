/* form: see form.h. */
#include "http/form.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"
#include "base/xalloc.h"

size_t form_decode(char *s)
{
    char *o = s;

    for (char *p = s; *p; p++) {
        int v;
        if (*p == '+') {
            *o++ = ' ';
        } else if (*p == '%' && (v = str_unhex2(p + 1)) >= 0) {
            *o++ = (char)v;
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return (size_t)(o - s);
}

/* Decodes s in place; true when that made a NUL byte (it then ends s early). */
static bool decoded_has_nul(char *s)
{
    size_t n = form_decode(s);

    return strlen(s) != n;
}

/* Adds the pair s[0..len); -1 when its name or value holds a NUL byte. */
static int add_pair(struct form *f, const char *s, size_t len)
{
    const char *eq = memchr(s, '=', len);
    size_t nlen = eq ? (size_t)(eq - s) : len;
    size_t vlen = eq ? len - nlen - 1 : 0;
    struct form_field *fld;

    if (len == 0)
        return 0;
    if (memchr(s, '\0', len))
        return -1;
    if (f->n == f->cap_) {
        /* doubling: a 16 KB body of "a&a&..." is 8192 fields */
        f->cap_ = f->cap_ ? 2 * f->cap_ : 8;
        f->fields = xrealloc(f->fields, f->cap_ * sizeof(*f->fields));
    }
    fld = &f->fields[f->n++];
    fld->name = xstrndup(s, nlen);
    fld->value = eq ? xstrndup(eq + 1, vlen) : xstrdup("");
    return decoded_has_nul(fld->name) || decoded_has_nul(fld->value) ? -1 : 0;
}

int form_parse(struct form *f, const char *data, size_t len)
{
    const char *p = data, *end = data + len;
    int rc = 0;

    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if (add_pair(f, p, (size_t)(stop - p)))
            rc = -1;
        p = stop + 1;
    }
    return rc;
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
    f->cap_ = 0;
}
