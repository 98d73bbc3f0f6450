/*
 * form: application/x-www-form-urlencoded bodies ("a=1&b=x+y%21").
 * Percent-decoding turns '+' into a space; a malformed escape is kept as is.
 * A decoded NUL ends the value (C strings), which is safe for our fields.
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
};

#define FORM_INIT {NULL, 0}

/* Parse data[0..len) into f (which must be FORM_INIT or released). The caller
 * bounds len (LIMIT_FORM_BYTES). */
void form_parse(struct form *f, const char *data, size_t len);
/* First value of name, or NULL. Borrowed until form_release. */
const char *form_get(const struct form *f, const char *name);
void form_release(struct form *f);
/* Decode s in place; returns the new length. */
size_t form_decode(char *s);

#endif
