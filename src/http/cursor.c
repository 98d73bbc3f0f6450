/* cursor: see cursor.h. */
#include "http/cursor.h"

#include <stdio.h>
#include <string.h>

#include "base/str.h"
#include "http/html.h"

/* The integer after the last '_' of s[0..*len): 0 and *len cut before the '_', or -1. */
static int last_field(const char *s, size_t *len, int64_t *v)
{
    char num[24];
    size_t i = *len;

    while (i > 0 && s[i - 1] != '_')
        i--;
    if (i == 0 || *len - i == 0 || *len - i >= sizeof(num))
        return -1;
    memcpy(num, s + i, *len - i);
    num[*len - i] = '\0';
    if (str_to_int64(num, v) || *v < 0)
        return -1;
    *len = i - 1;
    return 0;
}

int cursor_parse(const char *s, struct store_photo_key *k)
{
    size_t len = s ? strlen(s) : 0;

    memset(k, 0, sizeof(*k));
    if (len == 0 || last_field(s, &len, &k->id) || k->id == 0 ||
        last_field(s, &len, &k->created_at) || len == 0 || len >= sizeof(k->sort_at))
        return -1;
    for (size_t i = 0; i < len; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return -1;
    memcpy(k->sort_at, s, len);
    k->sort_at[len] = '\0';
    return 0;
}

void cursor_add(struct buf *b, const struct store_photo_key *k)
{
    html_url_component(b, k->sort_at, 0);
    buf_addf(b, "_%lld_%lld", (long long)k->created_at, (long long)k->id);
}

static const struct store_photo_key *empty_edge(const struct store_page *pg)
{
    return pg->from == STORE_PAGE_OFFSET ? NULL : &pg->key;
}

const struct store_photo_key *cursor_newer_edge(const struct store_page *pg)
{
    return pg->n ? &pg->first : empty_edge(pg);
}

const struct store_photo_key *cursor_older_edge(const struct store_page *pg)
{
    return pg->n ? &pg->last : empty_edge(pg);
}

int cursor_request(const char *before, const char *after, struct store_page *pg, char *msg,
                   size_t msg_size)
{
    const char *name = before ? "before" : "after";
    const char *v = before ? before : after;

    pg->from = STORE_PAGE_OFFSET;
    if (!v)
        return 0;
    if (before && after) {
        snprintf(msg, msg_size, "give before= or after=, not both");
        return -1;
    }
    if (cursor_parse(v, &pg->key)) {
        snprintf(msg, msg_size,
                 "bad cursor in %s=: expected SORTTIME_CREATED_ID as in the next and prev "
                 "links this server gives",
                 name);
        return -1;
    }
    pg->from = before ? STORE_PAGE_BEFORE : STORE_PAGE_AFTER;
    return 0;
}
