/*
 * cursor: a place in the photo list (store_photo_key) as it travels in a URL, the
 * before= and after= of the gallery's and the API's next and previous links:
 * "SORTAT_CREATED_ID" (the photo's sort time as stored, its creation time in
 * milliseconds, its id), e.g. 2024-06-01T12:00:00_1764600000000_42. A cursor names a
 * place, not a row: it keeps working when its photo is deleted or others are added.
 */
#ifndef SHOEBOX_HTTP_CURSOR_H
#define SHOEBOX_HTTP_CURSOR_H

#include "base/buf.h"
#include "store/store.h"

/* 0, or -1 when s is not a cursor (the key is then unspecified). */
int cursor_parse(const char *s, struct store_photo_key *k);
/* Appends k, percent-encoded for a query string. */
void cursor_add(struct buf *b, const struct store_photo_key *k);
/* Where the page's newer (prev) and older (next) links start: its first and last
 * photo; on an empty cursor page the cursor itself; NULL on an empty offset page
 * (past the end). */
const struct store_photo_key *cursor_newer_edge(const struct store_page *pg);
const struct store_photo_key *cursor_older_edge(const struct store_page *pg);

/*
 * The page a request asks for, from its before= or after= (at most one, and not with
 * a numbered page or an offset: the caller checks): fills pg->from and pg->key. 0
 * (STORE_PAGE_OFFSET when neither is given), or -1 with a message for a 400 in msg.
 */
int cursor_request(const char *before, const char *after, struct store_page *pg, char *msg,
                   size_t msg_size);

#endif
