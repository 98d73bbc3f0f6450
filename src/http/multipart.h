/*
 * multipart: a streaming multipart/form-data parser (RFC 7578, RFC 2046 framing).
 *
 * Feed the request body in chunks of any size (1 byte .. any); part bodies are
 * passed straight through to the callbacks and never held in memory. Only one
 * part's header block (at most LIMIT_PART_HEADER_BYTES) is buffered. Knows
 * nothing of libmicrohttpd, files or the database.
 *
 * Framing rules (decided here, tested in tests/unit/http_ingest/test_multipart.c):
 *   - Line ends are CRLF only. A bare LF is not a line end: in headers it makes
 *     the header block malformed, in a body it is data. Every browser and curl
 *     send CRLF; accepting LF would let body bytes "\n--B" end a part early.
 *   - The preamble (before the first boundary) and the epilogue (after the
 *     closing "--B--") are ignored. Spaces/tabs after a boundary are allowed.
 *     A body that never shows "--B" fails at its end; when its first line is
 *     "--" + another boundary, the message names both (the client wrote one
 *     boundary into the Content-Type header and another into the body).
 *   - "\r\n--B" inside a part always ends it (RFC 2046: senders pick a boundary
 *     that does not occur in the content); if it is not followed by "--" or
 *     CRLF the body is malformed.
 *   - Each part needs `Content-Disposition: form-data; name="..."`. Folded
 *     header lines are unfolded. Quoted strings accept \" and \\ escapes; any
 *     other backslash is kept (old IE sent "C:\dir\a.jpg"). "%22" in a quoted
 *     filename becomes '"' (how browsers escape quotes, WHATWG HTML).
 *   - filename*=UTF-8''... (RFC 5987; ISO-8859-1 too) wins over filename=.
 *     The filename is cut to LIMIT_FILENAME_BYTES without splitting a UTF-8
 *     sequence; it is otherwise passed as sent (it may hold any byte but NUL):
 *     it is display data for the consumer to clean, never a path.
 *
 * Errors are sticky: after the first error multipart_feed and multipart_finish
 * return -1 at once, so an HTTP callback can keep draining a rejected body.
 * Not thread-safe: one parser per request, driven by one thread at a time.
 */
#ifndef SHOEBOX_HTTP_MULTIPART_H
#define SHOEBOX_HTTP_MULTIPART_H

#include <stddef.h>

/* Longest boundary (RFC 2046). */
#define MULTIPART_BOUNDARY_MAX 70
/* Longest field name accepted (longer is an error); field names are ours. */
#define MULTIPART_NAME_MAX 255
/* Content-Type values longer than this are cut. */
#define MULTIPART_CTYPE_MAX 255

/* Callback results. */
enum multipart_rc {
    MULTIPART_OK = 0,     /* go on */
    MULTIPART_SKIP = 1,   /* drop the rest of this part's data; on_part_end still comes */
    MULTIPART_ABORT = -1, /* (any other value) stop parsing: sticky error */
};

/*
 * The consumer's callbacks; each may be NULL. Strings are borrowed until the
 * callback returns. For every on_part_begin that returned OK or SKIP exactly
 * one on_part_end follows once the part's closing boundary line was seen;
 * none follows when parsing stops on an error (the consumer cleans up then).
 *
 * on_part_begin: name is the form field name (may be ""), filename is NULL for
 *   a plain field and "" when a file input was left empty, content_type is
 *   NULL when absent.
 * on_part_data: len > 0; called any number of times, splits are arbitrary.
 */
struct multipart_cb {
    int (*on_part_begin)(void *ctx, const char *name, const char *filename,
                         const char *content_type);
    int (*on_part_data)(void *ctx, const char *data, size_t len);
    int (*on_part_end)(void *ctx);
};

struct multipart;

/*
 * Boundary of a Content-Type value such as
 *   multipart/form-data; charset=utf-8; Boundary="----abc"
 * into out (n >= MULTIPART_BOUNDARY_MAX + 1). The media type must be
 * multipart/form-data; the parameter name is case-insensitive; the value may
 * be quoted; it must be 1..70 RFC 2046 bchars, not ending in a space.
 * Returns 0, or -1 when absent or invalid (out is then "").
 */
int multipart_boundary_from_content_type(const char *ct, char *out, size_t n);

/*
 * New parser for boundary (without the leading "--"; 1..70 bytes, no CR/LF).
 * cb is copied; ctx is passed to every callback. Returns NULL for an invalid
 * boundary. Free with multipart_free().
 */
struct multipart *multipart_new(const char *boundary, const struct multipart_cb *cb, void *ctx);

/* Parse len more bytes of the body. Returns 0, or -1 (sticky; see multipart_error). */
int multipart_feed(struct multipart *m, const char *data, size_t len);

/*
 * The body has ended. Returns 0 when the closing boundary was seen, else -1
 * ("body ended in a part's data" etc.); sticky errors are returned as well.
 */
int multipart_finish(struct multipart *m);

/* NULL-safe. */
void multipart_free(struct multipart *m);

/* The sticky error's message (for a person), or NULL when none. Borrowed
 * until multipart_free. */
const char *multipart_error(const struct multipart *m);

/* Parts begun so far (for logs and tests). */
size_t multipart_parts(const struct multipart *m);

#endif
