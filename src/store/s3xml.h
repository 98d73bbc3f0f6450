/*
 * s3xml: the few elements of S3's XML answers (Error Code/Message, ListBucketResult,
 * InitiateMultipartUploadResult, ListMultipartUploadsResult), read with libxml2.
 * Only s3.c and the fuzz target use it. Element names are matched without their
 * namespace (S3 answers carry a default one).
 */
#ifndef SHOEBOX_STORE_S3XML_H
#define SHOEBOX_STORE_S3XML_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"

struct s3xml;       /* one parsed answer */
struct s3xml_node;  /* an element of it */

/* Parses data[0..len). NULL when it is empty, not well-formed, or has a DTD: S3 never
 * sends one, so no entity of our own is ever expanded and nothing is fetched. */
struct s3xml *s3xml_parse(const char *data, size_t len);
void s3xml_free(struct s3xml *doc);

/* The root's next child element named tag after prev (NULL: the first); NULL at the end. */
const struct s3xml_node *s3xml_each(const struct s3xml *doc, const char *tag,
                                    const struct s3xml_node *prev);

/* The text of the first element named tag (depth first) inside in, or anywhere in doc
 * when in is NULL, decoded, into out (reset first). false when doc is NULL or there is
 * no such element (out then untouched). */
bool s3xml_text(const struct s3xml *doc, const struct s3xml_node *in, const char *tag,
                struct buf *out);

#endif
