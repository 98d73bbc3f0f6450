/*
 * form: application/x-www-form-urlencoded bodies ("a=1&b=x+y%21").
 * Percent-decoding turns '+' into a space; a malformed escape is kept as is.
 * A decoded NUL ("%00") would cut a C string there ("password=RIGHT%00junk"
 * would check "RIGHT"): form_parse reports it and the request is refused.
 */
#ifndef SHOEBOX_HTTP_FORM_H
#define SHOEBOX_HTTP_FORM_H

#include <stddef.h>

struct form_field {
    char *name, *value;
};

struct form {
    struct form_field *fields;
    size_t n;
    size_t cap_;   /* fields allocated (grows by doubling) */
};

#define FORM_INIT {NULL, 0, 0}

/* Parse data[0..len) into f (which must be FORM_INIT or released). The caller
 * bounds len (LIMIT_FORM_BYTES). Returns 0, or -1 when a name or value holds a
 * NUL byte (raw or "%00"): the caller refuses the form (f holds what was
 * parsed, to be released as usual). */
int form_parse(struct form *f, const char *data, size_t len);
/* First value of name, or NULL. Borrowed until form_release. */
const char *form_get(const struct form *f, const char *name);
void form_release(struct form *f);
/* Decode s in place; returns the new length (less than strlen(s) after the
 * call when a "%00" was decoded). */
size_t form_decode(char *s);

#endif
