/*
 * html: escaping by context (text, attribute, URL component) and a tiny
 * template renderer. Templates use {{name}} (escaped for text and quoted
 * attributes) and {{{name}}} (raw, for fragments rendered by us). Not a
 * general template language: no loops or conditions; build lists in C.
 */
#ifndef SHOEBOX_HTTP_HTML_H
#define SHOEBOX_HTTP_HTML_H

#include <stddef.h>

#include "base/buf.h"
#include "base/err.h"

struct html_var {
    const char *name;
    const char *value;  /* NULL renders as "" */
};

/* Text and double- or single-quoted attribute values: & < > " ' escaped. */
void html_text(struct buf *b, const char *s);
void html_attr(struct buf *b, const char *s);
/* Percent-encodes everything but A-Z a-z 0-9 - . _ ~ (and '/' when keep_slash). */
void html_url_component(struct buf *b, const char *s, int keep_slash);
/* Appends tmpl[0..len) to out with placeholders replaced. An unknown name or an
 * unclosed placeholder fails (a bug in a template, so tests catch it). */
int html_render(struct buf *out, const char *tmpl, size_t len, const struct html_var *vars,
                size_t nvars, struct err *err);

#endif
